"""The task protocol: items, a held-out split, per-role prompts, answer extraction and grading.

A task is what a search optimizes and what an evaluation scores. Everything an optimizer may see
comes from the `search` split; the `test` split is held out so that the accuracy reported for the
graph a search returns is not inflated by the search itself. Splits are computed once, from a
seed, on the *whole* dataset before any filter, so a filter (a subject, a level) never moves an
item from one split to the other and ids stay stable across runs.

Prompts follow SPEC §4.7 (reworded): a node that answers alone, a node that synthesizes its
predecessors' answers Mixture-of-Agents style, and a fuser that reviews and condenses. The roles
(`ttsgraph.roles`) build them; each task only supplies the task-specific pieces (persona, answer
format, fuser instructions).
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ttsgraph.cost import TaskLengths
from ttsgraph.errors import GraphError, TaskError
from ttsgraph.roles import ROLES, role_spec

Split = Literal["search", "test"]
SPLITS: tuple[str, ...] = ("search", "test")
Message = dict[str, str]


@dataclass(frozen=True)
class Item:
    """One question. `id` is stable across runs (e.g. `math500/123`) so results can be joined."""

    id: str
    question: str
    answer: str
    meta: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Grade:
    """The verdict on one answer. `extracted` is None when no answer could be found in the text."""

    correct: bool
    extracted: str | None
    detail: str = ""


def seeded_split(
    items: Sequence[Item],
    seed: int,
    search_fraction: float,
    stratify: Callable[[Item], str] | None = None,
) -> tuple[list[Item], list[Item]]:
    """Split items into (search, test) with a seeded shuffle, optionally per stratum.

    Items are first sorted by id so that the result depends only on the data and the seed,
    never on file order or Python's hash randomization. Stratifying (e.g. by MMLU subject)
    keeps every stratum represented in both splits.
    """
    if not 0.0 < search_fraction < 1.0:
        raise TaskError(f"search_fraction must be strictly between 0 and 1, got {search_fraction}")
    groups: dict[str, list[Item]] = {}
    for item in sorted(items, key=lambda i: i.id):
        groups.setdefault(stratify(item) if stratify else "", []).append(item)
    search: list[Item] = []
    test: list[Item] = []
    for key in sorted(groups):
        group = groups[key]
        random.Random(f"{seed}/{key}").shuffle(group)
        n_search = round(len(group) * search_fraction)
        if len(group) >= 2:
            n_search = min(max(n_search, 1), len(group) - 1)
        search.extend(group[:n_search])
        test.extend(group[n_search:])
    order = {item.id: k for k, item in enumerate(sorted(items, key=lambda i: i.id))}
    search.sort(key=lambda i: order[i.id])
    test.sort(key=lambda i: order[i.id])
    return search, test


def chars_per_4_lengths(
    items: Sequence[Item],
    answer_chars: Sequence[int] | None = None,
    prompt_of: Callable[[Item], str] | None = None,
) -> TaskLengths:
    """Estimate (A, B) in tokens as characters/4 when a task has no measured or published lengths.

    A counts what a node with no predecessors reads: `prompt_of(item)` (tasks pass their rendered
    system + user messages), else the bare question. B counts a typical reply, which callers may
    pass (e.g. reference solutions), since a bare gold answer is much shorter than what a model writes.
    """
    if not items:
        raise TaskError("cannot estimate task lengths from an empty item list")
    prompts = [len(prompt_of(i)) if prompt_of else len(i.question) for i in items]
    prompt = sum(prompts) / len(prompts) / 4.0
    chars = answer_chars if answer_chars is not None else [len(i.answer) for i in items]
    answer = max(sum(chars) / max(len(chars), 1) / 4.0, 1.0)
    return TaskLengths(prompt=round(prompt, 1), answer=round(answer, 1))


class Task(ABC):
    """A benchmark: items in two splits, role prompts, an extractor and a grader.

    Subclasses set `name`, `grader`, `lengths` and the prompt pieces, and implement
    `_load_splits`, `extract` and `_matches`. Grading is synchronous and must be called from the
    main thread (math-verify arms `signal.alarm` for its timeouts).
    """

    name: str = ""
    grader: str = ""
    lengths: TaskLengths = TaskLengths(0.0, 0.0)

    # Prompt pieces (SPEC §4.7, in our words).
    persona: str = "a careful problem solver"
    answer_rule: str = ""
    synthesis_rule: str = ""
    fuser_instructions: str = "Keep the correct reasoning, drop repetition and state one final answer."
    # Cap on the characters of each predecessor answer shown to a node (tail kept); None = no cap.
    predecessor_chars: int | None = None
    # True when grade() may run in a worker thread (no signal-based timeouts): HumanEval, whose
    # grading waits on a sandboxed subprocess, can then be graded off the event loop.
    thread_safe_grading: bool = False

    def __init__(self) -> None:
        self._splits: dict[str, list[Item]] | None = None

    # ---- items -------------------------------------------------------------------------
    @abstractmethod
    def _load_splits(self) -> dict[str, list[Item]]:
        """Return {"search": [...], "test": [...]}, disjoint, already filtered."""

    def items(self, split: str = "test") -> list[Item]:
        """The items of one split, in a stable order. `search` is what optimizers may see."""
        if split not in SPLITS:
            raise TaskError(f"{self.name}: unknown split {split!r}; use one of {', '.join(SPLITS)}")
        if self._splits is None:
            splits = self._load_splits()
            overlap = {i.id for i in splits["search"]} & {i.id for i in splits["test"]}
            if overlap:
                raise TaskError(f"{self.name}: search and test splits share {len(overlap)} item(s), e.g. {min(overlap)}")
            self._splits = splits
        return list(self._splits[split])

    # ---- prompts -----------------------------------------------------------------------
    def format_question(self, item: Item) -> str:
        """The question as shown to a model (MMLU appends its choices here)."""
        return item.question

    def _answer_system(self) -> str:
        return f"You are {self.persona}. {self.answer_rule}".strip()

    def _synthesis_system(self) -> str:
        return (
            f"You are {self.persona}. You are given the answers several models wrote to the question "
            "below. Some of them may be wrong or biased: judge each one critically rather than copying "
            "it, then write a single accurate, well-organized answer of your own. "
            f"{self.synthesis_rule or self.answer_rule}"
        ).strip()

    def _fuser_system(self) -> str:
        return (
            "You are the fusion agent of a team of models. Review the reasoning and answers the "
            "previous agents produced, keep what is correct, condense it and give one final answer."
        )

    def _numbered(self, predecessors: Sequence[str]) -> str:
        parts = []
        for k, text in enumerate(predecessors, 1):
            text = text.strip()
            cap = self.predecessor_chars
            if cap is not None and len(text) > cap:
                text = "..." + text[-cap:]
            parts.append(f"[{k}]\n{text}")
        return "\n\n".join(parts)

    def messages(self, item: Item, role: str, predecessors: list[str], is_output: bool) -> list[Message]:
        """Chat messages for one node, built by its role (`ttsgraph.roles`) from this task's wording:
        an assistant answers alone or synthesizes its predecessors, a fuser reviews and condenses
        them, the output node with predecessors synthesizes. A role that calls no model (vote) has
        no prompt: asking for one is a TaskError."""
        try:
            spec = role_spec(role)
        except GraphError:
            raise TaskError(f"{self.name}: unknown node role {role!r}; use one of {', '.join(ROLES)}") from None
        if spec.prompt is None:
            raise TaskError(f"{self.name}: a {spec.name} node makes no LLM call, so it has no prompt")
        return spec.prompt(self, self.format_question(item), predecessors, is_output)

    # ---- answers -----------------------------------------------------------------------
    @abstractmethod
    def extract(self, text: str) -> str | None:
        """The final answer found in a model's text, or None."""

    @abstractmethod
    def _matches(self, extracted: str, item: Item) -> tuple[bool, str]:
        """Whether an extracted answer is right for the item, with a short detail."""

    def grade(self, item: Item, text: str) -> Grade:
        """Extract then compare. Call from the main thread (see class docstring)."""
        extracted = self.extract(text or "")
        if extracted is None:
            return Grade(False, None, "no answer found")
        ok, detail = self._matches(extracted, item)
        return Grade(ok, extracted, detail)

    def gold_text(self, item: Item) -> str:
        """A reply that states the gold answer the way the prompt asks; used by self-tests."""
        return f"The answer is: {item.answer}"

    def prompt_text(self, item: Item) -> str:
        """The text a node with no predecessors reads (system + user), for length estimates."""
        return "\n".join(m["content"] for m in self.messages(item, "assistant", [], False))

    def describe(self) -> dict:
        """One row of `ttsgraph tasks`."""
        search, test = self.items("search"), self.items("test")
        return {
            "name": self.name,
            "search": len(search),
            "test": len(test),
            "items": len(search) + len(test),
            "A": self.lengths.prompt,
            "B": self.lengths.answer,
            "grader": self.grader,
        }
