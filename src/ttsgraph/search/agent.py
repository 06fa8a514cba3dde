"""The search agent: any pool model (local or behind an endpoint) asked for graphs, with an audit log.

Agent-REINFORCE, TextGrad and the hybrid baseline all talk to an LLM the same way: chat messages
in, text out, optionally constrained by a JSON Schema so a weak local agent (SmolLM2-135M) always
produces the right shape. This client goes through the ordinary `Backend` (so the response cache
makes a resumed study's agent calls free and deterministic) and records every prompt and reply,
including failed calls and replies the optimizer later rejects, because a search whose decisions
cannot be audited cannot be trusted. The study drains the log into the run store's `agent_log`.

The settings every agent optimizer shares (`AgentOptions`) and the one way they build their client
(`agent_client`) live here too, so `agent-reinforce`, `textgrad` and `hybrid` cannot disagree on
which model is the agent or what "no backend" means.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pydantic import Field

from ttsgraph.errors import BackendError, TtsGraphError
from ttsgraph.llm.base import Backend, Message, SamplingParams, request_key
from ttsgraph.search.base import MixOptions, SearchContext

if TYPE_CHECKING:
    from ttsgraph.models import ModelPool
    from ttsgraph.search.space import SearchSpace

DEFAULT_AGENT_PARAMS = SamplingParams(temperature=0.1, top_p=1.0, max_tokens=1024)
"""The paper's agent temperature (0.1); a reply budget that fits a JSON graph of ~12 nodes."""

SAMPLES_PER_ROUND = 1000
"""Sample indices reserved per optimizer round: request n (n-th identical one) of round i is
sample i·1000 + n, so no two rounds ever share a cached reply."""


class AgentOptions(MixOptions):
    """The agent settings of every LLM-driven optimizer (`--opt agent=...` etc.)."""

    agent: str | None = Field(None, description="the agent model, a pool model (default: the pool's largest "
                                                "chat model)")
    agent_retries: int = Field(3, ge=0, description="a rejected reply is asked again this often, with the error")
    agent_temperature: float = Field(0.1, ge=0.0, le=2.0, description="the agent's temperature (the paper's 0.1)")
    agent_max_tokens: int | None = Field(None, ge=1, description="the reply budget (default: per optimizer)")
    retry_temperature_step: float = Field(0.3, ge=0.0, description="retry k is asked at temperature + step·k "
                                                                    "(at most 1)")


def default_agent(pool: ModelPool) -> str:
    """The largest chat model of the pool (a base model can still answer JSON under a grammar)."""
    ordered = pool.by_size()[::-1]
    chat = [m for m in ordered if pool.spec(m).chat]
    return (chat or ordered)[0]


def agent_client(optimizer: str, space: SearchSpace, ctx: SearchContext, opts: AgentOptions,
                 max_tokens: int) -> AgentClient:
    """The client an agent optimizer talks through: `ctx.backend`, the `agent` option (checked
    against the pool) or the default agent, the agent's temperature and `agent_max_tokens` (else
    `max_tokens`). Raises TtsGraphError naming the optimizer when something is missing."""
    if ctx.backend is None:
        raise TtsGraphError(f"{optimizer} needs a backend for its agent (SearchContext(backend=...))")
    pool = space.pool
    model = opts.agent or default_agent(pool)
    if model not in pool.specs:
        raise TtsGraphError(f"{optimizer}: agent model {model!r} is not in the pool ({', '.join(pool.models)})")
    params = SamplingParams(temperature=opts.agent_temperature, top_p=1.0, max_tokens=opts.agent_max_tokens or max_tokens)
    return AgentClient(ctx.backend, model, params)


@dataclass
class Exchange:
    """One agent call as the audit log keeps it.

    `kind` says why it was made ("init", "update", "retry"…), `ok` whether the reply was used
    (False for a failed call or a reply the optimizer rejected, with `error` saying why),
    `seconds` the backend's time for the call, `wall` the time it took here (≈0 on a cache hit)."""

    kind: str
    iteration: int
    messages: list[Message]
    reply: str | None
    seconds: float
    wall: float = 0.0
    ok: bool = True
    error: str | None = None
    attempt: int = 0
    cached: bool = False
    schema: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    _FIELDS = ("kind", "iteration", "messages", "reply", "seconds", "wall", "ok", "error", "attempt", "cached",
               "schema")

    def to_dict(self) -> dict[str, Any]:
        """Flat dict (the store keeps the fields it knows and files the rest, `meta` included,
        as the entry's meta)."""
        d = {k: getattr(self, k) for k in self._FIELDS}
        d.update({k: v for k, v in self.meta.items() if k not in d})
        return d


class AgentClient:
    """Calls `model` through `backend` as the optimizer's agent.

    `ask()` returns the reply text and the backend seconds; every call is appended to `log` (all
    exchanges so far) and to the pending list `drain()` hands to the study. `reject()` marks the
    last exchange as unusable with the reason, so the audit log shows why a reply was retried.
    """

    def __init__(self, backend: Backend, model: str, params: SamplingParams | None = None):
        self.backend = backend
        self.model = model
        self.params = params or DEFAULT_AGENT_PARAMS
        self.log: list[Exchange] = []
        self._pending: list[Exchange] = []
        self.total_wall = 0.0
        self.calls = 0
        # The sample index of a request: its round and how often this exact request was sent in
        # that round. With sample 0 every time, a repeated prompt (same graph, same accuracy, a
        # later round) would come back from the response cache as the same reply, and the search
        # would stall on one graph. Only the current round is counted, so the state stays small.
        self._round = 0
        self._asked: dict[str, int] = {}

    async def ask(self, messages: list[Message], schema: dict[str, Any] | None = None, *, kind: str = "update",
                  iteration: int = 0, attempt: int = 0, meta: dict[str, Any] | None = None,
                  max_tokens: int | None = None, temperature: float | None = None) -> tuple[str, float]:
        """One agent call. `schema` (a JSON Schema dict) constrains decoding where the backend can;
        `max_tokens` lowers the reply budget for this call (to fit a small context window);
        `temperature` overrides the agent's for this call (retries of a low-temperature agent).

        Raises `BackendError` (logged first) when the backend fails or replies with nothing."""
        params = self.params
        if schema:
            params = replace(params, json_schema=json.dumps(schema))  # key order = field order of the reply
        if max_tokens is not None and max_tokens != params.max_tokens:
            params = replace(params, max_tokens=max_tokens)
        if temperature is not None and temperature != params.temperature:
            params = replace(params, temperature=temperature)
        started = time.perf_counter()
        self.calls += 1
        key = request_key(self.model, list(messages), params)
        if iteration != self._round:
            self._round, self._asked = iteration, {}
        n = self._asked.get(key, 0)
        self._asked[key] = n + 1
        sample = iteration * SAMPLES_PER_ROUND + n
        try:
            completion = await self.backend.complete(self.model, list(messages), params, sample)
        except BackendError as exc:
            wall = time.perf_counter() - started
            self.total_wall += wall
            self._record(Exchange(kind, iteration, list(messages), None, 0.0, wall, False,
                                  f"agent call failed: {exc.reason}", attempt, False, schema is not None,
                                  dict(meta or {})))
            raise
        wall = time.perf_counter() - started
        self.total_wall += wall
        self._record(Exchange(kind, iteration, list(messages), completion.text, completion.seconds, wall, True, None,
                              attempt, completion.cached, schema is not None, dict(meta or {})))
        return completion.text, completion.seconds

    def reject(self, error: str) -> None:
        """Mark the last exchange's reply as rejected (it broke a rule), with the reason."""
        if self.log:
            self.log[-1].ok = False
            self.log[-1].error = error

    def annotate(self, **meta: Any) -> None:
        """Add bookkeeping (e.g. the fallback taken) to the last exchange."""
        if self.log:
            self.log[-1].meta.update(meta)

    def drain(self) -> list[Exchange]:
        """Exchanges not yet handed out, oldest first; the study stores them in `agent_log`."""
        out, self._pending = self._pending, []
        return out

    def _record(self, exchange: Exchange) -> None:
        self.log.append(exchange)
        self._pending.append(exchange)

    def state_dict(self) -> dict[str, Any]:
        """Counters only: the exchanges belong to the run store, which the study fills from `drain()`
        right after taking this state (kept here too, they were stored twice on resume)."""
        return {"total_wall": self.total_wall, "calls": self.calls, "round": self._round, "asked": dict(self._asked)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._pending, self.log = [], []
        self.total_wall = float(state.get("total_wall", 0.0))
        self.calls = int(state.get("calls", 0))
        self._round = int(state.get("round", 0))
        self._asked = {str(k): int(n) for k, n in state.get("asked", {}).items()}
