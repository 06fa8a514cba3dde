"""A bench's results: per-run outcomes, table rows over seeds, paired comparisons, bench.json.

Every row is scored on the same test items, so each optimizer is compared with the best baseline
item by item (paired difference with a t interval): pairing removes the per-item difficulty noise
that would swamp a comparison of two accuracies on a few dozen items.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ttsgraph.errors import FileFormatError
from ttsgraph.stats import paired_difference_ci, wilson_interval

BENCH_FILE = "bench.json"
CURVES_FILE = "bench_curves.png"


def mean(xs: Sequence[float | bool]) -> float:
    return sum(float(x) for x in xs) / len(xs) if xs else 0.0


@dataclass
class RunOutcome:
    """One optimizer × seed: its study's figures and its selected graph on the test items."""

    optimizer: str
    seed: int
    run_dir: str
    graph: dict[str, Any]
    search_accuracy: float
    test_correct: list[bool]
    test_errors: int
    planned_units: float
    evaluations: int
    backend_calls: int
    cache_hits: int
    eval_seconds: float
    test_seconds: float
    agent_seconds: float
    curve: list[tuple[int, float]]  # `selection.best_so_far`: (evaluations so far, accuracy)
    agent_replies: dict[str, int] = field(default_factory=dict)  # `reply_outcomes` (agent optimizers only)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["test_accuracy"] = mean(self.test_correct)
        d["curve"] = [list(p) for p in self.curve]
        return d


@dataclass
class BenchRow:
    """One line of the table: an optimizer (aggregated over seeds) or a fixed baseline."""

    name: str
    kind: str  # "optimizer" | "single" | "self-consistency"
    seeds: int
    search_accuracy: float | None
    test_accuracy: float
    test_ci: tuple[float, float]
    test_correct: int
    test_items: int
    test_errors: int
    planned_units: float
    evaluations: float
    backend_calls: int
    cache_hits: int
    eval_seconds: float
    test_seconds: float
    agent_seconds: float
    graph: dict[str, Any] | None = None
    per_item: list[float] = field(default_factory=list)  # mean correctness per test item (over seeds)
    agent_replies: dict[str, int] = field(default_factory=dict)  # summed over seeds
    runs: list[RunOutcome] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("name", "kind", "seeds", "search_accuracy", "test_accuracy", "test_correct",
                                           "test_items", "test_errors", "planned_units", "evaluations",
                                           "backend_calls", "cache_hits", "eval_seconds", "test_seconds",
                                           "agent_seconds", "graph", "per_item", "agent_replies")}
        d["test_ci"] = list(self.test_ci)
        d["runs"] = [r.to_dict() for r in self.runs]
        return d


@dataclass
class Comparison:
    """Optimizer minus baseline, paired over the same test items (mean of per-seed correctness)."""

    name: str
    against: str
    difference: float
    low: float
    high: float
    items: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BenchResult:
    config: dict[str, Any]
    rows: list[BenchRow]
    comparisons: list[Comparison]
    best_baseline: str | None
    test_item_ids: list[str]
    plot: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config, "rows": [r.to_dict() for r in self.rows],
                "comparisons": [c.to_dict() for c in self.comparisons], "best_baseline": self.best_baseline,
                "test_item_ids": self.test_item_ids, "plot": self.plot, "seconds": self.seconds}

    def draw_curves(self, directory: Path) -> Path:
        """Write `directory/bench_curves.png` (best so far against evaluations, per optimizer)
        and remember its path in `plot`."""
        curves = {r.name: [run.curve for run in r.runs] for r in self.rows if r.kind == "optimizer"}
        cfg = self.config
        title = (f"{cfg['task']}, budget {cfg['budget_units']:.2f} units: best-so-far search accuracy "
                 f"(mean over {cfg['seeds']} seeds, band = min–max)")
        self.plot = str(plot_curves(curves, Path(directory) / CURVES_FILE, title))
        return Path(self.plot)


def plot_curves(curves: dict[str, list[list[tuple[int, float]]]], path: Path, title: str = "") -> Path:
    """`plots.bench_curves` written as a PNG to `path`."""
    from ttsgraph.plots import bench_curves, png_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(bench_curves(curves, title)))
    return path


def load_result(out: Path) -> BenchResult:
    """A finished bench read back from `OUT/bench.json` (for `ttsgraph bench --show`)."""
    path = Path(out) / BENCH_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        rows = []
        for r in data["rows"]:
            r = dict(r)
            runs = [RunOutcome(**{k: v for k, v in o.items() if k != "test_accuracy"}
                               | {"curve": [tuple(p) for p in o.get("curve", [])]}) for o in r.pop("runs", [])]
            r["test_ci"] = tuple(r["test_ci"])
            rows.append(BenchRow(**r, runs=runs))
        comparisons = [Comparison(**c) for c in data.get("comparisons", [])]
        return BenchResult(data["config"], rows, comparisons, data.get("best_baseline"), data.get("test_item_ids", []),
                           data.get("plot"), float(data.get("seconds", 0.0)))
    except FileNotFoundError:
        raise FileFormatError(f"no {BENCH_FILE} here: not a finished bench directory", path=str(path)) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FileFormatError(f"cannot read the bench summary: {exc}", path=str(path)) from None


REPLY_OUTCOMES = ("first_try", "after_retries", "fallback")


def reply_outcomes(metas: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """How an agent optimizer's update rounds went, from its trials' meta: the reply accepted on the
    first try, accepted after retries, or none usable (the graph was sampled instead). Empty for an
    optimizer without update rounds. A rule the agent was never told shows up here as fallbacks."""
    out = dict.fromkeys(REPLY_OUTCOMES, 0)
    for meta in metas:
        if meta.get("phase") != "update":
            continue
        if meta.get("source") == "fallback-sample":
            out["fallback"] += 1
        elif int(meta.get("attempts", 1)) > 1:
            out["after_retries"] += 1
        else:
            out["first_try"] += 1
    return out if any(out.values()) else {}


def aggregate(name: str, runs: list[RunOutcome]) -> BenchRow:
    """One row over seeds: means of the search figures, test accuracy pooled over seeds (Wilson
    interval on all seed × item outcomes), sums of calls and seconds."""
    pooled = [c for r in runs for c in r.test_correct]
    n_items = len(runs[0].test_correct) if runs else 0
    per_item = [mean([r.test_correct[i] for r in runs]) for i in range(n_items)]
    k = sum(pooled)
    graph = runs[0].graph if len({json.dumps(r.graph, sort_keys=True) for r in runs}) == 1 else None
    return BenchRow(
        name=name, kind="optimizer", seeds=len(runs), search_accuracy=mean([r.search_accuracy for r in runs]),
        test_accuracy=mean(pooled), test_ci=wilson_interval(k, len(pooled)), test_correct=k, test_items=len(pooled),
        test_errors=sum(r.test_errors for r in runs), planned_units=mean([r.planned_units for r in runs]),
        evaluations=mean([r.evaluations for r in runs]), backend_calls=sum(r.backend_calls for r in runs),
        cache_hits=sum(r.cache_hits for r in runs), eval_seconds=sum(r.eval_seconds for r in runs),
        test_seconds=sum(r.test_seconds for r in runs), agent_seconds=sum(r.agent_seconds for r in runs),
        graph=graph, per_item=per_item, runs=runs,
        agent_replies={k: sum(r.agent_replies.get(k, 0) for r in runs) for k in REPLY_OUTCOMES}
        if any(r.agent_replies for r in runs) else {})


def compare(rows: Sequence[BenchRow]) -> tuple[str | None, list[Comparison]]:
    """Each optimizer against the best baseline (highest test accuracy; ties: fewer units),
    paired over the test items."""
    baselines = [r for r in rows if r.kind != "optimizer" and r.per_item]
    if not baselines:
        return None, []
    best = max(baselines, key=lambda r: (r.test_accuracy, -r.planned_units))
    out = []
    for r in rows:
        if r.kind != "optimizer" or len(r.per_item) != len(best.per_item) or not r.per_item:
            continue
        d = paired_difference_ci(r.per_item, best.per_item)
        # a difference of two accuracies lies in [-1, 1]; the t interval on a few items does not know
        out.append(Comparison(r.name, best.name, d.mean, max(-1.0, d.low), min(1.0, d.high), d.n))
    return best.name, out
