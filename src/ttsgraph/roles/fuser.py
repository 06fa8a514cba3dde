"""The fuser role: review and condense the predecessors' answers (task-specific instructions).

A fuser with nothing to fuse answers the question itself, so a sampled graph never sends an
empty review request; a fuser that is the output node synthesizes, as any output node does."""

from __future__ import annotations

from collections.abc import Sequence

from ttsgraph.roles import Message, PromptPieces, RoleSpec
from ttsgraph.roles.assistant import answer, synthesize


def prompt(task: PromptPieces, question: str, predecessors: Sequence[str], is_output: bool) -> list[Message]:
    if not predecessors:
        return answer(task, question)
    if is_output:
        return synthesize(task, question, predecessors)
    return [
        {"role": "system", "content": task._fuser_system()},
        {"role": "user", "content": f"{task.fuser_instructions}\n\nQuestion:\n{question}\n\nPrevious answers:\n\n"
                                    f"{task._numbered(predecessors)}"},
    ]


SPEC = RoleSpec("fuser", ("rev",), "reviews and condenses its predecessors' answers", prompt=prompt)
