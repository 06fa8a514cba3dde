"""`ttsgraph sweep` with the scripted fake backend: two tiny budgets, the baselines on the same test
items, the frontier, and resuming (finished budgets skipped, an unfinished one continued)."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from ttsgraph.graph import single
from ttsgraph.models import load_pool
from ttsgraph.sweep import Scored, baselines, frontier
from ttsgraph.tasks import load_task

SMOL, GEMMA = "smollm2-135m", "gemma-3-270m"
CALLS: list[str] = []


def respond(model: str, messages: list[dict[str, str]], sample: int) -> str:
    """Gemma is right; SmolLM is right on questions with an even character sum."""
    text = messages[-1]["content"]
    CALLS.append(model)
    value = int(eval(re.search(r"What is ([-+*\d ]+)\?", text).group(1)))  # test-only: our own digits
    good = model == GEMMA or sum(map(ord, text.split("What is")[1][:12])) % 2 == 0
    return f"Answer: {value if good else value + 1}"


@pytest.fixture
def cli(scripted_cli):  # type: ignore[no-untyped-def]
    CALLS.clear()
    return scripted_cli(respond)


ARGS = ("sweep", "--task", "arithmetic", "--optimizer", "random", "--iterations", "2", "--batch", "2",
        "--test-limit", "5", "--out", "sw", "--json")


def test_sweep_two_budgets(cli, tmp_path: Path) -> None:
    data = json.loads(cli(*ARGS, "--budgets", "1,2").stdout)
    assert [r["budget"] for r in data["rows"]] == [1, 2]
    assert data["rows"][0]["budget_units"] < data["rows"][1]["budget_units"]
    for r in data["rows"]:
        assert r["planned_units"] <= r["budget_units"] + 1e-9
        assert (tmp_path / "sw" / f"b{r['budget']}" / "run.sqlite").exists()
    names = {s["name"] for s in data["scored"]}
    assert {f"single {SMOL}", f"single {GEMMA}", "search b1", "search b2"} <= names
    assert all(s["items"] == 5 for s in data["scored"])  # every graph on the same 5 test items
    for s in data["scored"]:
        if s["kind"] == "self-consistency":
            assert s["planned_units"] <= data["rows"][-1]["budget_units"] + 1e-9
    gemma = next(s for s in data["scored"] if s["name"] == f"single {GEMMA}")
    assert gemma["accuracy"] == 1.0
    for p in data["frontier"]:  # the frontier is at least every baseline that fits its budget
        fit = [s for s in data["scored"] if s["planned_units"] <= p["budget_units"] + 1e-9]
        assert p["best_accuracy"] == max(s["accuracy"] for s in fit)
    assert data["stops_paying"] in (1, 2)
    assert (tmp_path / "sw" / "sweep_frontier.png").stat().st_size > 0
    assert json.loads((tmp_path / "sw" / "sweep.json").read_text())["budgets"] == [1, 2]


def test_sweep_resume_skips_finished_and_continues_unfinished(cli, tmp_path: Path) -> None:
    first = json.loads(cli(*ARGS, "--budgets", "1").stdout)
    calls = len(CALLS)
    again = json.loads(cli(*ARGS, "--budgets", "1", "--no-cache").stdout)
    assert len(CALLS) == calls  # b1 skipped, every test score read from the sweep store
    assert again["frontier"] == first["frontier"]
    # b2 as a kill during its last iteration leaves it: that iteration's trials and state gone, no row
    cli(*ARGS, "--budgets", "1,2")
    b2 = tmp_path / "sw" / "b2"
    full = json.loads((b2 / "sweep_row.json").read_text())
    (b2 / "sweep_row.json").unlink()
    db = sqlite3.connect(b2 / "run.sqlite")
    n_trials = db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]  # classical and race trials too
    last = db.execute("SELECT MAX(iteration) FROM trials").fetchone()[0]
    db.execute("DELETE FROM item_results WHERE trial_id IN (SELECT id FROM trials WHERE iteration = ?)", (last,))
    db.execute("DELETE FROM trials WHERE iteration = ?", (last,))
    db.execute("DELETE FROM optimizer_state WHERE iteration = ?", (last,))
    db.execute("DELETE FROM config WHERE key = 'selection'")
    db.commit()
    assert db.execute("SELECT COUNT(*) FROM trials").fetchone()[0] < n_trials
    db.close()
    before = len(CALLS)
    resumed = json.loads(cli(*ARGS, "--budgets", "1,2").stdout)
    row = json.loads((b2 / "sweep_row.json").read_text())
    assert row["resumed"] and row["best_graph"] == full["best_graph"]
    db = sqlite3.connect(b2 / "run.sqlite")
    assert db.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == n_trials  # lost trials again, none twice
    db.close()
    assert len(CALLS) == before  # the re-scored iteration's node calls came from the cache
    assert resumed["frontier"] == json.loads((tmp_path / "sw" / "sweep.json").read_text())["frontier"]


def test_rerun_with_other_settings_is_refused(cli) -> None:
    cli(*ARGS, "--budgets", "1")
    res = cli(*[a if a != "2" else "3" for a in ARGS], "--budgets", "1", code=2)
    assert "this sweep was created with" in res.stdout + res.stderr


@pytest.mark.parametrize("value", ["0", "1,x", ""])
def test_bad_budgets_are_one_line_errors(cli, value: str) -> None:
    res = cli(*ARGS, "--budgets", value, code=2)
    assert "--budgets" in res.stderr and res.stderr.strip().count("\n") == 0


def test_baselines_fit_the_largest_budget() -> None:
    pool, task = load_pool(None), load_task("arithmetic")
    out = baselines(pool, task.lengths, 3.0)
    assert {n for n, k, _g, _u in out if k == "single"} == {f"single {m}" for m in pool.models}
    assert all(u <= 3.0 + 1e-9 for _n, k, _g, u in out if k == "self-consistency")
    sc = [n for n, k, _g, _u in out if k == "self-consistency"]
    assert sc and all(re.match(r"sc\d+ ", n) for n in sc)


def test_frontier_stops_paying_where_no_bigger_budget_is_significantly_better() -> None:
    g = single(SMOL)
    lo, hi = [0] * 20, [1] * 20
    scored = [Scored("a", "search", g, 1.0, lo, 1), Scored("b", "search", g, 2.0, hi, 2),
              Scored("c", "search", g, 3.0, hi, 3)]
    rows = [{"budget": b, "budget_units": float(b)} for b in (1, 2, 3)]
    f = frontier(rows, scored)
    assert f["stops_paying"] == 2


def test_report_renders_a_sweep_and_its_budget_runs(cli, tmp_path: Path) -> None:
    cli(*ARGS, "--budgets", "1,2")
    data = json.loads(cli("report", "sw", "--json").stdout)
    assert data["kind"] == "sweep" and len(data["pngs"]) == 1
    html = (tmp_path / "sw" / "report.html").read_text()
    assert "Compute-optimal frontier" in html and "search b2" in html
    run = json.loads(cli("report", "sw/b2", "--json").stdout)
    assert run["kind"] == "run" and run["selected"]


def test_budgets_that_select_the_same_graph_share_one_label() -> None:
    from ttsgraph.sweep_plots import _labels_by_point

    search = [{"budget": b, "planned_units": u, "accuracy": a}
              for b, u, a in ((1, 1.0, 0.5), (2, 1.0, 0.5), (3, 3.0, 0.6), (4, 1.0, 0.5))]
    assert _labels_by_point(search) == {(1.0, 0.5): [1, 2, 4], (3.0, 0.6): [3]}
