"""Distributed-evaluation benchmark: throughput over endpoint pools, locally and on Ray actors.

The endpoints are *fixed-delay stubs*: OpenAI-compatible servers on 127.0.0.1 (in a child process)
that answer every chat completion after `--delay` seconds, at most `--slots` at a time each (the
rest queue), like a GPU server with a fixed batch. They stand in for GPU servers so that the
machine's cores are not what limits throughput: one endpoint serves slots / delay calls per
second, and N endpoints should serve N times that.

Prints, for a single-node graph on the `arithmetic` task (no response cache):

  local   throughput with 1, 2, 4, 8 endpoints in one endpoint pool (the local evaluator, concurrency
          N × slots), and the scaling efficiency  throughput(N) / (N × throughput(1))  (target >= 0.8);
  ray     throughput with 1, 2, 4 Ray actors over the `--ray-endpoints` pool at the same total
          concurrency, and Ray's overhead  local throughput / Ray throughput  (target <= 1.2).

Each row is `--repeats` timed runs (mean calls/s and its 95% t-interval).

Usage: .venv/bin/python bench/distributed.py [--delay 0.5] [--slots 2] [--waves 12] [--repeats 3]
       [--no-ray] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def note(text: str) -> None:
    """Progress on stderr (the figures go to stdout at the end)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# --- the fixed-delay stubs (child process) -------------------------------------------------------

def _stub_server(delay: float, slots: int) -> ThreadingHTTPServer:
    """One fixed-delay stub: each chat completion holds one of `slots` for `delay` seconds."""
    gate = threading.Semaphore(slots)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real server does

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with gate:
                time.sleep(delay)
            body = json.dumps({
                "id": "stub", "object": "chat.completion", "created": 0, "model": "stub",
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "42"}}],
                "usage": {"prompt_tokens": 20, "completion_tokens": 2, "total_tokens": 22}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def serve_stubs(count: int, delay: float, slots: int) -> None:
    """Child-process mode: start `count` stubs, print their URLs as one JSON line, serve until
    stdin closes (the parent exits or closes it)."""
    servers = [_stub_server(delay, slots) for _ in range(count)]
    print(json.dumps([f"http://127.0.0.1:{s.server_address[1]}/v1" for s in servers]), flush=True)
    sys.stdin.read()


def start_stubs(count: int, delay: float, slots: int) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen([sys.executable, __file__, "--serve-stubs", str(count), "--delay", str(delay),
                             "--slots", str(slots)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise SystemExit("the fixed-delay stubs did not start")
    return proc, json.loads(line)


# --- measuring ----------------------------------------------------------------------------------

MODEL = "smollm2-135m"


def write_models(directory: Path, urls: list[str], slots: int) -> Path:
    """A models.toml whose one model is an endpoint pool over `urls`, `slots` calls each."""
    path = directory / f"pool-{len(urls)}.toml"
    endpoints = ", ".join(f'{{base_url = "{u}", max_concurrency = {slots}}}' for u in urls)
    path.write_text(f'[models."{MODEL}"]\nbackend = "openai"\nserved_name = "{MODEL}"\nendpoints = [{endpoints}]\n\n'
                    f'[pool]\nmodels = ["{MODEL}"]\n')
    return path


def measure(models: Path, calls: int, concurrency: int, executor: str = "local",
            actors: int | None = None, repeats: int = 1) -> dict[str, Any]:
    """Throughput of `calls` single-node items (after a warm-up of `concurrency` items, untimed),
    `repeats` times on fresh items: the mean and its 95% t-interval half-width."""
    from ttsgraph.config import make_config
    from ttsgraph.evaluator import evaluate_one
    from ttsgraph.graph import Graph, Node
    from ttsgraph.runtime import build_runtime

    size = repeats * calls + concurrency
    cfg = make_config({"task": "arithmetic", "task_options": {"size": size, "digits": 3}, "models": str(models),
                       "sampling": {"max_tokens": 8}, "executor": executor, "ray_actors": actors,
                       "backend": {"no_cache": True, "concurrency": concurrency, "timeout": 60, "retries": 1}})
    graph = Graph([Node("out", MODEL)], [], "out")

    async def main() -> tuple[list[float], int]:
        walls, errors = [], 0
        async with build_runtime(cfg) as rt:
            items = rt.task.items("search")
            await evaluate_one(rt.evaluator, graph, items[:concurrency])  # connections, imports
            for r in range(repeats):
                batch = items[concurrency + r * calls:concurrency + (r + 1) * calls]
                started = time.perf_counter()
                results = await evaluate_one(rt.evaluator, graph, batch)
                walls.append(time.perf_counter() - started)
                errors += sum(x.error is not None for x in results)
        return walls, errors

    walls, errors = asyncio.run(main())
    rates = [calls / w for w in walls]
    mean = sum(rates) / len(rates)
    half = 0.0
    if len(rates) > 1:
        from ttsgraph.stats import t_quantile

        sd = math.sqrt(sum((x - mean) ** 2 for x in rates) / (len(rates) - 1))
        half = t_quantile(0.975, len(rates) - 1) * sd / math.sqrt(len(rates))
    return {"calls": calls, "repeats": repeats, "wall_s": round(sum(walls) / len(walls), 3),
            "throughput": round(mean, 3), "throughput_ci95": round(half, 3), "errors": errors}


def start_ray(cpus: int, runtime_env: dict[str, Any]) -> None:
    """One local Ray for every row, with `cpus` logical CPUs: Ray starts at most that many worker
    processes at once, and HTTP-only actors reserve no CPU but still need a worker each."""
    from ttsgraph.distributed.ray_backend import LOOPBACK_ENV, NAMESPACE, connect

    os.environ.setdefault(LOOPBACK_ENV, "0")
    import ray

    ray.init(num_cpus=cpus, include_dashboard=False, _node_ip_address="127.0.0.1", namespace=NAMESPACE,
             logging_level=logging.WARNING, log_to_driver=False, runtime_env=runtime_env)
    connect(None)  # joins the Ray just started (nothing to do), as build_runtime will


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--delay", type=float, default=0.5, help="seconds each stub takes per call")
    ap.add_argument("--slots", type=int, default=2, help="calls each stub serves at once (and the pool's limit)")
    ap.add_argument("--waves", type=int, default=12, help="timed calls = waves x endpoints x slots")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per row (mean and 95%% CI)")
    ap.add_argument("--endpoints", default="1,2,4,8")
    ap.add_argument("--actors", default="1,2,4")
    ap.add_argument("--ray-endpoints", type=int, default=4)
    ap.add_argument("--ray-cpus", type=int, default=8, help="logical CPUs of the local Ray node")
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--serve-stubs", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_stubs:
        serve_stubs(args.serve_stubs, args.delay, args.slots)
        return 0

    counts = [int(x) for x in args.endpoints.split(",")]
    actor_counts = [] if args.no_ray else [int(x) for x in args.actors.split(",")]
    if actor_counts and args.ray_endpoints not in counts:
        counts.append(args.ray_endpoints)
    proc, urls = start_stubs(max(counts), args.delay, args.slots)
    figures: dict[str, Any] = {"delay_s": args.delay, "slots": args.slots, "waves": args.waves, "repeats": args.repeats,
                               "ideal_per_endpoint": args.slots / args.delay, "local": {}, "ray": {}}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in sorted(counts):
                concurrency = n * args.slots
                note(f"local evaluator, {n} endpoint(s), concurrency {concurrency}")
                row = measure(write_models(Path(tmp), urls[:n], args.slots), args.waves * concurrency, concurrency,
                              repeats=args.repeats)
                figures["local"][str(n)] = row
            one = figures["local"]["1"]["throughput"] if "1" in figures["local"] else None
            for n, row in figures["local"].items():
                row["efficiency"] = round(row["throughput"] / (int(n) * one), 3) if one else None
            if actor_counts:
                from ttsgraph.distributed.ray_backend import job_env
                from ttsgraph.models import load_pool

                n = args.ray_endpoints
                total = n * args.slots
                models = write_models(Path(tmp), urls[:n], args.slots)
                note(f"starting Ray (one local node on 127.0.0.1, no dashboard, {args.ray_cpus} logical CPUs)")
                start_ray(args.ray_cpus, job_env(load_pool(str(models))))  # one Ray for every row
                local = figures["local"][str(n)]["throughput"]
                for a in actor_counts:
                    per_actor = math.ceil(total / a)
                    note(f"Ray, {a} actor(s) x concurrency {per_actor}, {n} endpoints")
                    row = measure(models, args.waves * total, per_actor, "ray", a, args.repeats)
                    row.update(endpoints=n, concurrency=total, overhead=round(local / row["throughput"], 3))
                    figures["ray"][str(a)] = row
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=10)

    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"fixed-delay stubs: {args.delay} s per call, {args.slots} at a time each "
          f"(ideal {figures['ideal_per_endpoint']:.2f} calls/s per endpoint)")
    print(f"each row: {args.repeats} timed runs, mean and 95% CI of calls/s")
    print("local evaluator   endpoints  calls  wall (s)  calls/s ± CI    efficiency (target >= 0.8)  errors")
    for n, r in figures["local"].items():
        print(f"                  {n:>9}  {r['calls']:>5}  {r['wall_s']:>8.2f}  {r['throughput']:>7.2f} ± "
              f"{r['throughput_ci95']:<5.2f}  {_fmt(r['efficiency']):>10}                  {r['errors']:>6}")
    if figures["ray"]:
        print(f"Ray ({args.ray_endpoints} endpoints)  actors  calls  wall (s)  calls/s ± CI    overhead vs local "
              f"(target <= 1.2)  errors")
        for a, r in figures["ray"].items():
            print(f"                  {a:>6}  {r['calls']:>5}  {r['wall_s']:>8.2f}  {r['throughput']:>7.2f} ± "
                  f"{r['throughput_ci95']:<5.2f}  {r['overhead']:>8.3f}                        {r['errors']:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
