"""The assistant role: answer the question alone, or synthesize the predecessors' answers
Mixture-of-Agents style (SPEC §4.7). The output node with predecessors uses the synthesis prompt
whatever its role."""

from __future__ import annotations

from collections.abc import Sequence

from ttsgraph.roles import Message, PromptPieces, RoleSpec


def answer(task: PromptPieces, question: str) -> list[Message]:
    """A node with nothing to read answers the question itself (every LLM role starts so)."""
    return [{"role": "system", "content": task._answer_system()}, {"role": "user", "content": question}]


def synthesize(task: PromptPieces, question: str, predecessors: Sequence[str]) -> list[Message]:
    return [
        {"role": "system", "content": task._synthesis_system()},
        {"role": "user", "content": f"Question:\n{question}\n\nAnswers from other models:\n\n"
                                    f"{task._numbered(predecessors)}"},
    ]


def prompt(task: PromptPieces, question: str, predecessors: Sequence[str], is_output: bool) -> list[Message]:
    return synthesize(task, question, predecessors) if predecessors else answer(task, question)


SPEC = RoleSpec("assistant", ("io",), "answers the question, or synthesizes its predecessors' answers",
                prompt=prompt)
