"""Admission: at most K requests run their graphs, at most Q wait, the rest are refused at once.

An unbounded queue turns overload into ever-growing memory and latency until everything times
out; refusing early with 429 and `Retry-After` keeps both bounded and tells the client when to come
back. Admitted requests are served first come, first served (asyncio's semaphore is fair).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

from ttsgraph.serve.errors import overloaded


class Ticket:
    """One admitted request's slot; `release()` is idempotent, so every exit path may call it."""

    def __init__(self, admission: Admission):
        self._admission = admission
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._admission._release()


class Admission:
    """`running` ≤ max_concurrency, `waiting` ≤ queue. `on_change(running, waiting)` feeds gauges;
    `retry_after()` estimates when a slot frees (the recent mean request time, at least 1 s)."""

    def __init__(self, max_concurrency: int, queue: int, on_change: Callable[[int, int], None] | None = None):
        if max_concurrency < 1 or queue < 0:
            raise ValueError(f"max_concurrency must be >= 1 and queue >= 0 (got {max_concurrency}, {queue})")
        self.max_concurrency = max_concurrency
        self.queue = queue
        self.running = 0
        self.waiting = 0
        self._slots = asyncio.Semaphore(max_concurrency)
        self._on_change = on_change
        self._mean_seconds = 1.0

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self.running, self.waiting)

    def retry_after(self) -> int:
        backlog = (self.waiting + 1) / self.max_concurrency
        return max(1, math.ceil(self._mean_seconds * backlog))

    def observe(self, seconds: float) -> None:
        """A finished request's time, for `Retry-After` (exponential moving mean)."""
        self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * seconds

    async def admit(self) -> Ticket:
        """A slot now, or a place in the queue, or `ApiError` 429 when both are full."""
        if self.running >= self.max_concurrency and self.waiting >= self.queue:
            raise overloaded(self.running, self.waiting, self.retry_after())
        self.waiting += 1
        self._changed()
        try:
            await self._slots.acquire()
        except BaseException:  # cancelled while queued (the client left)
            self.waiting -= 1
            self._changed()
            raise
        self.waiting -= 1
        self.running += 1
        self._changed()
        return Ticket(self)

    def _release(self) -> None:
        self.running -= 1
        self._slots.release()
        self._changed()
