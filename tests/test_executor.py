"""The async executor on the scripted backend: concurrency follows the DAG, sample indices keep
parallel identical nodes independent, the cache serves reruns, failures become item errors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ttsgraph.cost import measured_node_flops, planned_graph_flops
from ttsgraph.errors import BackendError, GraphError
from ttsgraph.executor import Executor, critical_path, summarize
from ttsgraph.graph import Graph, Node, chain, parallel, single
from ttsgraph.llm.base import Completion, Message, SamplingParams
from ttsgraph.llm.fake import ScriptedBackend
from ttsgraph.llm.router import build_backend
from ttsgraph.tasks.arithmetic import ArithmeticTask

SMOL, GEMMA = "smollm2-135m", "gemma-3-270m"


@pytest.fixture(scope="module")
def task() -> ArithmeticTask:
    return ArithmeticTask(seed=7, size=20)


def solver(task: ArithmeticTask, wrong_for: set[str] = frozenset()):  # type: ignore[no-untyped-def]
    """A responder that answers each arithmetic question right (or off by one for chosen ones)."""
    answers = {i.question: i.answer for split in ("search", "test") for i in task.items(split)}

    def respond(model: str, messages: list[Message], sample: int) -> str:
        text = messages[-1]["content"]
        for q, a in answers.items():
            if q in text:
                value = int(a) + (1 if q in wrong_for else 0)
                return f"{q[8:-1]} = {value}. Answer: {value}"
        raise AssertionError(f"unknown question in {text!r}")

    return respond


def test_parallel_nodes_overlap_so_latency_is_the_critical_path(task, pool) -> None:  # type: ignore[no-untyped-def]
    """Order, not wall-clock tolerances (a loaded machine stretches those): the three roots all
    start before any of them ends, the output starts after all of them, and with reported call
    times of 0.2 s the latency is the critical path (0.4 s), not the sequential sum (0.8 s). The
    wall-clock figure itself is bench/executor.py's (b) wall / critical path."""
    scripted = ScriptedBackend(solver(task), delay=0.05, seconds=lambda model, messages: 0.2)
    ex = Executor(build_backend(pool, None, fake=scripted), pool, task, concurrency=4)
    item = task.items("search")[0]
    r = asyncio.run(ex.run_item(parallel(3, SMOL, output_model=GEMMA), item))
    assert r.error is None and r.correct and r.extracted == item.answer
    assert r.sequential == pytest.approx(0.8) and r.critical_path == pytest.approx(0.4)
    roots = [n for n in r.nodes if n.id != "out"]
    out = next(n for n in r.nodes if n.id == "out")
    assert max(n.start for n in roots) < min(n.end for n in roots)  # all three ran at once
    assert out.start >= max(n.end for n in roots) - 1e-6  # the output waited for all of them


def test_identical_parallel_requests_get_distinct_sample_indices(task, pool) -> None:  # type: ignore[no-untyped-def]
    fake = ScriptedBackend(solver(task))
    ex = Executor(build_backend(pool, None, fake=fake), pool, task)
    g = parallel(4, [SMOL, SMOL, GEMMA, SMOL], output_model=SMOL)
    r = asyncio.run(ex.run_item(g, task.items("search")[1]))
    samples = {n.id: n.sample for n in r.nodes}
    assert sorted(samples[i] for i in ("a1", "a2", "a4")) == [0, 1, 2]
    assert samples["a3"] == 0  # a different model is a different request
    assert samples["out"] == 0
    # sample indices restart per item
    r2 = asyncio.run(ex.run_item(g, task.items("search")[2]))
    assert sorted(n.sample for n in r2.nodes if n.model == SMOL and n.id != "out") == [0, 1, 2]


def test_rerun_is_served_from_cache_and_other_graphs_reuse_samples(task, pool, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake = ScriptedBackend(solver(task), delay=0.01)
    cache_path = tmp_path / "responses.sqlite"
    items = task.items("search")[:3]
    g = parallel(3, SMOL, output_model=SMOL)

    def run(graph: Graph) -> list:
        backend = build_backend(pool, cache_path, fake=fake)
        ex = Executor(backend, pool, task)
        return asyncio.run(ex.run_items(graph, items))

    first = run(g)
    calls_after_first = len(fake.calls)
    assert calls_after_first == 3 * 4
    assert summarize(first, g, pool, task).backend_calls == 12
    second = run(g)
    assert len(fake.calls) == calls_after_first  # nothing reached the backend
    s2 = summarize(second, g, pool, task)
    assert (s2.backend_calls, s2.cache_hits) == (0, 12)
    assert [r.output_text for r in second] == [r.output_text for r in first]
    # a wider graph reuses samples 0..2 of the roots and pays only for sample 3 and its new output
    run(parallel(4, SMOL, output_model=SMOL))
    assert len(fake.calls) == calls_after_first + 3 * 2
    assert sorted(c.sample for c in fake.calls[calls_after_first:] if "Answers from" not in c.messages[-1]["content"]) == [3, 3, 3]


def test_failed_node_errors_the_item_and_skips_dependents(task, pool) -> None:  # type: ignore[no-untyped-def]
    items = task.items("search")[:4]
    bad_q = items[1].question
    good = solver(task, wrong_for={items[2].question})

    def respond(model: str, messages: list[Message], sample: int):  # type: ignore[no-untyped-def]
        if model == GEMMA and bad_q in messages[-1]["content"]:
            return BackendError("HTTP 503: overloaded (after 4 attempts)", model=model)
        return good(model, messages, sample)

    g = Graph([Node("a", GEMMA), Node("b", SMOL), Node("mid", SMOL), Node("out", SMOL)],
              [("a", "mid"), ("b", "mid"), ("mid", "out")], "out")
    ex = Executor(build_backend(pool, None, fake=ScriptedBackend(respond)), pool, task)
    seen: list[str] = []
    results = asyncio.run(ex.run_items(g, items, on_result=lambda r: seen.append(r.item_id)))
    assert sorted(seen) == sorted(i.id for i in items) and [r.item_id for r in results] == [i.id for i in items]
    failed = results[1]
    assert failed.error is not None and "node a (gemma-3-270m)" in failed.error and "HTTP 503" in failed.error
    assert not failed.correct and failed.output_text is None
    by_id = {n.id: n for n in failed.nodes}
    assert by_id["b"].error is None and by_id["b"].text  # the sibling still ran
    assert by_id["mid"].error.startswith("skipped") and not by_id["mid"].called
    assert by_id["out"].error.startswith("skipped")
    s = summarize(results, g, pool, task)
    assert (s.items, s.correct, s.wrong, s.errors) == (4, 2, 1, 1)
    assert s.accuracy == pytest.approx(0.5)
    assert s.ci[0] < 0.5 < s.ci[1]
    assert list(s.error_reasons.values()) == [1]


def test_concurrency_is_bounded_per_binding(task, pool) -> None:  # type: ignore[no-untyped-def]
    class Counting:
        def __init__(self) -> None:
            self.active = 0
            self.peak = 0

        async def complete(self, model: str, messages: list[Message], params: SamplingParams, sample: int = 0) -> Completion:
            self.active += 1
            self.peak = max(self.peak, self.active)
            await asyncio.sleep(0.02)
            self.active -= 1
            return Completion("Answer: 1", 10, 3, 0.02)

    counting = Counting()
    ex = Executor(build_backend(pool, None, fake=counting), pool, task, concurrency=2, items_in_flight=3)
    asyncio.run(ex.run_items(parallel(6, SMOL), task.items("search")[:3]))
    assert counting.peak == 2


def test_flops_and_latency_accounting(task, pool) -> None:  # type: ignore[no-untyped-def]
    ex = Executor(build_backend(pool, None, fake=ScriptedBackend(solver(task), delay=0.01)), pool, task)
    g = chain(2, SMOL, output_model=GEMMA)
    r = asyncio.run(ex.run_item(g, task.items("test")[0]))
    assert r.planned_flops == pytest.approx(sum(planned_graph_flops(g, pool, task.lengths).values()))
    expected = sum(measured_node_flops(pool.spec(n.model), n.prompt_tokens, n.completion_tokens) for n in r.nodes)
    assert r.measured_flops == pytest.approx(expected) and r.measured_flops > 0
    # a chain has no parallelism: critical path equals the sequential sum
    assert r.critical_path == pytest.approx(r.sequential)
    assert r.wall >= r.sequential * 0.9


def test_critical_path_is_the_longest_weighted_path() -> None:
    g = Graph([Node("a", "m"), Node("b", "m"), Node("c", "m"), Node("out", "m")],
              [("a", "c"), ("b", "out"), ("c", "out")], "out")
    assert critical_path(g, {"a": 1.0, "b": 5.0, "c": 1.5, "out": 0.5}) == pytest.approx(5.5)
    assert critical_path(g, {"a": 4.0, "b": 1.0, "c": 1.5, "out": 0.5}) == pytest.approx(6.0)


def test_dead_nodes_are_pruned_not_run(task, pool) -> None:  # type: ignore[no-untyped-def]
    fake = ScriptedBackend(solver(task))
    g = Graph([Node("dead", GEMMA), Node("out", SMOL)], [], "out")
    ex = Executor(build_backend(pool, None, fake=fake), pool, task)
    r = asyncio.run(ex.run_item(g, task.items("search")[0]))
    assert [n.id for n in r.nodes] == ["out"] and len(fake.calls) == 1


def test_unknown_model_in_graph_is_a_graph_error(task, pool) -> None:  # type: ignore[no-untyped-def]
    ex = Executor(build_backend(pool, None, fake=ScriptedBackend(solver(task))), pool, task)
    with pytest.raises(GraphError):
        asyncio.run(ex.run_item(single("no-such-model"), task.items("search")[0]))


def test_summary_is_json_ready(task, pool) -> None:  # type: ignore[no-untyped-def]
    ex = Executor(build_backend(pool, None, fake=ScriptedBackend(solver(task))), pool, task)
    g = parallel(2, SMOL)
    results = asyncio.run(ex.run_items(g, task.items("search")[:5]))
    d = json.loads(json.dumps(summarize(results, g, pool, task).to_dict()))
    for key in ("accuracy", "ci", "items", "errors", "planned_units", "measured_units", "backend_calls", "cache_hits"):
        assert key in d
    assert d["accuracy"] == 1.0 and d["items"] == 5 and len(d["ci"]) == 2
    for kind in ("wall", "critical_path", "sequential"):
        assert set(d["latency"][kind]) == {"mean", "p50", "p95"}
    assert d["planned_units"] > 2  # two roots plus a fusing output cost more than two units
    json.dumps([r.to_dict() for r in results])


def test_one_executor_survives_many_event_loops(task, pool) -> None:  # type: ignore[no-untyped-def]
    """A search calls asyncio.run once per iteration with the same executor; semaphores with
    waiters must never leak from one loop into the next."""
    ex = Executor(build_backend(pool, None, fake=ScriptedBackend(solver(task), delay=0.005)), pool, task,
                  concurrency=1)
    for k in range(6):
        results = asyncio.run(ex.run_items(parallel(3, SMOL), task.items("search")[k : k + 2]))
        assert all(r.error is None and r.correct for r in results)


@pytest.mark.parametrize("thread_safe", [False, True])
def test_grading_thread_follows_the_task(task, pool, thread_safe: bool) -> None:  # type: ignore[no-untyped-def]
    """math-verify needs the main thread; sandboxed (thread-safe) grading must not block the loop."""
    import threading

    seen: list[str] = []

    class Recording(ArithmeticTask):
        thread_safe_grading = thread_safe

        def grade(self, item, text):  # type: ignore[no-untyped-def]
            seen.append(threading.current_thread().name)
            return super().grade(item, text)

    rec = Recording(seed=7, size=20)
    backend = build_backend(pool, None, fake=ScriptedBackend(solver(rec)))
    r = asyncio.run(Executor(backend, pool, rec).run_item(single(SMOL), rec.items("search")[0]))
    assert r.correct and len(seen) == 1
    assert (seen[0] == threading.main_thread().name) is (not thread_safe)
