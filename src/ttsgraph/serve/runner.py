"""Run a server in a background thread of this process (tests, the bench, notebooks).

`ttsgraph serve` runs uvicorn in the main thread with its signal handling; embedding needs the
same server on a thread of its own, started on a free port and stopped cleanly (in-flight requests
finish, then the lifespan closes the backends).
"""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Self

import uvicorn
from fastapi import FastAPI

from ttsgraph.llm.llama_server import free_port


class ServerThread:
    """`with ServerThread(app) as server:` → `server.base_url` (…/v1) until the block ends."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int | None = None, start_timeout: float = 60.0):
        self.host, self.port = host, port or free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=self.port, log_level="warning",
                                                    timeout_graceful_shutdown=30))
        self._thread = threading.Thread(target=self.server.run, name="ttsgraph-serve", daemon=True)
        self._start_timeout = start_timeout

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + self._start_timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on {self.url} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=60)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
