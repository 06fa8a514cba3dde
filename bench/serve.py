"""`ttsgraph serve` benchmark against the embedded models (a real server on 127.0.0.1, the
official `openai` client). Prints four figures (targets from issue 12):

  (a) load      = N requests at C concurrent: answered, errors by status, lost (no reply) and
                  hung (past the client timeout) — target 0 lost, 0 hung;
  (b) overload  = a burst of B requests against --max-concurrency K and --queue Q: the excess
                  gets 429 (with Retry-After) and every admitted request completes;
  (c) overhead  = server latency / the same graph run by the executor directly (same request,
                  same seed, so the same samples and tokens; no cache) — target <= 1.05;
  (d) streaming = time to first token / full latency for a parallel graph (target <= 0.6).

Generations use one thread each (TTSGRAPH_THREADS=1 unless set), so on two cores two nodes of a
parallel graph really run at once. A llama.cpp context serves one call at a time, so the pool has
SmolLM2 twice (`smollm2-135m` and a second copy `smollm2-135m-b`, as a deployment would run two
replicas); the graph is two workers, one on each copy, and an output node. Gemma-3-270M is left
out: a base model, it sometimes replies nothing, which is a 502 and would blur the load figures.

Usage: .venv/bin/python bench/serve.py [--requests 50] [--concurrency 8] [--max-tokens 16] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TTSGRAPH_THREADS", "1")

import openai

from ttsgraph.config import BackendSettings, Sampling
from ttsgraph.executor import Executor
from ttsgraph.graph import parallel
from ttsgraph.graph_io import save_graph
from ttsgraph.llm.base import SamplingParams
from ttsgraph.llm.router import build_backend
from ttsgraph.models import load_pool
from ttsgraph.serve import ServeOptions, create_app, prepare
from ttsgraph.serve.engine import rollouts
from ttsgraph.serve.prompts import prompts_for
from ttsgraph.serve.protocol import ChatRequest
from ttsgraph.serve.runner import ServerThread
from ttsgraph.stats import percentile

GRAPH = parallel(2, ["smollm2-135m", "smollm2-135m-b"], output_model="smollm2-135m")
QUESTIONS = ["What is 2+3?", "Name a prime number.", "What colour is the sky?", "What is 7 times 6?",
             "Say hello in French.", "What is the capital of Italy?"]


def say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def write_pool(tmp: Path) -> Path:
    from ttsgraph.llm.local import smollm2_path

    path = tmp / "models.toml"
    path.write_text(f'[models."smollm2-135m-b"]\nlike = "smollm2-135m"\nbackend = "local"\nfile = "{smollm2_path()}"\n\n'
                    '[pool]\nmodels = ["smollm2-135m", "smollm2-135m-b"]\nreference = "smollm2-135m"\n'
                    'output = "smollm2-135m"\n')
    return path


POOL: Path | None = None


def server(graph: Path, max_tokens: int, **kw: Any) -> ServerThread:
    options = ServeOptions(graphs=[str(graph)], models=str(POOL), sampling=Sampling(max_tokens=max_tokens),
                           backend=BackendSettings(no_cache=True, concurrency=8), **kw)
    return ServerThread(create_app(prepare(options)))


def msgs(k: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{QUESTIONS[k % len(QUESTIONS)]} (#{k})"}]


async def one(client: openai.AsyncOpenAI, model: str, k: int, timeout: float, **kw: Any) -> tuple[str, float]:
    """('ok' | HTTP status | 'lost' | 'hung', seconds)."""
    started = time.perf_counter()
    try:
        await asyncio.wait_for(client.chat.completions.create(model=model, messages=msgs(k), **kw), timeout)  # type: ignore[arg-type]
        outcome = "ok"
    except TimeoutError:
        outcome = "hung"
    except openai.APIStatusError as exc:
        outcome = str(exc.status_code)
    except openai.OpenAIError:
        outcome = "lost"
    return outcome, time.perf_counter() - started


def load(graph: Path, n: int, concurrency: int, max_tokens: int) -> dict[str, Any]:
    with server(graph, max_tokens, max_concurrency=concurrency, queue=n) as s:
        async def main() -> list[tuple[str, float]]:
            gate = asyncio.Semaphore(concurrency)
            async with openai.AsyncOpenAI(base_url=s.base_url, api_key="x", max_retries=0, timeout=600) as client:

                async def bounded(k: int) -> tuple[str, float]:
                    async with gate:
                        return await one(client, "g", k, 300)

                return list(await asyncio.gather(*(bounded(k) for k in range(n))))

        started = time.perf_counter()
        results = asyncio.run(main())
        wall = time.perf_counter() - started
    outcomes: dict[str, int] = {}
    for outcome, _ in results:
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    ok = [sec for outcome, sec in results if outcome == "ok"]
    return {"requests": n, "concurrency": concurrency, "outcomes": outcomes, "lost": outcomes.get("lost", 0),
            "hung": outcomes.get("hung", 0), "wall_s": wall, "throughput_rps": n / wall,
            "latency_p50_s": percentile(ok, 50) if ok else None, "latency_p95_s": percentile(ok, 95) if ok else None}


def overload(graph: Path, burst: int, k: int, q: int, max_tokens: int) -> dict[str, Any]:
    with server(graph, max_tokens, max_concurrency=k, queue=q) as s:
        async def main() -> list[tuple[str, float]]:
            async with openai.AsyncOpenAI(base_url=s.base_url, api_key="x", max_retries=0, timeout=600) as client:
                return list(await asyncio.gather(*(one(client, "g", j, 300) for j in range(burst))))

        results = asyncio.run(main())
    outcomes: dict[str, int] = {}
    for outcome, _ in results:
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return {"burst": burst, "max_concurrency": k, "queue": q, "outcomes": outcomes,
            "admitted": k + q, "admitted_completed": outcomes.get("ok", 0), "refused_429": outcomes.get("429", 0)}


def overhead(graph: Path, n: int, max_tokens: int) -> dict[str, Any]:
    """The same seeded requests through the server and through an executor, alternating."""
    pool = load_pool(POOL)
    params = SamplingParams(max_tokens=max_tokens)
    with server(graph, max_tokens, max_concurrency=1, queue=1) as s:
        async def main() -> tuple[list[float], list[float]]:
            backend = build_backend(pool, None)
            via_server: list[float] = []
            direct: list[float] = []
            client = openai.AsyncOpenAI(base_url=s.base_url, api_key="x", max_retries=0, timeout=600)
            async with backend, client:
                ex = Executor(backend, pool, type("T", (), {"name": "chat", "lengths": prepare_lengths()})(),
                              params=params)
                g = ex.prepare(GRAPH)
                for k in range(n + 1):  # the first pair warms both sides' models
                    request = ChatRequest(model="g", messages=msgs(k), seed=k)
                    started = time.perf_counter()
                    await client.chat.completions.create(model="g", messages=msgs(k), seed=k)  # type: ignore[arg-type]
                    t_server = time.perf_counter() - started
                    started = time.perf_counter()
                    run = await ex.run(g, prompts_for(request_messages(request), None), params=params,
                                       rollout=rollouts(request)[0])
                    t_direct = time.perf_counter() - started
                    assert run.error is None, run.error
                    if k:
                        via_server.append(t_server)
                        direct.append(t_direct)
            return via_server, direct

        via_server, direct = asyncio.run(main())
    return {"requests": n, "server_mean_s": statistics.mean(via_server), "direct_mean_s": statistics.mean(direct),
            "ratio": statistics.mean(via_server) / statistics.mean(direct),
            "ratio_median": statistics.median(a / b for a, b in zip(via_server, direct))}


STORIES = ["a lighthouse keeper", "a lost robot", "a dragon who bakes bread", "a city under the sea", "an old clock"]


def streaming(graph: Path, n: int, max_tokens: int) -> dict[str, Any]:
    """Requests whose every node writes its whole allowance (short stories), so the figure shows
    where the first token comes: after the parallel workers, not after the output node too."""
    with server(graph, max_tokens, max_concurrency=1, queue=1) as s:
        client = openai.OpenAI(base_url=s.base_url, api_key="x", max_retries=0, timeout=600)
        client.chat.completions.create(model="g", messages=msgs(0))  # load the model
        ratios, ttfts, fulls, preds = [], [], [], []
        for k in range(1, n + 1):
            story = [{"role": "user", "content": f"Write a short story about {STORIES[k % len(STORIES)]}."}]
            started = time.perf_counter()
            first, last = None, None
            for chunk in client.chat.completions.create(model="g", messages=story, stream=True,  # type: ignore[arg-type]
                                                        stream_options={"include_usage": True}):
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter() - started
                last = chunk
            full = time.perf_counter() - started
            if first is not None and last is not None:
                nodes = last.model_extra["ttsgraph"]["choices"][0]["nodes"]
                preds.append(max(nd["seconds"] for nd in nodes if nd["id"] != "out"))
                ratios.append(first / full)
                ttfts.append(first)
                fulls.append(full)
    return {"requests": len(ratios), "ttft_mean_s": statistics.mean(ttfts), "full_mean_s": statistics.mean(fulls),
            "predecessors_critical_path_mean_s": statistics.mean(preds),
            "ttft_over_full_mean": statistics.mean(ratios), "ttft_over_full_max": max(ratios)}


def prepare_lengths() -> Any:
    from ttsgraph.serve.options import DEFAULT_LENGTHS

    return DEFAULT_LENGTHS


def request_messages(request: ChatRequest) -> list[dict[str, str]]:
    from ttsgraph.serve.protocol import request_messages as parse

    return parse(request)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--burst", type=int, default=12)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--pairs", type=int, default=10, help="requests for the overhead and streaming figures")
    ap.add_argument("--stream-tokens", default="64,160", help="max tokens per node in the streaming figure (comma list)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    global POOL
    tmp = Path(tempfile.mkdtemp(prefix="ttsgraph-bench-serve-"))
    POOL = write_pool(tmp)
    graph = tmp / "g.json"
    save_graph(GRAPH, graph)
    figures: dict[str, Any] = {"threads_per_generation": int(os.environ["TTSGRAPH_THREADS"]),
                               "max_tokens": args.max_tokens, "graph": "a1 (smollm2-135m), a2 (smollm2-135m-b) -> out"}
    say(f"(a) {args.requests} requests at {args.concurrency} concurrent")
    figures["a_load"] = load(graph, args.requests, args.concurrency, args.max_tokens)
    say(f"(b) burst of {args.burst} against max-concurrency 2, queue 2")
    figures["b_overload"] = overload(graph, args.burst, 2, 2, args.max_tokens)
    say(f"(c) overhead, {args.pairs} requests each way")
    figures["c_overhead"] = overhead(graph, args.pairs, args.max_tokens)
    figures["d_streaming"] = []
    for tokens in (int(t) for t in args.stream_tokens.split(",")):
        say(f"(d) streaming, {args.pairs} requests, {tokens} tokens per node")
        figures["d_streaming"].append({"max_tokens": tokens, **streaming(graph, args.pairs, tokens)})
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    a, b, c, d = figures["a_load"], figures["b_overload"], figures["c_overhead"], figures["d_streaming"]
    print(f"(a) load: {a['requests']} requests at {a['concurrency']} concurrent in {a['wall_s']:.1f} s "
          f"({a['throughput_rps']:.2f} req/s): outcomes {a['outcomes']}, lost {a['lost']}, hung {a['hung']} (target 0, 0); "
          f"latency p50 {a['latency_p50_s']:.2f} s, p95 {a['latency_p95_s']:.2f} s")
    print(f"(b) overload: burst {b['burst']} vs max-concurrency {b['max_concurrency']} + queue {b['queue']}: "
          f"outcomes {b['outcomes']}; admitted {b['admitted']}, completed {b['admitted_completed']}, 429 {b['refused_429']}")
    print(f"(c) overhead: server {c['server_mean_s']:.3f} s / executor {c['direct_mean_s']:.3f} s = {c['ratio']:.3f} "
          f"(median of pairs {c['ratio_median']:.3f}; target <= 1.05)")
    for row in d:
        print(f"(d) streaming, {row['max_tokens']} tokens per node: time to first token {row['ttft_mean_s']:.2f} s "
              f"(the workers' critical path {row['predecessors_critical_path_mean_s']:.2f} s + the output node's "
              f"prefill and first token) / full {row['full_mean_s']:.2f} s = {row['ttft_over_full_mean']:.2f} mean, "
              f"{row['ttft_over_full_max']:.2f} max (target <= 0.6)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
