"""Synthetic arithmetic: integer expressions generated from a seed, with difficulty knobs.

The embedded tiny models (SmolLM2-135M, Gemma-3-270M) score zero on GSM8K/MATH and chance on
MMLU, so no graph can beat another there; on short arithmetic they score strictly between 0 and 1,
which is what a search needs to have a signal. Difficulty grows with `digits` (operand size),
`terms` (operands per expression) and `ops` (which of + - * may appear; * binds tighter).
Questions are unique across both splits, so the held-out split never repeats a search question.
"""

from __future__ import annotations

import random
import re

from ttsgraph.cost import TaskLengths
from ttsgraph.errors import TaskError
from ttsgraph.tasks.answers import final_number, numbers_equal
from ttsgraph.tasks.base import Item, Task

ALLOWED_OPS = "+-*"

# Calibrated default (see docs/tasks.md for the measured accuracies of the embedded models).
DEFAULT_DIGITS = 1
DEFAULT_TERMS = 2
DEFAULT_OPS = "+-"
DEFAULT_SIZE = 75


def evaluate(operands: list[int], operators: list[str]) -> int:
    """Value of `a0 o0 a1 o1 ...` with * before + and -, computed without eval()."""
    terms: list[int] = [operands[0]]
    signs: list[int] = [1]
    for op, value in zip(operators, operands[1:]):
        if op == "*":
            terms[-1] *= value
        else:
            terms.append(value)
            signs.append(1 if op == "+" else -1)
    return sum(s * t for s, t in zip(signs, terms))


class ArithmeticTask(Task):
    """`arithmetic` with options seed, digits, terms, ops, size (items per split)."""

    grader = "numeric"
    persona = "a precise calculator"
    answer_rule = (
        "Reply with 'Answer: ' followed by the number.\n"
        "Example: What is 4 + 3 - 5? Answer: 2\n"
        "Example: What is 6 - 8 + 1? Answer: -1"
    )
    synthesis_rule = "Check them, then reply with 'Answer: ' followed by the correct number."
    fuser_instructions = "Check the previous results and reply with 'Answer: ' followed by the correct number."
    predecessor_chars = 200  # tiny models, short contexts: the tail holds the final answer

    def __init__(
        self,
        seed: int = 0,
        digits: int = DEFAULT_DIGITS,
        terms: int = DEFAULT_TERMS,
        ops: str = DEFAULT_OPS,
        size: int = DEFAULT_SIZE,
    ) -> None:
        super().__init__()
        self.seed, self.digits, self.terms, self.ops, self.size = int(seed), int(digits), int(terms), str(ops), int(size)
        if not 1 <= self.digits <= 12:
            raise TaskError(f"arithmetic: digits must be 1..12, got {digits}")
        if not 2 <= self.terms <= 12:
            raise TaskError(f"arithmetic: terms must be 2..12, got {terms}")
        if not self.ops or any(o not in ALLOWED_OPS for o in self.ops):
            raise TaskError(f"arithmetic: ops must be a non-empty subset of {ALLOWED_OPS!r}, got {ops!r}")
        if self.size < 1:
            raise TaskError(f"arithmetic: size must be >= 1, got {size}")
        self.ops = "".join(sorted(set(self.ops), key=ALLOWED_OPS.index))
        self.name = "arithmetic"
        self.config_id = f"d{self.digits}t{self.terms}{self._ops_code()}s{self.seed}"
        items = self._generate()
        self._all = items
        mean_q = sum(len(self.prompt_text(i)) for i in items) / len(items)
        # A worked reply looks like "<expression> = <value>. Answer: <value>".
        mean_a = sum(len(i.meta["expression"]) + 2 * len(i.answer) + 12 for i in items) / len(items)
        self.lengths = TaskLengths(prompt=round(mean_q / 4.0, 1), answer=round(mean_a / 4.0, 1))

    def _ops_code(self) -> str:
        return "".join({"+": "a", "-": "s", "*": "m"}[o] for o in self.ops)

    def _operand(self, rng: random.Random) -> int:
        low = 1 if self.digits == 1 else 10 ** (self.digits - 1)
        return rng.randint(low, 10**self.digits - 1)

    def _generate(self) -> list[Item]:
        rng = random.Random(f"arithmetic/{self.config_id}")
        seen: set[str] = set()
        items: list[Item] = []
        attempts = 0
        while len(items) < 2 * self.size:
            attempts += 1
            if attempts > 50 * 2 * self.size + 1000:
                raise TaskError(
                    f"arithmetic: only {len(items)} distinct questions exist for digits={self.digits}, "
                    f"terms={self.terms}, ops={self.ops!r}; lower size (asked {self.size} per split)"
                )
            operands = [self._operand(rng) for _ in range(self.terms)]
            operators = [rng.choice(self.ops) for _ in range(self.terms - 1)]
            expression = str(operands[0]) + "".join(f" {o} {v}" for o, v in zip(operators, operands[1:]))
            if expression in seen:
                continue
            seen.add(expression)
            split = "search" if len(items) < self.size else "test"
            k = len(items) if split == "search" else len(items) - self.size
            items.append(
                Item(
                    id=f"arithmetic/{self.config_id}/{split}/{k}",
                    question=f"What is {expression}?",
                    answer=str(evaluate(operands, operators)),
                    meta={"expression": expression, "split": split},
                )
            )
        return items

    def _load_splits(self) -> dict[str, list[Item]]:
        return {
            "search": [i for i in self._all if i.meta["split"] == "search"],
            "test": [i for i in self._all if i.meta["split"] == "test"],
        }

    # Base models (Gemma-3-270M) keep going and invent the next exercise; only what comes before it
    # is the model's answer to this one.
    _NEXT_EXERCISE = re.compile(r"\n\s*(?:Example:|What is|Question|Q:|Problem)", re.IGNORECASE)

    def extract(self, text: str) -> str | None:
        return final_number(self._NEXT_EXERCISE.split(text, maxsplit=1)[0])

    def _matches(self, extracted: str, item: Item) -> tuple[bool, str]:
        ok = numbers_equal(extracted, item.answer)
        return ok, "" if ok else f"expected {item.answer}"

    def gold_text(self, item: Item) -> str:
        return f"Answer: {item.answer}"
