"""A persistent response cache in SQLite, shared safely by several processes.

Keyed by (model and its binding's identity, messages, sampling params, sample index): a search that evaluates many graphs
sends the same requests again and again, and with the sample index in the key, parallel nodes
still get independent samples while other graphs reuse them (common random numbers). WAL mode
lets readers proceed while another process writes; a busy timeout makes concurrent writers wait
instead of failing. Only successful completions are stored: a failure is never replayed.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import warnings
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from ttsgraph.errors import BackendError
from ttsgraph.llm.base import Backend, BackendBase, Completion, Message, SamplingParams, sample_key, ttsgraph_home
from ttsgraph.llm.identity import Identity

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    sample INTEGER NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    seconds REAL NOT NULL,
    created REAL NOT NULL
)
"""


def default_cache_path() -> Path:
    """`$TTSGRAPH_HOME/responses.sqlite`, else `~/.cache/ttsgraph/responses.sqlite`."""
    return ttsgraph_home() / "responses.sqlite"


class ResponseStore:
    """The SQLite file itself: get/put completions by key. Thread-safe within a process (one
    connection behind a lock) and process-safe through SQLite's own locking."""

    def __init__(self, path: str | Path, busy_timeout_s: float = 60.0):
        self.path = Path(path).expanduser()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                str(self.path), timeout=busy_timeout_s, check_same_thread=False, isolation_level=None
            )
            self._conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise BackendError(f"cannot open response cache {self.path}: {exc}") from exc
        self._lock = threading.Lock()

    def get(self, key: str) -> Completion | None:
        """The stored completion, or None. A read that fails (e.g. the file stayed locked past the
        busy timeout) is a miss with a warning: the cache must never turn a good run into errors."""
        try:
            with self._lock:
                row = self._conn.execute(
                    "SELECT text, prompt_tokens, completion_tokens, seconds FROM responses WHERE key = ?",
                    (key,),
                ).fetchone()
        except sqlite3.Error as exc:
            warnings.warn(f"response cache {self.path}: read failed ({exc}); calling the backend")
            return None
        if row is None:
            return None
        return Completion(text=row[0], prompt_tokens=row[1], completion_tokens=row[2], seconds=row[3], cached=True)

    def put(self, key: str, model: str, sample: int, completion: Completion) -> None:
        # INSERT OR IGNORE: if another process stored this sample first, keep its answer so every
        # reader sees one value per key. A failed write loses only the reuse, not the answer.
        try:
            with self._lock:
                self._conn.execute(
                    "INSERT OR IGNORE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        key,
                        model,
                        sample,
                        completion.text,
                        completion.prompt_tokens,
                        completion.completion_tokens,
                        completion.seconds,
                        time.time(),
                    ),
                )
        except sqlite3.Error as exc:
            warnings.warn(f"response cache {self.path}: write failed ({exc}); the answer is kept but not cached")

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class CachedBackend(BackendBase):
    """Wraps a backend with the response cache. `hits` / `misses` count lookups; a miss is a real
    backend call. Concurrent identical requests (same sample) inside one process share one call."""

    def __init__(self, inner: Backend, path: str | Path | None = None,
                 identities: Mapping[str, Identity] | None = None):
        self.inner = inner
        self.store = ResponseStore(path if path is not None else default_cache_path())
        self.hits = 0
        self.misses = 0
        self._inflight: dict[str, asyncio.Future[Completion]] = {}
        self._identities = dict(identities or {})  # model -> what serves it (llm/identity.py)

    async def _key(self, model: str, messages: list[Message], params: SamplingParams, sample: int) -> str:
        """The sample key of the model *as bound*: its binding's identity is part of it, so a model
        re-bound to another server or file misses, and replicas (same identity) share entries."""
        identity = self._identities.get(model)
        if callable(identity):  # a file digest: computed once, off the event loop
            identity = self._identities[model] = await asyncio.to_thread(identity)
        return sample_key(f"{model}|{identity}" if identity else model, messages, params, sample)

    async def complete(
        self, model: str, messages: list[Message], params: SamplingParams, sample: int = 0
    ) -> Completion:
        key = await self._key(model, messages, params, sample)
        hit = self.store.get(key)
        if hit is not None:
            self.hits += 1
            return hit
        pending = self._inflight.get(key)
        if pending is not None:
            done = await asyncio.shield(pending)
            self.hits += 1
            return Completion(done.text, done.prompt_tokens, done.completion_tokens, done.seconds, cached=True)
        fut: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        self.misses += 1
        try:
            result = await self.inner.complete(model, messages, params, sample)
            if not result.text.strip():
                raise BackendError("empty reply", model=model)
            self.store.put(key, model, sample, result)
            fut.set_result(result)
            return result
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: waiters (if any) re-raise it themselves
            raise
        finally:
            del self._inflight[key]

    async def stream(
        self, model: str, messages: list[Message], params: SamplingParams, sample: int = 0
    ) -> AsyncIterator[str | Completion]:
        """A hit (or an identical call already in flight) comes as one piece; a miss streams from
        the wrapped backend and stores the assembled `Completion`, the same entry `complete` makes."""
        key = await self._key(model, messages, params, sample)
        if self.store.get(key) is not None or key in self._inflight:
            done = await self.complete(model, messages, params, sample)
            yield done.text
            yield done
            return
        self.misses += 1
        result: Completion | None = None
        async for event in self.inner.stream(model, messages, params, sample):
            if isinstance(event, Completion):
                result = event
            else:
                yield event
        if result is None or not result.text.strip():
            raise BackendError("empty reply", model=model)
        self.store.put(key, model, sample, result)
        yield result

    async def aclose(self) -> None:
        """Close the cache file and the wrapped backend."""
        self.store.close()
        await self.inner.aclose()
