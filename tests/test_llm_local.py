"""The embedded llama.cpp backend with the real SmolLM2 and Gemma models (integration)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ttsgraph.errors import BackendError
from ttsgraph.executor import Executor, summarize
from ttsgraph.graph import parallel
from ttsgraph.llm.base import SamplingParams
from ttsgraph.llm.local import LocalBackend, gemma_path, prepare_gemma
from ttsgraph.llm.router import build_backend
from ttsgraph.models import load_pool
from ttsgraph.tasks import load_task

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
Q = [{"role": "system", "content": "Reply with 'Answer: ' followed by the number."},
     {"role": "user", "content": "What is 3 + 4?"}]


@pytest.fixture(scope="module")
def local() -> LocalBackend:
    return LocalBackend()


def test_both_models_answer_with_tokens_and_repeat_per_sample(local: LocalBackend) -> None:
    async def go() -> None:
        for model in ("smollm2-135m", "gemma-3-270m"):
            params = SamplingParams(max_tokens=8, temperature=0.1)
            a = await local.complete(model, Q, params, 0)
            b = await local.complete(model, Q, params, 0)
            assert a.text.strip() and a.prompt_tokens > 5 and 0 < a.completion_tokens <= 8
            assert a.seconds > 0
            assert (a.text, a.completion_tokens) == (b.text, b.completion_tokens)  # same request + sample

    asyncio.run(go())


def test_different_samples_differ_at_high_temperature(local: LocalBackend) -> None:
    async def go() -> list[str]:
        params = SamplingParams(max_tokens=6, temperature=1.5)
        return [(await local.complete("smollm2-135m", Q, params, s)).text for s in range(3)]

    texts = asyncio.run(go())
    assert len(set(texts)) > 1


def test_two_models_in_flight_do_not_block_the_loop(local: LocalBackend) -> None:
    async def go() -> tuple[int, list]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        t = asyncio.create_task(ticker())
        params = SamplingParams(max_tokens=8)
        outs = await asyncio.gather(local.complete("smollm2-135m", Q, params, 5),
                                    local.complete("gemma-3-270m", Q, params, 5))
        t.cancel()
        return ticks, outs

    ticks, outs = asyncio.run(go())
    assert all(o.text for o in outs)
    assert ticks > 5  # the event loop kept running while the models computed


def test_oversized_prompt_is_a_backend_error_with_the_reason(local: LocalBackend) -> None:
    huge = [{"role": "user", "content": "seven " * 3000}]
    with pytest.raises(BackendError, match="context window"):
        asyncio.run(local.complete("smollm2-135m", huge, SamplingParams(max_tokens=4)))


def test_prepare_is_idempotent() -> None:
    path = prepare_gemma()
    assert path == gemma_path() and path.stat().st_size > 100_000_000
    mtime = path.stat().st_mtime
    assert prepare_gemma() == path and path.stat().st_mtime == mtime
    res = subprocess.run([sys.executable, "-m", "ttsgraph.llm.local", "--prepare", "--json"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["smollm2-135m"]["ok"] and report["gemma-3-270m"]["ok"]


def test_executor_on_the_embedded_pool(tmp_path: Path) -> None:
    pool = load_pool("local")
    task = load_task("arithmetic")
    backend = build_backend(pool, tmp_path / "c.sqlite")
    ex = Executor(backend, pool, task, params=SamplingParams(max_tokens=16))
    g = parallel(2, ["smollm2-135m", "gemma-3-270m"], output_model="smollm2-135m")
    results = asyncio.run(ex.run_items(g, task.items("search")[:2]))
    assert all(r.error is None for r in results), [r.error for r in results]
    for r in results:
        assert r.output_text and r.measured_flops > 0
        assert all(n.completion_tokens > 0 and not n.cached for n in r.nodes)
    s = summarize(results, g, pool, task)
    assert s.backend_calls == 6 and s.cache_hits == 0 and s.errors == 0


def test_eval_command_on_the_embedded_default(tmp_path: Path) -> None:
    """The README's first command, shortened: the parallel example on arithmetic, local models."""
    args = [sys.executable, "-c", "from ttsgraph.cli import app; app()", "eval", str(ROOT / "examples" / "parallel.json"),
            "--task", "arithmetic", "--limit", "2", "--max-tokens", "16", "--cache", str(tmp_path / "c.sqlite"),
            "--out", str(tmp_path / "run"), "--json"]
    first = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["items"] == 2 and report["errors"] == 0 and report["backend_calls"] == 8
    assert 0.0 <= report["accuracy"] <= 1.0 and report["measured_units"] > 0
    rerun = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    second = json.loads(rerun.stdout)
    assert second["backend_calls"] == 0 and second["cache_hits"] == 8
    assert second["accuracy"] == report["accuracy"]
