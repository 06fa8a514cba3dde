"""Run store: schema round trips, one writer at a time, per-trial durability, read-only readers."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3

import pytest

from ttsgraph.executor import ItemResult, NodeTrace
from ttsgraph.graph import parallel
from ttsgraph.search.base import Evaluation
from ttsgraph.store import RunStore, StoreError


def _evaluation(trial: int = 0, acc: float = 0.5) -> Evaluation:
    g = parallel(2, "smollm2-135m")
    return Evaluation(trial=trial, graph=g, accuracy=acc, utility=acc, correct=1, scored=2, errors=0,
                      item_ids=["a/1", "a/2"], planned_units=3.2, measured_units=2.9, latency=0.7,
                      meta={"counts": {"smollm2-135m": 2}}, feedback=[{"id": "a/1", "correct": True}])


def _results() -> list[ItemResult]:
    node = NodeTrace("out", "smollm2-135m", "fuser", "Answer: 3", 10, 4, 0.3, 0.0, 0.3, 1e9)
    return [ItemResult(item_id="a/1", output_text="Answer: 3", extracted="3", correct=True, error=None, wall=0.4,
                       critical_path=0.3, sequential=0.5, planned_flops=2e9, measured_flops=1.9e9, nodes=[node]),
            ItemResult(item_id="a/2", output_text=None, error="node out (smollm2-135m): empty reply", wall=0.1,
                       critical_path=0.0, sequential=0.0, planned_flops=2e9, measured_flops=0.0)]


def test_roundtrip(tmp_path):
    run = tmp_path / "run"
    with RunStore.create(run) as store:
        store.set_config("task", {"name": "arithmetic", "options": {"digits": 1}})
        tid = store.add_trial(_evaluation(), iteration=0, optimizer="random", seed=7, results=_results(),
                              eval_seconds=1.5)
        store.save_state(0, {"rng": {"state": 1}, "x": [1, 2]})
        store.save_state(1, {"rng": {"state": 2}})
        store.log_agent(1, "update", [{"role": "user", "content": "hi"}], "reply", 0.2, ok=False, error="bad ids",
                        meta={"attempt": 1})
        store.set_test_result("abc", "test", {"accuracy": 0.25, "ci": [0.1, 0.5]})
    with RunStore.open(run, readonly=True) as store:
        assert store.get_config("task") == {"name": "arithmetic", "options": {"digits": 1}}
        assert store.get_config("missing", 3) == 3
        (t,) = store.trials()
        assert t.id == tid and t.iteration == 0 and t.optimizer == "random" and t.seed == 7
        assert t.graph.to_dict() == parallel(2, "smollm2-135m").to_dict()
        assert t.graph_hash == parallel(2, "smollm2-135m").canonical_hash()
        assert (t.accuracy, t.correct, t.scored, t.latency_mean, t.eval_seconds) == (0.5, 1, 2, 0.7, 1.5)
        assert t.item_ids == ["a/1", "a/2"] and t.meta["counts"] == {"smollm2-135m": 2}
        assert t.meta["feedback"][0]["correct"] is True
        items = store.item_results(tid)
        assert [i["item_id"] for i in items] == ["a/1", "a/2"]
        assert items[0]["correct"] is True and items[0]["trace"]["nodes"][0]["text"] == "Answer: 3"
        assert items[1]["error"].endswith("empty reply")
        assert store.load_state() == (1, {"rng": {"state": 2}})
        (log,) = store.agent_log()
        assert log["ok"] is False and log["error"] == "bad ids" and log["prompt"][0]["content"] == "hi"
        assert store.test_result("abc") == {"accuracy": 0.25, "ci": [0.1, 0.5]}
        assert store.test_result("nope") is None
        with pytest.raises(StoreError, match="read-only"):
            store.set_config("x", 1)


def test_create_refuses_existing_run_and_open_needs_one(tmp_path):
    RunStore.create(tmp_path / "r").close()
    with pytest.raises(StoreError, match="already holds a run"):
        RunStore.create(tmp_path / "r")
    with pytest.raises(StoreError, match="not a run directory"):
        RunStore.open(tmp_path / "empty")


def test_one_writer_at_a_time(tmp_path):
    store = RunStore.create(tmp_path / "r")
    with pytest.raises(StoreError, match="another process"):
        RunStore.open(tmp_path / "r")
    reader = RunStore.open(tmp_path / "r", readonly=True)  # readers are fine
    assert reader.trials() == []
    reader.close()
    store.close()
    RunStore.open(tmp_path / "r").close()  # the lock is released on close


def test_duplicate_trial_slot_is_rejected_and_nothing_half_written(tmp_path):
    with RunStore.create(tmp_path / "r") as store:
        store.add_trial(_evaluation(), iteration=2, optimizer="random", seed=0, results=_results(), position=0)
        with pytest.raises(StoreError, match="already stored"):
            store.add_trial(_evaluation(), iteration=2, optimizer="random", seed=0, results=_results(), position=0)
        assert len(store.trials()) == 1
        rows = store.db.execute("SELECT COUNT(*) FROM item_results").fetchone()[0]
        assert rows == 2


def _writer(path: str, n: int) -> None:
    store = RunStore.open(path)
    for k in range(n):
        store.add_trial(_evaluation(k), iteration=k, optimizer="random", seed=0, results=_results())
    os.kill(os.getpid(), signal.SIGKILL)  # die without closing anything


def test_trials_survive_sigkill(tmp_path):
    run = tmp_path / "r"
    RunStore.create(run).close()
    proc = multiprocessing.get_context("spawn").Process(target=_writer, args=(str(run), 3))
    proc.start()
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL
    with RunStore.open(run) as store:  # the dead writer's lock is gone with it
        assert [t.iteration for t in store.trials()] == [0, 1, 2]
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_schema_has_the_documented_columns(tmp_path):
    with RunStore.create(tmp_path / "r") as store:
        cols = {r[1] for r in store.db.execute("PRAGMA table_info(trials)")}
    assert {"id", "iteration", "optimizer", "seed", "graph_json", "graph_hash", "planned_units", "measured_units",
            "accuracy", "utility", "correct", "scored", "errors", "latency_mean", "item_ids_json", "meta_json",
            "created"} <= cols
    db = sqlite3.connect(tmp_path / "r" / "run.sqlite")
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"config", "trials", "item_results", "optimizer_state", "agent_log", "test_results"} <= tables


def test_candidate_is_a_column_written_from_the_evaluation(tmp_path):
    probe = _evaluation()
    probe.candidate = False
    with RunStore.create(tmp_path / "r") as store:
        store.add_trial(probe, iteration=0, optimizer="agent-reinforce", seed=0)
        store.add_trial(_evaluation(), iteration=1, optimizer="agent-reinforce", seed=0)
        assert [t.candidate for t in store.trials()] == [False, True]
        rows = store.db.execute("SELECT candidate FROM trials ORDER BY id").fetchall()
        assert [r[0] for r in rows] == [0, 1]
    assert not (tmp_path / "r" / "traces").exists()  # no empty directory beside the store


def _schema_1_store(path):
    """A store as version 1 wrote it: no candidate column, the flag in the proposal meta."""
    probe = _evaluation()
    probe.meta = {**probe.meta, "candidate": False}
    with RunStore.create(path) as store:
        store.add_trial(probe, iteration=0, optimizer="agent-reinforce", seed=0)
        store.add_trial(_evaluation(), iteration=1, optimizer="agent-reinforce", seed=0)
        store.set_config("schema_version", 1)
        store.db.execute("ALTER TABLE trials DROP COLUMN candidate")


def test_an_older_store_gets_the_column_from_the_meta(tmp_path):
    _schema_1_store(tmp_path / "r")
    with RunStore.open(tmp_path / "r", readonly=True) as reader:  # a reader derives it, changes nothing
        assert [t.candidate for t in reader.trials()] == [False, True]
        assert "candidate" not in {r[1] for r in reader.db.execute("PRAGMA table_info(trials)")}
    with RunStore.open(tmp_path / "r") as store:  # a writer adds and fills the column
        rows = store.db.execute("SELECT candidate FROM trials ORDER BY id").fetchall()
        assert [r[0] for r in rows] == [0, 1]
        assert store.get_config("schema_version") == 2
        store.add_trial(_evaluation(), iteration=2, optimizer="agent-reinforce", seed=0)
        assert [t.candidate for t in store.trials()] == [False, True, True]
