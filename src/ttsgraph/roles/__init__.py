"""Node roles as a small registry: what a node of each role does with its predecessors' answers.

A role says how its node's prompt is built (from the task's own wording) or, for a programmatic
role, how it aggregates its predecessors without an LLM call. One module per role
(`assistant`, `fuser`, `vote`); graph validation, the executor, cost, parsers and the samplers all
ask this registry instead of listing roles themselves, so a new role is one module plus its entry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from ttsgraph.errors import GraphError

Message = dict[str, str]
Extract = Callable[[str], "str | None"]
Role = Literal["assistant", "fuser", "vote"]


class PromptPieces(Protocol):
    """The task-side wording a role's prompt is built from (`tasks.base.Task` provides it)."""

    fuser_instructions: str

    def _answer_system(self) -> str: ...

    def _synthesis_system(self) -> str: ...

    def _fuser_system(self) -> str: ...

    def _numbered(self, predecessors: Sequence[str]) -> str: ...


PromptBuilder = Callable[[PromptPieces, str, Sequence[str], bool], list[Message]]
"""(task pieces, formatted question, predecessors' texts, is_output) -> chat messages."""
Aggregator = Callable[[Sequence[str], Extract], str]
"""(predecessors' texts in topological order, the task's extractor) -> the node's text."""


@dataclass(frozen=True)
class RoleSpec:
    """One role. Exactly one of `prompt` (an LLM call) and `aggregate` (no call, 0 FLOPs) is set."""

    name: str
    aliases: tuple[str, ...]
    summary: str
    prompt: PromptBuilder | None = None
    aggregate: Aggregator | None = None
    min_preds: int = 0

    @property
    def calls_model(self) -> bool:
        """Whether a node of this role is an LLM call (and so needs a model and costs FLOPs)."""
        return self.aggregate is None


def _registry() -> dict[str, RoleSpec]:
    from ttsgraph.roles import assistant, fuser, vote

    return {m.SPEC.name: m.SPEC for m in (assistant, fuser, vote)}


REGISTRY: dict[str, RoleSpec] = _registry()
ROLES: tuple[str, ...] = tuple(REGISTRY)
MODEL_ROLES: tuple[str, ...] = tuple(r for r, s in REGISTRY.items() if s.calls_model)
"""Roles whose nodes are LLM calls (assistant, fuser)."""
_ALIASES = {alias: spec.name for spec in REGISTRY.values() for alias in (spec.name, *spec.aliases)}


def normalize_role(text: str) -> Role:
    """Accept the project's role names and the paper code's aliases (IO, REV), any case."""
    role = _ALIASES.get(str(text).strip().lower())
    if role is None:
        names = ", ".join(ROLES)
        raise GraphError(f"unknown role {text!r}: expected one of {names} (or IO/REV)")
    return role  # type: ignore[return-value]


def role_spec(role: str) -> RoleSpec:
    """The registry entry of a role name or alias; unknown names raise GraphError."""
    return REGISTRY[normalize_role(role)]


def calls_model(role: str) -> bool:
    return role_spec(role).calls_model


__all__ = ["MODEL_ROLES", "REGISTRY", "ROLES", "Aggregator", "Extract", "PromptBuilder", "PromptPieces", "Role",
           "RoleSpec", "calls_model", "normalize_role", "role_spec"]
