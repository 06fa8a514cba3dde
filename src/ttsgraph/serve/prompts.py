"""From a client's chat messages to every node's prompts.

The last user message is the question; a system message passes through to every node (ahead of
the node's own instructions); earlier turns stay as context for nodes without a task. With a task
(`--task T`) its role prompts and answer format are used, so a graph found on that task sees the
prompts it was found with. Without one, generic prompts follow the same three roles: a node that
answers alone (it sees the conversation as a single model would), a node that synthesizes its
predecessors' answers, and a fuser that reviews and condenses them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ttsgraph.executor import PromptFn
from ttsgraph.graph import normalize_role
from ttsgraph.llm.base import Message

SYNTHESIZE = (
    "You are given answers several assistants wrote to the user's last message. Some may be wrong: "
    "judge each one critically rather than copying it, then write one accurate, well-organized reply of your own."
)
FUSE = (
    "You are the fusion agent of a team of assistants. Review the answers below to the user's last "
    "message, keep what is correct, drop repetition and condense them into one reply."
)


@dataclass(frozen=True)
class Conversation:
    """A request's messages split the way the graph reads them."""

    system: str
    history: tuple[Message, ...]
    question: str

    @classmethod
    def of(cls, messages: list[Message]) -> Conversation:
        last = max(k for k, m in enumerate(messages) if m["role"] == "user" and m["content"].strip())
        system = "\n\n".join(m["content"].strip() for m in messages if m["role"] == "system" and m["content"].strip())
        history = tuple(m for m in messages[:last] if m["role"] != "system")
        return cls(system=system, history=history, question=messages[last]["content"])


def _listing(predecessors: list[str]) -> str:
    return "\n\n".join(f"[{k}]\n{text.strip()}" for k, text in enumerate(predecessors, 1))


def generic_prompts(conv: Conversation) -> PromptFn:
    """Role prompts for any chat, no task needed."""

    def prompts(role: str, predecessors: list[str], is_output: bool) -> list[Message]:
        head = [conv.system] if conv.system else []
        if not predecessors:
            system = [{"role": "system", "content": conv.system}] if conv.system else []
            return [*system, *conv.history, {"role": "user", "content": conv.question}]
        fuser = normalize_role(role) == "fuser" and not is_output
        instructions = FUSE if fuser else SYNTHESIZE
        label = "Previous answers" if fuser else "Answers from other assistants"
        return [
            {"role": "system", "content": "\n\n".join([*head, instructions])},
            *conv.history,
            {"role": "user", "content": f"{conv.question}\n\n{label}:\n\n{_listing(predecessors)}"},
        ]

    return prompts


def task_prompts(conv: Conversation, task: Any) -> PromptFn:
    """The task's role prompts for the question; the client's system text goes first."""
    from ttsgraph.tasks.base import Item

    item = Item(id="request", question=conv.question, answer="")

    def prompts(role: str, predecessors: list[str], is_output: bool) -> list[Message]:
        messages = [dict(m) for m in task.messages(item, role, predecessors, is_output)]
        if conv.system:
            if messages and messages[0]["role"] == "system":
                messages[0]["content"] = f"{conv.system}\n\n{messages[0]['content']}"
            else:
                messages.insert(0, {"role": "system", "content": conv.system})
        return messages

    return prompts


def prompts_for(messages: list[Message], task: Any | None) -> PromptFn:
    conv = Conversation.of(messages)
    return task_prompts(conv, task) if task is not None else generic_prompts(conv)
