"""The pilot's pictures: the width × depth heatmap and the per-width / per-depth curves.

Drawn like every report picture (`ttsgraph.plots`: a bare `Figure`, no pyplot state). The heatmap
writes each cell's accuracy, its 95 % interval and its planned units into the cell, and hatches the
cells that cost more than the pilot's budget, so the picture alone says which shapes are affordable.
"""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ttsgraph.plots import PALETTE


def heatmap(result: dict[str, Any], title: str = "") -> Figure:
    """Accuracy per (width, depth) from a pilot's `to_dict()`: rows are depths, columns widths."""
    s = result["settings"]
    widths, depths = s["widths"], s["depths"]
    cells = {(c["width"], c["depth"]): c for c in result["cells"]}
    fig = Figure(figsize=(1.7 * len(widths) + 2.2, 1.15 * len(depths) + 1.6))
    ax = fig.add_subplot()
    grid = [[cells[(w, d)]["accuracy"] for w in widths] for d in depths]
    image = ax.imshow(grid, cmap="viridis", vmin=0.0, vmax=1.0, origin="lower", aspect="auto")
    fig.colorbar(image, ax=ax, label="accuracy")
    for yi, d in enumerate(depths):
        for xi, w in enumerate(widths):
            c = cells[(w, d)]
            lo, hi = c["ci"]
            colour = "black" if c["accuracy"] > 0.6 else "white"
            ax.text(xi, yi, f"{100 * c['accuracy']:.0f}%\n[{100 * lo:.0f}–{100 * hi:.0f}]\n{c['planned_units']:.1f} u",
                    ha="center", va="center", fontsize=8, color=colour)
            if c["over_budget"]:
                ax.add_patch(Rectangle((xi - 0.5, yi - 0.5), 1, 1, fill=False, hatch="///", edgecolor="#d62728",
                                       linewidth=0))
    ax.set_xticks(range(len(widths)), [str(w) for w in widths])
    ax.set_yticks(range(len(depths)), [str(d) for d in depths])
    ax.set_xlabel("width (parallel chains)")
    ax.set_ylabel("depth (nodes per chain)")
    note = f" · hatched: over {s['budget']:g} units" if s.get("budget") is not None else ""
    ax.set_title(title or f"pilot · {s['task']} · {s['model']} · {len(result['item_ids'])} paired items{note}",
                 fontsize=9)
    return fig


def curves(result: dict[str, Any], title: str = "") -> Figure:
    """Two panels: accuracy against depth (a line per width) and against width (a line per depth),
    each point with its 95 % interval."""
    s = result["settings"]
    cells = {(c["width"], c["depth"]): c for c in result["cells"]}
    fig = Figure(figsize=(10, 4))
    for k, (axis, series, key) in enumerate((("depth", s["widths"], "width"), ("width", s["depths"], "depth"))):
        ax = fig.add_subplot(1, 2, k + 1)
        xs = s["depths"] if axis == "depth" else s["widths"]
        for i, fixed in enumerate(series):
            pts = [cells[(fixed, x) if key == "width" else (x, fixed)] for x in xs]
            acc = [p["accuracy"] for p in pts]
            err = [[a - p["ci"][0] for a, p in zip(acc, pts)], [p["ci"][1] - a for a, p in zip(acc, pts)]]
            ax.errorbar([x + 0.04 * (i - len(series) / 2) for x in xs], acc, yerr=err, marker="o", capsize=3,
                        color=PALETTE[i % len(PALETTE)], label=f"{key} {fixed}")
        ax.set_xticks(xs)
        ax.set_xlabel(axis)
        ax.set_ylabel("accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title(f"accuracy vs {axis}", fontsize=9)
    fig.suptitle(title or f"pilot curves · {s['task']} · {s['model']} (95% Wilson intervals)", fontsize=10)
    return fig


__all__ = ["curves", "heatmap"]
