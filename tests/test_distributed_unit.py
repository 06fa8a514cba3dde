"""The Ray executor's pieces that need no cluster: the actor's reply protocol, the config and
flags, and that nothing imports Ray unless a run asks for it (the real cluster: test_distributed.py)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from ttsgraph.config import make_config, resume_config
from ttsgraph.distributed.ray_backend import is_loopback
from ttsgraph.distributed.worker import ModelWorker, decode_reply
from ttsgraph.errors import BackendError, TtsGraphError
from ttsgraph.llm.base import SamplingParams
from ttsgraph.models import ModelSpec, ModelPool


def test_an_actor_reports_a_backend_failure_as_the_same_backend_error() -> None:
    spec = ModelSpec("m", "x", 0.1, 100.0, 2, 64, binding=None)
    worker = ModelWorker(ModelPool("p", ["m"], {"m": spec}, "m", "m"), timeout=1.0, retries=0)
    reply = asyncio.run(worker.complete("m", [{"role": "user", "content": "hi"}], SamplingParams().to_dict(), 0))
    assert reply["ok"] is False and "binding" in reply["reason"]
    with pytest.raises(BackendError) as info:
        decode_reply("m", reply)
    assert info.value.model == "m" and info.value.reason == reply["reason"] and not info.value.retriable
    retriable = {"ok": False, "reason": "HTTP 503", "retriable": True}
    with pytest.raises(BackendError) as info:
        decode_reply("m", retriable)
    assert info.value.retriable


def test_a_good_reply_becomes_an_uncached_completion() -> None:
    c = decode_reply("m", {"ok": True, "text": "42", "prompt_tokens": 5, "completion_tokens": 2, "seconds": 0.5})
    assert (c.text, c.prompt_tokens, c.completion_tokens, c.seconds, c.cached) == ("42", 5, 2, 0.5, False)


@pytest.mark.parametrize(("address", "loopback"), [
    (None, True), ("127.0.0.1:6379", True), ("localhost:1", True), ("[::1]:6379", True), ("127.0.0.2:7", True),
    ("10.0.0.5:6379", False), ("head.example:6379", False), ("auto", False),
])
def test_loopback_addresses(address: str | None, loopback: bool) -> None:
    assert is_loopback(address) is loopback


def test_the_executor_is_validated_and_continuable_on_resume() -> None:
    stored = make_config({"task": "arithmetic"})
    assert stored.executor == "local" and stored.ray_address is None and stored.ray_actors is None
    moved = resume_config(stored, {"executor": "ray", "ray_address": "127.0.0.1:6379", "ray_actors": 2})
    assert (moved.executor, moved.ray_address, moved.ray_actors) == ("ray", "127.0.0.1:6379", 2)
    with pytest.raises(TtsGraphError, match="--executor"):
        make_config({"task": "arithmetic", "executor": "slurm"}, flags={"executor": "slurm"})
    with pytest.raises(TtsGraphError, match="--ray-actors"):
        make_config({"task": "arithmetic", "ray_actors": 0}, flags={"ray_actors": 0})


def test_every_shared_command_takes_the_executor_flags() -> None:
    from typer.testing import CliRunner

    from ttsgraph.cli import app

    for command in ("eval", "search", "profile", "bench"):
        result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, command
        for flag in ("--executor", "--ray-address", "--ray-actors"):
            assert flag in result.output, (command, flag)


def test_bench_passes_the_executor_to_its_runs() -> None:
    from ttsgraph.benchmark import BenchConfig

    cfg = BenchConfig(task="arithmetic", executor="ray", ray_address="auto", ray_actors=3).run_config()
    assert (cfg.executor, cfg.ray_address, cfg.ray_actors) == ("ray", "auto", 3)


def test_nothing_imports_ray_unless_a_run_asks_for_it() -> None:
    code = ("import sys, ttsgraph.cli, ttsgraph.runtime, ttsgraph.distributed.ray_backend, ttsgraph.study;"
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
