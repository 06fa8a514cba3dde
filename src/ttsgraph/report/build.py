"""`build_report`: read the runs, compute, draw, and write one offline HTML page plus its PNGs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ttsgraph import plots, selection
from ttsgraph.pareto import pareto_front
from ttsgraph.report import analysis, experiments, sections
from ttsgraph.report.data import RunData, attach_bench_tests, find_runs, load_bench_summary, load_run
from ttsgraph.report.markup import Figures, esc, page, slug

Progress = Callable[[str], None]


@dataclass
class ReportResult:
    """What `build_report` wrote and found; `to_dict()` is the `--json` output."""

    kind: str  # "run" | "bench" | "pilot" | "sweep"
    html_path: Path
    png_paths: list[Path]
    runs: list[str]
    trials: int
    front: list[dict[str, Any]]
    selected: list[dict[str, Any]]
    speeds: dict[str, Any]
    curves: dict[str, list[list[float]]]  # run -> the drawn best-so-far curve, [evaluations, accuracy] points

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "html": str(self.html_path), "pngs": [str(p) for p in self.png_paths],
                "runs": self.runs, "trials": self.trials, "pareto_front": self.front, "selected": self.selected,
                "latency_model": self.speeds, "search_curves": self.curves}


def _selected_summary(run: RunData) -> dict[str, Any] | None:
    """A run's decision for `--json`: the selection's pooled figures, rule, and whether it is the
    study's recorded decision or a provisional one of an unfinished run."""
    sel, t = run.decision(), run.selected()
    if sel is None or t is None:
        return None
    return {"run": run.name, "trial": sel.trial, "iteration": t.iteration, "optimizer": t.optimizer,
            "graph_hash": sel.graph_hash, "rule": sel.rule, "provisional": run.recorded is None,
            "accuracy": sel.accuracy, "correct": sel.correct, "items": sel.items, "errors": sel.errors,
            "planned_units": sel.planned_units, "latency": sel.latency, "estimated_latency": t.estimated_latency}


def _draw(kind: str, runs: list[RunData], curves: dict[str, list[selection.CurvePoint]],
          usage: dict[str, plots.ModelUsage], say: Progress) -> tuple[Figures, list[str]]:
    figs = Figures()
    model_names = sorted({m for r in runs for t in r.trials for m in t.graph.models_used()} | set(usage))
    mcolours = plots.colours(model_names)
    say("drawing the graph(s)")
    graph_figs: list[str] = []
    for r in runs:
        t = r.selected()
        if t is None:
            continue
        name = "graph" if kind == "run" else f"graph-{slug(r.name)}"
        title = f"{r.name}: selected graph" if kind == "bench" else "selected graph"
        figs.add(name, plots.draw_graph(t.graph.pruned()[0], title, mcolours), f"selected graph of {r.name} ({r.optimizer})")
        graph_figs.append(name)
    say("drawing the search curve")
    series: dict[str, list[list[selection.CurvePoint]]] = defaultdict(list)
    for r in runs:
        series[r.optimizer].append(curves[r.name])
    figs.add("search", plots.search_curve(series, "search curve" + (" per optimizer" if kind == "bench" else "")),
             "pooled accuracy of the graph the study would select so far (line) and each candidate trial (dots), "
             "against evaluations; screening probes are not drawn")
    say("drawing the trade-offs")
    points = [p for r in runs for p in analysis.tradeoff_points(r)]
    sel_point = analysis.selected_point(runs[0]) if kind == "run" and runs else None
    for name, axis, label, what in (("flops", "planned_units", "planned FLOPs (units)", "planned FLOPs"),
                                    ("latency", "latency", "latency: mean critical path per item (s)", "latency")):
        on_front = pareto_front(points, maximize=("accuracy",), minimize=(axis,))
        figs.add(name, plots.tradeoff(points, axis, on_front, sel_point, label, f"accuracy vs {what}"),
                 f"accuracy vs {what} per candidate graph (pooled over its trials); ringed: Pareto front of these "
                 "two axes")
    figs.add("models", plots.model_breakdown(usage, "per-model cost over all trials"),
             "node calls, tokens and measured FLOPs per model")
    return figs, graph_figs


def build_report(path: str | Path, out: str | Path | None = None, progress: Progress | None = None) -> ReportResult:
    """Write the HTML report (and its PNGs beside it) for a run or bench directory.

    `out` defaults to `<path>/report.html`; PNGs are named `<stem>-<figure>.png` next to it.
    `progress` is called with a short message before each step.
    """
    say = progress or (lambda _msg: None)
    root = Path(path)
    experiment = experiments.kind_of(root)
    if experiment is not None:  # a pilot or a sweep directory: its own page
        say(f"drawing the {experiment}")
        html_path, pngs = experiments.build(root, experiment, Path(out) if out is not None else None)
        return ReportResult(kind=experiment, html_path=html_path, png_paths=pngs, runs=[root.name], trials=0,
                            front=[], selected=[], speeds={}, curves={})
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
    analysis.add_estimates(runs)
    speeds, lengths = analysis.latency_model_for(runs)
    usage = analysis.model_usage(runs)
    front = analysis.pareto_front(runs)
    curves = {r.name: selection.best_so_far(r.trials) for r in runs}
    figs, graph_figs = _draw(kind, runs, curves, usage, say)
    n_trials = sum(len(r.trials) for r in runs)

    say("writing the HTML")
    title = f"ttsgraph report: {root.name}"
    body: list[str] = [f"<h1>{esc(title)}</h1>",
                       f'<p class="muted">{esc(kind)} · {len(runs)} run(s) · {n_trials} trials · '
                       f"generated {esc(datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC'))}</p>"]
    if not n_trials:
        body.append('<p class="bad">No trials stored yet.</p>')
    body.append("<h2>Selected graph" + ("s" if kind == "bench" else "") + "</h2>")
    if graph_figs:
        body.append(figs.html(*graph_figs) + sections.selected_table(runs, front.hashes) + sections.vs_classical(runs))
    else:
        body.append('<p class="muted">no graph selected yet</p>')
    if kind == "bench":
        body.append("<h2>Optimizers</h2>" + sections.optimizer_table(runs))
        if bench is not None:
            body.append("<h3>Test results of the bench (optimizers and fixed baselines)</h3>")
            body.append(sections.bench_rows_table(bench))
    body.append("<h2>Search</h2>" + figs.html("search"))
    body.append("<h2>Accuracy, FLOPs and latency</h2>" + figs.html("flops", "latency"))
    front_trials = sum(len(g.trials) for g in front.on_front)
    body.append(f'<p class="muted">{len(front.on_front)} candidate graph(s) ({front_trials} trial(s)) on the '
                "three-way Pareto front (accuracy ↑, planned units ↓, latency ↓; each graph pooled over all items it "
                "was scored on, screening probes left out), highlighted in the trial table.</p>")
    body.append("<h2>Latency: measured vs estimated</h2>")
    body.append('<p class="muted">Each trial\'s estimate is its planned critical path, with per-model speeds fitted '
                "on the node traces of the <i>other</i> trials (the graph is unseen by the fit) and the token lengths "
                "the traces show"
                + (f" (A = {lengths.prompt:.0f} prompt, B = {lengths.answer:.0f} answer tokens)" if lengths else "")
                + ". Measured = mean critical path per item.</p>")
    body.append(sections.speed_table(speeds))
    pairs = [(t.latency_mean, t.estimated_latency) for r in runs for t in r.trials
             if t.latency_mean is not None and t.estimated_latency is not None and t.latency_mean > 0]
    if pairs:
        rel = sorted(abs(e - m) / m for m, e in pairs)
        body.append(f'<p>Median relative error of the estimate over {len(pairs)} trials: '
                    f"<b>{100 * rel[len(rel) // 2]:.0f}%</b>.</p>")
    body.append("<h2>Per-model cost</h2>" + figs.html("models") + sections.usage_table(usage))
    body.append("<h2>Trials</h2>" + sections.trial_table(runs, front.hashes, show_run=kind == "bench"))
    body.append('<p class="muted">blue: selected graph · yellow: on the Pareto front · grey: screening probe</p>')
    for heading, section in (("Agent transcript", sections.transcript), ("Configuration", sections.config_section)):
        body.append(f"<h2>{heading}</h2>")
        for r in runs:
            body.append((f"<h3>{esc(r.name)}</h3>" if kind == "bench" else "") + section(r))

    html_path.write_text(page(title, body), encoding="utf-8")
    png_paths = []
    for name, data in figs.items.items():
        p = html_path.with_name(f"{html_path.stem}-{name}.png")
        p.write_bytes(data)
        png_paths.append(p)
    say(f"wrote {html_path}")
    return ReportResult(
        kind=kind, html_path=html_path, png_paths=png_paths, runs=[r.name for r in runs], trials=n_trials,
        front=[front.entry(g) for g in front.on_front],
        selected=[s for s in (_selected_summary(r) for r in runs) if s is not None],
        speeds=speeds.to_dict(),
        curves={name: [[p.evaluations, p.accuracy] for p in c] for name, c in curves.items()},
    )
