"""The HTTP application: OpenAI's `/v1/models` and `/v1/chat/completions`, plus `/health`,
`/ready` and `/metrics`.

Every request is admitted (or refused with 429), runs its graph(s) under the request timeout,
is cancelled with all its node calls if the client disconnects, and ends with one log line
(id, model, status, seconds, tokens) and its metrics. Errors are OpenAI error objects (errors.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ttsgraph.executor import Executor, GraphRun
from ttsgraph.llm.base import Backend
from ttsgraph.llm.router import build_backend
from ttsgraph.serve import responses
from ttsgraph.serve.engine import GraphService, SeededCache
from ttsgraph.serve.errors import ApiError, timed_out, unauthorized
from ttsgraph.serve.health import readiness
from ttsgraph.serve.limits import Admission
from ttsgraph.serve.metrics import Metrics
from ttsgraph.serve.options import Prepared
from ttsgraph.serve.protocol import ChatRequest, parse_request, request_messages
from ttsgraph.serve.streaming import GraphStream

log = logging.getLogger("ttsgraph.serve")
T = TypeVar("T")
CLIENT_GONE = 499  # nginx's "client closed request": logged, never sent


class ClientGone(Exception):
    """The client disconnected before the answer was ready."""


@dataclass
class PricingOnly:
    """What the executor needs of a task when the server has none: lengths, to price graphs."""

    lengths: Any
    name: str = "chat"


async def _disconnected(request: Request, every: float = 0.2) -> None:
    while not await request.is_disconnected():
        await asyncio.sleep(every)


async def until_disconnect(request: Request, aw: Awaitable[T]) -> T:
    """Await `aw`, but cancel it (and so every node call it has in flight) if the client leaves."""
    task = asyncio.ensure_future(aw)
    watcher = asyncio.create_task(_disconnected(request))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        raise ClientGone()
    finally:
        for t in (task, watcher):
            t.cancel()
        await asyncio.gather(task, watcher, return_exceptions=True)


class ClosingStream(StreamingResponse):
    """A streaming response that calls `on_close` once however it ends — finished, failed, or
    never started because the client left — so a request's slot and graph are always let go."""

    def __init__(self, content: AsyncIterator[bytes], on_close: Callable[[], None], **kwargs: Any):
        super().__init__(content, **kwargs)
        self._on_close = on_close

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


def error_response(exc: ApiError, rid: str | None = None) -> JSONResponse:
    headers = dict(exc.headers)
    if rid:
        headers["X-Request-Id"] = rid
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


def create_app(prepared: Prepared, *, fake_backend: Backend | None = None) -> FastAPI:
    """The server for `prepared`. `fake_backend` (unit tests only) replaces every binding."""
    options = prepared.options
    metrics = Metrics()
    admission = Admission(options.max_concurrency, options.queue, on_change=metrics.admission)
    created = int(time.time())
    state: dict[str, GraphService] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings = options.backend
        backend = build_backend(prepared.pool, settings.cache_path(), fake_backend,
                                timeout=settings.timeout, retries=settings.retries)
        async with backend:
            executor = Executor(SeededCache(backend), prepared.pool, prepared.task or PricingOnly(prepared.lengths),
                                params=options.sampling.params(), concurrency=settings.concurrency)
            state["service"] = GraphService(executor, prepared.graphs, prepared.pool, prepared.task,
                                            prepared.lengths, options.sampling, metrics)
            log.info("serving %s on pool %s", ", ".join(prepared.graphs), prepared.pool.name)
            yield

    app = FastAPI(title="ttsgraph serve", lifespan=lifespan, docs_url=None, redoc_url=None)

    def authorize(request: Request) -> None:
        if prepared.api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("missing API key: send the header 'Authorization: Bearer <key>'")
        if not hmac.compare_digest(token.strip().encode(), prepared.api_key.encode()):
            raise unauthorized("incorrect API key")

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return error_response(ApiError(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", type=kind))

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        states = await readiness(prepared.pool, prepared.models, fake=fake_backend is not None)
        ok = all(s == "ok" for s in states.values()) and "service" in state
        return JSONResponse({"ready": ok, "models": states}, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/v1/models")
    async def list_models(request: Request) -> dict[str, Any]:
        authorize(request)
        return {"object": "list", "data": [g.card(created) for g in prepared.graphs.values()]}

    @app.get("/v1/models/{model_id}")
    async def get_model(model_id: str, request: Request) -> dict[str, Any]:
        authorize(request)
        return state["service"].graph(model_id).card(created)

    def finish(rid: str, model: str, status: int, t0: float, runs: list[GraphRun] | None,
               stream: bool, ttft: float | None = None) -> None:
        seconds = time.perf_counter() - t0
        metrics.requests.labels(model, str(status)).inc()
        if model in prepared.graphs:
            metrics.latency.labels(model).observe(seconds)
            if ttft is not None:
                metrics.ttft.labels(model).observe(ttft)
        if status == 200:
            admission.observe(seconds)
        tokens = responses.usage(runs)["total_tokens"] if runs else 0
        log.info("request id=%s model=%s status=%d seconds=%.3f tokens=%d stream=%s",
                 rid, model, status, seconds, tokens, str(stream).lower())

    async def timed(aw: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(aw, options.request_timeout)
        except TimeoutError:
            raise timed_out(options.request_timeout) from None

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        t0 = time.perf_counter()
        rid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        service = state["service"]
        model, status, runs, stream = "unknown", 500, None, False
        ticket = None
        try:
            authorize(request)
            req: ChatRequest = parse_request(await request.body())
            served = service.graph(req.model)
            model, stream = served.id, req.stream
            messages = request_messages(req)
            ticket = await until_disconnect(request, admission.admit())
            max_tokens = req.params(options.sampling).max_tokens
            if not req.stream:
                runs = await until_disconnect(request, timed(service.run(served, req, messages)))
                status = 200
                ext = responses.extension(served, runs, prepared.pool, service.unit)
                return JSONResponse(responses.completion(rid, int(time.time()), served, runs, max_tokens, ext),
                                    headers={"X-Request-Id": rid})
            graph_stream = GraphStream(
                lambda on_piece: timed(service.run(served, req, messages, on_piece)),
                rid=rid, created=int(time.time()), graph=served, n=req.n, max_tokens=max_tokens,
                include_usage=req.include_usage,
                extension=lambda rs, ttft: responses.extension(served, rs, prepared.pool, service.unit, ttft),
            )
            try:
                first = await until_disconnect(request, graph_stream.start(t0))
            except BaseException:
                graph_stream.cancel()
                raise
            held, ticket = ticket, None  # released when the stream ends

            def closed() -> None:
                graph_stream.cancel()
                held.release()
                code, done = graph_stream.status()
                finish(rid, model, code, t0, done, True, graph_stream.ttft)

            status = -1  # logged when the stream ends
            return ClosingStream(graph_stream.events(first), closed, media_type="text/event-stream",
                                 headers={"X-Request-Id": rid, "Cache-Control": "no-cache"})
        except ApiError as exc:
            status = exc.status
            return error_response(exc, rid)
        except ClientGone:
            status = CLIENT_GONE
            return Response(status_code=CLIENT_GONE)
        except Exception as exc:  # a bug, not the client's fault: still OpenAI's shape, and logged
            log.exception("request id=%s failed", rid)
            return error_response(ApiError(500, f"internal error: {type(exc).__name__}: {exc}", type="server_error"), rid)
        finally:
            if ticket is not None:
                ticket.release()
            if status != -1:
                finish(rid, model, status, t0, runs, stream)

    return app
