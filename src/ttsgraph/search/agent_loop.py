"""The one ask → parse → retry loop every agent optimizer uses.

An agent reply is untrusted text: it is parsed strictly, and a reply that breaks a rule is sent
back with the error so the agent can correct itself. Agent-REINFORCE's initialization, its update
rounds and the hybrid's table rewrite all need exactly that loop, with the same audit trail (the
rejected exchange marked with its reason), the same hotter retries and the same bookkeeping in
the proposal meta (`attempts`, `retries`, `fallback`); keeping one copy keeps them identical.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ttsgraph.errors import AgentReplyError, BackendError
from ttsgraph.llm.base import Message
from ttsgraph.search import agent_prompts as P
from ttsgraph.search.agent import AgentClient

T = TypeVar("T")


@dataclass
class Answer(Generic[T]):
    """What the loop got: the parsed `value` and the reply `text` it came from, or None and the
    `reason` after the last failure; `attempts` calls were made, `retries` of them retries."""

    value: T | None
    text: str
    attempts: int
    reason: str = ""

    @property
    def retries(self) -> int:
        return self.attempts - 1


async def ask_parsed(client: AgentClient, messages: list[Message], parse: Callable[[str], T], *, kind: str,
                     iteration: int, retries: int, schema: dict[str, object] | None = None,
                     retry_step: float = 0.0, json_reply: bool = True,
                     max_tokens: Callable[[list[Message]], int | None] | None = None) -> Answer[T]:
    """Ask, parse with `parse` (which raises `AgentReplyError`), and on a rejected reply append it
    and the error to the messages and ask again, up to `retries` more times. Attempt k > 0 is
    asked at the agent's temperature + `retry_step`·k (at most 1.0): a low-temperature agent
    behind a seeded backend would otherwise repeat the rejected reply. `max_tokens(messages)`
    may lower the reply budget per call (a small agent's context window). A failing backend
    ends the loop at once (asking again would fail the same way)."""
    why = ""
    for attempt in range(retries + 1):
        temperature = None
        if attempt and retry_step > 0:
            temperature = min(1.0, client.params.temperature + retry_step * attempt)
        try:
            text, _ = await client.ask(messages, schema, kind=kind if not attempt else f"{kind}-retry",
                                       iteration=iteration, attempt=attempt,
                                       max_tokens=max_tokens(messages) if max_tokens else None,
                                       temperature=temperature)
        except BackendError as exc:
            return Answer(None, "", attempt + 1, f"agent call failed: {exc.reason}")
        try:
            return Answer(parse(text), text, attempt + 1)
        except AgentReplyError as exc:
            why = str(exc)
            client.reject(why)
            messages = messages + [{"role": "assistant", "content": text},
                                   {"role": "user", "content": P.retry_prompt(why, json_reply=json_reply)}]
    return Answer(None, "", retries + 1, f"no usable reply after {retries + 1} attempts: {why}")


__all__ = ["Answer", "ask_parsed"]
