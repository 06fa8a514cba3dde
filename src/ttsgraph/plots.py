"""The report's pictures, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Each function takes plain data and returns a `Figure`; `png_bytes` renders one. Figures are
built with `matplotlib.figure.Figure` directly rather than pyplot, so nothing global changes and
reports can be made from threads or servers. Colours are stable per model and per optimizer
(sorted names onto a fixed palette) so the same model has the same colour in every picture.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, Patch

from ttsgraph.graph import Graph
from ttsgraph.selection import CurvePoint

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
ROLE_MARKERS = {"assistant": "o", "fuser": "h", "vote": "D"}
NO_MODEL_COLOUR = "#999999"
"""Colour of nodes that call no model (votes)."""


def colours(names: Sequence[str]) -> dict[str, str]:
    """A colour per name, stable for a given set of names (sorted onto the palette)."""
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(sorted(set(names)))}


def png_bytes(fig: Figure, dpi: int = 110) -> bytes:
    """Render a figure to PNG bytes."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def _empty(fig: Figure, message: str) -> Figure:
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, color="#555")
    ax.set_axis_off()
    return fig


# ----- the graph ---------------------------------------------------------------------------

def graph_layout(graph: Graph) -> dict[str, tuple[float, float]]:
    """Left-to-right layered positions: x = longest path from a source, the output in the last
    column; nodes of one layer spread vertically, ordered by the mean height of their predecessors
    so edges cross less."""
    levels = graph.levels()
    last = max(levels.values(), default=0)
    if graph.output in levels:
        levels[graph.output] = max(last, levels[graph.output])
    layers: dict[int, list[str]] = {}
    for nid in graph.topological_order():
        layers.setdefault(levels[nid], []).append(nid)
    pos: dict[str, tuple[float, float]] = {}
    for x in sorted(layers):
        ids = layers[x]
        if x > 0:
            def key(nid: str) -> float:
                ys = [pos[p][1] for p in graph.preds(nid) if p in pos]
                return sum(ys) / len(ys) if ys else 0.0

            ids = sorted(ids, key=key)
        n = len(ids)
        for k, nid in enumerate(ids):
            pos[nid] = (float(x), (n - 1) / 2.0 - k)
    return pos


def draw_graph(graph: Graph, title: str = "", model_colours: Mapping[str, str] | None = None) -> Figure:
    """The graph: nodes coloured by model, shaped by role (circle = assistant, hexagon = fuser),
    the output ringed in black, each node labelled with its id and in-degree d."""
    pos = graph_layout(graph)
    xs = [p[0] for p in pos.values()] or [0.0]
    ys = [p[1] for p in pos.values()] or [0.0]
    width = max(4.0, 1.7 * (max(xs) - min(xs) + 1) + 1.5)
    spans = [abs(pos[v][0] - pos[u][0]) for u, v in graph.edges if u in pos and v in pos]
    height = max(2.6, 0.95 * (max(ys) - min(ys) + 1) + 1.2 + 0.35 * max(spans, default=0))
    fig = Figure(figsize=(min(width, 14), min(height, 10)))
    ax = fig.add_subplot()
    used = {n.model for n in graph.nodes if n.model is not None}
    cmap = dict(model_colours or colours(sorted(used)))
    for m in used - set(cmap):
        cmap[m] = PALETTE[len(cmap) % len(PALETTE)]
    # edges that skip layers arc around the nodes between them, alternately above and below
    long_edges = 0
    max_span = 0.0
    for u, v in graph.edges:
        if u not in pos or v not in pos:
            continue
        span = abs(pos[v][0] - pos[u][0])
        if span > 1 and abs(pos[v][1] - pos[u][1]) < 0.5:
            rad = (1 if long_edges % 2 == 0 else -1) * min(0.45, 0.12 + 0.06 * span)
            long_edges += 1
            max_span = max(max_span, span)
        else:
            rad = 0.08
        ax.add_patch(FancyArrowPatch(pos[u], pos[v], arrowstyle="-|>", mutation_scale=14, color="#666",
                                     shrinkA=17, shrinkB=17, lw=1.1, connectionstyle=f"arc3,rad={rad}",
                                     alpha=0.85, zorder=1, clip_on=False))
    for n in graph.nodes:
        x, y = pos[n.id]
        is_out = n.id == graph.output
        ax.scatter([x], [y], s=1100 if is_out else 850, marker=ROLE_MARKERS.get(n.role, "o"),
                   c=NO_MODEL_COLOUR if n.model is None else cmap[n.model], edgecolors="black" if is_out else "white",
                   linewidths=3 if is_out else 1.5, zorder=2)
        ax.text(x, y, n.id, ha="center", va="center", fontsize=8, color="white", fontweight="bold", zorder=3)
        ax.text(x, y - 0.36, f"d={graph.in_degree(n.id)}", ha="center", va="top", fontsize=7, color="#333",
                zorder=3)
    arc = min(0.45, 0.12 + 0.06 * max_span) * max_span * 0.6 if long_edges else 0.0
    ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
    ax.set_ylim(min(ys) - 0.75 - arc, max(ys) + 0.55 + arc)
    ax.set_axis_off()
    handles = [Patch(color=c, label=m) for m, c in sorted(cmap.items()) if m in used]
    handles += [Line2D([], [], marker=ROLE_MARKERS[r], ls="", color="#999", markersize=10, label=r)
                for r in ROLE_MARKERS if r != "vote" or any(n.role == r for n in graph.nodes)]
    handles.append(Line2D([], [], marker="o", ls="", markerfacecolor="white", markeredgecolor="black",
                          markeredgewidth=2.5, markersize=10, label="output"))
    ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


# ----- the search --------------------------------------------------------------------------

@dataclass(frozen=True)
class Point:
    """One candidate graph in the trade-off plots (pooled over its trials)."""

    group: str  # optimizer (or optimizer/seed) the graph belongs to
    accuracy: float
    planned_units: float
    latency: float | None


def search_curve(series: Mapping[str, Sequence[Sequence[CurvePoint]]], title: str = "") -> Figure:
    """Per group (optimizer), against evaluations: each candidate trial's accuracy (dots) and the
    best-so-far curve of `ttsgraph.selection` (a step line). A group with several runs (seeds)
    draws each run's curve thin and their mean thick."""
    fig = Figure(figsize=(7.0, 3.8))
    if not any(any(run for run in runs) for runs in series.values()):
        return _empty(fig, "no candidate trials yet")
    ax = fig.add_subplot()
    cmap = colours(list(series))
    for name, runs in sorted(series.items()):
        c = cmap[name]
        curves = [[(p.evaluations, p.accuracy) for p in run] for run in runs if run]
        for run in runs:
            dots = [p for p in run if p.trial_accuracy is not None]
            ax.scatter([p.evaluations for p in dots], [p.trial_accuracy for p in dots], s=14, color=c, alpha=0.35,
                       lw=0)
        if not curves:
            continue
        if len(curves) == 1:
            ax.step(*zip(*curves[0]), where="post", color=c, lw=2, label=f"{name} (best so far)")
            continue
        for cur in curves:
            ax.step(*zip(*cur), where="post", color=c, lw=0.8, alpha=0.5)
        grid, mean, _, _ = _mean_curve(curves)
        ax.step(grid, mean, where="post", color=c, lw=2.2, label=f"{name} (mean of {len(curves)} runs)")
    ax.set_xlabel("evaluations (items scored)")
    ax.set_ylabel("accuracy on search items")
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title or "search curve", fontsize=10)
    return fig


def _mean_curve(curves: Sequence[Sequence[tuple[int, float]]]) -> tuple[list[int], list[float], list[float],
                                                                         list[float]]:
    """Step curves (x, y) on their joint grid: mean, min and max of each curve's value at x (its
    last point at or before x; curves that have not started yet are left out)."""
    grid = sorted({x for c in curves for x, _ in c})
    mean, lo, hi = [], [], []
    for x in grid:
        vals = [next((y for e, y in reversed(c) if e <= x), math.nan) for c in curves]
        vals = [v for v in vals if not math.isnan(v)]
        mean.append(sum(vals) / len(vals))
        lo.append(min(vals))
        hi.append(max(vals))
    return grid, mean, lo, hi


def bench_curves(curves: Mapping[str, Sequence[Sequence[tuple[int, float]]]], title: str = "") -> Figure:
    """Bench's best-so-far search accuracy against evaluations: one panel per optimizer (shared
    axes, so optimizers whose curves coincide stay readable) with the mean over seeds as a thick
    step line, the min–max band across seeds, each seed as a thin line, and the other optimizers'
    means in grey."""
    names = [n for n in sorted(curves) if any(curves[n])]
    cols = min(3, max(1, len(names)))
    rows = max(1, math.ceil(len(names) / cols))
    fig = Figure(figsize=(3.3 * cols, 2.6 * rows + 0.5))
    if not names:
        return _empty(fig, "no trials")
    cmap = colours(list(curves))
    summary = {name: _mean_curve([c for c in curves[name] if c]) for name in names}
    axes = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)
    for k, name in enumerate(names):
        ax = axes[k // cols][k % cols]
        for other in names:
            if other != name:
                ax.step(summary[other][0], summary[other][1], where="post", color="0.75", lw=1)
        grid, mean, lo, hi = summary[name]
        c = cmap[name]
        runs = [r for r in curves[name] if r]
        if len(runs) > 1:
            ax.fill_between(grid, lo, hi, step="post", color=c, alpha=0.2, lw=0)
            for r in runs:
                ax.step([x for x, _ in r], [a for _, a in r], where="post", color=c, lw=0.8, alpha=0.6)
        ax.step(grid, mean, where="post", color=c, lw=2.4)
        ax.set_title(f"{name} ({len(runs)} seed{'s' * (len(runs) > 1)})", fontsize=9)
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
        if k % cols == 0:
            ax.set_ylabel("best search acc.", fontsize=8)
        if k // cols == rows - 1:
            ax.set_xlabel("evaluations", fontsize=8)
    for k in range(len(names), rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    fig.suptitle(title or "best-so-far search accuracy (mean over seeds, band = min–max)", fontsize=10)
    fig.tight_layout()
    return fig


def tradeoff(points: Sequence[Point], x: str, front: Sequence[Point], selected: Point | None = None,
             xlabel: str = "", title: str = "") -> Figure:
    """Accuracy against `x` ("planned_units" or "latency") for every candidate graph, coloured by
    group; `front` (the Pareto-optimal points for these two axes) is ringed and joined by a step
    line, `selected` (the graph the search returned) is a star."""
    fig = Figure(figsize=(5.6, 3.8))
    usable = [p for p in points if getattr(p, x) is not None and not math.isnan(getattr(p, x))]
    if not usable:
        return _empty(fig, f"no graph has a {x.replace('_', ' ')}")
    ax = fig.add_subplot()
    cmap = colours([p.group for p in usable])
    for g in sorted(cmap):
        mine = [p for p in usable if p.group == g]
        ax.scatter([getattr(p, x) for p in mine], [p.accuracy for p in mine], s=26, color=cmap[g], alpha=0.75,
                   label=g, lw=0)
    fr = sorted((p for p in front if getattr(p, x) is not None), key=lambda p: (getattr(p, x), -p.accuracy))
    if fr:
        ax.scatter([getattr(p, x) for p in fr], [p.accuracy for p in fr], s=90, facecolors="none",
                   edgecolors="black", lw=1.4, label="Pareto front")
        ax.step([getattr(p, x) for p in fr], [p.accuracy for p in fr], where="post", color="black", lw=1, alpha=0.6)
    if selected is not None and getattr(selected, x) is not None:
        ax.scatter([getattr(selected, x)], [selected.accuracy], marker="*", s=260, color="gold", edgecolors="black",
                   lw=1, zorder=5, label="selected")
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel("accuracy on search items")
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    ax.set_title(title, fontsize=10)
    return fig


# ----- costs per model ---------------------------------------------------------------------

@dataclass
class ModelUsage:
    """One model's share of a run's node calls."""

    calls: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    flops: float = 0.0
    seconds: float = 0.0


def model_breakdown(usage: Mapping[str, ModelUsage], title: str = "") -> Figure:
    """Three bar panels per model: calls (cache hits hatched), tokens (prompt + completion), FLOPs."""
    fig = Figure(figsize=(8.5, 3.0))
    if not usage:
        return _empty(fig, "no node calls recorded")
    names = sorted(usage)
    cmap = colours(names)
    cs = [cmap[n] for n in names]
    a1, a2, a3 = fig.subplots(1, 3)
    live = [usage[n].calls - usage[n].cached for n in names]
    a1.bar(names, live, color=cs, label="backend")
    a1.bar(names, [usage[n].cached for n in names], bottom=live, color=cs, alpha=0.4, hatch="//", label="cache hit")
    a1.set_title("calls", fontsize=9)
    a1.legend(fontsize=7)
    pt = [usage[n].prompt_tokens for n in names]
    a2.bar(names, pt, color=cs, alpha=0.5, label="prompt")
    a2.bar(names, [usage[n].completion_tokens for n in names], bottom=pt, color=cs, label="completion")
    a2.set_title("tokens", fontsize=9)
    a2.legend(fontsize=7)
    a3.bar(names, [usage[n].flops for n in names], color=cs)
    a3.set_title("measured FLOPs", fontsize=9)
    for ax in (a1, a2, a3):
        ax.tick_params(axis="x", labelsize=7, rotation=15)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
