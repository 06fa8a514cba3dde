"""`ttsgraph serve`: one or more found graphs as OpenAI-compatible models (FastAPI + uvicorn).

Binds 127.0.0.1 unless `--host` says otherwise (a graph server usually fronts paid or local
models: exposing it is a decision). SIGTERM and Ctrl-C stop accepting connections and let the
requests in flight finish (up to the request timeout) before the backends are closed.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from ttsgraph.cli.app import app
from ttsgraph.cli.common import (
    CACHE_OPTION,
    CONCURRENCY_OPTION,
    MAX_TOKENS_OPTION,
    NO_CACHE_OPTION,
    RETRIES_OPTION,
    TEMPERATURE_OPTION,
    TIMEOUT_OPTION,
    console,
    handle_errors,
    parse_pairs,
)
from ttsgraph.config import BackendSettings, Sampling
from ttsgraph.errors import TtsGraphError


def _settings(cls: type, **given: object) -> object:
    try:
        return cls(**{k: v for k, v in given.items() if v is not None})
    except ValueError as exc:
        raise TtsGraphError(f"bad setting: {exc}") from None


@app.command("serve")
@handle_errors
def serve_command(
    graphs: list[str] = typer.Argument(..., help="Graph files or run directories (a run serves its best_graph.json)."),
    models: str | None = typer.Option(None, "--models", help="Pool name (local, paper, paper-full) or a models.toml; default: the run's pool, else local."),
    task: str | None = typer.Option(None, "--task", "-t", help="Use this task's role prompts and answer format (default: generic chat prompts)."),
    option: list[str] = typer.Option(None, "--option", "-o", help="Task option KEY=VALUE (repeatable)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (default: this machine only)."),
    port: int = typer.Option(8000, "--port", min=0, max=65535),
    api_key_env: str | None = typer.Option(None, "--api-key-env", help="Require 'Authorization: Bearer <key>' with the key read from this environment variable."),
    max_concurrency: int = typer.Option(4, "--max-concurrency", min=1, help="Requests whose graphs run at once."),
    queue: int = typer.Option(16, "--queue", min=0, help="Requests that may wait for a slot; beyond that: 429 with Retry-After."),
    request_timeout: float = typer.Option(300.0, "--request-timeout", min=0.001, help="Seconds a request's graphs may run (then 504)."),
    max_tokens: int | None = MAX_TOKENS_OPTION,
    temperature: float | None = TEMPERATURE_OPTION,
    cache: Path | None = CACHE_OPTION,
    no_cache: bool = NO_CACHE_OPTION,
    timeout: float | None = TIMEOUT_OPTION,
    retries: int | None = RETRIES_OPTION,
    concurrency: int | None = CONCURRENCY_OPTION,
) -> None:
    """Serve GRAPH_OR_RUN... as models of an OpenAI-compatible API (chat completions, streaming)."""
    import uvicorn

    from ttsgraph.serve import ServeOptions, create_app, prepare

    options = ServeOptions(
        graphs=list(graphs), models=models, task=task, task_options=parse_pairs(option),
        api_key_env=api_key_env, max_concurrency=max_concurrency, queue=queue, request_timeout=request_timeout,
        sampling=_settings(Sampling, max_tokens=max_tokens, temperature=temperature),  # type: ignore[arg-type]
        backend=_settings(BackendSettings, cache=str(cache.expanduser().resolve()) if cache else None,  # type: ignore[arg-type]
                          no_cache=no_cache or None, timeout=timeout, retries=retries, concurrency=concurrency),
    )
    prepared = prepare(options)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for g in prepared.graphs.values():
        console.print(f"model [bold]{g.id}[/]: {len(g.graph.nodes)} nodes, "
                      f"{sum(g.planned_units.values()):.2f} planned units ({g.path})", highlight=False)
    console.print(f"listening on http://{host}:{port}/v1", highlight=False)
    config = uvicorn.Config(create_app(prepared), host=host, port=port, log_level="warning",
                            timeout_graceful_shutdown=int(request_timeout) + 5)
    uvicorn.Server(config).run()
