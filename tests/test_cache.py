"""The SQLite response cache: hits and misses, sample independence, no cached errors, and several
processes writing one file at once."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import sqlite3
from pathlib import Path

import pytest

from ttsgraph.errors import BackendError
from ttsgraph.llm.base import SamplingParams
from ttsgraph.llm.cache import CachedBackend, ResponseStore, default_cache_path
from ttsgraph.llm.fake import ScriptedBackend

MSGS = [{"role": "user", "content": "What is 1 + 1?"}]


def test_hit_returns_cached_copy_and_skips_backend(tmp_path: Path) -> None:
    inner = ScriptedBackend(lambda m, msgs, s: f"answer-{s}", delay=0.01)

    async def go() -> None:
        cache = CachedBackend(inner, tmp_path / "c.sqlite")
        first = await cache.complete("m", MSGS, SamplingParams(), 0)
        again = await cache.complete("m", MSGS, SamplingParams(), 0)
        other = await cache.complete("m", MSGS, SamplingParams(), 1)
        assert not first.cached and again.cached and not other.cached
        assert again.text == first.text == "answer-0" and other.text == "answer-1"
        # the original call's time and tokens are kept
        assert again.seconds == pytest.approx(first.seconds)
        assert again.completion_tokens == first.completion_tokens
        assert (cache.hits, cache.misses) == (1, 2)
        await cache.aclose()

    asyncio.run(go())
    assert len(inner.calls) == 2
    # a new process-like reader sees the same rows
    assert len(ResponseStore(tmp_path / "c.sqlite")) == 2


def test_params_are_part_of_the_key(tmp_path: Path) -> None:
    inner = ScriptedBackend(lambda m, msgs, s: "x")

    async def go() -> None:
        cache = CachedBackend(inner, tmp_path / "c.sqlite")
        await cache.complete("m", MSGS, SamplingParams(max_tokens=5))
        await cache.complete("m", MSGS, SamplingParams(max_tokens=6))
        await cache.complete("m2", MSGS, SamplingParams(max_tokens=5))
        assert cache.hits == 0

    asyncio.run(go())
    assert len(inner.calls) == 3


def test_errors_are_never_cached(tmp_path: Path) -> None:
    outcomes = [BackendError("server down", model="m"), "recovered"]
    inner = ScriptedBackend(lambda m, msgs, s: outcomes.pop(0))

    async def go() -> None:
        cache = CachedBackend(inner, tmp_path / "c.sqlite")
        with pytest.raises(BackendError, match="server down"):
            await cache.complete("m", MSGS, SamplingParams())
        ok = await cache.complete("m", MSGS, SamplingParams())
        assert ok.text == "recovered" and not ok.cached

    asyncio.run(go())
    assert len(inner.calls) == 2


def test_concurrent_identical_requests_share_one_call(tmp_path: Path) -> None:
    inner = ScriptedBackend(lambda m, msgs, s: "shared", delay=0.05)

    async def go() -> None:
        cache = CachedBackend(inner, tmp_path / "c.sqlite")
        results = await asyncio.gather(*(cache.complete("m", MSGS, SamplingParams(), 0) for _ in range(4)))
        assert [r.text for r in results] == ["shared"] * 4
        assert sum(not r.cached for r in results) == 1

    asyncio.run(go())
    assert len(inner.calls) == 1


def test_wal_mode_and_default_path_honours_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ResponseStore(tmp_path / "w.sqlite")
    mode = sqlite3.connect(tmp_path / "w.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode.lower() == "wal"
    monkeypatch.setenv("TTSGRAPH_HOME", str(tmp_path / "home"))
    assert default_cache_path() == tmp_path / "home" / "responses.sqlite"


def test_unwritable_cache_path_is_a_backend_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(BackendError, match="cannot open response cache"):
        ResponseStore(blocker / "sub" / "c.sqlite")


def _writer(path: str, worker: int, n: int) -> None:
    async def go() -> None:
        cache = CachedBackend(ScriptedBackend(lambda m, msgs, s: f"w{worker}-s{s}"), path)
        for s in range(n):
            # every worker writes its own samples and also the shared sample 0 of the same request
            await cache.complete("m", [{"role": "user", "content": f"q{worker}"}], SamplingParams(), s)
            await cache.complete("m", MSGS, SamplingParams(), 0)
        await cache.aclose()

    asyncio.run(go())


def test_several_processes_share_one_file(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 25)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    store = ResponseStore(path)
    assert len(store) == 4 * 25 + 1  # the shared request was stored exactly once
    rows = sqlite3.connect(path).execute("SELECT text FROM responses WHERE text LIKE 'w%-s0'").fetchall()
    assert len(rows) == 5  # 4 own sample-0 rows + one shared


def test_a_locked_cache_degrades_to_misses_not_errors(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite"
    inner = ScriptedBackend(lambda m, msgs, s: "fine")

    async def go() -> None:
        cache = CachedBackend(inner, path)
        cache.store._conn.execute("PRAGMA busy_timeout=50")
        blocker = sqlite3.connect(path, timeout=0.05, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        with pytest.warns(UserWarning, match="write failed"):
            out = await cache.complete("m", MSGS, SamplingParams())
        assert out.text == "fine" and not out.cached
        blocker.execute("ROLLBACK")
        blocker.close()
        again = await cache.complete("m", MSGS, SamplingParams())
        assert not again.cached  # it was never stored, so it is asked again
        assert (await cache.complete("m", MSGS, SamplingParams())).cached

    asyncio.run(go())
    assert len(inner.calls) == 2
