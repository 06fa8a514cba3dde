"""Shared fixtures.

`llama_server` (session scope) starts one real llama-cpp-python OpenAI-compatible server on
127.0.0.1 with the embedded SmolLM2 GGUF on a free port (`ttsgraph.llm.llama_server`, the launcher
bench scripts use too), and stops it after the session; the model is served under the name
`smollm2-135m`. `llama_server_factory` starts extra servers a test owns (e.g. one it kills on
purpose). `bind_to_server(pool, server)` points a pool's model at a server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from ttsgraph.llm.llama_server import LlamaServer, start_llama_server


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

