"""A real OpenAI-compatible llama.cpp server on 127.0.0.1, started as a child process.

Tests (the `llama_server` fixtures) and the benchmark scripts (`bench/executor.py`) need the same
thing: `python -m llama_cpp.server` with an embedded GGUF on a free port, ready when `/v1/models`
answers, stopped (or killed, as a crash would) afterwards. One launcher, importable from both
without path tricks; it needs the `local` extra (llama-cpp-python[server]).
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
from dataclasses import dataclass, field
from pathlib import Path

from ttsgraph.errors import TtsGraphError


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


def start_llama_server(
    model_path: Path | None = None,
    alias: str = "smollm2-135m",
    port: int | None = None,
    n_threads: int = 1,
    extra_args: tuple[str, ...] = (),
    ready_timeout: float = 180.0,
) -> LlamaServer:
    """Start a llama-cpp-python server (default model: the embedded SmolLM2 GGUF, served as
    `alias`) and wait until `/v1/models` answers; raises TtsGraphError with the log's tail if it
    exits or is not ready in time."""
    if model_path is None:
        from ttsgraph.llm.local import smollm2_path

        model_path = smollm2_path()
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
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = LlamaServer(proc, port, alias, log_path, model_path, args)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise TtsGraphError(f"llama_cpp.server exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.base_url}/models", timeout=2) as resp:
                data = json.loads(resp.read())
                if resp.status == 200 and data.get("data"):
                    return server
        except (urllib.error.URLError, ConnectionError, OSError, ValueError):
            pass
        time.sleep(0.3)
    server.stop()
    raise TtsGraphError(f"llama_cpp.server not ready after {ready_timeout}s:\n{server.log_tail()}")


__all__ = ["LlamaServer", "free_port", "start_llama_server"]
