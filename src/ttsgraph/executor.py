"""Run a graph on items: every node an LLM call, as concurrent as the DAG allows.

A node starts the moment all its predecessors have answered, so a graph's latency is its critical
path, not the sum of its nodes (the paper's code ran nodes one by one; we report that sequential
sum too, for comparison). Calls are bounded per serving backend (one semaphore per binding), so a
wide graph does not flood one server while another sits idle.

Sample indices: within one run of a graph on one item, the n-th node that sends an identical
(model, messages, params) request gets sample n. Parallel identical nodes thus draw independent
samples, and another graph sending the same requests later gets the same samples back from the
cache (common random numbers).

A node that fails for good (a `BackendError` after retries, or any other exception a backend
raises) marks its item as errored with the reason; its dependents are skipped, other items go on. Errors are counted
apart from wrong answers. Grading runs on the event-loop thread (math-verify arms `signal.alarm`,
which only works in the main thread; run the executor with `asyncio.run` from the main thread).
"""

from __future__ import annotations

import asyncio
import functools
import time
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

from ttsgraph.cost import TaskLengths, measured_node_flops, planned_graph_flops, unit_flops
from ttsgraph.errors import TtsGraphError
from ttsgraph.graph import Graph
from ttsgraph.llm.base import Backend, Completion, Message, SamplingParams, request_key
from ttsgraph.models import ModelPool
from ttsgraph.roles import Extract, role_spec
from ttsgraph.stats import percentile, wilson_interval


class _Item(Protocol):
    id: str


class _Grade(Protocol):
    correct: bool
    extracted: str | None
    detail: str


class TaskLike(Protocol):
    """What the executor needs of a task (`ttsgraph.tasks.base.Task` provides it)."""

    name: str
    lengths: TaskLengths

    def messages(self, item: Any, role: str, predecessors: list[str], is_output: bool) -> list[Message]: ...

    def grade(self, item: Any, text: str) -> Any: ...


@dataclass
class NodeTrace:
    """One node's call. `start`/`end` are seconds since the item started (None if it never ran);
    `seconds` is the backend's time (on a cache hit: the original call's time). A node that calls
    no model (a vote) has `model` None, no start/end, 0 seconds and 0 FLOPs."""

    id: str
    model: str | None
    role: str
    text: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    start: float | None = None
    end: float | None = None
    flops: float = 0.0
    cached: bool = False
    sample: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def called(self) -> bool:
        """Whether a request reached the backend (or the cache) for this node."""
        return self.start is not None


@dataclass
class GraphRun:
    """One run of a graph on one prompt, before any grading: the output node's text (None when a
    node failed; then `error` says which and why), latencies in seconds, FLOPs absolute, and every
    node's trace. A server needs exactly this; a study grades it into an `ItemResult`."""

    output_text: str | None
    error: str | None
    wall: float
    critical_path: float
    sequential: float
    planned_flops: float
    measured_flops: float
    nodes: list[NodeTrace] = field(default_factory=list)


@dataclass(kw_only=True)
class ItemResult(GraphRun):
    """A run graded against one task item. `error` is set when a node failed (then `correct` is
    False and the item counts as an error, not as a wrong answer). Build with keywords."""

    item_id: str
    extracted: str | None = None
    correct: bool = False
    detail: str = ""

    @classmethod
    def ungraded(cls, item_id: str, run: GraphRun) -> ItemResult:
        return cls(item_id=item_id, **{f.name: getattr(run, f.name) for f in fields(GraphRun)})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["nodes"] = [n.to_dict() for n in self.nodes]
        return d


PromptFn = Callable[[str, list[str], bool], list[Message]]
"""Builds a node's messages from (role, predecessors' texts, is_output): a task item's prompts, or
a server request's."""


async def _streamed(backend: Backend, model: str, messages: list[Message], params: SamplingParams, sample: int,
                    on_piece: Callable[[str], None]) -> Completion:
    """`backend.stream`, each piece handed to `on_piece`; the final `Completion`."""
    async for event in backend.stream(model, messages, params, sample):
        if isinstance(event, Completion):
            return event
        on_piece(event)
    raise TtsGraphError(f"{model}: the stream ended without a completion")


def node_error(exc: Exception) -> str:
    """Why a node failed, for its item's `error`: a TtsGraphError's reason as written; anything
    else (a backend bug, a reply no parser expected) with its type, so it is never mistaken for a
    reason we wrote."""
    if isinstance(exc, TtsGraphError):
        return getattr(exc, "reason", None) or str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def critical_path(graph: Graph, seconds: dict[str, float]) -> float:
    """Longest path of node seconds through the DAG, ending at the output node."""
    finish: dict[str, float] = {}
    for nid in graph.topological_order():
        finish[nid] = seconds.get(nid, 0.0) + max((finish[p] for p in graph.preds(nid)), default=0.0)
    return finish[graph.output] if graph.output in finish else max(finish.values(), default=0.0)


async def grade_run(task: TaskLike, item: Any, run: GraphRun) -> ItemResult:
    """Grade a run's output against `item` (a separate step from running: a server never grades).
    Thread-safe graders (HumanEval's sandbox) run off the loop so other items' nodes go on; others
    run on the loop's (main) thread, since math-verify arms `signal.alarm`."""
    result = ItemResult.ungraded(str(item.id), run)
    if run.error is None and run.output_text is not None:
        if getattr(task, "thread_safe_grading", False):
            grade = await asyncio.to_thread(task.grade, item, run.output_text)
        else:
            grade = task.grade(item, run.output_text)
        result.correct = bool(grade.correct)
        result.extracted = grade.extracted
        result.detail = getattr(grade, "detail", "") or ""
    return result


class Executor:
    """Runs graphs against one backend.

    `concurrency` bounds simultaneous calls per serving backend (a binding's `max_concurrency`
    overrides it); `items_in_flight` bounds how many items run at once in `run_items` (default:
    `concurrency`), so that per-item wall latency is not mostly queueing. `task` gives the lengths
    for planned FLOPs and, for `run_item(s)`, the prompts and the grader.
    """

    def __init__(
        self,
        backend: Backend,
        pool: ModelPool,
        task: TaskLike,
        params: SamplingParams = SamplingParams(),
        concurrency: int = 4,
        items_in_flight: int | None = None,
    ):
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.backend = backend
        self.pool = pool
        self.task = task
        self.params = params
        self.concurrency = concurrency
        self.items_in_flight = items_in_flight or concurrency
        # asyncio primitives belong to one event loop: keep them per loop (weakly, so a later
        # `asyncio.run` never meets a semaphore bound to a closed loop).
        self._semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Semaphore]] = (
            weakref.WeakKeyDictionary()
        )

    def _semaphore(self, model: str) -> asyncio.Semaphore:
        binding = self.pool.spec(model).binding
        key = binding.key() if binding is not None else "none:"
        limit = binding.concurrency_limit(self.concurrency) if binding is not None else self.concurrency
        per_loop = self._semaphores.setdefault(asyncio.get_running_loop(), {})
        sem = per_loop.get(key)
        if sem is None:
            sem = per_loop[key] = asyncio.Semaphore(limit)
        return sem

    def prepare(self, graph: Graph) -> Graph:
        """Validate and prune once, before running a graph many times."""
        graph.validate(models=set(self.pool.specs))
        return graph.pruned()[0]

    async def run(self, g: Graph, prompts: PromptFn, *, params: SamplingParams | None = None,
                  rollout: int = 0, on_output: Callable[[str], None] | None = None,
                  extract: Extract | None = None) -> GraphRun:
        """Run the prepared graph `g` once. `params` override the executor's for this run (a server
        request's temperature, max_tokens, stop). `rollout` r folds into the sample index
        (r · |nodes| + n for the n-th identical request), so rollouts of one request draw independent
        samples while rollout 0 is what every study and cache entry so far used. `on_output` (a
        server's stream) gets the output node's text piece by piece as its backend generates it;
        the other nodes and the returned run are the same as without it. `extract` finds the
        answer in a text for nodes that aggregate without a call (vote); default: the executor's
        task's `extract`. A vote node with no extractor fails its run."""
        params = params or self.params
        extract = extract or getattr(self.task, "extract", None)
        order = g.topological_order()
        rank = {nid: k for k, nid in enumerate(order)}
        traces = {nid: NodeTrace(nid, g.node(nid).model, g.node(nid).role) for nid in order}
        done: dict[str, asyncio.Event] = {nid: asyncio.Event() for nid in order}
        samples: Counter[str] = Counter()
        offset = int(rollout) * len(order)
        t0 = time.perf_counter()

        async def run_node(nid: str) -> None:
            trace = traces[nid]
            try:
                preds = g.preds(nid)
                for p in preds:
                    await done[p].wait()
                failed = [p for p in preds if traces[p].error is not None]
                if failed:
                    trace.error = f"skipped: predecessor {failed[0]} failed"
                    return
                node = g.node(nid)
                aggregate = role_spec(node.role).aggregate
                if aggregate is not None:
                    if extract is None:
                        trace.error = f"a {node.role} node needs an answer extractor (run it with a task)"
                        return
                    trace.text = aggregate([traces[p].text or "" for p in sorted(preds, key=rank.__getitem__)], extract)
                    if on_output is not None and nid == g.output:
                        on_output(trace.text)
                    return
                assert node.model is not None  # validated: a role that calls a model has one
                node_params = params.for_node(nid == g.output)
                try:
                    messages = prompts(node.role, [traces[p].text or "" for p in preds], nid == g.output)
                    key = request_key(node.model, messages, node_params)
                    trace.sample = offset + samples[key]
                    samples[key] += 1
                    async with self._semaphore(node.model):
                        trace.start = time.perf_counter() - t0
                        try:
                            if on_output is not None and nid == g.output:
                                completion = await _streamed(self.backend, node.model, messages, node_params,
                                                             trace.sample, on_output)
                            else:
                                completion = await self.backend.complete(node.model, messages, node_params,
                                                                         trace.sample)
                        finally:
                            trace.end = time.perf_counter() - t0
                except Exception as exc:  # noqa: BLE001 - any backend fault is this item's error, never the run's
                    trace.error = node_error(exc)
                    return
                trace.text = completion.text
                trace.prompt_tokens = completion.prompt_tokens
                trace.completion_tokens = completion.completion_tokens
                trace.seconds = completion.seconds
                trace.cached = completion.cached
                trace.flops = measured_node_flops(
                    self.pool.spec(node.model), completion.prompt_tokens, completion.completion_tokens
                )
            finally:
                done[nid].set()

        await asyncio.gather(*(run_node(nid) for nid in order))
        wall = time.perf_counter() - t0
        nodes = [traces[nid] for nid in order]
        seconds = {t.id: t.seconds for t in nodes}
        first_error = next((t for t in nodes if t.error is not None and not t.error.startswith("skipped")), None)
        return GraphRun(
            output_text=traces[g.output].text,
            error=(f"node {first_error.id} ({first_error.model or first_error.role}): {first_error.error}"
                   if first_error else None),
            wall=wall,
            critical_path=critical_path(g, seconds),
            sequential=sum(seconds.values()),
            planned_flops=sum(planned_graph_flops(g, self.pool, self.task.lengths).values()),
            measured_flops=sum(t.flops for t in nodes),
            nodes=nodes,
        )

    async def run_item(self, graph: Graph, item: Any, *, params: SamplingParams | None = None) -> ItemResult:
        """Run `graph` on one task item, then grade it."""
        return await self._run_item(self.prepare(graph), item, params)

    async def _run_item(self, g: Graph, item: Any, params: SamplingParams | None) -> ItemResult:
        run = await self.run(g, functools.partial(self.task.messages, item), params=params)
        return await grade_run(self.task, item, run)

    async def run_items(
        self,
        graph: Graph,
        items: Sequence[Any],
        on_result: Callable[[ItemResult], None] | None = None,
        *,
        params: SamplingParams | None = None,
    ) -> list[ItemResult]:
        """Run `graph` on every item (at most `items_in_flight` at once) and grade each; results in
        item order. `on_result` is called as each item finishes (for progress displays)."""
        g = self.prepare(graph)
        gate = asyncio.Semaphore(self.items_in_flight)

        async def one(item: Any) -> ItemResult:
            async with gate:
                result = await self._run_item(g, item, params)
            if on_result is not None:
                on_result(result)
            return result

        return list(await asyncio.gather(*(one(item) for item in items)))


def _latency(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "p50": None, "p95": None}
    return {"mean": sum(values) / len(values), "p50": percentile(values, 50), "p95": percentile(values, 95)}


@dataclass
class EvalSummary:
    """Aggregate of one evaluation. `accuracy` = correct / items (an errored item is not correct);
    `errors` counts items that failed, `wrong` those answered wrongly. Units are per item,
    normalized by the pool's unit FLOPs. Latencies are over items that did not error."""

    task: str
    graph_hash: str
    items: int
    correct: int
    wrong: int
    errors: int
    accuracy: float
    ci: tuple[float, float]
    planned_units: float
    measured_units: float | None
    planned_flops: float
    measured_flops: float | None
    latency: dict[str, dict[str, float | None]]
    backend_calls: int
    cache_hits: int
    error_reasons: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci"] = list(self.ci)
        return d


def summarize(results: Sequence[ItemResult], graph: Graph, pool: ModelPool, task: TaskLike) -> EvalSummary:
    """Accuracy with a Wilson 95% interval, errors apart, FLOPs in units, latency percentiles,
    backend calls and cache hits."""
    g = graph.pruned()[0]
    unit = unit_flops(pool, task.lengths)
    planned = sum(planned_graph_flops(g, pool, task.lengths).values())
    n = len(results)
    correct = sum(1 for r in results if r.correct)
    errors = sum(1 for r in results if r.error is not None)
    ok = [r for r in results if r.error is None]
    measured = sum(r.measured_flops for r in ok) / len(ok) if ok else None
    reasons: Counter[str] = Counter(r.error for r in results if r.error is not None)
    nodes = [t for r in results for t in r.nodes]
    return EvalSummary(
        task=task.name,
        graph_hash=g.canonical_hash(),
        items=n,
        correct=correct,
        wrong=n - correct - errors,
        errors=errors,
        accuracy=correct / n if n else 0.0,
        ci=wilson_interval(correct, n),
        planned_units=planned / unit,
        measured_units=measured / unit if measured is not None else None,
        planned_flops=planned,
        measured_flops=measured,
        latency={
            "wall": _latency([r.wall for r in ok]),
            "critical_path": _latency([r.critical_path for r in ok]),
            "sequential": _latency([r.sequential for r in ok]),
        },
        backend_calls=sum(1 for t in nodes if t.called and not t.cached),
        cache_hits=sum(1 for t in nodes if t.cached),
        error_reasons=dict(reasons.most_common(5)),
    )
