"""A stub OpenAI-compatible server on 127.0.0.1 that replies as scripted: for fault tests only.

It is no model: each request gets the next scripted (status, payload, delay) entry (the last one
repeats), where the payload is a JSON-able reply, raw `bytes` (sent as text/html), or `DROP` (the
connection is closed without a reply). `FAULTS` scripts every fault a real server or proxy has been
seen to produce (HTTP 500, 429, 503, 400, an empty reply, a body that is not JSON, an HTML page, a
hang past the timeout, a dropped connection). Real serving is tested against llama.cpp's server
(tests/conftest.py).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DROP = object()  # payload: close the connection without replying
INVALID_JSON = b'{"choices": [{"message": '  # a 200 cut mid-body


def chat_reply(text: str | None, prompt_tokens: int = 11, completion_tokens: int = 4) -> dict[str, Any]:
    return {
        "id": "x", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def _error(status: int) -> tuple[int, Any, float]:
    return status, {"error": {"message": f"stub fault {status}"}}, 0.0


# fault -> (script entry, retried?, what the item's error says)
FAULTS: dict[str, tuple[tuple[int, Any, float], bool, str]] = {
    "500": (_error(500), True, "HTTP 500"),
    "429": (_error(429), True, "HTTP 429"),
    "503": (_error(503), True, "HTTP 503"),
    "400": (_error(400), False, "HTTP 400"),
    "empty": ((200, chat_reply(""), 0.0), False, "empty reply"),
    "invalid-json": ((200, ("application/json", INVALID_JSON), 0.0), True, "reply is not JSON"),
    "html": ((200, ("text/html", b"<html><body>502 Bad Gateway</body></html>"), 0.0), True, "reply is not JSON"),
    "hang": ((200, chat_reply("late"), 30.0), True, "timed out"),
    "drop": ((200, DROP, 0.0), True, "connection error"),
}


class Stub:
    """Replies with the scripted (status, payload, delay) entries in order; the last one repeats.
    A payload (content_type, bytes) is sent as is. `requests` / `headers` record what came in."""

    def __init__(self) -> None:
        self.script: list[tuple[int, Any, float]] = []
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.released = threading.Event()  # set on close: ends a delay early
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append({"path": self.path, **body})
                stub.headers.append({k.lower(): v for k, v in self.headers.items()})
                status, payload, delay = stub.respond(self.path, body)
                if delay and stub.released.wait(delay):
                    return
                if payload is DROP:
                    self.close_connection = True
                    self.connection.close()
                    return
                content_type, data = payload if isinstance(payload, tuple) else ("application/json",
                                                                                  json.dumps(payload).encode())
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def respond(self, path: str, body: dict[str, Any]) -> tuple[int, Any, float]:
        """The reply to one request: the next script entry (a subclass may compute it instead)."""
        return self.script[min(len(self.requests) - 1, len(self.script) - 1)]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

