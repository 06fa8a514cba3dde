"""`ttsgraph bench` end to end on the embedded models: all six optimizers, the fixed baselines,
the table, the JSON and the PNG, in one command (tiny settings: one worker, one iteration of one
item, one test item, short replies)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ttsgraph.cli import app

pytestmark = pytest.mark.integration

ALL = "agent-reinforce,tpe,random,reinforce,textgrad,hybrid"


def test_bench_runs_all_six_optimizers_on_the_embedded_pool(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    from ttsgraph.llm.local import gemma_path, smollm2_path

    try:
        smollm2_path()
    except Exception as exc:  # noqa: BLE001 - a missing model is an environment problem, not a failure
        pytest.skip(f"embedded SmolLM2 unavailable: {exc}")
    if not gemma_path().is_file():
        pytest.skip("Gemma-3-270M not assembled (python -m ttsgraph.llm.local --prepare)")
    out = tmp_path / "bench"
    args = ["bench", "--task", "arithmetic", "--budget-nodes", "1", "--optimizers", ALL, "--seeds", "1",
            "--iterations", "1", "--batch", "1", "--test-limit", "1", "--max-tokens", "12",
            "--agent-max-tokens", "160", "--classical", "off", "--cache", str(tmp_path / "cache.sqlite"), "--out", str(out)]
    res = CliRunner().invoke(app, args + ["--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    rows = {r["name"]: r for r in data["rows"]}
    for name in ALL.split(","):
        row = rows[name]
        assert row["kind"] == "optimizer" and row["test_items"] == 1
        assert row["evaluations"] == 1  # iterations × batch, never more
        assert row["backend_calls"] + row["cache_hits"] >= 2  # one search item, one test item, real calls
        assert row["planned_units"] <= data["config"]["budget_units"] + 1e-9
        (run,) = row["runs"]
        assert Path(run["run_dir"], "run.sqlite").is_file()
    assert any(n.startswith("single:") for n in rows)
    assert {c["name"] for c in data["comparisons"]} == set(ALL.split(","))
    png = Path(data["plot"])
    assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "bench.json").read_text())["best_baseline"] == data["best_baseline"]

    # The human form of the same bench (every study resumes from its store, every call is cached).
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "paired difference vs best baseline" in res.stdout
    for name in ALL.split(","):
        assert name in res.stdout
