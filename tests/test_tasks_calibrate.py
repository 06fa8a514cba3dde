"""The calibration helper: majority vote, scoring, and failed calls counted instead of crashing."""

from __future__ import annotations

import asyncio

from ttsgraph.errors import BackendError
from ttsgraph.llm.fake import ScriptedBackend
from ttsgraph.tasks import load_task
from ttsgraph.tasks.calibrate import calibrate
from ttsgraph.vote import majority


def test_majority_ignores_missing_answers_and_breaks_ties_by_order():
    assert majority(["3", None, "4", "3"]) == ("3", 2)
    assert majority([None, "5", "6"]) == ("5", 1)
    assert majority([None, " 6", "6 ", "5"]) == ("6", 2)  # answers are compared stripped
    assert majority([None, None]) == (None, 0)


def test_calibrate_scores_single_and_voted_answers():
    task = load_task("arithmetic", size=10)
    items = task.items("test")[:6]
    gold = {it.question: it.answer for it in items}

    def responder(model, messages, sample):
        question = messages[-1]["content"]
        if model == "good":
            # right on samples 0, 1 and 2; wrong on 3 and 4, so the vote of 5 is right
            return f"Answer: {gold[question]}" if sample < 3 else "Answer: 12345"
        if sample == 1:
            raise BackendError("empty reply (finish_reason='stop')", model=model)
        return "Answer: 12345"

    report = asyncio.run(calibrate(task, ["good", "bad"], limit=6, vote=5, backend=ScriptedBackend(responder)))
    good, bad = report["models"]["good"], report["models"]["bad"]
    assert good["single_t0.1"]["accuracy"] == 1.0 and good["majority_of_5_t0.7"]["correct"] == 6
    assert bad["single_t0.1"]["correct"] == 0 and bad["majority_of_5_t0.7"]["correct"] == 0
    assert bad["backend_errors"] == {"empty reply": 6}  # one failed sample per item, counted, no crash
    low, high = good["single_t0.1"]["ci95"]
    assert 0 < low < 1.0 and high == 1.0
