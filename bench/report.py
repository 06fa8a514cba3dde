"""Report and latency-model benchmark. Prints two figures:

  (a) report   = seconds to build `ttsgraph report` (HTML + 5 PNGs) for a synthetic run store of
                 T trials × I items (no model needed), and the HTML size;
  (b) latency  = how well the latency model, fitted on single-node calls of the embedded models
                 (two answer caps each), predicts the critical path of graphs it never saw run:
                 per shape the measured and estimated seconds per item and the relative error.

Usage: .venv/bin/python bench/report.py [--trials 100] [--items 5] [--skip-models] [--latency-items 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ttsgraph.executor import Executor, ItemResult, NodeTrace
from ttsgraph.graph import chain, parallel, parallel_chains, single
from ttsgraph.latency import LatencyModel, estimate_latency, observed_lengths
from ttsgraph.llm.base import SamplingParams
from ttsgraph.report import build_report
from ttsgraph.search.base import Evaluation
from ttsgraph.store import RunStore

SMOL, GEMMA = "smollm2-135m", "gemma-3-270m"


def synthetic_run(path: Path, trials: int, items: int, seed: int = 0) -> None:
    """A run store with plausible trials and node traces, written through the real RunStore."""
    rng = random.Random(seed)
    shapes = [single(SMOL), parallel(2, SMOL, GEMMA), chain(2, GEMMA, SMOL), parallel(3, [SMOL, GEMMA, SMOL], GEMMA),
              parallel_chains(2, 2, SMOL, GEMMA)]
    store = RunStore.create(path)
    try:
        store.set_config("optimizer", "synthetic")
        for k in range(trials):
            g = shapes[k % len(shapes)]
            results = []
            for i in range(items):
                nodes = []
                for n in g.nodes:
                    p, c = 40 + 30 * g.in_degree(n.id), rng.randint(5, 40)
                    secs = p / 600 + c / (70 if n.model == SMOL else 45) + rng.uniform(0, 0.05)
                    nodes.append(NodeTrace(n.id, n.model, n.role, "Answer: 1", p, c, secs, 0.0, secs, 1e9))
                results.append(ItemResult(item_id=str(i), output_text="Answer: 1", extracted="1",
                                          correct=rng.random() < 0.5, error=None, wall=1.0, critical_path=1.0,
                                          sequential=1.0, planned_flops=1e9, measured_flops=1e9, nodes=nodes))
            correct = sum(r.correct for r in results)
            ev = Evaluation(k, g, correct / items, correct / items, correct, items, 0, [str(i) for i in range(items)],
                            float(len(g.nodes)), float(len(g.nodes)), rng.uniform(0.5, 3.0))
            store.add_trial(ev, iteration=k // 3, optimizer="synthetic", seed=seed, results=results, position=k % 3)
            store.log_agent(k // 3, "update", [{"role": "user", "content": "x" * 2000}], "y" * 1000)
    finally:
        store.close()


def bench_report(trials: int, items: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        synthetic_run(run, trials, items)
        t0 = time.perf_counter()
        res = build_report(run)
        seconds = time.perf_counter() - t0
        return {"trials": trials, "items": items, "seconds": seconds,
                "html_kib": res.html_path.stat().st_size / 1024, "pngs": len(res.png_paths)}


def bench_latency(n_items: int) -> dict[str, Any]:
    from ttsgraph.llm.router import build_backend
    from ttsgraph.models import load_pool
    from ttsgraph.tasks import load_task

    task = load_task("arithmetic", seed=21, size=40)
    pool = load_pool("local")
    backend = build_backend(pool, None)
    items = task.items("search")[:n_items]
    caps = {cap: Executor(backend, pool, task, SamplingParams(max_tokens=cap), concurrency=1) for cap in (8, 32)}
    ex = Executor(backend, pool, task, SamplingParams(max_tokens=32), concurrency=4)
    shapes = {"parallel2->gemma": parallel(2, SMOL, GEMMA), "chain2": chain(2, SMOL, GEMMA),
              "mixed3->smol": parallel(3, [SMOL, GEMMA, SMOL], SMOL)}
    fit_traces: list[NodeTrace] = []
    runs = []
    measured: dict[str, list[float]] = {name: [] for name in shapes}
    # interleaved item by item, so that other load on the machine hits fitting and measuring alike
    for item in items:
        for cap, cap_ex in caps.items():
            for model in (SMOL, GEMMA):
                r = asyncio.run(cap_ex.run_item(single(model), item))
                fit_traces += r.nodes
                if cap == 32:
                    runs.append((single(model), r.nodes))
        for name, g in shapes.items():
            r = asyncio.run(ex.run_item(g, item))
            if r.error is None:
                measured[name].append(r.critical_path)
    lm = LatencyModel.from_traces(fit_traces)
    lengths = observed_lengths(runs)
    if lengths is None:
        raise SystemExit("no usable traces: every call failed")
    rows = []
    for name, g in shapes.items():
        est = estimate_latency(g, lengths, lm)
        ms = measured[name]
        mean = sum(ms) / len(ms) if ms else float("nan")
        rows.append({"shape": name, "estimated_s": est, "measured_s": mean,
                     "relative_error": abs(est - mean) / mean if ms else None})
    return {"speeds": lm.to_dict(), "lengths": {"prompt": lengths.prompt, "answer": lengths.answer}, "shapes": rows}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--items", type=int, default=5)
    ap.add_argument("--latency-items", type=int, default=3)
    ap.add_argument("--skip-models", action="store_true", help="only the report figure (no embedded models)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out: dict[str, Any] = {"report": bench_report(args.trials, args.items)}
    if not args.skip_models:
        out["latency"] = bench_latency(args.latency_items)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    r = out["report"]
    print(f"(a) report: {r['trials']} trials x {r['items']} items -> {r['seconds']:.2f} s, "
          f"HTML {r['html_kib']:.0f} KiB, {r['pngs']} PNGs")
    if "latency" in out:
        lat = out["latency"]
        for m, s in lat["speeds"].items():
            print(f"    {m}: prefill {s['prefill_tps'] or float('inf'):.0f} tok/s, decode "
                  f"{s['decode_tps'] or float('inf'):.1f} tok/s, overhead {s['overhead']:.3f} s, rmse {s['rmse']:.3f} s")
        for row in lat["shapes"]:
            err = row["relative_error"]
            print(f"(b) {row['shape']:<18} measured {row['measured_s']:.2f} s  estimated {row['estimated_s']:.2f} s"
                  f"  error {'-' if err is None else f'{100 * err:.0f}%'}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
