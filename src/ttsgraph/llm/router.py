"""One backend for a whole pool: each model goes to the backend its binding names.

The executor and the search see a single `Backend`; whether a model runs in-process, behind an
HTTP server or in a test script is the pool's business (models.toml), not theirs. The response
cache wraps the router, so it covers every kind of backend alike.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from ttsgraph.errors import BackendError, UnknownModelError
from ttsgraph.llm.base import Backend, BackendBase, Completion, Message, SamplingParams
from ttsgraph.llm.cache import CachedBackend
from ttsgraph.llm.endpoint_pool import EndpointPool
from ttsgraph.llm.identity import Identity, binding_identity
from ttsgraph.llm.local import LocalBackend, LocalModel, resolve_local_model
from ttsgraph.llm.openai_compat import Endpoint, OpenAICompatBackend
from ttsgraph.models import ModelPool


class RoutedBackend(BackendBase):
    """Sends each model's requests to the backend chosen for it."""

    def __init__(self, routes: dict[str, Backend], unbound: Iterable[str] = ()):
        self.routes = dict(routes)
        self.unbound = set(unbound)

    async def complete(
        self, model: str, messages: list[Message], params: SamplingParams, sample: int = 0
    ) -> Completion:
        return await self._route(model).complete(model, messages, params, sample)

    async def stream(
        self, model: str, messages: list[Message], params: SamplingParams, sample: int = 0
    ) -> AsyncIterator[str | Completion]:
        async for event in self._route(model).stream(model, messages, params, sample):
            yield event

    def _route(self, model: str) -> Backend:
        inner = self.routes.get(model)
        if inner is None:
            if model in self.unbound:
                raise BackendError("has no backend binding: add backend/base_url to the models file", model=model)
            raise UnknownModelError(f"model {model!r} is not in the pool (known: {', '.join(self.routes)})")
        return inner

    async def aclose(self) -> None:
        seen: set[int] = set()
        for inner in self.routes.values():
            if id(inner) in seen:
                continue
            seen.add(id(inner))
            await inner.aclose()


def check_bindings(pool: ModelPool, models: list[str] | None = None) -> None:
    """Fail early, before any call, on what would make every call to a model fail: no binding, or
    an API key variable that is not set. `models` defaults to the whole pool."""
    for name in models if models is not None else pool.models:
        binding = pool.spec(name).binding
        if binding is None:
            raise BackendError("has no backend binding: add backend/base_url to the models file", model=name)
        if binding.kind == "openai" and binding.api_key_env and not os.environ.get(binding.api_key_env):
            raise BackendError(
                f"environment variable {binding.api_key_env} (the API key for "
                f"{binding.base_url or ', '.join(e.base_url for e in binding.endpoints)}) is not set",
                model=name,
            )


def build_backend(
    pool: ModelPool,
    cache: Path | str | None = None,
    fake: Backend | None = None,
    *,
    timeout: float = 600.0,
    retries: int = 3,
    backoff: float = 1.0,
    n_threads: int | None = None,
    share: tuple[int, int] | None = None,
) -> Backend:
    """The backend for `pool`, wrapped in the response cache at `cache` unless it is None.

    The cache key holds each model's binding identity (`llm/identity.py`): re-binding a model
    misses, replicas share. `fake` (unit tests only) replaces every binding: all models go to it. Otherwise bindings of
    kind "local" share one `LocalBackend`, kind "openai" one `OpenAICompatBackend` (with `timeout`
    per attempt, `retries` and exponential `backoff`; a binding with
    `endpoints` is an endpoint pool in it, `backoff` its first set-aside time; `share = (i, n)`:
    this backend is the i-th of n sending to the same replicas, see `EndpointPool`). A model with no binding (or kind "fake")
    fails when called; call `check_bindings` first to fail before running anything.
    """
    if fake is not None:
        routed: Backend = RoutedBackend({name: fake for name in pool.models})
        return CachedBackend(routed, cache) if cache is not None else routed
    local_models: dict[str, LocalModel] = {}
    endpoints: dict[str, Endpoint] = {}
    pools: dict[str, EndpointPool] = {}
    identities: dict[str, Identity] = {}
    for name in pool.models:
        spec = pool.spec(name)
        binding = spec.binding
        if binding is None or binding.kind == "fake":
            continue  # reported when first used (see RoutedBackend, check_bindings)
        if binding.kind == "local":
            local_models[name] = resolve_local_model(name, binding.local_file, spec.chat)
            identities[name] = binding_identity(binding, local_models[name].locate)
        elif binding.kind == "openai":
            identities[name] = binding_identity(binding)
            if binding.endpoints:  # replicas: one backend, the pool picks the URL of each call
                pools[name] = EndpointPool(name, binding.endpoints, backoff=backoff, share=share)
            elif not binding.base_url:
                raise BackendError("an 'openai' binding needs base_url or endpoints", model=name)
            url = binding.endpoints[0].base_url if binding.endpoints else binding.base_url
            endpoints[name] = Endpoint(url, binding.served_name or name, binding.api_key_env, spec.chat)
        else:  # pragma: no cover - models.py validates kinds
            raise BackendError(f"unknown backend kind {binding.kind!r}", model=name)
    routes: dict[str, Backend] = {}
    if local_models:
        local = LocalBackend(local_models, n_threads=n_threads)
        routes.update({name: local for name in local_models})
    if endpoints:
        remote = OpenAICompatBackend(endpoints, timeout=timeout, retries=retries, backoff=backoff, pools=pools)
        routes.update({name: remote for name in endpoints})
    unbound = [m for m in pool.models if m not in routes]
    backend: Backend = RoutedBackend(routes, unbound)
    return CachedBackend(backend, cache, identities) if cache is not None else backend


def endpoint_states(backend: Backend) -> dict[str, list[dict[str, Any]]]:
    """The state of every endpoint pool behind `backend` (through the cache and the router): per
    pooled model, each replica's state, calls in flight and errors. Empty without pools."""
    inner: Any = backend
    while hasattr(inner, "inner"):
        inner = inner.inner
    routes = inner.routes.values() if isinstance(inner, RoutedBackend) else [inner]
    states: dict[str, list[dict[str, Any]]] = {}
    for route in routes:
        if isinstance(route, OpenAICompatBackend):
            states.update(route.endpoint_states())
    return states
