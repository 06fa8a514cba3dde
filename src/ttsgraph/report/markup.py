"""HTML building blocks of the report: escaping, number formatting, tables, embedded figures.

The page must work offline and from disk, so styles are inline, figures are base64 PNGs and
nothing is fetched or scripted; every text that came from a model or a store is escaped here.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ttsgraph import plots
from ttsgraph.pareto import as_number

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1150px;padding:18px 26px;
color:#222;line-height:1.4}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;border-bottom:1px solid #ddd;padding-bottom:3px;
margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}th,td{border:1px solid #ddd;padding:3px 7px;
text-align:right}th{background:#f3f3f3}td.l,th.l{text-align:left}
tr.front td{background:#fffbe6}tr.sel td{background:#e8f4ff;font-weight:600}tr.probe td{color:#888}
img{max-width:100%;height:auto;border:1px solid #eee;margin:4px 0}
.figs{display:flex;flex-wrap:wrap;gap:10px}.figs figure{margin:0;flex:1 1 480px}
figcaption{font-size:.8em;color:#555}
pre{background:#f7f7f7;padding:8px;overflow-x:auto;white-space:pre-wrap;font-size:.8em;max-height:420px}
details{margin:4px 0;border:1px solid #e4e4e4;border-radius:4px;padding:3px 8px}summary{cursor:pointer}
.muted{color:#666;font-size:.85em}.bad{color:#b00}.kv td{text-align:left}
"""


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def fmt(v: Any, digits: int = 3) -> str:
    """A cell's text: – for missing or non-finite numbers, yes/no for booleans, short floats."""
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
    return esc(v)


@dataclass
class Raw:
    """A cell that is already HTML (escaped by whoever built it)."""

    html: str


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], row_classes: Sequence[str] | None = None,
          left: int = 0) -> str:
    """An HTML table; the first `left` columns are left-aligned text. Cells are escaped unless they
    are `Raw`."""
    out = ["<table><tr>"]
    out += [f'<th class="{"l" if i < left else ""}">{esc(h)}</th>' for i, h in enumerate(headers)]
    out.append("</tr>")
    for k, row in enumerate(rows):
        cls = row_classes[k] if row_classes else ""
        out.append(f'<tr class="{cls}">')
        for i, cell in enumerate(row):
            text = cell.html if isinstance(cell, Raw) else fmt(cell)
            out.append(f'<td class="{"l" if i < left else ""}">{text}</td>')
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


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
            parts.append(f'<figure><img alt="{esc(self.captions[n])}" src="data:image/png;base64,{b64}">'
                         f"<figcaption>{esc(self.captions[n])}</figcaption></figure>")
        parts.append("</div>")
        return "".join(parts)


def ci_text(summary: dict[str, Any]) -> str:
    """"0.600 [0.313, 0.832]" from a test summary's accuracy and Wilson interval."""
    ci = summary.get("ci") or [None, None]
    acc = summary.get("accuracy")
    if acc is None:
        return "–"
    if ci[0] is None:
        return f"{acc:.3f}"
    return f"{acc:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def latency_of(summary: dict[str, Any], kind: str = "critical_path") -> float | None:
    """Mean latency of a test summary (an `EvalSummary.to_dict()` or a bare number)."""
    lat = summary.get("latency") or {}
    v = lat.get(kind) if isinstance(lat, dict) else None
    return as_number(v.get("mean")) if isinstance(v, dict) else as_number(v)


def slug(text: str) -> str:
    """A file-name-safe form of a run name."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:60] or "run"


def page(title: str, body: Sequence[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{esc(title)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")
