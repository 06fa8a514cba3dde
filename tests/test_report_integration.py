"""End to end on the embedded default (real SmolLM2 / Gemma-3 through llama.cpp): a search with the
joint accuracy-latency objective returns a graph on the Pareto front of its own trials, and
`ttsgraph report` turns the run into the HTML page and its PNGs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from ttsgraph.graph_io import load_graph
from ttsgraph.pareto import on_front, pareto_front
from ttsgraph.store import RunStore

CLI = [sys.executable, "-c", "from ttsgraph.cli import app; app()"]


def ttsgraph(*args: str, timeout: float = 900) -> dict[str, Any]:
    proc = subprocess.run([*CLI, *args, "--json"], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def pooled(trials: list[Any]) -> list[dict[str, Any]]:
    """One point per candidate graph over every item it was scored on (a graph scored twice is one
    candidate, as the study treats it; errors count as not correct; a graph only ever scored as a
    screening probe is no candidate). Written out here as the test's own oracle."""
    groups: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"correct": 0, "items": 0, "lat": 0.0, "timed": 0, "trials": [], "candidate": False})
    for t in trials:
        g = groups[t.graph_hash]
        g.update(hash=t.graph_hash, planned_units=t.planned_units)
        g["correct"] += t.correct
        g["items"] += t.scored + t.errors
        g["lat"] += (t.latency_mean or 0.0) * t.scored
        g["timed"] += t.scored
        g["trials"].append(t.id)
        g["candidate"] = g["candidate"] or t.candidate
    out = []
    for g in groups.values():
        if g["items"] and g["candidate"]:
            out.append({**g, "accuracy": g["correct"] / g["items"],
                        "latency": g["lat"] / g["timed"] if g["timed"] else None})
    return out


@pytest.mark.integration
def test_accuracy_latency_search_returns_a_pareto_graph_and_reports_it(tmp_path: Path) -> None:
    run = tmp_path / "run"
    found = ttsgraph("search", "--task", "arithmetic", "--budget-nodes", "2", "--optimizer", "agent-reinforce",
                     "--objective", "accuracy-latency", "--select", "pareto", "--iterations", "4", "--batch", "2",
                     "--max-tokens", "16", "--test-limit", "2", "--no-cache", "--no-classical", "--out", str(run))
    best = load_graph(run / "best_graph.json")
    assert best.canonical_hash() == found["graph_hash"]

    with RunStore.open(run, readonly=True) as store:
        trials = store.trials()
        config = store.config()
        agent_entries = len(store.agent_log())
    assert config["run"]["objective"] == "accuracy-latency"
    assert trials and agent_entries > 0
    points = pooled(trials)
    chosen = next(p for p in points if p["hash"] == found["graph_hash"])
    assert on_front(chosen, points), (chosen, points)  # accuracy ↑, planned units ↓, latency ↓
    front_hashes = {p["hash"] for p in pareto_front(points)}
    assert {t.graph_hash for t in trials if t.id in found["pareto"]} == front_hashes

    out = tmp_path / "html" / "search.html"
    report = ttsgraph("report", str(run), "--out", str(out))
    page = out.read_text()
    assert report["kind"] == "run" and report["html"] == str(out)
    assert len(report["pngs"]) == 5 and all(Path(p).stat().st_size > 2000 for p in report["pngs"])
    (sel,) = report["selected"]
    assert sel["graph_hash"] == found["graph_hash"]
    # the latency model was fitted from the run's real traces, for every model the trials used
    used = {n.model for t in trials for n in t.graph.nodes}
    assert used <= set(report["latency_model"])
    # each model got a usable speed: it predicts a positive time per call (on a loaded machine the
    # fit may put all the noisy time on one term, even the fixed overhead, leaving the others null)
    assert all((s["decode_tps"] or 0) > 0 or (s["prefill_tps"] or 0) > 0 or (s["overhead"] or 0) > 0
               for s in report["latency_model"].values())
    assert page.count("<details>") == min(agent_entries, 300)
    assert "test accuracy [95% CI]" in page and page.count('src="data:image/png;base64,') == 5
