"""The report's tables and text sections, each from already-loaded runs (no reading, no drawing).

Every accuracy shown beside a selection is the selection's own (pooled over the graph's items,
errors counted as not correct, the error count beside it), so the page and the study agree.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from ttsgraph import plots
from ttsgraph.confirm import vs_classical_line
from ttsgraph.latency import LatencyModel
from ttsgraph.pareto import as_number
from ttsgraph.report.data import RunData
from ttsgraph.report.markup import Raw, ci_text, esc, fmt, latency_of, table

MAX_TRANSCRIPT_ENTRIES = 300
MAX_TEXT_CHARS = 20_000


def selected_table(runs: Sequence[RunData], front_hashes: set[str]) -> str:
    """One row per run: the study's decision (rule; 'provisional' while it has not decided), its
    pooled search accuracy with correct/items and errors, costs, and the test score."""
    rows = []
    for r in runs:
        sel, t = r.decision(), r.selected()
        if sel is None or t is None:
            continue
        summ = r.test_summary() or {}
        rule = sel.rule if r.recorded is not None else "provisional (best so far)"
        rows.append([r.name, r.optimizer, sel.trial, rule, sel.accuracy, f"{sel.correct}/{sel.items}", sel.errors,
                     sel.planned_units, sel.latency, t.estimated_latency, sel.graph_hash in front_hashes,
                     Raw(esc(ci_text(summ))) if summ else None, summ.get("items"), summ.get("errors"),
                     latency_of(summ) if summ else None])
    return table(["run", "optimizer", "trial", "rule", "search accuracy (pooled)", "correct/items", "errors",
                  "planned units", "latency s", "est. latency s", "on Pareto front", "test accuracy [95% CI]",
                  "test items", "test errors", "test latency s"], rows, left=2)


def vs_classical(runs: Sequence[RunData]) -> str:
    """One line per run whose study raced the classical strategies: the paired difference (selected −
    best classical, 95 % CI) on the confirmation items and on the test items."""
    lines = []
    for r in runs:
        sel = r.decision()
        vs = sel.vs_classical if sel is not None else {}
        if not vs or not vs.get("search"):
            continue
        conf = sel.confirm if sel is not None else {}
        lines.append(f"<p>{esc(r.name)}: selected by {esc(sel.rule)} among {len(conf.get('finalists', []))} "
                     f"finalists on {conf.get('items')} search items; vs best classical "
                     f"{esc(vs_classical_line(vs))}.</p>")
    return "".join(lines)


def optimizer_table(runs: Sequence[RunData]) -> str:
    """One row per optimizer: runs (seeds), mean search accuracy of the selections, test
    accuracies with their intervals, planned units, latency, trials."""
    groups: dict[str, list[RunData]] = defaultdict(list)
    for r in runs:
        groups[r.optimizer].append(r)
    rows = []
    for opt, rs in sorted(groups.items()):
        sels = [s for s in (r.decision() for r in rs) if s is not None]
        tests = [r.test_summary() for r in rs]
        accs = [t["accuracy"] for t in tests if t and t.get("accuracy") is not None]
        lats = [s.latency for s in sels if s.latency is not None]
        rows.append([
            opt, len(rs), ", ".join(str(r.seed) for r in rs), sum(len(r.trials) for r in rs),
            (sum(s.accuracy for s in sels) / len(sels)) if sels else None,
            (sum(accs) / len(accs)) if accs else None,
            Raw("<br>".join(esc(ci_text(t)) for t in tests if t) or "–"),
            (sum(s.planned_units for s in sels) / len(sels)) if sels else None,
            (sum(lats) / len(lats)) if lats else None,
        ])
    return table(["optimizer", "runs", "seeds", "trials", "mean search accuracy (selected)", "mean test accuracy",
                  "test accuracy [95% CI] per run", "mean planned units", "mean latency s"], rows, left=3)


def bench_rows_table(bench: dict[str, Any]) -> str:
    """The bench's own table: every optimizer (over seeds) and fixed baseline on the same test items,
    and each optimizer's paired difference against the best baseline."""
    rows = []
    for r in bench["rows"]:
        ci = r.get("test_ci") or [None, None]
        acc = r.get("test_accuracy")
        text = f"{acc:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if acc is not None and ci[0] is not None else fmt(acc)
        rows.append([r.get("name"), r.get("kind"), r.get("seeds"), as_number(r.get("search_accuracy")), Raw(esc(text)),
                     f"{r.get('test_correct')}/{r.get('test_items')}", r.get("test_errors"),
                     as_number(r.get("planned_units")), as_number(r.get("evaluations")),
                     as_number(r.get("eval_seconds")), as_number(r.get("agent_seconds"))])
    out = table(["name", "kind", "seeds", "search accuracy", "test accuracy [95% CI]", "test correct",
                 "test errors", "planned units", "evaluations", "eval s", "agent s"], rows, left=2)
    comps = bench.get("comparisons") or []
    if comps:
        out += ("<p>Paired difference in test accuracy against the best baseline "
                f"(<b>{esc(bench.get('best_baseline'))}</b>), same items:</p>")
        out += table(["optimizer", "against", "difference", "95% low", "95% high", "items"],
                     [[c.get("name"), c.get("against"), as_number(c.get("difference")), as_number(c.get("low")),
                       as_number(c.get("high")), c.get("items")] for c in comps], left=2)
    return out


def trial_table(runs: Sequence[RunData], front_hashes: set[str], show_run: bool) -> str:
    """Every trial; rows of the selected graph blue, of front graphs yellow, probes grey."""
    headers = (["run"] if show_run else []) + ["trial", "iter", "optimizer", "nodes", "edges", "accuracy",
                                               "correct/items", "errors", "planned units", "measured units",
                                               "latency s", "est. latency s", "wall s", "candidate", "on front"]
    rows, classes = [], []
    for r in runs:
        sel = r.decision()
        for t in r.trials:
            g = t.graph.pruned()[0]
            on_front = t.graph_hash in front_hashes
            rows.append(([r.name] if show_run else []) + [
                t.id, t.iteration if t.kind == "search" else f"{t.kind} {t.iteration}", t.optimizer, len(g.nodes),
                len(g.edges), t.correct / t.items if t.items else 0.0, f"{t.correct}/{t.items}", t.errors,
                t.planned_units, t.measured_units, t.latency_mean, t.estimated_latency, t.wall,
                t.candidate, on_front])
            chosen = sel is not None and t.graph_hash == sel.graph_hash
            classes.append("sel" if chosen else "front" if on_front else "" if t.candidate else "probe")
    return table(headers, rows, classes, left=1 if show_run else 0)


def transcript(run: RunData) -> str:
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
        ok = e.get("ok") in (1, True, None)
        status = "ok" if ok else f"failed: {e.get('error') or ''}"
        head = (f"iteration {e.get('iteration')} · {e.get('kind') or 'agent'} · {fmt(as_number(e.get('seconds')), 2)} s"
                f" · {status}")
        parts.append(
            f'<details><summary class="{"" if ok else "bad"}">{esc(head)}</summary>'
            f"<p><b>prompt</b></p><pre>{esc(shown[:MAX_TEXT_CHARS])}</pre>"
            f"<p><b>reply</b></p><pre>{esc(reply[:MAX_TEXT_CHARS])}</pre></details>")
    if len(run.agent_log) > len(entries):
        parts.append(f'<p class="muted">{len(run.agent_log) - len(entries)} more entries not shown</p>')
    return "".join(parts)


def config_section(run: RunData) -> str:
    if not run.config:
        return '<p class="muted">no configuration stored</p>'
    flat: dict[str, Any] = {}
    for k, v in sorted(run.config.items()):
        if isinstance(v, dict) and v:
            flat.update({f"{k}.{k2}": v2 for k2, v2 in sorted(v.items())})
        else:
            flat[k] = v
    rows = [[k, Raw(esc(v if isinstance(v, str) else json.dumps(v)))] for k, v in flat.items()]
    return table(["setting", "value"], rows, left=2).replace("<table>", '<table class="kv">', 1)


def speed_table(model: LatencyModel) -> str:
    if not model.speeds:
        return '<p class="muted">no timed node calls: no latency model</p>'
    rows = [[s.model, s.prefill_tps, s.decode_tps, s.overhead, s.calls, s.rmse] for s in model.speeds.values()]
    return table(["model", "prefill tok/s", "decode tok/s", "overhead s", "calls fitted", "fit rmse s"], rows, left=1)


def usage_table(usage: dict[str, plots.ModelUsage]) -> str:
    rows = [[m, u.calls, u.cached, u.prompt_tokens, u.completion_tokens, u.flops, u.seconds]
            for m, u in sorted(usage.items())]
    return table(["model", "calls", "cache hits", "prompt tokens", "completion tokens", "measured FLOPs",
                  "backend seconds"], rows, left=1)
