"""Endpoint pools: one model served by several replicas (vLLM/SGLang on many GPUs, llama.cpp
servers on many hosts), used as one backend.

Why a pool inside ttsgraph rather than a load balancer in front of the replicas: we know which
calls are in flight, so each request goes to the replica with the fewest (respecting each one's
`max_concurrency`, waiting when all are full), and we know why a call failed, so a replica that
refuses connections, times out or answers 5xx/429 is set aside — with exponential backoff, then
tried again — while the request moves on to another replica instead of failing its item. Only when
every replica is down does a call fail, with a reason naming each replica and its last error.

The pool keeps plain counters (usable from any thread for `ttsgraph models`) and one
`asyncio.Condition` per event loop for the waiting (asyncio primitives belong to one loop).
"""

from __future__ import annotations

import asyncio
import sys
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ttsgraph.errors import BackendError
from ttsgraph.models import PoolEndpoint


@dataclass
class EndpointState:
    """What the pool knows about one replica. `set_aside_until` is a `time.monotonic()` instant
    (0: healthy); `failures` counts consecutive retriable failures (it sets the backoff)."""

    base_url: str
    max_concurrency: int | None = None
    in_flight: int = 0
    requests: int = 0
    errors: int = 0
    failures: int = 0
    set_aside_until: float = 0.0
    backoff_s: float = 0.0  # how long it was last set aside for
    last_error: str | None = None

    def healthy(self, now: float) -> bool:
        return now >= self.set_aside_until

    def has_room(self) -> bool:
        return self.max_concurrency is None or self.in_flight < self.max_concurrency

    def snapshot(self, now: float) -> dict[str, Any]:
        aside = max(0.0, self.set_aside_until - now)
        # "retry due": its backoff is over but no call has succeeded on it since it failed
        state = "set aside" if aside > 0 else "retry due" if self.failures else "healthy"
        return {"base_url": self.base_url, "state": state,
                "set_aside_for_s": round(aside, 3), "backoff_s": self.backoff_s, "in_flight": self.in_flight,
                "max_concurrency": self.max_concurrency, "requests": self.requests, "errors": self.errors,
                "consecutive_failures": self.failures, "last_error": self.last_error}


class AllEndpointsDown(BackendError):
    """Every replica of a pool is set aside: the reason lists each one and its last error."""


class EndpointPool:
    """The replicas of one model. `acquire()` hands out the least-loaded healthy replica with room
    (waiting while the healthy ones are all full), `release(state, error)` returns it, setting it
    aside for `backoff * 2**(k-1)` seconds (at most `max_backoff`) after its k-th failure in a row.

    `share = (i, n)`: this pool is the i-th of n that send to the same replicas at once (one per
    Ray actor, each with its own counters). Pool i then prefers its own "home" replicas (every
    n-th, from i), using the others only when its home ones are full or set aside: n pools that
    each pick the least-loaded replica by their own counts would otherwise pile onto one replica
    while another idles."""

    def __init__(self, model: str, endpoints: Sequence[PoolEndpoint], backoff: float = 1.0,
                 max_backoff: float = 30.0, log: bool = True, share: tuple[int, int] | None = None):
        if not endpoints:
            raise ValueError("an endpoint pool needs at least one endpoint")
        self.model = model
        self.states = [EndpointState(e.base_url, e.max_concurrency) for e in endpoints]
        index, of = share or (0, 1)
        count = len(self.states)
        home = {j for j in range(count) if j % of == index % of} if count >= of else {index % count}
        self._home = {id(self.states[j]) for j in home}
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.log = log
        self._conditions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Condition] = (
            weakref.WeakKeyDictionary()
        )

    def _condition(self) -> asyncio.Condition:
        loop = asyncio.get_running_loop()
        cond = self._conditions.get(loop)
        if cond is None:
            cond = self._conditions[loop] = asyncio.Condition()
        return cond

    def _pick(self, now: float) -> EndpointState | None:
        """A home replica if one is healthy with room, else another; among those the one with the
        fewest calls in flight (ties: the one that has served fewest, so idle replicas take turns)."""
        ready = [s for s in self.states if s.healthy(now) and s.has_room()]
        if not ready:
            return None
        return min(ready, key=lambda s: (id(s) not in self._home, s.in_flight, s.requests))

    def next_recovery(self, now: float) -> float:
        """Seconds until the first set-aside replica is tried again (0 if none is set aside)."""
        aside = [s.set_aside_until for s in self.states if s.set_aside_until > now]
        return min(aside) - now if aside else 0.0

    async def acquire(self) -> EndpointState | None:
        """A replica to send one call to, its in-flight count taken; None when every replica is
        set aside (the caller decides whether to wait for one to come back or to give up)."""
        cond = self._condition()
        async with cond:
            while True:
                now = time.monotonic()
                state = self._pick(now)
                if state is not None:
                    state.in_flight += 1
                    state.requests += 1
                    return state
                if not any(s.healthy(now) for s in self.states):
                    return None
                # Healthy replicas exist but all are full: wait for a release (or for a set-aside
                # replica's backoff to end, which may free capacity elsewhere).
                recovery = self.next_recovery(now)
                try:
                    await asyncio.wait_for(cond.wait(), timeout=recovery or None)
                except asyncio.TimeoutError:
                    pass

    async def release(self, state: EndpointState, error: str | None = None, *, retriable: bool = False) -> None:
        """Return a replica after one call. A retriable `error` sets it aside; success (or an error
        that is the request's fault, not the replica's) makes it healthy again."""
        state.in_flight -= 1
        if error is not None and retriable:
            state.errors += 1
            state.failures += 1
            state.last_error = error
            delay = min(self.max_backoff, self.backoff * 2 ** (state.failures - 1))
            state.set_aside_until = time.monotonic() + delay
            state.backoff_s = delay
            if self.log:
                print(f"warning: {self.model}: endpoint {state.base_url} set aside for {delay:.1f} s "
                      f"(failure {state.failures} in a row: {error})", file=sys.stderr)
        else:
            if state.failures and self.log:
                print(f"note: {self.model}: endpoint {state.base_url} is back", file=sys.stderr)
            state.failures = 0
            state.set_aside_until = 0.0
        cond = self._condition()
        async with cond:
            cond.notify_all()

    def down_error(self) -> AllEndpointsDown:
        """The error of a call that found every replica set aside."""
        parts = [f"{s.base_url} ({s.last_error or 'set aside'})" for s in self.states]
        return AllEndpointsDown(f"all {len(self.states)} endpoints are down: " + "; ".join(parts),
                                model=self.model, retriable=True)

    def snapshot(self) -> list[dict[str, Any]]:
        """Each replica's state, for `ttsgraph models` and run reports."""
        now = time.monotonic()
        return [s.snapshot(now) for s in self.states]


__all__ = ["AllEndpointsDown", "EndpointPool", "EndpointState"]
