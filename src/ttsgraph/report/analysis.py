"""The report's numbers: latency estimates, per-model usage, and the graphs on the Pareto front.

Which trials count, how a graph's accuracy is pooled and what the front is come from
`ttsgraph.selection` (the rules the study selected by); this module only applies them to the runs
a report covers and adds what a study never computes (leave-one-out latency estimates, usage).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ttsgraph import plots, selection
from ttsgraph.latency import LatencyModel, LatencyModelError, estimate_latency, observed_lengths, samples_from_traces
from ttsgraph.report.data import RunData, Trial
from ttsgraph.selection import GraphScore


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
class Front:
    """The candidate graphs of the report's runs, pooled across them by graph, and those on the
    three-way Pareto front; `owner` maps each trial back to its run."""

    graphs: list[GraphScore]
    on_front: list[GraphScore]
    owner: dict[int, RunData]

    @property
    def hashes(self) -> set[str]:
        return {g.graph_hash for g in self.on_front}

    def entry(self, g: GraphScore) -> dict[str, Any]:
        """One front graph for `--json`: pooled figures and the trials (run, id) it pools."""
        trials = [{"run": self.owner[id(t)].name, "trial": t.id} for t in g.trials]
        return {"graph_hash": g.graph_hash, "accuracy": g.accuracy, "correct": g.correct, "items": g.items,
                "errors": g.errors, "planned_units": g.planned_units, "latency": g.latency, "trials": trials,
                "run": trials[0]["run"], "trial": trials[0]["trial"]}


def pareto_front(runs: Sequence[RunData]) -> Front:
    owner = {id(t): r for r in runs for t in r.trials}
    graphs = selection.candidates([t for r in runs for t in r.trials])
    return Front(graphs, selection.front(graphs), owner)


def tradeoff_points(run: RunData) -> list[plots.Point]:
    """One point per candidate graph of a run (pooled), for the accuracy/FLOPs/latency plots."""
    return [plots.Point(run.optimizer, g.accuracy, g.planned_units, g.latency)
            for g in selection.candidates(run.trials)]


def selected_point(run: RunData) -> plots.Point | None:
    sel = run.decision()
    if sel is None:
        return None
    return plots.Point(run.optimizer, sel.accuracy, sel.planned_units, sel.latency)


def selected_graph_trials(run: RunData) -> list[Trial]:
    """The run's trials of its selected graph (all of them carry the selection's evidence)."""
    sel = run.decision()
    return [t for t in run.trials if sel is not None and t.graph_hash == sel.graph_hash]
