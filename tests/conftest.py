"""Shared fixtures.

`llama_server` (session scope) starts one real llama-cpp-python OpenAI-compatible server on
127.0.0.1 with the embedded SmolLM2 GGUF on a free port (`ttsgraph.llm.llama_server`, the launcher
bench scripts use too), and stops it after the session; the model is served under the name
`smollm2-135m`. `llama_server_factory` starts extra servers a test owns (e.g. one it kills on
purpose). `bind_to_server(pool, server)` points a pool's model at a server.

`missing_sandbox(kind, why)` is how a test reacts to a sandbox that does not work here: a skip
(with the reason, which `-rs` prints) on a developer's machine, a failure where the sandbox is
expected — in CI (`CI` set, as `.ci/run` runs: `scripts/setup.sh` installs bubblewrap and
util-linux brings `unshare`) both are, or as `TTSGRAPH_EXPECT_SANDBOXES=bwrap,unshare` lists.
Otherwise a CI machine without bubblewrap would skip every sandbox test and still pass.

Nothing a test run writes lands in the checkout: files go to pytest's temporary directories, and
Hypothesis keeps its examples and caches there too (by default it creates `.hypothesis/` in the
working directory).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator

import pytest
from hypothesis import configuration, settings

from ttsgraph.llm.llama_server import LlamaServer, start_llama_server

settings.register_profile("ttsgraph", database=None)
settings.load_profile("ttsgraph")


_HYPOTHESIS_HOME: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    """Hypothesis's storage (its constants cache, written while test modules are collected) in a
    temporary directory removed at the end, not `.hypothesis/` in the checkout."""
    _HYPOTHESIS_HOME.append(tempfile.mkdtemp(prefix="ttsgraph-hypothesis-"))
    configuration.set_hypothesis_home_dir(_HYPOTHESIS_HOME[-1])


def pytest_unconfigure(config: pytest.Config) -> None:
    while _HYPOTHESIS_HOME:
        shutil.rmtree(_HYPOTHESIS_HOME.pop(), ignore_errors=True)


@pytest.fixture(scope="module")
def pool():  # type: ignore[no-untyped-def]
    """The embedded local pool (SmolLM2-135M, Gemma-3-270M): a description, nothing is loaded."""
    from ttsgraph.models import load_pool

    return load_pool("local")


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



SANDBOXES = ("bwrap", "unshare")


def expected_sandboxes() -> set[str]:
    """The sandboxes that must work here (see the module docstring)."""
    listed = os.environ.get("TTSGRAPH_EXPECT_SANDBOXES")
    if listed is not None:
        return {k.strip() for k in listed.split(",") if k.strip()}
    in_ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    return set(SANDBOXES) if in_ci else set()


@pytest.fixture
def missing_sandbox() -> Callable[[str, str], None]:
    """`missing(kind, why)`: skip, or fail when `kind` ("bwrap", "unshare", or "any" for a test
    that needs one of them) is expected to work here."""

    def missing(kind: str, why: str) -> None:
        expected = expected_sandboxes()
        if (kind == "any" and expected) or kind in expected:
            pytest.fail(f"the {kind} sandbox is expected to work here but does not: {why}", pytrace=False)
        pytest.skip(f"the {kind} sandbox does not work here: {why}")

    return missing


@pytest.fixture
def scripted_cli(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """The CLI run in `tmp_path` over a ScriptedBackend: `scripted_cli(respond)` gives
    `invoke(*args, code=0)`, which asserts the exit code and returns Click's result."""
    from typer.testing import CliRunner

    import ttsgraph.runtime as runtime
    from ttsgraph.cli import app
    from ttsgraph.llm.fake import ScriptedBackend
    from ttsgraph.llm.router import build_backend as real_build

    def make(respond: Callable[..., str]) -> Callable[..., object]:
        monkeypatch.setattr(runtime, "build_backend", lambda pool, cache, *a, **k: real_build(
            pool, cache, fake=ScriptedBackend(respond)))
        monkeypatch.setattr(runtime, "check_bindings", lambda *a, **k: None)
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("TTSGRAPH_HOME", str(tmp_path / "home"))
        runner = CliRunner()

        def invoke(*args: str, code: int = 0):  # type: ignore[no-untyped-def]
            result = runner.invoke(app, list(args))
            assert result.exit_code == code, f"exit {result.exit_code}\n{result.output}\n{result.stderr}"
            return result

        return invoke

    return make
