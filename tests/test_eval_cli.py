"""`ttsgraph eval` end to end through its real HTTP path, against a stub OpenAI-compatible server
that computes the arithmetic answers (fast, no model), plus its error handling. The same command on
real models runs in test_llm_local.py / test_llm_server.py (integration)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fault_stub import Stub

ROOT = Path(__file__).resolve().parents[1]
PARALLEL = ROOT / "examples" / "parallel.json"


def answer_of(prompt: str) -> str:
    expr = re.findall(r"What is ([0-9+\-* ]+)\?", prompt)[-1]
    return str(eval(expr, {"__builtins__": {}}))  # digits and + - * only, matched above


class ArithmeticServer(Stub):
    """Answers every chat/completions request with the right number; can fail on demand."""

    def __init__(self) -> None:
        self.fail_model: str | None = None
        super().__init__()

    @property
    def calls(self) -> int:
        return len(self.requests)

    def respond(self, path: str, body: dict[str, Any]) -> tuple[int, Any, float]:
        if body["model"] == self.fail_model:
            return 400, {"error": {"message": "context length exceeded"}}, 0.0
        if path.endswith("/chat/completions"):
            text = f"Answer: {answer_of(body['messages'][-1]['content'])}"
            choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
        else:
            text = f" {answer_of(body['prompt'])}"
            choice = {"index": 0, "finish_reason": "stop", "text": text, "logprobs": None}
        return 200, {"id": "x", "object": "x", "created": 0, "model": body["model"], "choices": [choice],
                     "usage": {"prompt_tokens": 40, "completion_tokens": 5, "total_tokens": 45}}, 0.0


@pytest.fixture
def stub_models(tmp_path: Path) -> Iterator[tuple[ArithmeticServer, Path]]:
    srv = ArithmeticServer()
    toml = tmp_path / "models.toml"
    toml.write_text(
        f'[models."smollm2-135m"]\nbackend = "openai"\nbase_url = "{srv.base_url}"\n\n'
        f'[models."gemma-3-270m"]\nbackend = "openai"\nbase_url = "{srv.base_url}"\n\n'
        '[pool]\nmodels = ["smollm2-135m", "gemma-3-270m"]\n'
    )
    yield srv, toml
    srv.close()


def ttsgraph(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TTSGRAPH_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-c", "from ttsgraph.cli import app; app()", *args],
        capture_output=True, text=True, env=env, timeout=300,
    )


def test_eval_json_traces_and_cache_rerun(stub_models: tuple[ArithmeticServer, Path], tmp_path: Path) -> None:
    srv, toml = stub_models
    cache = tmp_path / "cache.sqlite"
    args = [str(PARALLEL), "--task", "arithmetic", "--limit", "3", "--models", str(toml), "--cache", str(cache), "--json"]
    first = ttsgraph("eval", *args, "--out", str(tmp_path / "run1"), home=tmp_path)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["items"] == 3 and report["accuracy"] == 1.0 and report["errors"] == 0
    assert report["ci"][0] < 1.0 and report["ci"][1] == 1.0
    assert report["backend_calls"] == 12 and report["cache_hits"] == 0 and srv.calls == 12
    assert report["planned_units"] > 0 and report["measured_units"] > 0
    for kind in ("wall", "critical_path", "sequential"):
        assert report["latency"][kind]["p95"] >= report["latency"][kind]["p50"] > 0
    lines = (tmp_path / "run1" / "traces.jsonl").read_text().splitlines()
    assert len(lines) == 3
    trace = json.loads(lines[0])
    assert trace["correct"] and trace["extracted"] == trace["gold"]
    assert {n["id"] for n in trace["nodes"]} == {"a1", "a2", "a3", "out"}
    assert sorted(n["sample"] for n in trace["nodes"] if n["id"] in ("a1", "a3")) == [0, 1]
    assert json.loads((tmp_path / "run1" / "summary.json").read_text())["items"] == 3

    again = ttsgraph("eval", *args, home=tmp_path)
    rerun = json.loads(again.stdout)
    assert (rerun["backend_calls"], rerun["cache_hits"]) == (0, 12) and srv.calls == 12
    assert rerun["accuracy"] == report["accuracy"]

    uncached = ttsgraph("eval", *args, "--no-cache", home=tmp_path)
    assert json.loads(uncached.stdout)["backend_calls"] == 12 and srv.calls == 24


def test_failing_node_is_counted_as_error_not_wrong(stub_models: tuple[ArithmeticServer, Path], tmp_path: Path) -> None:
    srv, toml = stub_models
    srv.fail_model = "gemma-3-270m"
    res = ttsgraph("eval", str(PARALLEL), "--task", "arithmetic", "--limit", "2", "--models", str(toml),
                   "--no-cache", "--json", home=tmp_path)
    assert res.returncode == 3, res.stderr  # every item errored: nothing was scored
    report = json.loads(res.stdout)
    assert report["errors"] == 2 and report["wrong"] == 0 and report["error"].startswith("nothing was scored")
    (reason,) = report["error_reasons"]
    assert "node a2 (gemma-3-270m)" in reason and "HTTP 400" in reason and "context length" in reason


def test_human_output_has_the_summary(stub_models: tuple[ArithmeticServer, Path], tmp_path: Path) -> None:
    _, toml = stub_models
    res = ttsgraph("eval", str(PARALLEL), "--task", "arithmetic", "--limit", "2", "--models", str(toml),
                   "--no-cache", home=tmp_path)
    assert res.returncode == 0, res.stderr
    for needle in ("accuracy", "95% CI", "critical path", "cache hits"):
        assert needle in res.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--task", "arithmetic", "--models", "paper"], "not in pool"),
        (["--task", "no-such-task"], "unknown task"),
        (["--task", "arithmetic", "-o", "digits"], "KEY=VALUE"),
        (["--task", "arithmetic", "-o", "colour=3"], "does not take"),
    ],
)
def test_bad_input_exits_2_with_a_reason(args: list[str], message: str, tmp_path: Path) -> None:
    res = ttsgraph("eval", str(PARALLEL), *args, home=tmp_path)
    assert res.returncode == 2 and message in res.stderr and res.stdout == ""


def test_bad_graph_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "g.json"
    bad.write_text('{"nodes": [{"id": "a", "model": "smollm2-135m"}], "edges": [["a", "zz"]]}')
    res = ttsgraph("eval", str(bad), "--task", "arithmetic", home=tmp_path)
    assert res.returncode == 2 and "g.json" in res.stderr


def test_missing_api_key_fails_before_any_call(stub_models: tuple[ArithmeticServer, Path], tmp_path: Path) -> None:
    srv, _ = stub_models
    toml = tmp_path / "keyed.toml"
    toml.write_text(f'[models."smollm2-135m"]\nbackend = "openai"\nbase_url = "{srv.base_url}"\n'
                    'api_key_env = "TTSGRAPH_NO_SUCH_KEY"\n')
    single = ROOT / "examples" / "single.json"
    res = ttsgraph("eval", str(single), "--task", "arithmetic", "--models", str(toml), "--limit", "1", home=tmp_path)
    assert res.returncode == 2 and "TTSGRAPH_NO_SUCH_KEY" in res.stderr and srv.calls == 0
