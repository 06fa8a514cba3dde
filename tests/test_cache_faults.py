"""The response cache's read-failure path: a cache file that cannot be read (here: its table is
gone, as in a foreign or damaged file) degrades to backend calls with a warning, never to errors."""

from __future__ import annotations

import asyncio
import sqlite3
import warnings
from pathlib import Path

from ttsgraph.llm.base import SamplingParams
from ttsgraph.llm.cache import CachedBackend
from ttsgraph.llm.fake import ScriptedBackend

MSGS = [{"role": "user", "content": "What is 2 + 2?"}]


def test_a_failed_read_is_a_miss_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    inner = ScriptedBackend(lambda m, msgs, s: "Answer: 4")

    async def go() -> None:
        cache = CachedBackend(inner, path)
        assert not (await cache.complete("m", MSGS, SamplingParams())).cached
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("DROP TABLE responses")
        other.close()
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            out = await cache.complete("m", MSGS, SamplingParams())
        assert out.text == "Answer: 4" and not out.cached
        messages = [str(w.message) for w in seen]
        assert any("read failed" in m and "calling the backend" in m for m in messages), messages
        assert cache.misses == 2 and cache.hits == 0

    asyncio.run(go())
    assert len(inner.calls) == 2  # the second request went to the backend
