"""The search agent: any pool model (local or behind an endpoint) asked for graphs, with an audit log.

Agent-REINFORCE, TextGrad and the hybrid baseline all talk to an LLM the same way: chat messages
in, text out, optionally constrained by a JSON Schema so a weak local agent (SmolLM2-135M) always
produces the right shape. This client goes through the ordinary `Backend` (so the response cache
makes a resumed study's agent calls free and deterministic) and records every prompt and reply,
including failed calls and replies the optimizer later rejects, because a search whose decisions
cannot be audited cannot be trusted. The study drains the log into the run store's `agent_log`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from typing import Any

from ttsgraph.errors import BackendError
from ttsgraph.llm.base import Backend, Message, SamplingParams, request_key

DEFAULT_AGENT_PARAMS = SamplingParams(temperature=0.1, top_p=1.0, max_tokens=1024)
"""The paper's agent temperature (0.1); a reply budget that fits a JSON graph of ~12 nodes."""


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

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Exchange:
        known = {k: d[k] for k in cls._FIELDS if k in d}
        meta = dict(d.get("meta") or {})
        meta.update({k: v for k, v in d.items() if k not in cls._FIELDS and k != "meta"})
        return cls(**known, meta=meta)


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
        # How often each exact request was sent: the n-th identical request is sample n. With
        # sample 0 every time, a repeated prompt (same graph, same accuracy) would come back from
        # the response cache as the same reply, and the search would stall on one graph.
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
        sample = self._asked.get(key, 0)
        self._asked[key] = sample + 1
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
        """Counters and the exchanges not yet drained (the drained ones live in the run store)."""
        return {"pending": [e.to_dict() for e in self._pending], "total_wall": self.total_wall, "calls": self.calls,
                "asked": dict(self._asked)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._pending = [Exchange.from_dict(e) for e in state.get("pending", [])]
        self.log = list(self._pending)
        self.total_wall = float(state.get("total_wall", 0.0))
        self.calls = int(state.get("calls", 0))
        self._asked = {str(k): int(v) for k, v in state.get("asked", {}).items()}
