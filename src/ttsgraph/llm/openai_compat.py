"""The HTTP backend: any OpenAI-compatible server (vLLM, SGLang, Ollama, llama.cpp server, TGI,
OpenAI itself) through the official `openai` client.

Why our own retry loop instead of the client's: we need to know *why* a call finally failed (the
executor reports it per node), to retry only what can succeed later (429, 5xx, connection errors,
timeouts) and to fail at once on what cannot (400, 401, 404, an empty reply). Seeds derived from the
request and the sample index are sent when the server accepts them, so samples repeat.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import warnings
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ttsgraph.errors import BackendError
from ttsgraph.llm.base import BASE_MODEL_STOPS, BackendBase, Completion, Message, SamplingParams
from ttsgraph.llm.base import derive_seed, render_completion_prompt
from ttsgraph.llm.endpoint_pool import EndpointPool, EndpointState

if TYPE_CHECKING:
    import openai


def _openai() -> Any:
    """The `openai` package, imported on first use: it takes seconds to import, and most commands
    (those on the embedded models) never need it."""
    import openai

    return openai


@dataclass(frozen=True)
class Endpoint:
    """Where one pool model is served. `api_key_env` names the environment variable holding the key
    (None: the server needs no key, e.g. a local llama.cpp server). `chat=False` sends a
    completion-style prompt to `/v1/completions` (base models)."""

    base_url: str
    served_name: str
    api_key_env: str | None = None
    chat: bool = True

    def api_key(self, model: str) -> str:
        if not self.api_key_env:
            return "none"
        value = os.environ.get(self.api_key_env)
        if not value:
            raise BackendError(
                f"environment variable {self.api_key_env} (the API key for {self.base_url}) is not set",
                model=model,
            )
        return value


def _retriable(exc: BaseException) -> bool:
    openai = _openai()
    if isinstance(exc, (openai.APIConnectionError, openai.APITimeoutError, openai.RateLimitError)):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    return False


def _describe(exc: BaseException) -> str:
    openai = _openai()
    if isinstance(exc, openai.APITimeoutError):
        return "request timed out"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        return f"connection error ({type(cause).__name__}: {cause})" if cause else "connection error"
    if isinstance(exc, openai.APIStatusError):
        body = exc.message if len(exc.message) < 300 else exc.message[:300] + "…"
        return f"HTTP {exc.status_code}: {body}"
    return f"{type(exc).__name__}: {exc}"


class OpenAICompatBackend(BackendBase):
    """Routes each pool model to its `Endpoint`.

    `timeout` is per attempt (seconds); a failing call is tried `1 + retries` times with exponential
    backoff (`backoff * 2**k`, capped at `max_backoff`, with jitter), then raises `BackendError`
    whose `.reason` says what happened on the last attempt.

    A model in `pools` is served by several replicas (`llm/endpoint_pool.py`): its `Endpoint`
    gives the served name, key and chat mode, the pool the base URL of each attempt. A retriable
    failure sets the replica aside and the call moves on at once to another one; only when every
    replica is set aside does it wait (for the first to come back, at most `retries` times) and
    then fail with each replica's last error.
    """

    def __init__(
        self,
        endpoints: dict[str, Endpoint],
        timeout: float = 600.0,
        retries: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        pools: dict[str, EndpointPool] | None = None,
    ):
        self.endpoints = dict(endpoints)
        self.pools = dict(pools or {})
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        # One set of clients per event loop (httpx connection pools belong to one loop); weak keys,
        # so a finished `asyncio.run` drops its clients and a new loop never inherits them.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], Any]] = (
            weakref.WeakKeyDictionary()
        )
        self._no_seed: set[str] = set()  # base URLs that rejected the `seed` parameter
        self._json_object: set[str] = set()  # base URLs that want {"type": "json_object", "schema": ...}
        self._no_usage_warned: set[str] = set()

    def _client(self, endpoint: Endpoint, model: str) -> "openai.AsyncOpenAI":
        key = (endpoint.base_url, endpoint.api_key(model))
        clients = self._clients.setdefault(asyncio.get_running_loop(), {})
        client = clients.get(key)
        if client is None:
            client = _openai().AsyncOpenAI(
                base_url=endpoint.base_url, api_key=key[1], timeout=self.timeout, max_retries=0
            )
            clients[key] = client
        return client

    async def complete(
        self, model: str, messages: list[Message], params: SamplingParams, sample: int = 0
    ) -> Completion:
        endpoint = self._endpoint(model)
        response, started, replica, state = await self._open(model, endpoint, messages, params, sample, stream=False)
        try:
            return self._completion(model, replica, messages, response, time.perf_counter() - started)
        finally:
            await self._done(model, state)

    async def stream(
        self, model: str, messages: list[Message], params: SamplingParams, sample: int = 0
    ) -> AsyncIterator[str | Completion]:
        """The server's chunks as they arrive (`stream=True`, usage asked for with
        `stream_options.include_usage`). Opening the stream is retried like `complete`; a stream
        that breaks after its first piece fails (the pieces already went out)."""
        openai = _openai()
        endpoint = self._endpoint(model)
        chunks, started, endpoint, state = await self._open(model, endpoint, messages, params, sample, stream=True)
        parts: list[str] = []
        usage: Any = None
        finish: str | None = None
        broke: str | None = None
        try:
            async for chunk in chunks:
                usage = getattr(chunk, "usage", None) or usage
                for choice in getattr(chunk, "choices", None) or []:
                    piece = (choice.delta.content if endpoint.chat else choice.text) or ""
                    finish = choice.finish_reason or finish
                    if piece:
                        parts.append(piece)
                        yield piece
        except openai.OpenAIError as exc:
            broke = f"stream broke: {_describe(exc)}"
            raise BackendError(broke, model=model) from exc
        finally:
            await chunks.close()
            await self._done(model, state, broke)
        text = "".join(parts)
        if not text.strip():
            raise BackendError(f"empty reply (finish_reason={finish!r})", model=model)
        yield self._with_usage(model, endpoint, messages, text, usage, time.perf_counter() - started)

    def _endpoint(self, model: str) -> Endpoint:
        endpoint = self.endpoints.get(model)
        if endpoint is None:
            raise BackendError(f"no OpenAI-compatible endpoint configured (known: {', '.join(self.endpoints)})", model=model)
        return endpoint

    async def _open(self, model: str, endpoint: Endpoint, messages: list[Message], params: SamplingParams,
                    sample: int, *, stream: bool) -> tuple[Any, float, Endpoint, EndpointState | None]:
        """The response (or open stream), when its attempt started, the endpoint that answered and,
        for a pooled model, the replica's lease (give it back with `_done`)."""
        pool = self.pools.get(model)
        if pool is None:
            response, started = await self._send(model, endpoint, messages, params, sample, stream=stream)
            return response, started, endpoint, None
        return await self._send_pooled(model, endpoint, pool, messages, params, sample, stream=stream)

    async def _done(self, model: str, state: EndpointState | None, error: str | None = None) -> None:
        if state is not None:
            await self.pools[model].release(state, error, retriable=error is not None)

    async def _send_pooled(self, model: str, endpoint: Endpoint, pool: EndpointPool, messages: list[Message],
                           params: SamplingParams, sample: int, *,
                           stream: bool) -> tuple[Any, float, Endpoint, EndpointState]:
        """One request over a pool: each attempt on the least-loaded healthy replica; a retriable
        failure sets that replica aside and the next attempt goes to another at once."""
        openai = _openai()
        seed = derive_seed(model, messages, params, sample)
        waits = 0
        while True:
            state = await pool.acquire()
            if state is None:  # every replica set aside
                if waits >= self.retries:
                    raise pool.down_error()
                waits += 1
                await asyncio.sleep(min(self.max_backoff, pool.next_recovery(time.monotonic())))
                continue
            replica = replace(endpoint, base_url=state.base_url)
            started = time.perf_counter()
            error: str | None = None
            try:
                response = await self._attempt(model, self._client(replica, model), replica, messages, params,
                                               seed, stream)
            except openai.OpenAIError as exc:
                if not _retriable(exc):
                    await pool.release(state)
                    raise BackendError(_describe(exc), model=model) from exc
                error = _describe(exc)
            except ValueError as exc:  # a 200 whose body is not JSON: a replica's glitch
                error = f"reply is not JSON ({type(exc).__name__}: {str(exc)[:120]})"
            except BaseException:  # a request the server refused (BackendError), a cancelled call
                await pool.release(state)
                raise
            else:
                if not isinstance(response, str):
                    return response, started, replica, state
                error = f"reply is not JSON: {response[:80]!r}"
            await pool.release(state, error, retriable=True)

    def endpoint_states(self) -> dict[str, list[dict[str, Any]]]:
        """Each pooled model's replicas and their state (healthy or set aside, in flight, errors)."""
        return {model: pool.snapshot() for model, pool in self.pools.items()}

    async def _send(self, model: str, endpoint: Endpoint, messages: list[Message], params: SamplingParams,
                    sample: int, *, stream: bool) -> tuple[Any, float]:
        """One request with the retry loop; the response (or the open stream) and when the
        successful attempt started."""
        openai = _openai()
        client = self._client(endpoint, model)
        seed = derive_seed(model, messages, params, sample)
        last = "no attempt made"
        for attempt in range(self.retries + 1):
            if attempt:
                delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
                await asyncio.sleep(delay * (0.5 + random.random() / 2))
            started = time.perf_counter()
            try:
                response = await self._attempt(model, client, endpoint, messages, params, seed, stream)
            except openai.OpenAIError as exc:
                if not _retriable(exc):
                    raise BackendError(_describe(exc), model=model) from exc
                last = _describe(exc)
                continue
            except ValueError as exc:  # a 200 whose body is not JSON (the client's json.loads)
                last = f"reply is not JSON ({type(exc).__name__}: {str(exc)[:120]})"
                continue  # a proxy's glitch may pass: retried like a 5xx
            if isinstance(response, str):  # a 200 that is not JSON at all, e.g. an HTML page
                last = f"reply is not JSON: {response[:80]!r}"
                continue
            return response, started
        raise BackendError(f"{last} (after {self.retries + 1} attempts)", model=model, retriable=True)

    async def _attempt(self, model: str, client: "openai.AsyncOpenAI", endpoint: Endpoint, messages: list[Message],
                       params: SamplingParams, seed: int, stream: bool) -> Any:
        """One attempt, with the once-per-server downgrades (no `seed`, json_object schemas)."""
        openai = _openai()
        try:
            try:
                return await self._request(client, endpoint, messages, params, seed, stream)
            except openai.APIStatusError as exc:
                # OpenAI and vLLM take response_format json_schema; llama-cpp-python's server
                # only json_object + schema (and says so with a 500): downgrade once per server.
                if not (params.json_schema and endpoint.chat and endpoint.base_url not in self._json_object
                        and exc.status_code in (400, 422, 500) and "response_format" in exc.message):
                    raise
                self._json_object.add(endpoint.base_url)
                return await self._request(client, endpoint, messages, params, seed, stream)
        except openai.BadRequestError as exc:
            if "seed" in exc.message.lower() and endpoint.base_url not in self._no_seed:
                self._no_seed.add(endpoint.base_url)  # the server does not take seeds: go without
                return await self._request(client, endpoint, messages, params, seed, stream)
            raise BackendError(_describe(exc), model=model) from exc

    async def _request(
        self,
        client: "openai.AsyncOpenAI",
        endpoint: Endpoint,
        messages: list[Message],
        params: SamplingParams,
        seed: int,
        stream: bool = False,
    ) -> Any:
        extra: dict[str, Any] = {}
        if stream:
            extra.update(stream=True, stream_options={"include_usage": True})
        if endpoint.base_url not in self._no_seed:
            extra["seed"] = seed
        if params.json_schema and endpoint.chat:
            schema = json.loads(params.json_schema)
            extra["response_format"] = (
                {"type": "json_object", "schema": schema} if endpoint.base_url in self._json_object
                else {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}}
            )
        if endpoint.chat:
            return await client.chat.completions.create(
                model=endpoint.served_name,
                messages=[{"role": m["role"], "content": m["content"]} for m in messages],  # type: ignore[misc]
                temperature=params.temperature,
                top_p=params.top_p,
                max_tokens=params.max_tokens,
                stop=list(params.stop) or None,
                **extra,
            )
        return await client.completions.create(
            model=endpoint.served_name,
            prompt=render_completion_prompt(messages),
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_tokens,
            stop=(list(BASE_MODEL_STOPS) + list(params.stop))[:4],  # OpenAI allows at most 4
            **extra,
        )

    def _completion(
        self, model: str, endpoint: Endpoint, messages: list[Message], response: Any, seconds: float
    ) -> Completion:
        try:  # the client does not validate replies: a server may send any JSON shape
            choices = getattr(response, "choices", None) or []
            if not choices:
                raise BackendError("reply has no choices", model=model)
            choice = choices[0]
            text = (choice.message.content if endpoint.chat else choice.text) or ""
            if not isinstance(text, str) or not text.strip():
                raise BackendError(f"empty reply (finish_reason={getattr(choice, 'finish_reason', None)!r})",
                                   model=model)
            return self._with_usage(model, endpoint, messages, text, getattr(response, "usage", None), seconds)
        except (AttributeError, TypeError, ValueError, IndexError, KeyError) as exc:
            raise BackendError(f"malformed reply ({type(exc).__name__}: {str(exc)[:120]})", model=model) from None

    def _with_usage(self, model: str, endpoint: Endpoint, messages: list[Message], text: str, usage: Any,
                    seconds: float) -> Completion:
        if usage is not None and usage.completion_tokens is not None:
            prompt_tokens, completion_tokens = int(usage.prompt_tokens or 0), int(usage.completion_tokens)
        else:
            # Some servers omit usage; FLOPs then rest on an estimate (about 4 characters per token).
            if endpoint.base_url not in self._no_usage_warned:
                self._no_usage_warned.add(endpoint.base_url)
                warnings.warn(f"{endpoint.base_url} reports no token usage; estimating tokens from characters")
            prompt_tokens = sum(len(m.get("content", "")) for m in messages) // 4 + 1
            completion_tokens = len(text) // 4 + 1
        return Completion(text=text.strip(), prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, seconds=seconds)

    async def aclose(self) -> None:
        """Close the HTTP clients that belong to the running event loop."""
        clients = self._clients.pop(asyncio.get_running_loop(), {})
        for client in clients.values():
            await client.close()


async def probe(base_url: str, timeout: float = 5.0, api_key: str = "none") -> dict[str, Any]:
    """Ask one server for its model list (`GET /models`, which every OpenAI-compatible server
    answers cheaply): {"base_url", "state": "up" | "down", "seconds", "error"}, for
    `ttsgraph models --check`."""
    openai = _openai()
    started = time.perf_counter()
    error: str | None = None
    client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)
    try:
        await client.models.list()
    except openai.OpenAIError as exc:
        error = _describe(exc)
    finally:
        await client.close()
    return {"base_url": base_url, "state": "down" if error else "up",
            "seconds": round(time.perf_counter() - started, 4), "error": error}


async def probe_all(urls: list[str], timeout: float = 5.0) -> list[dict[str, Any]]:
    """`probe` every URL at once."""
    return list(await asyncio.gather(*(probe(u, timeout) for u in urls)))
