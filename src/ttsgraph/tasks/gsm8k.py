"""GSM8K: grade-school word problems with a single numeric answer.

The official train split (7,473) serves as the search split and the official test split (1,319)
as the held-out test split, so the two can never overlap. References end with `#### <number>`.
"""

from __future__ import annotations

from ttsgraph.errors import TaskError
from ttsgraph.tasks.answers import final_number, normalize_number, numbers_equal
from ttsgraph.tasks.base import Item, Task, chars_per_4_lengths
from ttsgraph.tasks.datafiles import load_records


def reference_number(solution: str) -> str:
    """The number after `####` in a GSM8K reference solution."""
    if "####" not in solution:
        raise TaskError(f"gsm8k: reference without '####': {solution[-80:]!r}")
    value = normalize_number(solution.split("####")[-1])
    if value is None:
        raise TaskError(f"gsm8k: reference answer is not a number: {solution.split('####')[-1]!r}")
    return value


class Gsm8kTask(Task):
    """GSM8K; search = official train, test = official test."""

    name = "gsm8k"
    grader = "numeric"
    persona = "a careful math tutor"
    answer_rule = "Solve the problem step by step, then end with 'The answer is: N' where N is the final number."
    synthesis_rule = "End with 'The answer is: N' where N is the final number."
    fuser_instructions = (
        "Check each previous solution's steps, keep the correct ones, drop repetition, and end with "
        "'The answer is: N' where N is the final number."
    )

    def __init__(self) -> None:
        super().__init__()
        self._records = {split: load_records(f"gsm8k_{split}.jsonl.gz") for split in ("train", "test")}
        test_items = self._make("test")
        # A from the rendered prompts, B from the reference solutions (reasoning + answer): chars/4.
        self.lengths = chars_per_4_lengths(
            test_items, [len(r["answer"]) for r in self._records["test"]], prompt_of=self.prompt_text
        )

    def _make(self, split: str) -> list[Item]:
        return [
            Item(id=f"gsm8k/{split}/{k}", question=r["question"], answer=reference_number(r["answer"]), meta={"solution": r["answer"]})
            for k, r in enumerate(self._records[split])
        ]

    def _load_splits(self) -> dict[str, list[Item]]:
        return {"search": self._make("train"), "test": self._make("test")}

    def extract(self, text: str) -> str | None:
        return final_number(text)

    def _matches(self, extracted: str, item: Item) -> tuple[bool, str]:
        ok = numbers_equal(extracted, item.answer)
        return ok, "" if ok else f"expected {item.answer}"
