"""`ttsgraph serve` with real models: the embedded llama.cpp models in-process, and a real
llama-cpp-python server behind the OpenAI-compatible backend; called with the `openai` client."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from ttsgraph.config import BackendSettings, Sampling
from ttsgraph.graph import Graph, Node, parallel
from ttsgraph.graph_io import save_graph
from ttsgraph.llm.base import Completion, SamplingParams
from ttsgraph.llm.llama_server import free_port
from ttsgraph.serve import ServeOptions, create_app, prepare
from ttsgraph.serve.runner import ServerThread

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
KEY_ENV = "TTSGRAPH_TEST_SERVE_KEY"
MODELS_TOML = """
[models."ghost"]
like = "smollm2-135m"
backend = "local"
file = "/nonexistent/ghost.gguf"

[pool]
models = ["smollm2-135m", "gemma-3-270m", "ghost"]
reference = "smollm2-135m"
output = "smollm2-135m"
"""
Q = [{"role": "user", "content": "What is 2+3?"}]


def _server(tmp: Path, **kw: object) -> ServerThread:
    (tmp / "models.toml").write_text(MODELS_TOML)
    broken = Graph([Node("g", "ghost", "assistant"), Node("out", "smollm2-135m", "assistant")], [("g", "out")], "out")
    save_graph(broken, tmp / "broken.json")
    save_graph(parallel(2, "smollm2-135m"), tmp / "duo.json")  # SmolLM2 only: Gemma (a base model) may reply nothing
    options = ServeOptions(
        graphs=[str(ROOT / "examples/parallel.json"), str(ROOT / "examples/single.json"), str(tmp / "broken.json"),
                str(tmp / "duo.json")],
        models=str(tmp / "models.toml"), sampling=Sampling(max_tokens=16),
        backend=BackendSettings(cache=str(tmp / "cache.sqlite")), **kw)  # type: ignore[arg-type]
    return ServerThread(create_app(prepare(options)))


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    mp = pytest.MonkeyPatch()
    mp.setenv(KEY_ENV, "k")
    with _server(tmp_path_factory.mktemp("embedded"), api_key_env=KEY_ENV, max_concurrency=1, queue=1,
                 request_timeout=120.0) as server:
        yield server
    mp.undo()


def client(server: ServerThread, key: str = "k") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)


def test_plain_completion(embedded: ServerThread) -> None:
    reply = client(embedded).chat.completions.create(model="parallel", messages=Q, seed=1)
    assert reply.choices[0].message.content.strip()
    nodes = reply.model_extra["ttsgraph"]["choices"][0]["nodes"]
    assert {n["model"] for n in nodes} == {"smollm2-135m", "gemma-3-270m"} and len(nodes) == 4
    assert reply.usage.total_tokens == sum(n["prompt_tokens"] + n["completion_tokens"] for n in nodes) > 0


def test_streaming_sends_tokens_as_generated_and_usage(embedded: ServerThread) -> None:
    started = time.perf_counter()
    arrivals: list[tuple[float, object]] = []
    for chunk in client(embedded).chat.completions.create(model="parallel", messages=Q, seed=2, stream=True,
                                                           stream_options={"include_usage": True}):
        arrivals.append((time.perf_counter() - started, chunk))
    content = [(t, c) for t, c in arrivals if c.choices and c.choices[0].delta.content]  # type: ignore[attr-defined]
    assert len(content) >= 2  # several content chunks before the last one
    last = arrivals[-1][1]
    assert last.choices == [] and last.usage.completion_tokens > 0  # type: ignore[attr-defined]
    ttft = last.model_extra["ttsgraph"]["time_to_first_token_seconds"]  # type: ignore[attr-defined]
    assert content[0][0] < content[-1][0] and ttft < arrivals[-1][0]


def test_n_two_choices(embedded: ServerThread) -> None:
    reply = client(embedded).chat.completions.create(model="single", messages=Q, n=2, seed=3, temperature=0.9)
    assert [c.index for c in reply.choices] == [0, 1] and all(c.message.content for c in reply.choices)


def test_seed_reproduces_from_the_cache(embedded: ServerThread) -> None:
    def ask():  # type: ignore[no-untyped-def]
        return client(embedded).chat.completions.create(model="duo", messages=Q, seed=4, temperature=0.9)

    first, second = ask(), ask()
    assert first.choices[0].message.content == second.choices[0].message.content
    assert all(n["cached"] for n in second.model_extra["ttsgraph"]["choices"][0]["nodes"])


def test_errors_raise_the_clients_exceptions(embedded: ServerThread) -> None:
    with pytest.raises(openai.BadRequestError):
        client(embedded).chat.completions.create(model="parallel", messages=Q, temperature=5)
    with pytest.raises(openai.AuthenticationError):
        client(embedded, key="bad").chat.completions.create(model="parallel", messages=Q)
    with pytest.raises(openai.NotFoundError):
        client(embedded).chat.completions.create(model="missing", messages=Q)
    with pytest.raises(openai.InternalServerError) as info:
        client(embedded).chat.completions.create(model="broken", messages=Q)
    assert info.value.status_code == 502 and "node g (ghost)" in info.value.message


def test_overload_is_429_and_admitted_requests_complete(embedded: ServerThread) -> None:
    done: list[object] = []

    def long(seed: int) -> None:
        done.append(client(embedded).chat.completions.create(model="duo", messages=Q, max_tokens=48, seed=seed))

    threads = [threading.Thread(target=long, args=(10 + k,)) for k in range(2)]  # one runs, one waits (queue 1)
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while "ttsgraph_graphs_queued 1.0" not in _metrics(embedded).splitlines():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    with pytest.raises(openai.RateLimitError):
        client(embedded).chat.completions.create(model="duo", messages=Q)
    for t in threads:
        t.join()
    assert len(done) == 2 and all(d.choices[0].message.content for d in done)  # type: ignore[attr-defined]


def _metrics(server: ServerThread) -> str:
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as resp:
        return "\n".join(line for line in resp.read().decode().splitlines() if not line.startswith("#"))


def test_timeout_is_504(tmp_path: Path) -> None:
    with _server(tmp_path, request_timeout=0.2) as server, pytest.raises(openai.InternalServerError) as info:
        client(server).chat.completions.create(model="parallel", messages=Q)
    assert info.value.status_code == 504


def test_local_stream_matches_complete_and_cancel_frees_the_model() -> None:
    from ttsgraph.llm.local import LocalBackend

    params = SamplingParams(temperature=0.8, max_tokens=24)

    async def main() -> None:
        async with LocalBackend() as backend:
            plain = await backend.complete("smollm2-135m", Q, params, 5)
            pieces: list[str] = []
            final = None
            async for event in backend.stream("smollm2-135m", Q, params, 5):
                if isinstance(event, Completion):
                    final = event
                else:
                    pieces.append(event)
            assert final is not None and len(pieces) >= 2
            assert (final.text, final.prompt_tokens, final.completion_tokens) == (
                plain.text, plain.prompt_tokens, plain.completion_tokens)
            long = asyncio.ensure_future(backend.complete("smollm2-135m", Q, SamplingParams(max_tokens=1500), 6))
            await asyncio.sleep(0.5)
            long.cancel()
            started = time.perf_counter()
            await backend.complete("smollm2-135m", Q, SamplingParams(max_tokens=4), 7)
            assert time.perf_counter() - started < 5.0  # the cancelled call stopped, it did not run 1500 tokens

    asyncio.run(main())


def test_serve_in_front_of_a_llama_cpp_server(llama_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "models.toml").write_text(
        f'[models."smollm2-135m"]\nbackend = "openai"\nbase_url = "{llama_server.base_url}"\n'
        f'served_name = "{llama_server.alias}"\n\n[pool]\nmodels = ["smollm2-135m"]\n')
    save_graph(parallel(2, "smollm2-135m"), tmp_path / "pair.json")
    options = ServeOptions(graphs=[str(tmp_path / "pair.json")], models=str(tmp_path / "models.toml"),
                           sampling=Sampling(max_tokens=16), backend=BackendSettings(no_cache=True))
    with ServerThread(create_app(prepare(options))) as server:
        with urllib.request.urlopen(server.url + "/ready", timeout=10) as resp:
            assert json.loads(resp.read())["ready"] is True
        c = client(server)
        reply = c.chat.completions.create(model="pair", messages=Q, seed=1)
        assert reply.choices[0].message.content and reply.usage.completion_tokens > 0
        chunks = list(c.chat.completions.create(model="pair", messages=Q, seed=1, stream=True,
                                                stream_options={"include_usage": True}))
        content = [ch.choices[0].delta.content for ch in chunks if ch.choices and ch.choices[0].delta.content]
        assert len(content) >= 2 and chunks[-1].usage.total_tokens > 0
        assert "".join(content).strip() == reply.choices[0].message.content


def test_cli_serves_and_sigterm_lets_the_request_in_flight_finish(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from ttsgraph.cli import app; app()", "serve", str(ROOT / "examples/single.json"),
         "--models", "local", "--port", str(port), "--max-tokens", "16", "--cache", str(tmp_path / "c.sqlite")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/health", timeout=1).read()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        result: list[object] = []
        t = threading.Thread(target=lambda: result.append(openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
                                                          .chat.completions.create(model="single", messages=Q, max_tokens=64)))
        t.start()
        time.sleep(0.3)  # the request is in flight (the model is still loading)
        proc.send_signal(signal.SIGTERM)
        t.join(timeout=60)
        assert result and result[0].choices[0].message.content  # type: ignore[attr-defined]
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has drained
        log = proc.stdout.read().decode() if proc.stdout else ""
        assert "request id=chatcmpl-" in log and "model=single status=200" in log
    finally:
        if proc.poll() is None:
            proc.kill()


_CLOSE_MID_GENERATION = """
import asyncio, time
from ttsgraph.llm.base import SamplingParams
from ttsgraph.llm.local import LocalBackend

async def main():
    backend = LocalBackend()
    await backend.complete("smollm2-135m", [{"role": "user", "content": "Hi"}], SamplingParams(max_tokens=2))
    long = asyncio.ensure_future(backend.complete(
        "smollm2-135m", [{"role": "user", "content": "Write a long story."}], SamplingParams(max_tokens=1500), 1))
    await asyncio.sleep(0.5)
    long.cancel()  # as a timed-out request is: its worker thread is still generating
    await backend.aclose()
    time.sleep(1.0)
    print("closed")

asyncio.run(main())
"""


def test_closing_the_local_backend_mid_generation_waits_for_the_thread() -> None:
    # A server stopped while a timed-out request still generated freed the model under the worker
    # thread and the process died of a segfault; run in a child so a crash is a failure, not a stop.
    done = subprocess.run([sys.executable, "-c", _CLOSE_MID_GENERATION], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "closed" in done.stdout, (done.returncode, done.stderr[-2000:])
