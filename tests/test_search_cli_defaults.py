"""`ttsgraph search` paths test_search_cli.py passes by: `--resume` without `--out`, and the
default selection under the joint objective (pareto, so the recorded choice is on the front)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_search_cli import BASE, cli  # noqa: F401 (fixture)
from ttsgraph.store import RunStore


def test_resume_without_out_is_a_one_line_error_and_creates_nothing(tmp_path: Path, cli) -> None:  # noqa: F811
    res = cli("search", "--resume", check=False)
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines()[-1].endswith("--resume needs --out RUN (the run directory to continue)")
    assert "Traceback" not in res.stderr and not (tmp_path / "runs").exists()


def test_the_joint_objective_selects_on_the_pareto_front_by_default(tmp_path: Path, cli) -> None:  # noqa: F811
    flags = ("--no-cache", "--objective", "accuracy-latency", "--latency-weight", "0.5", "--json")
    data = json.loads(cli(*BASE, "--out", "joint", *flags).stdout)
    with RunStore.open(tmp_path / "joint", readonly=True) as store:
        recorded = store.get_config("selection")
        assert store.get_config("run")["select"] is None  # nothing was asked for
    assert recorded["rule"] == "pareto" and recorded["pareto"] == data["pareto"]
    assert data["best_trial"] in data["pareto"]
    plain = json.loads(cli(*BASE, "--out", "plain", "--no-cache", "--json").stdout)
    with RunStore.open(tmp_path / "plain", readonly=True) as store:
        assert store.get_config("selection")["rule"] == "cheapest-not-worse" and plain["pareto"] == []
