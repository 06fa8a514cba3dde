"""A latency model: per-model prefill and decode speed fitted from traces, and the planned
latency of a graph that has never run.

FLOPs say what a graph costs; they do not say how long a user waits. Waiting time depends on the
serving hardware, so it has to be measured, but measuring every candidate graph is what a search
is trying to avoid. Every node call the executor records is a measurement of its model: seconds
for `prompt_tokens` read and `completion_tokens` written. Fitting

    seconds ≈ overhead + prompt_tokens / prefill_tps + completion_tokens / decode_tps

per model (non-negative least squares, so a speed is never negative) turns those traces into
a speed table, and the table plus the task's token lengths (SPEC §2.2: a node with in-degree d
reads A + d·B tokens and writes B) gives every node's planned seconds; the graph's planned
latency is the critical path through them, the same quantity the executor measures.

`slots` models servers that cannot run two calls of one model at once (the embedded llama.cpp
backend holds one lock per model): nodes then queue per model, which is what the wall clock of a
wide graph on a laptop shows.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from ttsgraph.cost import TaskLengths
from ttsgraph.errors import TtsGraphError
from ttsgraph.graph import Graph


class LatencyModelError(TtsGraphError):
    """The latency model cannot answer: no usable traces for a model the graph uses."""


@dataclass(frozen=True)
class CallSample:
    """One measured call: the model, tokens in and out, and the backend's seconds for it."""

    model: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float


@dataclass(frozen=True)
class ModelSpeed:
    """A model's fitted speed. `prefill_tps`/`decode_tps` are tokens per second (`inf` when the
    fit found that term negligible); `overhead` is fixed seconds per call; `calls` how many
    measurements the fit used; `rmse` its root-mean-square error in seconds."""

    model: str
    prefill_tps: float
    decode_tps: float
    overhead: float
    calls: int
    rmse: float

    def seconds(self, prompt_tokens: float, completion_tokens: float) -> float:
        """Predicted seconds of one call of this model."""
        t = self.overhead
        if self.prefill_tps and math.isfinite(self.prefill_tps):
            t += prompt_tokens / self.prefill_tps
        if self.decode_tps and math.isfinite(self.decode_tps):
            t += completion_tokens / self.decode_tps
        return t

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("prefill_tps", "decode_tps"):
            d[k] = None if not math.isfinite(d[k]) else d[k]
        return d


def _nnls3(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Least squares with non-negative coefficients for a handful of columns: try every subset of
    active columns, keep the best solution whose coefficients are all >= 0. Exact, and with three
    columns only 7 small solves."""
    k = x.shape[1]
    best: tuple[np.ndarray, float] | None = None
    for size in range(k, 0, -1):
        for cols in combinations(range(k), size):
            sub = x[:, cols]
            coef, *_ = np.linalg.lstsq(sub, y, rcond=None)
            if np.any(coef < -1e-12):
                continue
            full = np.zeros(k)
            full[list(cols)] = np.clip(coef, 0.0, None)
            sse = float(np.sum((x @ full - y) ** 2))
            if best is None or sse < best[1] - 1e-15:
                best = (full, sse)
    if best is None:  # y all <= 0: nothing to explain
        return np.zeros(k), float(np.sum(y**2))
    return best


#: Assumed prefill-to-decode speed ratio, used only when the traces cannot tell the two apart
#: (every call read and wrote about the same number of tokens). Reading a token in a batch is
#: typically an order of magnitude faster than generating one.
PRIOR_PREFILL_RATIO = 10.0
#: Relative spread (std / mean) below which a token count is treated as constant.
MIN_SPREAD = 0.1


def _spread(x: np.ndarray) -> float:
    mean = float(np.mean(x))
    return float(np.std(x)) / mean if mean > 0 else 0.0


def fit_speed(model: str, samples: Iterable[CallSample]) -> ModelSpeed:
    """Fit one model's speed from its calls (duplicates, e.g. cache replays of one call, count once).

    Only what the traces can identify is fitted. A fixed per-call overhead is separable only when
    both prompt and completion lengths vary (otherwise it is indistinguishable from the constant
    one of them, and is set to 0). When neither varies (or there is a single call), the time is
    split between reading and writing with `PRIOR_PREFILL_RATIO`, rather than letting noise decide
    that one of them is free.
    """
    rows = sorted({(s.prompt_tokens, s.completion_tokens, s.seconds) for s in samples
                   if s.seconds > 0 and s.completion_tokens > 0})
    if not rows:
        raise LatencyModelError(f"no usable traces for model {model!r} (need calls with seconds and tokens)")
    arr = np.array(rows, dtype=float)
    p, c, t = arr[:, 0], arr[:, 1], arr[:, 2]
    vary_p, vary_c = _spread(p) >= MIN_SPREAD, _spread(c) >= MIN_SPREAD
    if len(rows) < 2 or not (vary_p or vary_c):
        work = c + p / PRIOR_PREFILL_RATIO  # decode-token equivalents
        per = float(np.sum(work * t) / np.sum(work * work))
        coef = np.array([0.0, per / PRIOR_PREFILL_RATIO, per])
    else:
        with_overhead = len(rows) >= 3 and vary_p and vary_c
        cols = [np.ones_like(p) if with_overhead else np.zeros_like(p), p, c]
        coef, _ = _nnls3(np.column_stack(cols), t)
    overhead, per_prompt, per_decode = (float(v) for v in coef)
    if per_decode <= 0 and per_prompt <= 0 and overhead <= 0:
        raise LatencyModelError(f"traces of model {model!r} give no positive time")
    pred = overhead + per_prompt * p + per_decode * c
    return ModelSpeed(
        model=model,
        prefill_tps=1.0 / per_prompt if per_prompt > 0 else math.inf,
        decode_tps=1.0 / per_decode if per_decode > 0 else math.inf,
        overhead=overhead,
        calls=len(rows),
        rmse=float(np.sqrt(np.mean((pred - t) ** 2))),
    )


def samples_from_traces(traces: Iterable[Any]) -> list[CallSample]:
    """Turn executor node traces (`NodeTrace` objects or their dicts, as stored in a run) into
    call samples, skipping nodes that failed, never ran, or have no timing."""
    out: list[CallSample] = []
    for tr in _trace_dicts(traces):
        seconds, model = tr.get("seconds"), tr.get("model")
        if tr.get("error") or not model or seconds is None or seconds <= 0:
            continue
        out.append(CallSample(str(model), int(tr.get("prompt_tokens") or 0), int(tr.get("completion_tokens") or 0),
                              float(seconds)))
    return out


@dataclass
class LatencyModel:
    """Fitted speeds per model; `estimate` gives a graph's planned seconds."""

    speeds: dict[str, ModelSpeed] = field(default_factory=dict)

    @classmethod
    def fit(cls, samples: Iterable[CallSample]) -> LatencyModel:
        """Fit every model that has usable samples (models without any are simply absent)."""
        by_model: dict[str, list[CallSample]] = defaultdict(list)
        for s in samples:
            by_model[s.model].append(s)
        speeds = {}
        for model, group in sorted(by_model.items()):
            try:
                speeds[model] = fit_speed(model, group)
            except LatencyModelError:
                continue
        return cls(speeds)

    @classmethod
    def from_traces(cls, traces: Iterable[Any]) -> LatencyModel:
        return cls.fit(samples_from_traces(traces))

    def speed(self, model: str) -> ModelSpeed:
        try:
            return self.speeds[model]
        except KeyError:
            known = ", ".join(sorted(self.speeds)) or "none"
            raise LatencyModelError(
                f"no measured speed for model {model!r} (models with traces: {known}); "
                "run it once (e.g. ttsgraph profile) before estimating graphs that use it"
            ) from None

    def node_seconds(self, graph: Graph, lengths: TaskLengths, max_tokens: int | None = None) -> dict[str, float]:
        """Planned seconds of every node: it reads A + d·B tokens and writes B (capped by `max_tokens`);
        a node that calls no model (a vote) takes 0."""
        answer = lengths.answer if max_tokens is None else min(lengths.answer, max_tokens)
        return {
            n.id: 0.0 if n.model is None else
            self.speed(n.model).seconds(lengths.prompt + graph.in_degree(n.id) * answer, answer)
            for n in graph.nodes
        }

    def estimate(
        self,
        graph: Graph,
        lengths: TaskLengths,
        *,
        max_tokens: int | None = None,
        slots: int | Mapping[str, int] | None = None,
    ) -> float:
        """Planned seconds for one item; see `estimate_latency`."""
        return estimate_latency(graph, lengths, self, max_tokens=max_tokens, slots=slots)

    def to_dict(self) -> dict[str, Any]:
        return {m: s.to_dict() for m, s in self.speeds.items()}


def _schedule(graph: Graph, seconds: Mapping[str, float], slots: int | Mapping[str, int] | None) -> float:
    """Finish time of the output node when each node starts once its predecessors are done and,
    with `slots`, a free slot of its model is available (list scheduling in topological order)."""
    finish: dict[str, float] = {}
    free: dict[str, list[float]] = {}
    for nid in graph.topological_order():
        ready = max((finish[p] for p in graph.preds(nid)), default=0.0)
        model = graph.node(nid).model
        if slots is None or model is None:
            start = ready
        else:
            k = slots.get(model, 1) if isinstance(slots, Mapping) else slots
            if k < 1:
                raise ValueError(f"slots for model {model!r} must be >= 1, got {k}")
            heap = free.setdefault(model, [0.0] * k)
            start = max(ready, heapq.heappop(heap))
        finish[nid] = start + seconds[nid]
        if slots is not None:
            heapq.heappush(free[model], finish[nid])
    return finish.get(graph.output, max(finish.values(), default=0.0))


def estimate_latency(
    graph: Graph,
    lengths: TaskLengths,
    model: LatencyModel,
    *,
    max_tokens: int | None = None,
    slots: int | Mapping[str, int] | None = None,
) -> float:
    """Planned seconds for one item of `graph`, before running it.

    Nodes with no path to the output are pruned first (the executor never runs them). With
    `slots=None` this is the critical path of planned node seconds (compare with the executor's
    `critical_path`); with `slots` (an int for every model, or per model) calls of one model queue
    when all its slots are busy (compare with `wall` on the embedded backend, which has one slot).
    """
    g = graph.pruned()[0]
    return _schedule(g, model.node_seconds(g, lengths, max_tokens), slots)


def sequential_latency(graph: Graph, lengths: TaskLengths, model: LatencyModel,
                       *, max_tokens: int | None = None) -> float:
    """Planned seconds if nodes ran one after another (how the paper's code executed graphs)."""
    g = graph.pruned()[0]
    return sum(model.node_seconds(g, lengths, max_tokens).values())


def observed_lengths(runs: Iterable[tuple[Graph, Iterable[Any]]]) -> TaskLengths | None:
    """The task's (A, B) as the traces saw them: A = mean prompt tokens of nodes without
    predecessors, B = mean completion tokens of every node that answered. `runs` pairs a graph with
    the node traces of one item run on it. Planned lengths (the paper's constants, or a
    `max_tokens` cap) can be far from what tiny models really write; estimating with observed
    lengths separates the speed model's error from the length model's. None without data."""
    prompts: list[float] = []
    answers: list[float] = []
    for graph, traces in runs:
        g = graph.pruned()[0]
        roots = {i for i in g.ids if not g.preds(i)}
        for s in _trace_dicts(traces):
            if s.get("error") or not s.get("completion_tokens"):
                continue
            answers.append(float(s["completion_tokens"]))
            if s.get("id") in roots and s.get("prompt_tokens"):
                prompts.append(float(s["prompt_tokens"]))
    if not prompts or not answers:
        return None
    return TaskLengths(sum(prompts) / len(prompts), sum(answers) / len(answers))


def _trace_dicts(traces: Iterable[Any]) -> Iterable[Mapping[str, Any]]:
    for tr in traces:
        yield tr if isinstance(tr, Mapping) else tr.to_dict() if hasattr(tr, "to_dict") else vars(tr)
