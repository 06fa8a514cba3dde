"""Bench rows with their own options (`--optimizers agent-reinforce,agent-reinforce:insights=false`):
each row is named by what it runs, gets its options, its own run directory, and a bad key is a
one-line error listing the valid ones before anything runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.test_bench import make_responder
from ttsgraph.benchmark import BenchConfig, check_config, optimizer_options, run_bench
from ttsgraph.benchmark.config import run_dir_for, split_row
from ttsgraph.cli import app
from ttsgraph.errors import TtsGraphError
from ttsgraph.llm.fake import ScriptedBackend
from ttsgraph.store import RunStore
from ttsgraph.tasks.arithmetic import ArithmeticTask

ROWS = ("agent-reinforce", "agent-reinforce:insights=false", "agent-reinforce:pretest=false:roles=assistant")


def test_a_row_is_a_name_with_typed_options() -> None:
    assert split_row("tpe") == ("tpe", {})
    assert split_row("agent-reinforce:insights=false:pretest_variants=2") == (
        "agent-reinforce", {"insights": False, "pretest_variants": 2})
    for bad in ("agent-reinforce:insights", ":insights=false", "agent-reinforce:=1"):
        with pytest.raises(TtsGraphError, match="must look like"):
            split_row(bad)


def test_row_options_come_last_and_are_checked_by_the_optimizer() -> None:
    config = BenchConfig(optimizers=ROWS, optimizer_options={"agent-reinforce": {"history": 1}})
    check_config(config)
    assert optimizer_options(ROWS[1], config, "m") == {"agent": "m", "agent_max_tokens": 768, "history": 1,
                                                        "insights": False}
    assert optimizer_options(ROWS[0], config, "m")["history"] == 1 and "insights" not in optimizer_options(
        ROWS[0], config, "m")
    with pytest.raises(TtsGraphError, match=r"unknown option 'insightz' \(valid: .*init, insights, .*roles"):
        check_config(BenchConfig(optimizers=("agent-reinforce:insightz=false",)))
    with pytest.raises(TtsGraphError, match="option 'roles'"):
        check_config(BenchConfig(optimizers=("agent-reinforce:roles=fusers",)))
    with pytest.raises(TtsGraphError, match="listed twice"):
        check_config(BenchConfig(optimizers=(ROWS[1], ROWS[1])))
    dirs = {run_dir_for(Path("o"), r, 0) for r in ROWS}
    assert len(dirs) == 3 and all(":" not in str(d) and "=" not in str(d) for d in dirs)


def test_cli_names_a_bad_row_key_in_one_line(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["bench", "--optimizers", "agent-reinforce,agent-reinforce:insightz=false",
                                   "--out", str(tmp_path / "o"), "--json"])
    assert res.exit_code == 2 and "insightz" in res.output and "insights" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "o").exists()


def test_each_row_runs_with_its_options_and_is_named_by_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ttsgraph.tasks

    task = ArithmeticTask(seed=3, size=30)
    monkeypatch.setattr(ttsgraph.tasks, "load_task", lambda name, **kw: task)
    config = BenchConfig(task="arithmetic", budget_nodes=3, optimizers=ROWS, seeds=1, iterations=4, batch=2,
                         test_limit=4, baselines=False, out=tmp_path / "bench", max_tokens=16, classical="off")
    result = asyncio.run(run_bench(config, fake_backend=ScriptedBackend(make_responder(task))))
    assert [r.name for r in result.rows] == list(ROWS)
    logs, phases = {}, {}
    for row in ROWS:
        with RunStore.open(run_dir_for(config.out, row, 0)) as store:
            logs[row] = [e["prompt"][-1]["content"] for e in store.agent_log()]
            phases[row] = [t.meta.get("phase") for t in store.trials("search")]
    found = "What pilot studies found"
    assert logs[ROWS[0]] and all(found in p for p in logs[ROWS[0]])
    assert logs[ROWS[1]] and not any(found in p for p in logs[ROWS[1]])
    assert "pretest" in phases[ROWS[0]] and "pretest" not in phases[ROWS[2]]
    assert any("Every node is an 'assistant'" in p for p in logs[ROWS[2]])
