"""The sweep's picture: the compute-optimal frontier against planned FLOPs units.

One panel: the searched graph of each budget (with its 95 % interval), each pool model alone, its
self-consistency curve over k, and the frontier — for each budget, the best of all of them that fits
— as a step line, with a dashed line where more compute stops paying. Drawn like `ttsgraph.plots`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from matplotlib.figure import Figure

from ttsgraph.plots import colours


def frontier_figure(summary: dict[str, Any], title: str = "") -> Figure:
    fig = Figure(figsize=(8, 4.8))
    ax = fig.add_subplot()
    scored = summary["scored"]
    models = sorted({s["name"].split(" ", 1)[1] for s in scored if s["kind"] != "search"})
    colour = colours(models)
    curves: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in scored:
        if s["kind"] != "search":
            curves[s["name"].split(" ", 1)[1]].append(s)
    for m, pts in curves.items():
        pts.sort(key=lambda s: s["planned_units"])
        ax.plot([p["planned_units"] for p in pts], [p["accuracy"] for p in pts], "-", color=colour[m], alpha=0.7,
                marker="s", markersize=4, label=f"{m}: alone, then self-consistency k=2…")
    search = sorted((s for s in scored if s["kind"] == "search"), key=lambda s: s["planned_units"])
    if search:
        acc = [s["accuracy"] for s in search]
        err = [[a - s["ci"][0] for a, s in zip(acc, search)], [s["ci"][1] - a for a, s in zip(acc, search)]]
        ax.errorbar([s["planned_units"] for s in search], acc, yerr=err, fmt="o", color="black", capsize=3,
                    label=f"searched graph ({summary['optimizer']})")
        for (x, y), budgets in _labels_by_point(search).items():
            ax.annotate(", ".join(f"b{b}" for b in budgets), (x, y), textcoords="offset points", xytext=(5, 5),
                        fontsize=7)
    front = summary["frontier"]
    if front:
        xs = [p["budget_units"] for p in front]
        ys = [p["best_accuracy"] for p in front]
        lo = [p["best_ci"][0] for p in front]
        hi = [p["best_ci"][1] for p in front]
        ax.step(xs, ys, where="post", color="#d62728", linewidth=2, label="frontier: best within budget")
        ax.fill_between(xs, lo, hi, step="post", color="#d62728", alpha=0.12)
        for p in front:
            ax.axvline(p["budget_units"], color="#bbb", linewidth=0.6, zorder=0)
        if summary.get("stops_paying_units") is not None:
            ax.axvline(summary["stops_paying_units"], color="#d62728", linestyle="--", linewidth=1.2,
                       label=f"more compute stops paying (b = {summary['stops_paying']})")
    ax.set_xlabel("planned FLOPs per query (units; grey lines: the budgets)")
    ax.set_ylabel(f"test accuracy ({summary['test_items']} paired items)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    ax.set_title(title or f"compute-optimal frontier · {summary['task']}", fontsize=10)
    return fig


def _labels_by_point(search: list[dict[str, Any]]) -> dict[tuple[float, float], list[int]]:
    """The budgets whose searched graphs share a point, so that one label names them all (budgets
    that all select the same graph would otherwise print their labels on top of each other)."""
    out: dict[tuple[float, float], list[int]] = defaultdict(list)
    for s in search:
        out[(round(s["planned_units"], 6), round(s["accuracy"], 6))].append(s["budget"])
    return dict(out)


__all__ = ["frontier_figure"]
