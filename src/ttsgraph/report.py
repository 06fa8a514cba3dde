"""`ttsgraph report`: one self-contained HTML page (plus PNGs) for a search run or a bench.

The report reads only the run store (`RUN/run.sqlite`, `RUN/best_graph.json`), so it can be made
at any time, also while a search is still running or after it crashed. It shows what a user needs
to trust (or distrust) a search's answer: the graph it chose, how the search got there, the
accuracy / FLOPs / latency trade-off of every graph it tried with the Pareto front, where the
compute went per model, the held-out test result with its interval, the agent's transcript, and
the latency model's prediction of each graph beside the measured latency.

The page works offline and from disk: images are base64 PNGs inside the HTML, styles are inline,
and there is no script, font or remote resource. A bench directory (one run directory per
optimizer × seed below it) gives one curve per optimizer and one table row per optimizer.
"""

from __future__ import annotations

import base64
import html
import json
import math
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ttsgraph import plots
from ttsgraph.errors import FileFormatError, GraphError, TtsGraphError
from ttsgraph.graph import Graph
from ttsgraph.latency import (
    LatencyModel,
    LatencyModelError,
    estimate_latency,
    observed_lengths,
    samples_from_traces,
)
from ttsgraph.pareto import as_number, pareto_front

STORE_FILE = "run.sqlite"
BEST_GRAPH_FILE = "best_graph.json"
MAX_TRANSCRIPT_ENTRIES = 300
MAX_TEXT_CHARS = 20_000

Progress = Callable[[str], None]


# ----- reading a run store -----------------------------------------------------------------

@dataclass
class Trial:
    """One scored graph of a search, as stored. `latency` = mean critical-path seconds per item."""

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
    latency: float | None
    meta: dict[str, Any] = field(default_factory=dict)
    kind: str = "search"  # "search", or "race" (a candidate re-scored on more items)
    wall: float | None = None  # mean wall-clock seconds per item (critical path + queueing)
    estimated_latency: float | None = None  # filled by the report's latency model


@dataclass
class RunData:
    """Everything the report uses from one run directory."""

    path: Path
    config: dict[str, Any]
    trials: list[Trial]
    traces: dict[int, list[list[dict[str, Any]]]]  # trial id -> per item -> node traces
    agent_log: list[dict[str, Any]]
    tests: list[dict[str, Any]]  # {"graph_hash", "split", "summary"}
    best_graph: Graph | None
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

    def selected(self) -> Trial | None:
        """The trial of the graph the search returned (best_graph.json), else the most accurate
        trial (ties to fewer planned units). Among trials of the same graph, the one scored on most items."""
        if not self.trials:
            return None
        if self.best_graph is not None:
            h = self.best_graph.pruned()[0].canonical_hash()
            same = [t for t in self.trials if t.graph_hash == h or t.graph.pruned()[0].canonical_hash() == h]
            if same:
                return max(same, key=lambda t: (t.scored, t.accuracy, -t.id))
        return max(self.trials, key=lambda t: (t.accuracy, -t.planned_units, -t.id))

    def test_summary(self) -> dict[str, Any] | None:
        """The test-split summary of the selected graph, if the run scored it."""
        sel = self.selected()
        tests = [t for t in self.tests if t.get("split", "test") == "test"]
        if sel is not None:
            hashes = {sel.graph_hash, sel.graph.pruned()[0].canonical_hash()}
            if self.best_graph is not None:
                hashes.add(self.best_graph.pruned()[0].canonical_hash())
            for t in tests:
                if t["graph_hash"] in hashes:
                    return t["summary"]
        if tests:
            return tests[-1]["summary"]
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
            errors=r.errors, latency=as_number(r.latency_mean), meta=r.meta, kind=r.kind,
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
    except (sqlite3.DatabaseError, json.JSONDecodeError, GraphError, KeyError) as exc:
        raise FileFormatError(f"cannot read the run store: {exc}", path=str(run / STORE_FILE)) from None
    finally:
        store.close()
    best = None
    best_path = run / BEST_GRAPH_FILE
    if best_path.is_file():
        from ttsgraph.graph_io import load_graph

        best = load_graph(best_path)
    return RunData(run, config, trials, traces, agent_log, tests, best)


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


# ----- analysis ----------------------------------------------------------------------------

def latency_model_for(runs: Sequence[RunData]) -> tuple[LatencyModel, Any]:
    """Speeds fitted from every node trace of the runs, and the task lengths those traces show."""
    all_nodes = [n for r in runs for items in r.traces.values() for item in items for n in item]
    model = LatencyModel.from_traces(all_nodes)
    by_id = {(id(r), t.id): t for r in runs for t in r.trials}
    pairs = [(by_id[(id(r), tid)].graph, item) for r in runs for tid, items in r.traces.items()
             if (id(r), tid) in by_id for item in items]
    return model, observed_lengths(pairs)


def add_estimates(runs: Sequence[RunData]) -> None:
    """Set each trial's `estimated_latency`: its planned critical path from speeds fitted on the
    traces of the *other* trials (so the estimate is of a graph the model has not seen run);
    fall back to all traces when the others lack a model the trial uses."""
    full, lengths = latency_model_for(runs)
    if lengths is None:
        return
    # samples per trial, converted once; each trial's fit uses everyone else's
    per_trial = {(id(r), t.id): samples_from_traces(n for item in r.traces.get(t.id, []) for n in item)
                 for r in runs for t in r.trials}
    for r in runs:
        for t in r.trials:
            me = (id(r), t.id)
            model = LatencyModel.fit(s for key, group in per_trial.items() if key != me for s in group)
            try:
                t.estimated_latency = estimate_latency(t.graph, lengths, model)
            except LatencyModelError:
                try:
                    t.estimated_latency = estimate_latency(t.graph, lengths, full)
                except LatencyModelError:
                    t.estimated_latency = None


def model_usage(runs: Sequence[RunData]) -> dict[str, plots.ModelUsage]:
    """Calls, cache hits, tokens, measured FLOPs and seconds per model over every node trace."""
    usage: dict[str, plots.ModelUsage] = defaultdict(plots.ModelUsage)
    for r in runs:
        for items in r.traces.values():
            for item in items:
                for n in item:
                    if n.get("start") is None and not n.get("completion_tokens"):
                        continue  # never called (skipped after a failed predecessor)
                    u = usage[str(n.get("model"))]
                    u.calls += 1
                    u.cached += 1 if n.get("cached") else 0
                    u.prompt_tokens += int(n.get("prompt_tokens") or 0)
                    u.completion_tokens += int(n.get("completion_tokens") or 0)
                    u.flops += float(n.get("flops") or 0.0)
                    u.seconds += float(n.get("seconds") or 0.0)
    return dict(usage)


@dataclass
class GraphPoint:
    """One distinct graph over every trial that scored it: pooled accuracy (correct / scored),
    latency weighted by items, planned units. The study selects among graphs this way, so the
    report's Pareto front is over these points too."""

    graph_hash: str
    accuracy: float
    planned_units: float
    latency: float | None
    correct: int
    scored: int
    trials: list[tuple[str, int]]  # (run name, trial id)

    def to_dict(self) -> dict[str, Any]:
        return {"graph_hash": self.graph_hash, "accuracy": self.accuracy, "planned_units": self.planned_units,
                "latency": self.latency, "correct": self.correct, "scored": self.scored,
                "trials": [{"run": r, "trial": t} for r, t in self.trials],
                "run": self.trials[0][0], "trial": self.trials[0][1]}


def graph_points(pairs: Sequence[tuple[RunData, Trial]]) -> list[GraphPoint]:
    """Trials pooled per graph hash (graphs never scored on an item are left out)."""
    groups: dict[str, list[tuple[RunData, Trial]]] = defaultdict(list)
    for r, t in pairs:
        groups[t.graph_hash].append((r, t))
    out = []
    for h, members in groups.items():
        scored = sum(t.scored for _, t in members)
        if not scored:
            continue
        timed = [(t.latency, t.scored) for _, t in members if t.latency is not None and t.scored]
        lat_items = sum(n for _, n in timed)
        out.append(GraphPoint(
            graph_hash=h, accuracy=sum(t.correct for _, t in members) / scored,
            planned_units=members[0][1].planned_units,
            latency=sum(lat * n for lat, n in timed) / lat_items if lat_items else None,
            correct=sum(t.correct for _, t in members), scored=scored,
            trials=[(r.name, t.id) for r, t in members]))
    return out


def _point(t: Trial, group: str) -> plots.TrialPoint:
    return plots.TrialPoint(t.id, t.iteration, group, t.accuracy, t.planned_units, t.latency)


# ----- HTML --------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1150px;padding:18px 26px;
color:#222;line-height:1.4}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;border-bottom:1px solid #ddd;padding-bottom:3px;
margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}th,td{border:1px solid #ddd;padding:3px 7px;
text-align:right}th{background:#f3f3f3}td.l,th.l{text-align:left}
tr.front td{background:#fffbe6}tr.sel td{background:#e8f4ff;font-weight:600}
img{max-width:100%;height:auto;border:1px solid #eee;margin:4px 0}
.figs{display:flex;flex-wrap:wrap;gap:10px}.figs figure{margin:0;flex:1 1 480px}
figcaption{font-size:.8em;color:#555}
pre{background:#f7f7f7;padding:8px;overflow-x:auto;white-space:pre-wrap;font-size:.8em;max-height:420px}
details{margin:4px 0;border:1px solid #e4e4e4;border-radius:4px;padding:3px 8px}summary{cursor:pointer}
.muted{color:#666;font-size:.85em}.bad{color:#b00}.kv td{text-align:left}
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return "–"
        return f"{v:.{digits}g}" if abs(v) >= 1e5 or (v != 0 and abs(v) < 1e-3) else f"{v:.{digits}f}"
    return _e(v)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], row_classes: Sequence[str] | None = None,
           left: int = 0) -> str:
    """An HTML table; the first `left` columns are left-aligned text. Cells are escaped unless they
    are `_Raw`."""
    out = ["<table><tr>"]
    out += [f'<th class="{"l" if i < left else ""}">{_e(h)}</th>' for i, h in enumerate(headers)]
    out.append("</tr>")
    for k, row in enumerate(rows):
        cls = row_classes[k] if row_classes else ""
        out.append(f'<tr class="{cls}">')
        for i, cell in enumerate(row):
            text = cell.html if isinstance(cell, _Raw) else _fmt(cell)
            out.append(f'<td class="{"l" if i < left else ""}">{text}</td>')
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


@dataclass
class _Raw:
    html: str


@dataclass
class Figures:
    """PNG images by name, in order; written beside the HTML and embedded in it."""

    items: dict[str, bytes] = field(default_factory=dict)
    captions: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, fig: Any, caption: str) -> None:
        self.items[name] = plots.png_bytes(fig)
        self.captions[name] = caption

    def html(self, *names: str) -> str:
        parts = ['<div class="figs">']
        for n in names:
            if n not in self.items:
                continue
            b64 = base64.b64encode(self.items[n]).decode("ascii")
            parts.append(f'<figure><img alt="{_e(self.captions[n])}" src="data:image/png;base64,{b64}">'
                         f"<figcaption>{_e(self.captions[n])}</figcaption></figure>")
        parts.append("</div>")
        return "".join(parts)


@dataclass
class ReportResult:
    """What `build_report` wrote and found; `to_dict()` is the `--json` output."""

    kind: str  # "run" | "bench"
    html_path: Path
    png_paths: list[Path]
    runs: list[str]
    trials: int
    front: list[dict[str, Any]]
    selected: list[dict[str, Any]]
    speeds: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "html": str(self.html_path), "pngs": [str(p) for p in self.png_paths],
                "runs": self.runs, "trials": self.trials, "pareto_front": self.front, "selected": self.selected,
                "latency_model": self.speeds}


def _trial_summary(run: RunData, t: Trial, pooled: GraphPoint | None = None) -> dict[str, Any]:
    """One trial for `--json`; `graph_accuracy`/`graph_scored` pool every trial of the same graph."""
    return {"run": run.name, "trial": t.id, "iteration": t.iteration, "optimizer": t.optimizer,
            "graph_hash": t.graph_hash, "accuracy": t.accuracy, "scored": t.scored,
            "graph_accuracy": pooled.accuracy if pooled else t.accuracy,
            "graph_scored": pooled.scored if pooled else t.scored,
            "planned_units": t.planned_units, "latency": t.latency, "estimated_latency": t.estimated_latency}


def _ci_text(summary: dict[str, Any]) -> str:
    ci = summary.get("ci") or [None, None]
    acc = summary.get("accuracy")
    if acc is None:
        return "–"
    if ci[0] is None:
        return f"{acc:.3f}"
    return f"{acc:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def _latency_of(summary: dict[str, Any], kind: str = "critical_path") -> float | None:
    lat = summary.get("latency") or {}
    v = lat.get(kind) if isinstance(lat, dict) else None
    return as_number(v.get("mean")) if isinstance(v, dict) else as_number(v)


def _section_config(run: RunData) -> str:
    if not run.config:
        return '<p class="muted">no configuration stored</p>'
    flat: dict[str, Any] = {}
    for k, v in sorted(run.config.items()):
        if isinstance(v, dict) and v:
            flat.update({f"{k}.{k2}": v2 for k2, v2 in sorted(v.items())})
        else:
            flat[k] = v
    rows = [[k, _Raw(_e(v if isinstance(v, str) else json.dumps(v)))] for k, v in flat.items()]
    return _table(["setting", "value"], rows, left=2).replace("<table>", '<table class="kv">', 1)


def _trial_table(runs: Sequence[RunData], front_keys: set[tuple[str, int]], selected: set[tuple[str, int]],
                 show_run: bool) -> str:
    headers = (["run"] if show_run else []) + ["trial", "iter", "optimizer", "nodes", "edges", "accuracy",
                                               "correct/scored", "errors", "planned units", "measured units",
                                               "latency s", "est. latency s", "wall s", "on front"]
    rows, classes = [], []
    for r in runs:
        for t in r.trials:
            key = (r.name, t.id)
            g = t.graph.pruned()[0]
            rows.append(([r.name] if show_run else []) + [
                t.id, t.iteration if t.kind == "search" else f"{t.kind} {t.iteration}", t.optimizer, len(g.nodes),
                len(g.edges), t.accuracy, f"{t.correct}/{t.scored}", t.errors, t.planned_units, t.measured_units,
                t.latency, t.estimated_latency, t.wall, key in front_keys])
            classes.append("sel" if key in selected else "front" if key in front_keys else "")
    return _table(headers, rows, classes, left=1 if show_run else 0)


def _transcript(run: RunData) -> str:
    if not run.agent_log:
        return '<p class="muted">no agent calls (a numeric optimizer, or none stored yet)</p>'
    parts = []
    entries = run.agent_log[:MAX_TRANSCRIPT_ENTRIES]
    for e in entries:
        messages = e.get("prompt", e.get("prompt_json"))
        if isinstance(messages, list):
            shown = "\n\n".join(f"[{m.get('role', '?')}]\n{m.get('content', '')}" if isinstance(m, dict) else str(m)
                                for m in messages)
        else:
            shown = str(messages or "")
        reply = str(e.get("reply") or "")
        ok = e.get("ok")
        status = "ok" if ok in (1, True, None) else f"failed: {e.get('error') or ''}"
        head = (f"iteration {e.get('iteration')} · {e.get('kind') or 'agent'} · {_fmt(as_number(e.get('seconds')), 2)} s"
                f" · {status}")
        parts.append(
            f'<details><summary class="{"" if ok in (1, True, None) else "bad"}">{_e(head)}</summary>'
            f"<p><b>prompt</b></p><pre>{_e(shown[:MAX_TEXT_CHARS])}</pre>"
            f"<p><b>reply</b></p><pre>{_e(reply[:MAX_TEXT_CHARS])}</pre></details>")
    if len(run.agent_log) > len(entries):
        parts.append(f'<p class="muted">{len(run.agent_log) - len(entries)} more entries not shown</p>')
    return "".join(parts)


def _speed_table(model: LatencyModel) -> str:
    if not model.speeds:
        return '<p class="muted">no timed node calls: no latency model</p>'
    rows = [[s.model, s.prefill_tps, s.decode_tps, s.overhead, s.calls, s.rmse] for s in model.speeds.values()]
    return _table(["model", "prefill tok/s", "decode tok/s", "overhead s", "calls fitted", "fit rmse s"], rows,
                  left=1)


def _usage_table(usage: dict[str, plots.ModelUsage]) -> str:
    rows = [[m, u.calls, u.cached, u.prompt_tokens, u.completion_tokens, u.flops, u.seconds]
            for m, u in sorted(usage.items())]
    return _table(["model", "calls", "cache hits", "prompt tokens", "completion tokens", "measured FLOPs",
                   "backend seconds"], rows, left=1)


def build_report(path: str | Path, out: str | Path | None = None, progress: Progress | None = None) -> ReportResult:
    """Write the HTML report (and its PNGs beside it) for a run or bench directory.

    `out` defaults to `<path>/report.html`; PNGs are named `<stem>-<figure>.png` next to it.
    `progress` is called with a short message before each step.
    """
    say = progress or (lambda _msg: None)
    root = Path(path)
    dirs = find_runs(root)
    say(f"reading {len(dirs)} run store(s)")
    runs = [load_run(d) for d in dirs]
    kind = "run" if dirs == [root] else "bench"
    if len({r.name for r in runs}) < len(runs):  # e.g. a/run and b/run: name them by their path
        for r in runs:
            r.label = r.path.relative_to(root).as_posix()
    bench = load_bench_summary(root) if kind == "bench" else None
    if bench is not None:
        attach_bench_tests(runs, bench)
    html_path = Path(out) if out is not None else root / "report.html"
    html_path.parent.mkdir(parents=True, exist_ok=True)

    say("fitting the latency model")
    add_estimates(runs)
    speeds, lengths = latency_model_for(runs)
    usage = model_usage(runs)

    all_trials = [(r, t) for r in runs for t in r.trials]
    pooled = {g.graph_hash: g for g in graph_points(all_trials)}
    graph_front = pareto_front(list(pooled.values()))  # accuracy ↑, planned units ↓, latency ↓
    front_hashes = {g.graph_hash for g in graph_front}
    front_keys = {(r.name, t.id) for r, t in all_trials if t.graph_hash in front_hashes}
    selected_pairs = [(r, sel) for r in runs if (sel := r.selected()) is not None]
    selected_keys = {(r.name, t.id) for r, t in selected_pairs}

    def group_of(r: RunData) -> str:
        return r.optimizer

    points = [_point(t, group_of(r)) for r, t in all_trials]
    sel_points = {(r.name, t.id): _point(t, group_of(r)) for r, t in selected_pairs}
    sel_for_plot = next(iter(sel_points.values())) if kind == "run" and sel_points else None

    figs = Figures()
    model_names = sorted({n.model for _, t in all_trials for n in t.graph.nodes} | set(usage))
    mcolours = plots.colours(model_names)
    say("drawing the graph(s)")
    graph_figs: list[str] = []
    for r, t in selected_pairs:
        g = (r.best_graph or t.graph).pruned()[0]
        name = "graph" if kind == "run" else f"graph-{_slug(r.name)}"
        figs.add(name, plots.draw_graph(g, f"{r.name}: selected graph" if kind == "bench" else "selected graph",
                                        mcolours), f"selected graph of {r.name} ({r.optimizer})")
        graph_figs.append(name)
    say("drawing the search curve")
    series: dict[str, list[list[plots.TrialPoint]]] = defaultdict(list)
    for r in runs:
        series[group_of(r)].append([_point(t, group_of(r)) for t in r.trials if t.kind == "search"])
    figs.add("search", plots.search_curve(series, "search curve" + (" per optimizer" if kind == "bench" else "")),
             "accuracy of every trial per iteration, and the best so far")
    say("drawing the trade-offs")
    front_flops = pareto_front(points, maximize=("accuracy",), minimize=("planned_units",))
    front_lat = pareto_front(points, maximize=("accuracy",), minimize=("latency",))
    figs.add("flops", plots.tradeoff(points, "planned_units", front_flops, sel_for_plot, "planned FLOPs (units)",
                                     "accuracy vs planned FLOPs"),
             "accuracy vs planned FLOPs per trial; ringed: Pareto front of these two axes")
    figs.add("latency", plots.tradeoff(points, "latency", front_lat, sel_for_plot,
                                       "latency: mean critical path per item (s)", "accuracy vs latency"),
             "accuracy vs measured latency per trial; ringed: Pareto front of these two axes")
    figs.add("models", plots.model_breakdown(usage, "per-model cost over all trials"),
             "node calls, tokens and measured FLOPs per model")

    say("writing the HTML")
    title = f"ttsgraph report: {root.name}"
    body: list[str] = [f"<h1>{_e(title)}</h1>",
                       f'<p class="muted">{_e(kind)} · {len(runs)} run(s) · {len(all_trials)} trials · '
                       f"generated {_e(datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC'))}</p>"]
    if not all_trials:
        body.append('<p class="bad">No trials stored yet.</p>')

    # the answer first
    body.append("<h2>Selected graph" + ("s" if kind == "bench" else "") + "</h2>")
    if selected_pairs:
        body.append(figs.html(*graph_figs))
        rows = []
        for r, t in selected_pairs:
            summ = r.test_summary() or {}
            on = t.graph_hash in front_hashes
            gp = pooled.get(t.graph_hash)
            acc, tally = ((gp.accuracy, f"{gp.correct}/{gp.scored}") if gp
                          else (t.accuracy, f"{t.correct}/{t.scored}"))
            rows.append([r.name, r.optimizer, t.id, acc, tally,
                         t.planned_units, t.latency, t.estimated_latency, on,
                         _Raw(_e(_ci_text(summ))) if summ else None, summ.get("items"), summ.get("errors"),
                         _latency_of(summ) if summ else None])
        body.append(_table(["run", "optimizer", "trial", "search accuracy (pooled)", "correct/scored", "planned units",
                            "latency s", "est. latency s", "on Pareto front", "test accuracy [95% CI]",
                            "test items", "test errors", "test latency s"], rows, left=2))
    else:
        body.append('<p class="muted">no graph selected yet</p>')

    if kind == "bench":
        body.append("<h2>Optimizers</h2>")
        body.append(_optimizer_table(runs))
        if bench is not None:
            body.append("<h3>Test results of the bench (optimizers and fixed baselines)</h3>")
            body.append(_bench_rows_table(bench))

    body.append("<h2>Search</h2>" + figs.html("search"))
    body.append("<h2>Accuracy, FLOPs and latency</h2>" + figs.html("flops", "latency"))
    body.append(f'<p class="muted">{len(graph_front)} graph(s) ({len(front_keys)} trial(s)) on the three-way Pareto '
                "front (accuracy ↑, planned units ↓, latency ↓; each graph pooled over all items it was scored on), "
                "highlighted in the trial table.</p>")

    body.append("<h2>Latency: measured vs estimated</h2>")
    body.append('<p class="muted">Each trial\'s estimate is its planned critical path, with per-model speeds fitted '
                "on the node traces of the <i>other</i> trials (the graph is unseen by the fit) and the token lengths "
                "the traces show"
                + (f" (A = {lengths.prompt:.0f} prompt, B = {lengths.answer:.0f} answer tokens)" if lengths else "")
                + ". Measured = mean critical path per item.</p>")
    body.append(_speed_table(speeds))
    pairs = [(t.latency, t.estimated_latency) for _, t in all_trials
             if t.latency is not None and t.estimated_latency is not None and t.latency > 0]
    if pairs:
        rel = sorted(abs(e - m) / m for m, e in pairs)
        body.append(f'<p>Median relative error of the estimate over {len(pairs)} trials: '
                    f"<b>{100 * rel[len(rel) // 2]:.0f}%</b>.</p>")

    body.append("<h2>Per-model cost</h2>" + figs.html("models") + _usage_table(usage))
    body.append("<h2>Trials</h2>" + _trial_table(runs, front_keys, selected_keys, show_run=kind == "bench"))
    body.append('<p class="muted">blue: selected graph · yellow: on the Pareto front</p>')

    body.append("<h2>Agent transcript</h2>")
    for r in runs:
        if kind == "bench":
            body.append(f"<h3>{_e(r.name)}</h3>")
        body.append(_transcript(r))
    body.append("<h2>Configuration</h2>")
    for r in runs:
        if kind == "bench":
            body.append(f"<h3>{_e(r.name)}</h3>")
        body.append(_section_config(r))

    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_e(title)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")
    html_path.write_text(page, encoding="utf-8")
    png_paths = []
    for name, data in figs.items.items():
        p = html_path.with_name(f"{html_path.stem}-{name}.png")
        p.write_bytes(data)
        png_paths.append(p)
    say(f"wrote {html_path}")
    return ReportResult(
        kind=kind, html_path=html_path, png_paths=png_paths, runs=[r.name for r in runs], trials=len(all_trials),
        front=[g.to_dict() for g in graph_front],
        selected=[_trial_summary(r, t, pooled.get(t.graph_hash)) for r, t in selected_pairs],
        speeds=speeds.to_dict(),
    )


def load_bench_summary(root: Path) -> dict[str, Any] | None:
    """`bench.json` written by `ttsgraph bench` beside its run directories (rows with test accuracy
    and CI for optimizers and fixed baselines, paired comparisons), or None."""
    p = root / "bench.json"
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise FileFormatError(f"cannot read the bench summary: {exc}", path=str(p)) from None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise FileFormatError("bench summary has no 'rows' list", path=str(p))
    return data


def attach_bench_tests(runs: Sequence[RunData], bench: dict[str, Any]) -> None:
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
                           "errors": o.get("test_errors"), "source": "bench.json"}


def _bench_rows_table(bench: dict[str, Any]) -> str:
    """The bench's own table: every optimizer (over seeds) and fixed baseline on the same test items,
    and each optimizer's paired difference against the best baseline."""
    rows = []
    for r in bench["rows"]:
        ci = r.get("test_ci") or [None, None]
        acc = r.get("test_accuracy")
        ci_text = f"{acc:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if acc is not None and ci[0] is not None else _fmt(acc)
        rows.append([r.get("name"), r.get("kind"), r.get("seeds"), as_number(r.get("search_accuracy")), _Raw(_e(ci_text)),
                     f"{r.get('test_correct')}/{r.get('test_items')}", r.get("test_errors"),
                     as_number(r.get("planned_units")), as_number(r.get("evaluations")), as_number(r.get("eval_seconds")),
                     as_number(r.get("agent_seconds"))])
    html_out = _table(["name", "kind", "seeds", "search accuracy", "test accuracy [95% CI]", "test correct",
                       "test errors", "planned units", "evaluations", "eval s", "agent s"], rows, left=2)
    comps = bench.get("comparisons") or []
    if comps:
        html_out += ("<p>Paired difference in test accuracy against the best baseline "
                     f"(<b>{_e(bench.get('best_baseline'))}</b>), same items:</p>")
        html_out += _table(["optimizer", "against", "difference", "95% low", "95% high", "items"],
                           [[c.get("name"), c.get("against"), as_number(c.get("difference")), as_number(c.get("low")),
                             as_number(c.get("high")), c.get("items")] for c in comps], left=2)
    return html_out


def _optimizer_table(runs: Sequence[RunData]) -> str:
    """One row per optimizer: runs (seeds), mean search accuracy of the selected graphs, test
    accuracies with their intervals, planned units, latency, trials."""
    groups: dict[str, list[RunData]] = defaultdict(list)
    for r in runs:
        groups[r.optimizer].append(r)
    rows = []
    for opt, rs in sorted(groups.items()):
        sels = [r.selected() for r in rs]
        sels_ok = [s for s in sels if s is not None]
        tests = [r.test_summary() for r in rs]
        accs = [t["accuracy"] for t in tests if t and t.get("accuracy") is not None]
        lats = [s.latency for s in sels_ok if s.latency is not None]
        rows.append([
            opt, len(rs), ", ".join(str(r.seed) for r in rs), sum(len(r.trials) for r in rs),
            (sum(s.accuracy for s in sels_ok) / len(sels_ok)) if sels_ok else None,
            (sum(accs) / len(accs)) if accs else None,
            _Raw("<br>".join(_e(_ci_text(t)) for t in tests if t) or "–"),
            (sum(s.planned_units for s in sels_ok) / len(sels_ok)) if sels_ok else None,
            (sum(lats) / len(lats)) if lats else None,
        ])
    return _table(["optimizer", "runs", "seeds", "trials", "mean search accuracy (selected)", "mean test accuracy",
                   "test accuracy [95% CI] per run", "mean planned units", "mean latency s"], rows, left=3)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:60] or "run"

