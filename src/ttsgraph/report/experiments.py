"""The report pages of the two experiment directories: a pilot (`ttsgraph pilot`) and a sweep
(`ttsgraph sweep`).

Both are drawn from the JSON summary the command wrote (`pilot.json`, `sweep.json`), which holds
every cell's or graph's per-item outcomes' totals and intervals, so the page needs no model and
can be made on another machine. A sweep's per-budget studies are ordinary run directories:
`ttsgraph report OUT/b<b>` gives each one's full search report.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ttsgraph.report.markup import Figures, esc, page, table

PILOT, SWEEP = "pilot.json", "sweep.json"


def kind_of(root: Path) -> str | None:
    """"pilot" or "sweep" when `root` holds that command's summary, else None (a run or a bench)."""
    if (root / PILOT).is_file():
        return "pilot"
    if (root / SWEEP).is_file():
        return "sweep"
    return None


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def pilot_body(data: dict[str, Any], figs: Figures) -> list[str]:
    from ttsgraph import pilot_plots
    from ttsgraph.pilot import statements

    s = data["settings"]
    figs.add("heatmap", pilot_plots.heatmap(data), "accuracy per width × depth cell with its 95% interval and "
             "planned units; hatched: over the budget")
    figs.add("curves", pilot_plots.curves(data), "accuracy against depth per width, and against width per depth")
    a = data["analysis"]
    rows = [[c["width"], c["depth"], c["width"] * c["depth"] + 1, c["planned_units"], _pct(c["accuracy"]),
             f"{_pct(c['ci'][0])}–{_pct(c['ci'][1])}", c["errors"], "yes" if c["over_budget"] else ""]
            for c in data["cells"]]
    best, diff = a["best"], a["best_vs_smallest"]
    return [
        (f"<p>{esc(s['task'])} · every node {esc(s['model'])} (assistant) · {len(data['item_ids'])} paired "
         f"{esc(s['split'])} items per cell</p>"),
        "<h2>Width × depth</h2>", figs.html("heatmap", "curves"),
        "<h2>Insights</h2><ul>" + "".join(f"<li>{esc(x)}</li>" for x in statements(a)) + "</ul>",
        (f"<p>Best cell: width {best['width']} × depth {best['depth']}, {_pct(best['accuracy'])} at "
         f"{best['planned_units']:.2f} units; against {s['widths'][0]} × {s['depths'][0]}: "
         f"{100 * diff['mean']:+.1f} points [{100 * diff['low']:+.1f}, {100 * diff['high']:+.1f}] (paired 95% CI).</p>"),
        "<h2>Cells</h2>", table(["width", "depth", "nodes", "planned units", "accuracy", "95% CI", "errors",
                                 "over budget"], rows),
    ]


def sweep_body(data: dict[str, Any], figs: Figures) -> list[str]:
    from ttsgraph.sweep import statement
    from ttsgraph.sweep_plots import frontier_figure

    figs.add("frontier", frontier_figure(data), "best test accuracy within each budget (step line, 95% band), "
             "the searched graphs, and each model alone then self-consistency, against planned FLOPs units")
    front = []
    for p in data["frontier"]:
        vs = p["search_vs_best_baseline"]
        front.append([p["budget"], p["budget_units"], _pct(p["search_accuracy"]), p["best_baseline"] or "–",
                      _pct(p["best_baseline_accuracy"]),
                      "–" if vs is None else f"{100 * vs['mean']:+.1f} [{100 * vs['low']:+.1f}, {100 * vs['high']:+.1f}]",
                      p["best"], f"{_pct(p['best_accuracy'])} [{_pct(p['best_ci'][0])}–{_pct(p['best_ci'][1])}]"])
    graphs = [[s["name"], s["kind"], s["planned_units"], _pct(s["accuracy"]),
               f"{_pct(s['ci'][0])}–{_pct(s['ci'][1])}", f"{s['correct']}/{s['items']}"]
              for s in sorted(data["scored"], key=lambda s: s["planned_units"])]
    return [
        (f"<p>{esc(data['task'])} · optimizer {esc(data['optimizer'])} · budgets "
         f"{esc(', '.join(map(str, data['budgets'])))} · {data['test_items']} paired test items</p>"),
        "<h2>Compute-optimal frontier</h2>", figs.html("frontier"), f"<p><b>{esc(statement(data))}</b></p>",
        table(["b", "budget units", "searched", "best baseline", "its acc", "searched − baseline (paired)",
               "frontier best", "frontier acc [95% CI]"], front, left=0),
        "<h2>Every graph on the test items</h2>",
        table(["graph", "kind", "planned units", "accuracy", "95% CI", "correct"], graphs, left=2),
        ('<p class="muted">Each budget\'s study is a run directory: <code>ttsgraph report OUT/b&lt;b&gt;</code> '
         "shows its search.</p>"),
    ]


def build(root: Path, kind: str, out: Path | None) -> tuple[Path, list[Path]]:
    """Write the page (and its PNGs beside it); returns their paths."""
    data = json.loads((root / (PILOT if kind == "pilot" else SWEEP)).read_text(encoding="utf-8"))
    figs = Figures()
    body = pilot_body(data, figs) if kind == "pilot" else sweep_body(data, figs)
    title = f"ttsgraph {kind}: {root.name}"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    html_path = out if out is not None else root / "report.html"
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(page(title, [f"<h1>{esc(title)}</h1>", f'<p class="muted">generated {esc(stamp)}</p>',
                                      *body]), encoding="utf-8")
    pngs = []
    for name, png in figs.items.items():
        p = html_path.with_name(f"{html_path.stem}-{name}.png")
        p.write_bytes(png)
        pngs.append(p)
    return html_path, pngs


__all__ = ["PILOT", "SWEEP", "build", "kind_of"]
