"""The response objects: `chat.completion`, `chat.completion.chunk`, usage and our extension.

`usage` sums prompt and completion tokens over every node of every choice (all of them were
computed for this answer, not only the output node's). The `ttsgraph` extension field carries,
per choice, each node's model, tokens, seconds, cache hit, planned and measured FLOPs units, and
the run's critical-path latency, so a client can see what an answer cost.
"""

from __future__ import annotations

from typing import Any

from ttsgraph.executor import GraphRun
from ttsgraph.models import ModelPool
from ttsgraph.serve.graphs import ServedGraph


def usage(runs: list[GraphRun]) -> dict[str, int]:
    prompt = sum(t.prompt_tokens for r in runs for t in r.nodes)
    completion = sum(t.completion_tokens for r in runs for t in r.nodes)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def finish_reason(run: GraphRun, max_tokens: int, graph: ServedGraph) -> str:
    """"length" when the output node used its whole token allowance, else "stop"."""
    out = next(t for t in run.nodes if t.id == graph.graph.output)
    return "length" if out.completion_tokens >= max_tokens else "stop"


def extension(graph: ServedGraph, runs: list[GraphRun], pool: ModelPool, unit: float,
              ttft: float | None = None) -> dict[str, Any]:
    """The `ttsgraph` field: per choice, per node cost and time, and the critical path."""
    choices = []
    for index, run in enumerate(runs):
        nodes = [{
            "id": t.id, "model": t.model, "role": t.role, "prompt_tokens": t.prompt_tokens,
            "completion_tokens": t.completion_tokens, "seconds": round(t.seconds, 4), "cached": t.cached,
            "planned_units": round(graph.planned_units.get(t.id, 0.0), 4), "measured_units": round(t.flops / unit, 4),
        } for t in run.nodes]
        choices.append({
            "index": index, "nodes": nodes,
            "planned_units": round(run.planned_flops / unit, 4), "measured_units": round(run.measured_flops / unit, 4),
            "critical_path_seconds": round(run.critical_path, 4), "wall_seconds": round(run.wall, 4),
            "cache_hits": sum(1 for t in run.nodes if t.cached),
        })
    out: dict[str, Any] = {"graph": graph.id, "pool": pool.name, "choices": choices}
    if ttft is not None:
        out["time_to_first_token_seconds"] = round(ttft, 4)
    return out


def completion(rid: str, created: int, graph: ServedGraph, runs: list[GraphRun], max_tokens: int,
               ext: dict[str, Any]) -> dict[str, Any]:
    """A whole `chat.completion` (`stream: false`)."""
    return {
        "id": rid, "object": "chat.completion", "created": created, "model": graph.id, "system_fingerprint": None,
        "choices": [{"index": k, "message": {"role": "assistant", "content": run.output_text or ""},
                     "logprobs": None, "finish_reason": finish_reason(run, max_tokens, graph)}
                    for k, run in enumerate(runs)],
        "usage": usage(runs),
        "ttsgraph": ext,
    }


def chunk(rid: str, created: int, model: str, choices: list[dict[str, Any]], *,
          with_usage: bool, **extra: Any) -> dict[str, Any]:
    """One `chat.completion.chunk`. With `include_usage` every chunk carries `usage: null` but the last."""
    out: dict[str, Any] = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
                           "system_fingerprint": None, "choices": choices}
    if with_usage:
        out["usage"] = None
    out.update(extra)
    return out


def delta(index: int, *, content: str | None = None, role: str | None = None,
          finish: str | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if role is not None:
        d["role"] = role
    if content is not None:
        d["content"] = content
    return {"index": index, "delta": d, "logprobs": None, "finish_reason": finish}
