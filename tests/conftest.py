"""Shared fixtures.

`llama_server` (session scope) starts one real llama-cpp-python OpenAI-compatible server on
127.0.0.1 with the embedded SmolLM2 GGUF on a free port, and stops it after the session; the model
is served under the name `smollm2-135m`. `llama_server_factory` starts extra servers a test owns
(e.g. one it kills on purpose). `bind_to_server(pool, server)` points a pool's model at a server.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LlamaServer:
    """A running `python -m llama_cpp.server` child process."""

    process: subprocess.Popen[bytes]
    port: int
    alias: str
    log_path: Path
    model_path: Path
    args: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """Kill at once (SIGKILL), as a crash would."""
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def smollm2_gguf() -> Path:
    from ttsgraph.llm.local import smollm2_path

    return smollm2_path()


def start_llama_server(
    model_path: Path | None = None,
    alias: str = "smollm2-135m",
    port: int | None = None,
    n_threads: int = 1,
    extra_args: tuple[str, ...] = (),
    ready_timeout: float = 180.0,
) -> LlamaServer:
    """Start a llama-cpp-python server and wait until `/v1/models` answers."""
    model_path = model_path or smollm2_gguf()
    port = port or free_port()
    log_path = Path(tempfile.mkdtemp(prefix="ttsgraph-llama-server-")) / "server.log"
    args = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model_path),
        "--model_alias", alias,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", "2048",
        "--n_threads", str(n_threads),
        *extra_args,
    ]
    log = open(log_path, "wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    server = LlamaServer(proc, port, alias, log_path, model_path, args)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.base_url}/models", timeout=2) as resp:
                data = json.loads(resp.read())
                if resp.status == 200 and data.get("data"):
                    return server
        except (urllib.error.URLError, ConnectionError, OSError, ValueError):
            pass
        time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"llama_cpp.server not ready after {ready_timeout}s:\n{server.log_tail()}")


@pytest.fixture(scope="session")
def llama_server() -> Iterator[LlamaServer]:
    """One real OpenAI-compatible server (SmolLM2 as `smollm2-135m`) for the whole session."""
    server = start_llama_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def llama_server_factory() -> Iterator[Callable[..., LlamaServer]]:
    """Start servers this test owns (same arguments as `start_llama_server`); all are stopped after."""
    started: list[LlamaServer] = []

    def make(**kwargs: object) -> LlamaServer:
        server = start_llama_server(**kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server

    try:
        yield make
    finally:
        for server in started:
            server.stop()


def bind_to_server(pool, server: LlamaServer, model: str = "smollm2-135m"):  # type: ignore[no-untyped-def]
    """A copy of `pool` where `model` is served by `server` over HTTP (no API key)."""
    from ttsgraph.models import Binding, with_binding

    return with_binding(pool, model, Binding("openai", base_url=server.base_url, served_name=server.alias))


@pytest.fixture
def bind_server() -> Callable[..., object]:
    """`bind_to_server` as a fixture (test modules cannot import conftest under importlib mode)."""
    return bind_to_server


@pytest.fixture
def server_pool(llama_server: LlamaServer):  # type: ignore[no-untyped-def]
    """The local pool restricted to SmolLM2, served by the session's llama server."""
    from dataclasses import replace

    from ttsgraph.models import load_pool

    pool = bind_to_server(load_pool("local"), llama_server)
    return replace(pool, models=["smollm2-135m"])

