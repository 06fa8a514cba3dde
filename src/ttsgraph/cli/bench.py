"""`ttsgraph bench`: optimizers and fixed baselines side by side on one task, budget and seeds.

Prints one table (search accuracy, test accuracy ± 95% CI, planned units, evaluations, backend
calls, cache hits, eval/agent seconds, and for agent optimizers how their update replies went:
accepted first try / after retries / fell back to sampling), a paired comparison of each optimizer against the best
baseline on the same test items, and writes `bench.json` plus a PNG of best-so-far accuracy
against evaluations into `--out`. With `--json`, stdout holds exactly one JSON object.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ttsgraph.benchmark import DEFAULT_OPTIMIZERS, BenchConfig, BenchResult, load_result, run_bench
from ttsgraph.benchmark.results import REPLY_OUTCOMES
from ttsgraph.cli import flags
from ttsgraph.cli.app import app
from ttsgraph.cli.common import console, emit_json, handle_errors, out, parse_pairs
from ttsgraph.errors import TtsGraphError
from ttsgraph.llm.cache import default_cache_path


def parse_optimizer_options(pairs: list[str] | None) -> dict[str, dict[str, Any]]:
    """`NAME:KEY=VALUE` (one optimizer) or `KEY=VALUE` (all) into {name or "*": {key: value}}."""
    out: dict[str, dict[str, Any]] = {}
    for pair in pairs or []:
        head, sep, rest = pair.partition("=")
        name, colon, key = head.rpartition(":")
        if not sep or not key.strip():
            raise TtsGraphError(f"optimizer option {pair!r} must look like NAME:KEY=VALUE or KEY=VALUE")
        value = parse_pairs([f"{key.strip()}={rest}"], "optimizer")
        out.setdefault(name.strip() if colon else "*", {}).update(value)
    return out


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def print_result(result: BenchResult, out_dir: Path | None = None) -> None:
    """The rich table and the paired comparisons."""
    cfg = result.config
    table = Table(title=f"bench: {cfg['task']} · budget {cfg['budget_units']:.2f} units (b={cfg['node_budget']}) · "
                        f"pool {cfg['pool']} · {cfg['iterations']}×{cfg['batch']} evaluations · {cfg['seeds']} seed(s)")
    for col, justify in (("row", "left"), ("kind", "left"), ("seeds", "right"), ("search %", "right"),
                         ("test % [95% CI]", "right"), ("units", "right"), ("evals", "right"), ("calls", "right"),
                         ("hits", "right"), ("eval s", "right"), ("agent s", "right"), ("test s", "right"),
                         ("replies 1st/retry/fallback", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    best = result.best_baseline
    kinds = {"optimizer": "optimizer", "single": "baseline", "self-consistency": "baseline (SC)"}
    for r in result.rows:
        name = Text(r.name, style="bold" if r.name == best else "")
        err = f" ({r.test_errors} err)" if r.test_errors else ""
        table.add_row(
            name, kinds.get(r.kind, r.kind), str(r.seeds), _pct(r.search_accuracy),
            f"{_pct(r.test_accuracy)} [{_pct(r.test_ci[0])}–{_pct(r.test_ci[1])}]{err}",
            f"{r.planned_units:.2f}", f"{r.evaluations:.4g}", str(r.backend_calls), str(r.cache_hits),
            f"{r.eval_seconds:.0f}", f"{r.agent_seconds:.0f}", f"{r.test_seconds:.0f}",
            "/".join(str(r.agent_replies.get(k, 0)) for k in REPLY_OUTCOMES) if r.agent_replies else "—",
        )
    out.print(table)
    if result.comparisons:
        comp = Table(title=f"paired difference vs best baseline ({best}) on the same {result.comparisons[0].items} "
                           "test items (percentage points, 95% CI)")
        comp.add_column("optimizer")
        comp.add_column("difference", justify="right")
        comp.add_column("95% CI", justify="right")
        comp.add_column("verdict")
        for c in result.comparisons:
            verdict = ("better" if c.low > 0 else "worse" if c.high < 0 else "no significant difference")
            comp.add_row(c.name, f"{100 * c.difference:+.1f}", f"[{100 * c.low:+.1f}, {100 * c.high:+.1f}]", verdict)
        out.print(comp)
    console.print(f"curves: {result.plot}   results: {Path(out_dir or cfg['out']) / 'bench.json'}   "
                  f"(ran {result.seconds:.0f} s)")


@app.command("bench")
@handle_errors
@flags.with_task_options
def bench_command(
    task: str = typer.Option("arithmetic", "--task", "-t", help="Task name (arithmetic, math500, mmlu, jsonl:PATH, …)."),
    option: list[str] = flags.TASK_OPTION,
    budget: float | None = typer.Option(None, "--budget", help="Budget in normalized FLOPs units."),
    budget_nodes: int | None = typer.Option(None, "--budget-nodes", help="Budget as a node budget b (SPEC §2.3); default b=3."),
    models: str | None = typer.Option(None, "--models", help="Pool name (local, paper, paper-full) or a models.toml; default local."),
    optimizers: str = typer.Option(",".join(DEFAULT_OPTIMIZERS), "--optimizers", help="Comma-separated rows: optimizer names, each optionally with its own options NAME:KEY=VALUE[:KEY=VALUE] (the row is named so), e.g. agent-reinforce,agent-reinforce:insights=false."),
    seeds: int = typer.Option(3, "--seeds", min=1, help="Seeds per optimizer (0..N-1)."),
    iterations: int = typer.Option(4, "--iterations", min=1, help="Asks per study."),
    batch: int = typer.Option(2, "--batch", min=1, help="Search items per iteration (evaluation budget = iterations × batch)."),
    opt: list[str] = typer.Option(None, "--opt", help="Optimizer option NAME:KEY=VALUE for one optimizer, or KEY=VALUE for every optimizer that has the option (repeatable), e.g. reinforce:baseline=moving-average."),
    agent: str | None = typer.Option(None, "--agent", help="Agent model of agent-reinforce/textgrad/hybrid (a pool model); default: the pool's largest chat model."),
    test_limit: int | None = typer.Option(20, "--test-limit", min=1, help="Test items every row is scored on."),
    out_dir: Path | None = typer.Option(None, "--out", help="Directory for run dirs, bench.json and the PNG (default: bench-<task>-<time>)."),
    cache: Path | None = typer.Option(None, "--cache", help="Shared response cache (default: ~/.cache/ttsgraph/responses.sqlite)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="No response cache (every call hits a model)."),
    max_tokens: int = typer.Option(64, "--max-tokens", min=1, help="Max tokens per worker node."),
    agent_max_tokens: int = typer.Option(768, "--agent-max-tokens", min=16, help="Max tokens per agent reply."),
    temperature: float = typer.Option(0.1, "--temperature", min=0.0, help="Sampling temperature of worker nodes."),
    concurrency: int = typer.Option(2, "--concurrency", "-c", min=1, help="Simultaneous calls per serving backend."),
    timeout: float | None = flags.TIMEOUT,
    retries: int | None = flags.RETRIES,
    executor: str | None = flags.EXECUTOR,
    ray_address: str | None = flags.RAY_ADDRESS,
    ray_actors: int | None = flags.RAY_ACTORS,
    no_baselines: bool = typer.Option(False, "--no-baselines", help="Skip the single-model and self-consistency rows."),
    classical: str = typer.Option("both", "--classical", help="Optimizer rows without the classical candidates (off), with them (on: the row is named NAME+classical; its studies score the classical strategies first and race the finalists against them, as `ttsgraph search` does) or both."),
    confirm: int = typer.Option(4, "--confirm", min=1, help="Finalists of the paired confirmation in the +classical rows."),
    confirm_items: int = typer.Option(20, "--confirm-items", min=1, help="Search items the +classical rows confirm their finalists on (at most the search split)."),
    show: Path | None = typer.Option(None, "--show", help="Print the results of a finished bench directory (redraws its PNG) instead of running."),
    as_json: bool = flags.JSON,
) -> None:
    """Run several optimizers × seeds and fixed baselines on the same items; table, comparison, PNG."""
    if show is not None:
        result = load_result(show)
        result.draw_curves(show)
        if as_json:
            emit_json(result.to_dict())
        else:
            print_result(result, Path(show))
        return
    config = BenchConfig(
        task=task, task_options=parse_pairs(option), models=models, budget=budget, budget_nodes=budget_nodes,
        optimizers=tuple(o.strip() for o in optimizers.split(",") if o.strip()), seeds=seeds, iterations=iterations,
        batch=batch, agent=agent, test_limit=test_limit,
        out=out_dir or Path(f"bench-{task.replace(':', '_').replace('/', '_')}-{time.strftime('%Y%m%d-%H%M%S')}"),
        cache=None if no_cache else (cache or default_cache_path()), concurrency=concurrency, max_tokens=max_tokens,
        agent_max_tokens=agent_max_tokens, temperature=temperature, baselines=not no_baselines,
        classical=classical, confirm=confirm, confirm_items=confirm_items,
        optimizer_options=parse_optimizer_options(opt),
        ray_address=ray_address, ray_actors=ray_actors,
        **{k: v for k, v in (("timeout", timeout), ("retries", retries), ("executor", executor)) if v is not None},
    )
    with Progress(SpinnerColumn(), TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=as_json) as progress:
        current: dict[str, Any] = {"id": None}
        n_rows = len(config.rows()) * config.seeds
        overall = progress.add_task("bench (optimizer runs)", total=n_rows)

        def on_event(event: str, info: dict[str, Any]) -> None:
            if event == "stage":
                if current["id"] is not None:
                    progress.update(current["id"], visible=False)
                current["id"] = progress.add_task(info["name"], total=info.get("total"))
            elif event == "item" and current["id"] is not None:
                progress.advance(current["id"])
            elif event == "done":
                if current["id"] is not None:
                    progress.update(current["id"], visible=False)
                    current["id"] = None
                if " seed " in info.get("name", ""):
                    progress.advance(overall)

        result = asyncio.run(run_bench(config, progress=on_event))
    if as_json:
        emit_json(result.to_dict())
        return
    print_result(result)
