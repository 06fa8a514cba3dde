"""MMLU: 14,042 four-way multiple-choice questions in 57 subjects; `mmlu:<subject>` filters.

Only the test split is available, so it is split per subject (seeded, stratified) into a small
search split and a large held-out test split; filtering by subject happens after the split.
"""

from __future__ import annotations

from ttsgraph.cost import PAPER_LENGTHS
from ttsgraph.errors import TaskError
from ttsgraph.tasks.answers import LETTERS, choice_letter
from ttsgraph.tasks.base import Grade, Item, Task, seeded_split
from ttsgraph.tasks.datafiles import load_records


def subject_key(subject: str) -> str:
    """`high_school_physics`, `High School Physics` and `high school physics` name one subject."""
    return subject.strip().lower().replace("_", " ").replace("-", " ")


class MmluTask(Task):
    """MMLU with an optional subject filter; 10% of each subject is the search split."""

    grader = "choice"
    persona = "a knowledgeable expert who answers multiple-choice questions"
    answer_rule = "Begin your reply with 'Answer: X', where X is a single letter from A to D, then justify it briefly."
    synthesis_rule = "Begin with 'Answer: X', where X is a single letter from A to D, then justify it briefly."
    fuser_instructions = (
        "Decide on the single best letter and keep a concise justification. Reply exactly in the form "
        "<OUTPUT>Answer: X\nReasoning: ...</OUTPUT>."
    )

    def __init__(self, subject: str | None = None, seed: int = 0, search_fraction: float = 0.1) -> None:
        super().__init__()
        self.subject = subject
        self.name = f"mmlu:{subject_key(subject).replace(' ', '_')}" if subject else "mmlu"
        self.lengths = PAPER_LENGTHS["mmlu"]
        self.seed = seed
        self.search_fraction = search_fraction
        if subject is not None and subject_key(subject) not in self.subjects():
            raise TaskError(f"mmlu: unknown subject {subject!r}; known: {', '.join(s.replace(' ', '_') for s in self.subjects())}")

    @staticmethod
    def subjects() -> list[str]:
        return sorted({subject_key(r["subject"]) for r in load_records("mmlu_test.jsonl.gz")})

    def _load_splits(self) -> dict[str, list[Item]]:
        items = []
        for k, r in enumerate(load_records("mmlu_test.jsonl.gz")):
            if r["answer"] not in LETTERS[: len(r["choices"])]:
                raise TaskError(f"mmlu: record {k} has answer {r['answer']!r} outside its choices")
            items.append(
                Item(
                    id=f"mmlu/{k}",
                    question=r["question"],
                    answer=r["answer"],
                    meta={"subject": subject_key(r["subject"]), "choices": list(r["choices"])},
                )
            )
        search, test = seeded_split(items, self.seed, self.search_fraction, stratify=lambda i: i.meta["subject"])
        if self.subject is None:
            return {"search": search, "test": test}
        want = subject_key(self.subject)
        return {
            "search": [i for i in search if i.meta["subject"] == want],
            "test": [i for i in test if i.meta["subject"] == want],
        }

    def format_question(self, item: Item) -> str:
        options = "\n".join(f"{LETTERS[k]}. {c}" for k, c in enumerate(item.meta["choices"]))
        return f"{item.question}\n\n{options}"

    def extract(self, text: str) -> str | None:
        return choice_letter(text, n_choices=4)

    def grade(self, item: Item, text: str) -> Grade:
        """Like Task.grade, but with the item's choices, so a reply quoting a choice's text counts."""
        letter = choice_letter(text or "", choices=item.meta.get("choices"))
        if letter is None:
            return Grade(False, None, "no choice letter found")
        ok, detail = self._matches(letter, item)
        return Grade(ok, letter, detail)

    def _matches(self, extracted: str, item: Item) -> tuple[bool, str]:
        ok = extracted.strip().upper() == item.answer
        return ok, "" if ok else f"expected {item.answer}"

    def gold_text(self, item: Item) -> str:
        return f"Answer: {item.answer}"
