"""The latency model: speeds recovered from traces, planned critical paths and per-model queues,
estimates of a graph that never ran compared with what the executor measures."""

from __future__ import annotations

import asyncio
import math
import time
import zlib

import pytest

from ttsgraph.cost import TaskLengths
from ttsgraph.executor import Executor
from ttsgraph.graph import Graph, Node, chain, parallel, parallel_chains, single
from ttsgraph.latency import (
    CallSample,
    LatencyModel,
    LatencyModelError,
    ModelSpeed,
    estimate_latency,
    fit_speed,
    observed_lengths,
    samples_from_traces,
    sequential_latency,
)
from ttsgraph.llm.base import Completion, Message, SamplingParams
from ttsgraph.models import load_pool
from ttsgraph.tasks.arithmetic import ArithmeticTask

SMOL, GEMMA = "smollm2-135m", "gemma-3-270m"

# ground truth of the synthetic "hardware": per model (overhead s, prefill tok/s, decode tok/s)
TRUTH = {SMOL: (0.02, 800.0, 75.0), GEMMA: (0.05, 400.0, 50.0)}


def true_seconds(model: str, p: float, c: float) -> float:
    o, pre, dec = TRUTH[model]
    return o + p / pre + c / dec


class TimedBackend:
    """A scripted backend whose reported seconds follow TRUTH exactly (no sleeping), and whose
    answers have a length that depends on the sample, so the fit sees varied token counts."""

    def __init__(self, task: ArithmeticTask) -> None:
        self.answers = {i.question: i.answer for s in ("search", "test") for i in task.items(s)}

    async def complete(self, model: str, messages: list[Message], params: SamplingParams,
                       sample: int = 0) -> Completion:
        text = messages[-1]["content"]
        answer = next(a for q, a in self.answers.items() if q in text)
        words = 3 + (zlib.crc32(f"{model}|{text}".encode()) + 7 * sample) % 13
        reply = " ".join(["step"] * words) + f" Answer: {answer}"
        p = sum(len(m["content"].split()) for m in messages)
        c = len(reply.split())
        return Completion(reply, p, c, true_seconds(model, p, c))


def test_fit_recovers_known_speeds_exactly() -> None:
    samples = [CallSample(SMOL, p, c, true_seconds(SMOL, p, c)) for p in (20, 90, 300) for c in (5, 40, 120)]
    s = fit_speed(SMOL, samples)
    assert s.prefill_tps == pytest.approx(800.0, rel=1e-6)
    assert s.decode_tps == pytest.approx(75.0, rel=1e-6)
    assert s.overhead == pytest.approx(0.02, abs=1e-9)
    assert s.calls == 9 and s.rmse < 1e-9


def test_fit_never_returns_negative_speeds() -> None:
    # times that fall with prompt length would give a negative prefill coefficient by plain least squares
    samples = [CallSample(SMOL, p, c, 1.0 + c / 50 - p / 5000) for p, c in [(10, 10), (500, 10), (900, 40), (50, 80)]]
    s = fit_speed(SMOL, samples)
    assert s.prefill_tps > 0 and s.decode_tps > 0 and s.overhead >= 0
    assert math.isinf(s.prefill_tps)  # the term is dropped rather than made negative
    assert s.to_dict()["prefill_tps"] is None


def test_fit_with_one_or_two_measurements() -> None:
    one = fit_speed(SMOL, [CallSample(SMOL, 50, 20, 2.0)])
    # 20 written + 50 read at the prior ratio = 25 decode-token equivalents in 2 s
    assert one.decode_tps == pytest.approx(12.5) and one.prefill_tps == pytest.approx(125.0)
    assert one.seconds(50, 20) == pytest.approx(2.0) and one.overhead == 0
    two = fit_speed(SMOL, [CallSample(SMOL, 50, 20, 2.0), CallSample(SMOL, 100, 40, 4.0)])
    assert two.seconds(75, 30) == pytest.approx(3.0)


def test_constant_lengths_do_not_make_one_phase_free() -> None:
    """Calls that all read ~40 and write 24 tokens (a max_tokens cap) with noisy times: the data
    cannot separate reading from writing, so the prior ratio splits it and neither speed is infinite."""
    samples = [CallSample(SMOL, p, 24, t) for p, t in [(40, 0.9), (41, 1.4), (42, 0.8), (40, 1.1)]]
    s = fit_speed(SMOL, samples)
    assert math.isfinite(s.prefill_tps) and math.isfinite(s.decode_tps)
    assert s.prefill_tps == pytest.approx(10 * s.decode_tps)
    assert s.seconds(41, 24) == pytest.approx(sum(t.seconds for t in samples) / 4, rel=0.05)


def test_overhead_is_only_fitted_when_both_lengths_vary() -> None:
    # completions always 24 tokens: an overhead would be indistinguishable from decoding them
    samples = [CallSample(SMOL, p, 24, 0.5 + p / 100 + 24 / 50) for p in (20, 60, 120, 200)]
    s = fit_speed(SMOL, samples)
    assert s.overhead == 0 and s.prefill_tps == pytest.approx(100.0)
    assert s.seconds(90, 24) == pytest.approx(0.5 + 0.9 + 24 / 50)


def test_fit_without_usable_traces_is_an_error() -> None:
    with pytest.raises(LatencyModelError, match="no usable traces"):
        fit_speed(SMOL, [CallSample(SMOL, 10, 0, 1.0), CallSample(SMOL, 10, 5, 0.0)])


def test_samples_skip_failed_and_untimed_nodes() -> None:
    traces = [
        {"id": "a", "model": SMOL, "prompt_tokens": 10, "completion_tokens": 5, "seconds": 0.3, "error": None},
        {"id": "b", "model": SMOL, "prompt_tokens": 10, "completion_tokens": 0, "seconds": 0.0, "error": "timeout"},
        {"id": "c", "model": SMOL, "prompt_tokens": 0, "completion_tokens": 0, "seconds": 0.0,
         "error": "skipped: predecessor b failed"},
    ]
    assert samples_from_traces(traces) == [CallSample(SMOL, 10, 5, 0.3)]


def speeds() -> LatencyModel:
    return LatencyModel({m: ModelSpeed(m, pre, dec, o, 9, 0.0) for m, (o, pre, dec) in TRUTH.items()})


def test_estimate_is_the_planned_critical_path() -> None:
    lengths = TaskLengths(100, 50)
    lm = speeds()
    root = true_seconds(SMOL, 100, 50)
    fuse3 = true_seconds(GEMMA, 100 + 3 * 50, 50)
    g = parallel(3, SMOL, output_model=GEMMA)
    assert estimate_latency(g, lengths, lm) == pytest.approx(root + fuse3)
    assert sequential_latency(g, lengths, lm) == pytest.approx(3 * root + fuse3)
    # one slot per model: the three smollm calls queue
    assert estimate_latency(g, lengths, lm, slots=1) == pytest.approx(3 * root + fuse3)
    assert estimate_latency(g, lengths, lm, slots={SMOL: 2, GEMMA: 1}) == pytest.approx(2 * root + fuse3)
    c = chain(2, SMOL, output_model=GEMMA)
    assert estimate_latency(c, lengths, lm) == pytest.approx(
        true_seconds(SMOL, 100, 50) + true_seconds(SMOL, 150, 50) + true_seconds(GEMMA, 150, 50))


def test_estimate_caps_answers_at_max_tokens_and_prunes_dead_nodes() -> None:
    lm = speeds()
    lengths = TaskLengths(100, 275)
    assert estimate_latency(single(SMOL), lengths, lm, max_tokens=16) == pytest.approx(true_seconds(SMOL, 100, 16))
    dead = Graph([Node("x", GEMMA), Node("out", SMOL)], [], "out")
    assert estimate_latency(dead, lengths, lm) == pytest.approx(true_seconds(SMOL, 100, 275))


def test_estimate_names_a_model_without_traces() -> None:
    lm = LatencyModel({SMOL: speeds().speeds[SMOL]})
    with pytest.raises(LatencyModelError, match=GEMMA):
        estimate_latency(parallel(2, SMOL, output_model=GEMMA), TaskLengths(10, 10), lm)
    with pytest.raises(ValueError):
        estimate_latency(single(SMOL), TaskLengths(10, 10), lm, slots=0)


def test_estimate_of_an_unseen_graph_matches_the_executor() -> None:
    """Fit on traces of one shape, predict other shapes, then run them: the planned critical path
    with observed lengths lands near the measured one, and the ordering of the shapes is right."""
    task = ArithmeticTask(seed=3, size=12)
    pool = load_pool("local")
    ex = Executor(TimedBackend(task), pool, task, SamplingParams(max_tokens=64), concurrency=4)
    items = task.items("search")[:8]
    # each model seen both answering (short prompts) and synthesizing (long prompts)
    train = [parallel(2, [SMOL, GEMMA], output_model=GEMMA), chain(2, GEMMA, output_model=SMOL)]
    results = [(g, r) for g in train for r in asyncio.run(ex.run_items(g, items))]
    lm = LatencyModel.from_traces(t for _, r in results for t in r.nodes)
    for model, (o, pre, dec) in TRUTH.items():
        assert lm.speeds[model].decode_tps == pytest.approx(dec, rel=1e-6)
        assert lm.speeds[model].prefill_tps == pytest.approx(pre, rel=1e-6)
    lengths = observed_lengths((g, r.nodes) for g, r in results)
    assert lengths is not None and lengths.prompt > 0 and lengths.answer > 0

    measured, estimated = {}, {}
    for name, g in {"single": single(SMOL), "chain3": chain(3, SMOL, GEMMA),
                    "wide": parallel_chains(3, 2, SMOL, GEMMA)}.items():
        rs = asyncio.run(ex.run_items(g, items))
        assert all(r.error is None for r in rs)
        measured[name] = sum(r.critical_path for r in rs) / len(rs)
        estimated[name] = estimate_latency(g, lengths, lm)
        assert estimated[name] == pytest.approx(measured[name], rel=0.35), name
    assert sorted(measured, key=measured.get) == sorted(estimated, key=estimated.get)


@pytest.mark.integration
def test_embedded_model_speed_predicts_a_chain() -> None:
    """Real SmolLM2: fit from single calls at two answer caps (so reading and writing can be told
    apart), predict a 2-node chain from that fit, and run the chain. Single calls and chain runs are interleaved item by item, so a busy machine slows both
    alike instead of skewing one phase of the test."""
    from ttsgraph.llm.router import build_backend

    task = ArithmeticTask(seed=11, size=10)
    pool = load_pool("local")
    backend = build_backend(pool, None)
    items = task.items("search")[:3]
    started = time.perf_counter()
    short = Executor(backend, pool, task, SamplingParams(max_tokens=6), concurrency=1)
    long = Executor(backend, pool, task, SamplingParams(max_tokens=24), concurrency=1)
    g = chain(2, SMOL)
    fit_short, fit_long, chain_runs = [], [], []
    for item in items:
        fit_short.append(asyncio.run(short.run_item(single(SMOL), item)))
        fit_long.append(asyncio.run(long.run_item(single(SMOL), item)))
        chain_runs.append(asyncio.run(long.run_item(g, item)))
    fits = fit_short + fit_long
    assert all(r.error is None for r in fits), [r.error for r in fits]
    lm = LatencyModel.from_traces(t for r in fits for t in r.nodes)
    speed = lm.speed(SMOL)
    assert speed.calls >= 2 and speed.seconds(50, 10) > 0, speed
    assert math.isfinite(speed.decode_tps) or math.isfinite(speed.prefill_tps)
    lengths = observed_lengths((single(SMOL), r.nodes) for r in fit_long)
    assert lengths is not None
    planned = estimate_latency(g, lengths, lm)  # the chain's traces were not used by the fit
    ok = [r for r in chain_runs if r.error is None]
    assert ok, [r.error for r in chain_runs]
    measured = sum(r.critical_path for r in ok) / len(ok)
    # How close the estimate lands is a speed figure of a busy or idle machine, so it is printed by
    # bench/report.py, not asserted here. What must hold on any machine: a real, positive estimate
    # that grows with the chain, and the chain measurably slower than one call.
    single_measured = sum(r.critical_path for r in fit_long) / len(fit_long)
    assert 0 < estimate_latency(single(SMOL), lengths, lm) < planned < estimate_latency(chain(3, SMOL), lengths, lm)
    assert measured > single_measured, (measured, single_measured)
    print(f"chain(2) critical path: estimated {planned:.2f}s, measured {measured:.2f}s "
          f"(started {time.perf_counter() - started:.0f}s ago)")
