"""`ttsgraph pilot` with the scripted fake backend: grid shapes and costs, paired items, resume,
flag errors, and the Insight 2/3 analysis on hand-made cells."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ttsgraph.cost import planned_units
from ttsgraph.graph import parallel_chains
from ttsgraph.models import load_pool
from ttsgraph.pilot import Cell, PilotResult, PilotSettings, analyse, grid
from ttsgraph.store import RunStore
from ttsgraph.tasks import load_task

SMOL = "smollm2-135m"
CALLS: list[str] = []


def respond(model: str, messages: list[dict[str, str]], sample: int) -> str:
    """Right when the prompt holds at most one earlier answer (so wide or deep cells lose)."""
    text = messages[-1]["content"]
    CALLS.append(text)
    value = int(eval(re.search(r"What is ([-+*\d ]+)\?", text).group(1)))  # test-only: our own digits
    earlier = text.count("Answer:")
    return f"Answer: {value if earlier <= 1 else value + 1}"


@pytest.fixture
def cli(scripted_cli):  # type: ignore[no-untyped-def]
    CALLS.clear()
    return scripted_cli(respond)


def test_grid_shapes_and_costs() -> None:
    pool, task = load_pool(None), load_task("arithmetic")
    s = PilotSettings(task="arithmetic", model=SMOL, widths=(1, 2, 4), depths=(1, 3), items=2)
    cells = grid(s, pool, task.lengths)
    assert [(w, d) for w, d, _g, _u in cells] == [(1, 1), (1, 3), (2, 1), (2, 3), (4, 1), (4, 3)]
    for w, d, g, units in cells:
        assert len(g.nodes) == w * d + 1 and g.width == w and g.depth == d
        assert all(n.role == "assistant" and n.model == SMOL for n in g.nodes)
        assert g.in_degree("out") == w
        assert units == pytest.approx(planned_units(g, pool, task.lengths))
    by = {(w, d): u for w, d, _g, u in cells}
    assert by[(1, 1)] < by[(1, 3)] < by[(2, 3)] < by[(4, 3)]
    assert by[(2, 1)] < by[(4, 1)]


def test_parallel_chains_is_w_chains_of_d_feeding_the_output() -> None:
    g = parallel_chains(2, 3, SMOL)
    assert sorted(g.preds("out")) == ["c1_3", "c2_3"]
    assert g.preds("c1_3") == ["c1_2"] and g.preds("c1_2") == ["c1_1"] and g.preds("c1_1") == []


def test_pilot_pairs_items_and_writes_outputs(cli, tmp_path: Path) -> None:
    res = cli("pilot", "--task", "arithmetic", "--model", SMOL, "--widths", "1,2", "--depths", "1,2",
              "--items", "4", "--budget", "3", "--out", "p", "--json")
    data = json.loads(res.stdout)
    ids = data["item_ids"]
    assert len(ids) == 4 and len(data["cells"]) == 4
    store = RunStore.open(tmp_path / "p", readonly=True)
    trials = store.trials("pilot")
    assert len(trials) == 4
    for t in trials:  # every cell on the same items, in the same order
        assert [r["item_id"] for r in store.item_results(t.id)] == ids
    store.close()
    over = {(c["width"], c["depth"]): c["over_budget"] for c in data["cells"]}
    units = {(c["width"], c["depth"]): c["planned_units"] for c in data["cells"]}
    assert all(over[k] == (units[k] > 3) for k in over) and any(over.values())
    acc = {(c["width"], c["depth"]): c["accuracy"] for c in data["cells"]}
    assert acc[(1, 1)] == 1.0 and acc[(2, 2)] < 1.0  # the responder fails when it sees two answers
    for name in ("pilot.json", "pilot_heatmap.png", "pilot_curves.png"):
        assert (tmp_path / "p" / name).stat().st_size > 0
    assert data["statements"]


def test_rerun_skips_finished_cells_and_scores_only_new_ones(cli, tmp_path: Path) -> None:
    base = ("pilot", "--task", "arithmetic", "--model", SMOL, "--depths", "1,2", "--items", "3", "--out", "p",
            "--no-cache", "--json")
    first = json.loads(cli(*base, "--widths", "1,2").stdout)
    n_first = len(CALLS)
    assert n_first > 0 and first["skipped_cells"] == 0
    again = json.loads(cli(*base, "--widths", "1,2").stdout)
    assert len(CALLS) == n_first and again["skipped_cells"] == 4  # nothing called again
    assert again["cells"] == first["cells"]
    grown = json.loads(cli(*base, "--widths", "1,2,3").stdout)
    assert grown["skipped_cells"] == 4 and len(grown["cells"]) == 6
    # only the two width-3 cells ran: 3 items × (3×1+1 + 3×2+1) calls
    assert len(CALLS) - n_first == 3 * (4 + 7)


def test_rerun_with_other_items_is_refused(cli) -> None:
    base = ("pilot", "--task", "arithmetic", "--model", SMOL, "--widths", "1", "--depths", "1", "--out", "p")
    cli(*base, "--items", "2")
    res = cli(*base, "--items", "3", code=2)
    assert "items = 2" in res.stderr and "\n" not in res.stderr.strip()


@pytest.mark.parametrize("args, message", [
    (["--widths", "1,x"], "--widths: 'x' is not an integer"),
    (["--depths", "0"], "--depths: '0' is not an integer"),
    (["--model", "nope"], "nope"),
])
def test_bad_flags_are_one_line_errors(cli, args: list[str], message: str) -> None:
    base = {"--model": SMOL, "--widths": "1", "--depths": "1"}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    flat = [x for kv in base.items() for x in kv]
    res = cli("pilot", "--task", "arithmetic", *flat, "--items", "2", "--out", "p", code=2)
    assert message in res.stderr and res.stderr.strip().count("\n") == 0


def _cell(w: int, d: int, outcomes: list[int]) -> Cell:
    return Cell(w, d, float(w * d + 1), outcomes)


def test_analysis_finds_a_peak_and_a_moving_best_depth() -> None:
    ones, some, none = [1] * 10, [1] * 6 + [0] * 4, [0] * 10
    cells = [_cell(1, 1, some), _cell(1, 2, ones), _cell(1, 3, none),  # width 1 peaks at depth 2
             _cell(2, 1, ones), _cell(2, 2, some), _cell(2, 3, some)]  # width 2 peaks at depth 1
    s = PilotSettings(task="t", model=SMOL, widths=(1, 2), depths=(1, 2, 3), items=10)
    a = analyse(PilotResult(s, [str(i) for i in range(10)], cells))
    assert a["non_monotonic"] and a["non_monotonic_significant"]
    assert a["best_depth_by_width"] == {1: 2, 2: 1} and a["best_depth_moves_with_width"]


def test_analysis_of_monotonic_curves() -> None:
    low, mid, high = [0] * 10, [1] * 5 + [0] * 5, [1] * 10
    cells = [_cell(1, 1, low), _cell(1, 2, mid), _cell(2, 1, mid), _cell(2, 2, high)]
    s = PilotSettings(task="t", model=SMOL, widths=(1, 2), depths=(1, 2), items=10)
    a = analyse(PilotResult(s, [str(i) for i in range(10)], cells))
    assert not a["non_monotonic"] and not a["best_depth_moves_with_width"]
    assert a["best"] == {"width": 2, "depth": 2, "accuracy": 1.0, "planned_units": 5.0}


def test_report_renders_a_pilot(cli, tmp_path: Path) -> None:
    cli("pilot", "--task", "arithmetic", "--model", SMOL, "--widths", "1,2", "--depths", "1,2", "--items", "3",
        "--budget", "3", "--out", "p")
    data = json.loads(cli("report", "p", "--json").stdout)
    assert data["kind"] == "pilot" and len(data["pngs"]) == 2
    html = (tmp_path / "p" / "report.html").read_text()
    assert "Width × depth" in html and "Insight 3" in html and "data:image/png;base64," in html
