"""Majority vote over sampled answers: the free aggregation of self-consistency.

Used by bench's budget-matched self-consistency baseline, by `tasks/calibrate.py` and by the graph
role `vote` (`roles/vote.py`, through `vote_text`); one rule so they all count the same answers the
same way: answers are the task's extractions (stripped), texts with no extractable answer do not
vote, and a tie goes to the answer seen first (sample order), which keeps the vote deterministic
for a given set of samples.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any


def majority(answers: Sequence[str | None]) -> tuple[str | None, int]:
    """(the most frequent answer, its votes); ties go to the earliest; (None, 0) if none voted."""
    votes: Counter[str] = Counter()
    first: dict[str, int] = {}
    for k, answer in enumerate(answers):
        if answer is None:
            continue
        key = answer.strip()
        votes[key] += 1
        first.setdefault(key, k)
    if not votes:
        return None, 0
    winner = max(votes, key=lambda a: (votes[a], -first[a]))
    return winner, votes[winner]


def majority_vote(texts: Sequence[str | None], task: Any, item: Any) -> tuple[bool, str | None, int]:
    """Vote over model replies for one item: (correct, winning answer, votes for it).

    Each text's answer is the task's extraction; the winner is graded by the task (on the first
    text that gave it). No extractable answer anywhere: wrong, with no answer."""
    answers = [task.extract(t) if t is not None else None for t in texts]
    winner, votes = majority(answers)
    if winner is None:
        return False, None, 0
    text = next(t for t, a in zip(texts, answers) if a is not None and a.strip() == winner)
    return bool(task.grade(item, text or "").correct), winner, votes


def vote_text(texts: Sequence[str], extract: Callable[[str], str | None]) -> str:
    """The text of the first reply giving the majority answer (the texts in voting order); the
    first text when none has an answer. Needs at least one text."""
    if not texts:
        raise ValueError("a vote needs at least one text")
    answers = [extract(t) for t in texts]
    winner, _ = majority(answers)
    if winner is None:
        return texts[0]
    return next(t for t, a in zip(texts, answers) if a is not None and a.strip() == winner)


__all__ = ["majority", "majority_vote", "vote_text"]
