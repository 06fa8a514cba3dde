"""Executor benchmark against real llama-cpp-python servers on 127.0.0.1.

Prints three figures (targets from issue 3):

  (a) overhead   = executor wall time / sum of backend seconds, single-node graph, N items run one
                   after another (target <= 1.05): what the executor adds around the calls;
  (b) width-W    = per-item wall latency / critical-path latency for a graph of W parallel nodes
                   plus an output node, each parallel node on its own server process so capacity
                   is not the bottleneck (target <= 1.10), and sequential-sum / wall (how much
                   faster than running nodes one by one as the paper's code did);
  (c) cache      = backend calls of a second run of (b) with the response cache (target 0).

Usage: .venv/bin/python bench/executor.py [--items 20] [--width 4] [--max-tokens 16] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ttsgraph.executor import Executor, summarize
from ttsgraph.graph import Graph, Node
from ttsgraph.llm.base import SamplingParams
from ttsgraph.llm.llama_server import LlamaServer, start_llama_server
from ttsgraph.llm.router import build_backend
from ttsgraph.models import Binding, ModelPool, load_pool
from ttsgraph.stats import percentile
from ttsgraph.tasks import load_task


def pool_with_servers(urls: list[str]) -> ModelPool:
    """The local pool plus one SmolLM2 copy per server (`smol-1`, `smol-2`, ...), each bound to
    its own server, so every parallel node has a server of its own."""
    base = load_pool("local")
    specs = dict(base.specs)
    names = []
    for k, url in enumerate(urls, 1):
        name = f"smol-{k}"
        specs[name] = replace(base.spec("smollm2-135m"), name=name,
                              binding=Binding("openai", base_url=url, served_name="smollm2-135m"))
        names.append(name)
    return replace(base, name="bench", models=names, specs=specs, reference=names[0], output=names[0])


def run(pool: ModelPool, graph: Graph, items: list[Any], task: Any, params: SamplingParams,
        cache: Path | None, concurrency: int) -> tuple[list[Any], float]:
    backend = build_backend(pool, cache, timeout=120, retries=1)
    ex = Executor(backend, pool, task, params=params, concurrency=concurrency, items_in_flight=1)

    async def main() -> list[Any]:
        try:
            return await ex.run_items(graph, items)
        finally:
            await backend.aclose()  # type: ignore[attr-defined]

    t0 = time.perf_counter()
    results = asyncio.run(main())
    return results, time.perf_counter() - t0


def note(text: str) -> None:
    """Progress on stderr (the figures go to stdout at the end)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=20)
    ap.add_argument("--width", type=int, default=4)
    ap.add_argument("--width-items", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    task = load_task("arithmetic")
    items = task.items("search")
    params = SamplingParams(max_tokens=args.max_tokens)
    servers: list[LlamaServer] = []
    figures: dict[str, Any] = {"max_tokens": args.max_tokens}
    try:
        # one thread per server: W servers share the machine's cores like W GPU replicas would not,
        # but wall vs critical path compares the same node times either way
        urls = []
        note(f"starting {args.width} llama-cpp-python servers")
        for k in range(args.width):
            server = start_llama_server(alias="smollm2-135m", n_threads=1)
            servers.append(server)
            urls.append(server.base_url)
        pool = pool_with_servers(urls)

        # (a) executor overhead: single node, items one after another, no cache
        note(f"(a) single node, {args.items} items")
        single = Graph([Node("out", "smol-1")], [], "out")
        run(pool, single, items[:2], task, params, None, 1)  # warm-up (model pages, HTTP pool)
        results, wall = run(pool, single, items[: args.items], task, params, None, 1)
        backend_seconds = sum(n.seconds for r in results for n in r.nodes)
        figures["a_items"] = len(results)
        figures["a_errors"] = sum(r.error is not None for r in results)
        figures["a_wall_s"] = wall
        figures["a_backend_s"] = backend_seconds
        figures["a_overhead"] = wall / backend_seconds

        # (b) width-W: W parallel nodes on W servers, one output node
        note(f"(b) width {args.width}, {args.width_items} items")
        nodes = [Node(f"a{k}", f"smol-{k}") for k in range(1, args.width + 1)] + [Node("out", "smol-1")]
        wide = Graph(nodes, [(f"a{k}", "out") for k in range(1, args.width + 1)], "out")
        with tempfile.TemporaryDirectory() as tmp:
            cache = Path(tmp) / "bench.sqlite"
            results, _ = run(pool, wide, items[: args.width_items], task, params, cache, args.width)
            ok = [r for r in results if r.error is None]
            ratios = [r.wall / r.critical_path for r in ok]
            speedups = [r.sequential / r.wall for r in ok]
            figures["b_items"] = len(results)
            figures["b_errors"] = len(results) - len(ok)
            figures["b_wall_over_critical_mean"] = sum(ratios) / len(ratios)
            figures["b_wall_over_critical_p95"] = percentile(ratios, 95)
            figures["b_sequential_over_wall_mean"] = sum(speedups) / len(speedups)
            figures["b_wall_mean_s"] = sum(r.wall for r in ok) / len(ok)
            figures["b_critical_mean_s"] = sum(r.critical_path for r in ok) / len(ok)
            figures["b_sequential_mean_s"] = sum(r.sequential for r in ok) / len(ok)
            s1 = summarize(results, wide, pool, task)
            figures["b_backend_calls"] = s1.backend_calls

            # (c) the same eval again, through the cache
            note("(c) rerun through the cache")
            again, wall_c = run(pool, wide, items[: args.width_items], task, params, cache, args.width)
            s2 = summarize(again, wide, pool, task)
            figures["c_backend_calls"] = s2.backend_calls
            figures["c_cache_hits"] = s2.cache_hits
            figures["c_wall_s"] = wall_c
    finally:
        for server in servers:
            server.stop()

    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        f = figures
        print(f"(a) executor overhead, single node, {f['a_items']} items: wall {f['a_wall_s']:.2f} s / "
              f"backend {f['a_backend_s']:.2f} s = {f['a_overhead']:.3f}  (target <= 1.05; errors {f['a_errors']})")
        print(f"(b) width {args.width}, {f['b_items']} items: wall/critical-path mean {f['b_wall_over_critical_mean']:.3f} "
              f"p95 {f['b_wall_over_critical_p95']:.3f} (target <= 1.10); sequential/wall {f['b_sequential_over_wall_mean']:.2f}x "
              f"(wall {f['b_wall_mean_s']:.2f} s, critical {f['b_critical_mean_s']:.2f} s, sequential {f['b_sequential_mean_s']:.2f} s; "
              f"errors {f['b_errors']})")
        print(f"(c) rerun through the cache: backend calls {f['c_backend_calls']} (target 0), cache hits "
              f"{f['c_cache_hits']} of {f['b_backend_calls']}, wall {f['c_wall_s']:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
