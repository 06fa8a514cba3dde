"""`ttsgraph show`, `ttsgraph budget`, `ttsgraph models`: look at graphs, budgets and the catalogue."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from ttsgraph.cli.app import app
from ttsgraph.cli import flags
from ttsgraph.cli.common import emit_json, emit_text, get_pool, handle_errors, out, parse_pairs, task_lengths, warn
from ttsgraph.cost import Budget, planned_graph_flops, unit_flops
from ttsgraph.errors import BudgetError, GraphError
from ttsgraph.graph import Graph
from ttsgraph.graph_io import load_graph
from ttsgraph.models import ModelPool, PoolEndpoint, builtin_catalogue
from ttsgraph.render import to_dot, to_mermaid


# A terminal table of 10,000 rows takes rich tens of seconds and nobody reads it: the table shows
# the first rows (and the first predecessors of a node), the JSON and the renderings everything.
TABLE_ROWS = 200
TABLE_PREDS = 12


class Format(str, Enum):
    table = "table"
    mermaid = "mermaid"
    dot = "dot"
    json = "json"


def describe(graph: Graph, pool: ModelPool, task: str | None, budget: float | None,
             budget_nodes: int | None, task_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything `show` reports about a graph, as one JSON-able dict."""
    task_name, lengths = task_lengths(task, task_options)
    graph.validate(models=set(pool.specs))
    graph, removed = graph.pruned()
    per_node = planned_graph_flops(graph, pool, lengths)
    unit = unit_flops(pool, lengths)
    if budget is not None and budget_nodes is not None:
        raise BudgetError("give either --budget or --budget-nodes, not both")
    bud = Budget.from_nodes(budget_nodes, pool, lengths) if budget_nodes is not None else (
        Budget(budget) if budget is not None else None)
    total = sum(per_node.values())
    return {
        "task": task_name,
        "lengths": {"prompt": lengths.prompt, "answer": lengths.answer},
        "pool": pool.name,
        "reference_model": pool.reference,
        "unit_flops": unit,
        "nodes": [
            {"id": n.id, "model": n.model, "role": n.role, "in_degree": graph.in_degree(n.id),
             "preds": graph.preds(n.id), "planned_flops": per_node[n.id], "planned_units": per_node[n.id] / unit,
             "output": n.id == graph.output}
            for n in graph.nodes
        ],
        "edges": [[u, v] for u, v in graph.edges],
        "output": graph.output,
        "pruned": removed,
        "width": graph.width,
        "depth": graph.depth,
        "canonical_hash": graph.canonical_hash(),
        "planned_flops": total,
        "planned_units": total / unit,
        "budget_units": bud.units if bud else None,
        "budget_nodes": bud.nodes if bud else None,
        "within_budget": (total / unit <= bud.units + 1e-9) if bud else None,
    }


@app.command()
@handle_errors
@flags.with_task_options
def show(
    graph_file: Path = typer.Argument(..., help="Graph file (.json, or the Node-line text form)."),
    task: str = typer.Option("math", "--task", "-t", help="Task whose average lengths price the graph."),
    option: list[str] | None = flags.TASK_OPTION,
    budget: float | None = typer.Option(None, "--budget", help="Budget in normalized units."),
    budget_nodes: int | None = typer.Option(None, "--budget-nodes", help="Budget as a node count b (SPEC §2.3)."),
    models: str | None = typer.Option(None, "--models", help="Pool name (local, paper, paper-full) or models.toml."),
    fmt: Format = typer.Option(Format.table, "--format", help="table, mermaid, dot or json."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Show a graph: nodes, edges, width, depth, planned FLOPs per node and in total, budget fit."""
    pool = get_pool(models)
    graph = load_graph(graph_file)
    info = describe(graph, pool, task, budget, budget_nodes, parse_pairs(option, "task"))
    if as_json or fmt == Format.json:
        emit_json(info)
        return
    if info["pruned"]:
        warn(f"pruned (no path to the output): {', '.join(info['pruned'])}")
    if fmt == Format.mermaid:
        emit_text(to_mermaid(graph.pruned()[0]))
        return
    if fmt == Format.dot:
        emit_text(to_dot(graph.pruned()[0]))
        return
    table = Table(title=f"{graph_file} — task {info['task']}, pool {info['pool']}")
    for col in ("node", "model", "role", "in-degree", "preds", "FLOPs", "units"):
        table.add_column(col, justify="right" if col in ("in-degree", "FLOPs", "units") else "left")
    for n in info["nodes"][:TABLE_ROWS]:
        preds = ", ".join(n["preds"][:TABLE_PREDS]) + (f", … ({len(n['preds'])})" if len(n["preds"]) > TABLE_PREDS else "")
        table.add_row(n["id"] + (" (output)" if n["output"] else ""), n["model"] or "—", n["role"], str(n["in_degree"]),
                      preds, f"{n['planned_flops']:.3e}", f"{n['planned_units']:.2f}")
    out.print(table)
    if len(info["nodes"]) > TABLE_ROWS:
        warn(f"… {len(info['nodes']) - TABLE_ROWS} more nodes not listed (--json or --format mermaid/dot list all)")
    out.print(f"width {info['width']}  depth {info['depth']}  edges {len(info['edges'])}  "
              f"hash {info['canonical_hash']}")
    line = f"planned {info['planned_flops']:.4e} FLOPs = {info['planned_units']:.2f} units " \
           f"(1 unit = {info['unit_flops']:.4e} FLOPs, {info['reference_model']})"
    if info["budget_units"] is not None:
        line += f"; budget {info['budget_units']:.2f} units: "
        out.print(Text.assemble(line, ("within budget", "green") if info["within_budget"] else ("over budget", "red")),
                  soft_wrap=True)
    else:
        out.print(line, soft_wrap=True)


@app.command()
@handle_errors
@flags.with_task_options
def budget(
    task: str = typer.Option("math", "--task", "-t"),
    option: list[str] | None = flags.TASK_OPTION,
    nodes: int = typer.Option(..., "--nodes", "-b", help="Node budget b: b reference nodes fully connected + output."),
    models: str | None = typer.Option(None, "--models", help="Pool name or models.toml."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The budget in normalized units that a node budget b stands for (SPEC §2.3)."""
    pool = get_pool(models)
    task_name, lengths = task_lengths(task, parse_pairs(option, "task"))
    bud = Budget.from_nodes(nodes, pool, lengths)
    info = {"task": task_name, "nodes": nodes, "pool": pool.name, "reference_model": pool.reference,
            "output_model": pool.output, "units": bud.units, "flops": bud.units * unit_flops(pool, lengths)}
    if as_json:
        emit_json(info)
    else:
        out.print(f"b = {nodes} on {task_name} with pool {pool.name}: {bud.units:.2f} units "
                  f"({info['flops']:.4e} FLOPs; {nodes} x {pool.reference} fully connected + {pool.output})")


def _endpoint_rows(pool: ModelPool, check: bool, timeout: float) -> list[dict[str, Any]]:
    """One row per HTTP endpoint of the pool (each replica of an endpoint pool): its model, limit
    and, with `check`, whether it answers `GET /models` (state up/down, seconds, error)."""
    rows: list[dict[str, Any]] = []
    for name in pool.models:
        binding = pool.spec(name).binding
        if binding is None or binding.kind != "openai":
            continue
        replicas = binding.endpoints or (PoolEndpoint(binding.base_url or "", binding.max_concurrency),)
        for e in replicas:
            rows.append({"model": name, "base_url": e.base_url, "pooled": bool(binding.endpoints),
                         "max_concurrency": e.max_concurrency, "state": "not checked", "seconds": None,
                         "error": None})
    if check and rows:
        import asyncio

        from ttsgraph.llm.openai_compat import probe_all

        probes = asyncio.run(probe_all(sorted({r["base_url"] for r in rows}), timeout))
        by_url = {p["base_url"]: p for p in probes}
        for r in rows:
            p = by_url[r["base_url"]]
            r.update(state=p["state"], seconds=p["seconds"], error=p["error"])
    return rows


@app.command("models")
@handle_errors
def list_models(
    models: str | None = typer.Option(None, "--models", help="Also show a pool or models.toml's bindings."),
    check: bool = typer.Option(False, "--check", help="Probe each HTTP endpoint (GET /models) and show its state."),
    timeout: float = typer.Option(5.0, "--timeout", min=0.1, help="Seconds per probe (--check)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List the model catalogue (and, with --models, a pool with its backend bindings and each
    HTTP endpoint; --check probes them and exits 1 if one is down)."""
    specs = get_pool(models).specs if models else builtin_catalogue()
    pool = get_pool(models) if models else None
    rows = []
    for s in sorted(specs.values(), key=lambda s: (s.family, s.size_b)):
        rows.append({"name": s.name, "family": s.family, "size_b": s.size_b, "params": s.params, "layers": s.layers,
                     "hidden": s.hidden, "chat": s.chat, "backend": s.binding.kind if s.binding else None,
                     "base_url": s.binding.base_url if s.binding else None,
                     "endpoints": [e.base_url for e in s.binding.endpoints] if s.binding else [],
                     "in_pool": bool(pool and s.name in pool.models)})
    endpoints = _endpoint_rows(pool, check, timeout) if pool else []
    down = [e for e in endpoints if e["state"] == "down"]
    if as_json:
        emit_json({"models": rows, "pool": pool.to_dict() if pool else None, "endpoints": endpoints})
        if down:
            raise typer.Exit(1)
        return
    table = Table(title="ttsgraph models" + (f" — pool {pool.name}" if pool else ""))
    for col in ("name", "family", "size (B)", "M (non-emb.)", "L", "D", "backend"):
        table.add_column(col)
    for r in rows:
        style = "bold" if r["in_pool"] else None
        backend = (r["backend"] or "-") + (f" ({len(r['endpoints'])} endpoints)" if r["endpoints"] else "")
        table.add_row(r["name"], r["family"], f"{r['size_b']:g}", f"{r['params']:.3g}", str(r["layers"]),
                      str(r["hidden"]), backend, style=style)
    out.print(table)
    if pool:
        out.print(f"pool {pool.name}: {', '.join(pool.models)}; reference {pool.reference}; output {pool.output}")
    if endpoints:
        etable = Table(title="HTTP endpoints")
        for col in ("model", "base URL", "max conc.", "state", "seconds", "error"):
            etable.add_column(col)
        for e in endpoints:
            style = {"up": "green", "down": "red"}.get(e["state"])
            etable.add_row(e["model"], Text(e["base_url"]), str(e["max_concurrency"] or "-"), e["state"],
                           "-" if e["seconds"] is None else f"{e['seconds']:.3f}", Text(e["error"] or ""),
                           style=style)
        out.print(etable)
    if down:
        warn(f"{len(down)} of {len(endpoints)} endpoints are down", style="bold red")
        raise typer.Exit(1)


__all__ = ["describe", "show", "budget", "list_models", "GraphError"]
