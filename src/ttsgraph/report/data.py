"""What a report reads: run directories through the run store (read-only), and a bench's summary.

Reading is kept apart from drawing so a report can be made of any run at any time (while its
search still writes it, or after a crash) and so the page shows the study's recorded decision
(`ttsgraph.selection`) instead of deciding again.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ttsgraph import selection
from ttsgraph.errors import FileFormatError, GraphError, TtsGraphError
from ttsgraph.graph import Graph
from ttsgraph.pareto import as_number
from ttsgraph.selection import Selection

STORE_FILE = "run.sqlite"
BENCH_FILE = "bench.json"


@dataclass
class Trial:
    """One scored graph of a search, as stored (`selection.TrialLike`). `latency_mean` = mean
    critical-path seconds per scored item; `wall` and `estimated_latency` are the report's own."""

    id: int
    iteration: int
    optimizer: str
    seed: int | None
    graph: Graph
    graph_hash: str
    planned_units: float
    measured_units: float | None
    accuracy: float
    utility: float | None
    correct: int
    scored: int
    errors: int
    latency_mean: float | None
    meta: dict[str, Any] = field(default_factory=dict)
    kind: str = "search"  # "search", or "race" (a candidate re-scored on more items)
    candidate: bool = True  # False: a screening probe (never selected, never on a curve or front)
    wall: float | None = None  # mean wall-clock seconds per item (critical path + queueing)
    estimated_latency: float | None = None  # filled by the report's latency model

    @property
    def items(self) -> int:
        return self.scored + self.errors


@dataclass
class RunData:
    """Everything the report uses from one run directory."""

    path: Path
    config: dict[str, Any]
    trials: list[Trial]
    traces: dict[int, list[list[dict[str, Any]]]]  # trial id -> per item -> node traces
    agent_log: list[dict[str, Any]]
    tests: list[dict[str, Any]]  # {"graph_hash", "split", "summary"}
    external_test: dict[str, Any] | None = None  # a bench's test score of this run's graph (bench.json)
    label: str = ""  # how the report names the run (default: the directory's name)

    @property
    def name(self) -> str:
        return self.label or self.path.name

    @property
    def optimizer(self) -> str:
        if self.config.get("optimizer"):
            return str(self.config["optimizer"])
        return self.trials[0].optimizer if self.trials else "unknown"

    @property
    def seed(self) -> Any:
        return self.config.get("seed", self.trials[0].seed if self.trials else None)

    @property
    def recorded(self) -> Selection | None:
        """The decision the study stored at its end (None: the search has not finished)."""
        return selection.load(self.config)

    def decision(self) -> Selection | None:
        """The study's recorded decision; for an unfinished run (or one from before decisions were
        recorded) the `best` rule over the trials so far, which `recorded is None` marks as provisional."""
        if self.recorded is not None:
            return self.recorded
        if not selection.candidates(self.trials):
            return None  # nothing but screening probes yet: no graph to show as the answer
        return selection.choose(self.trials, "best")

    def selected(self) -> Trial | None:
        """The trial naming the selected graph."""
        sel = self.decision()
        if sel is None:
            return None
        return next((t for t in self.trials if t.id == sel.trial), None)

    def test_summary(self) -> dict[str, Any] | None:
        """The test-split summary of the selected graph: the run's own, else the bench's."""
        sel = self.decision()
        if sel is not None:
            for t in self.tests:
                if t.get("split", "test") == "test" and t["graph_hash"] == sel.graph_hash:
                    return t["summary"]
        return self.external_test


def load_run(path: str | Path) -> RunData:
    """Read a run directory through the run store, read-only (safe while a search writes it)."""
    from ttsgraph.store import RunStore

    run = Path(path)
    if not (run / STORE_FILE).is_file():
        raise FileFormatError(f"not a run directory: no {STORE_FILE}", path=str(run))
    try:
        store = RunStore.open(run, readonly=True)
    except TtsGraphError as exc:
        raise FileFormatError(f"cannot open the run store: {exc}", path=str(run / STORE_FILE)) from None
    try:
        config = store.config()
        trials = [Trial(
            id=r.id, iteration=r.iteration, optimizer=r.optimizer, seed=r.seed, graph=r.graph,
            graph_hash=r.graph_hash, planned_units=float(r.planned_units), measured_units=as_number(r.measured_units),
            accuracy=float(r.accuracy), utility=as_number(r.utility), correct=r.correct, scored=r.scored,
            errors=r.errors, latency_mean=as_number(r.latency_mean), meta=r.meta, kind=r.kind, candidate=r.candidate,
        ) for r in store.trials()]
        traces: dict[int, list[list[dict[str, Any]]]] = {}
        for t in trials:
            items = []
            walls = []
            for res in store.item_results(t.id):
                if res.get("error") is None and as_number(res.get("wall")) is not None:
                    walls.append(float(res["wall"]))
                trace = res.get("trace")
                nodes = trace.get("nodes", []) if isinstance(trace, dict) else trace
                if isinstance(nodes, list):
                    items.append([n for n in nodes if isinstance(n, dict)])
            traces[t.id] = items
            t.wall = sum(walls) / len(walls) if walls else None
        agent_log = store.agent_log()
        tests = store.test_results()
        selection.load(config)  # a malformed recorded decision fails here, naming the store
    except (sqlite3.DatabaseError, json.JSONDecodeError, GraphError, KeyError, TtsGraphError) as exc:
        raise FileFormatError(f"cannot read the run store: {exc}", path=str(run / STORE_FILE)) from None
    finally:
        store.close()
    return RunData(run, config, trials, traces, agent_log, tests)


def find_runs(path: str | Path) -> list[Path]:
    """The run directories at `path`: itself if it is one, else every directory below it (up to
    three levels) that holds a run store, sorted."""
    root = Path(path)
    if not root.exists():
        raise FileFormatError("no such run or bench directory", path=str(root))
    if (root / STORE_FILE).is_file():
        return [root]
    found = sorted({p.parent for depth in ("*", "*/*", "*/*/*") for p in root.glob(f"{depth}/{STORE_FILE}")})
    if not found:
        raise FileFormatError(f"neither a run directory nor a bench directory: no {STORE_FILE} in it or below it",
                              path=str(root))
    return found


def load_bench_summary(root: Path) -> dict[str, Any] | None:
    """`bench.json` written by `ttsgraph bench` beside its run directories (rows with test accuracy
    and CI for optimizers and fixed baselines, paired comparisons), or None."""
    p = root / BENCH_FILE
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise FileFormatError(f"cannot read the bench summary: {exc}", path=str(p)) from None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise FileFormatError("bench summary has no 'rows' list", path=str(p))
    return data


def attach_bench_tests(runs: list[RunData], bench: dict[str, Any]) -> None:
    """Give each run the test score the bench measured for its selected graph (the bench scores
    test items itself, outside the run stores), with a Wilson interval."""
    from ttsgraph.stats import wilson_interval

    by_dir = {}
    for row in bench.get("rows", []):
        for outcome in row.get("runs") or []:
            if outcome.get("run_dir"):
                by_dir[Path(outcome["run_dir"]).name] = outcome
    for r in runs:
        o = by_dir.get(r.path.name)
        if o is None or not isinstance(o.get("test_correct"), list):
            continue
        correct = [bool(c) for c in o["test_correct"]]
        k, n = sum(correct), len(correct)
        r.external_test = {"accuracy": k / n if n else 0.0, "ci": list(wilson_interval(k, n)), "items": n,
                           "errors": o.get("test_errors"), "source": BENCH_FILE}
