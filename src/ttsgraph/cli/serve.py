"""`ttsgraph serve`: one or more found graphs as OpenAI-compatible models (FastAPI + uvicorn).

Binds 127.0.0.1 unless `--host` says otherwise (a graph server usually fronts paid or local
models: exposing it is a decision). SIGTERM and Ctrl-C stop accepting connections and let the
requests in flight finish (up to the request timeout) before the backends are closed.
"""

from __future__ import annotations

import logging
from typing import Any

import typer
from rich.text import Text

from ttsgraph.cli import flags
from ttsgraph.cli.app import app
from ttsgraph.cli.common import console, handle_errors
from ttsgraph.config import BackendSettings, Sampling, deep_merge, load_recipe
from ttsgraph.errors import TtsGraphError


def _settings(cls: type, data: dict[str, Any], what: str) -> Any:
    try:
        return cls(**data)
    except ValueError as exc:
        raise TtsGraphError(f"{what}: {exc}".replace("\n", " ")) from None


@app.command("serve")
@handle_errors
@flags.with_run_flags
def serve_command(
    graphs: list[str] = typer.Argument(..., help="Graph files or run directories (a run serves its best_graph.json)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (default: this machine only)."),
    port: int = typer.Option(8000, "--port", min=0, max=65535),
    api_key_env: str | None = typer.Option(None, "--api-key-env", help="Require 'Authorization: Bearer <key>' with the key read from this environment variable."),
    max_concurrency: int = typer.Option(4, "--max-concurrency", min=1, help="Requests whose graphs run at once."),
    queue: int = typer.Option(16, "--queue", min=0, help="Requests that may wait for a slot; beyond that: 429 with Retry-After."),
    request_timeout: float = typer.Option(300.0, "--request-timeout", min=0.001, help="Seconds a request's graphs may run (then 504)."),
    run: flags.RunFlags = flags.FILLED_IN,
) -> None:
    """Serve GRAPH_OR_RUN... as models of an OpenAI-compatible API (chat completions, streaming).

    --task uses that task's role prompts (default: generic chat prompts); --models defaults to the
    served run's pool, else local; --max-tokens/--temperature are the defaults of requests that do
    not set them; a --config recipe gives task, models, sampling and backend settings."""
    import uvicorn

    from ttsgraph.serve import ServeOptions, create_app, prepare

    given = run.given()
    data = deep_merge(load_recipe(run.config), given) if run.config is not None else given
    options = ServeOptions(
        graphs=list(graphs), models=data.get("models"), task=data.get("task"),
        task_options=dict(data.get("task_options") or {}), api_key_env=api_key_env,
        max_concurrency=max_concurrency, queue=queue, request_timeout=request_timeout,
        sampling=_settings(Sampling, data.get("sampling") or {}, "sampling"),
        backend=_settings(BackendSettings, data.get("backend") or {}, "backend"),
    )
    prepared = prepare(options)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for g in prepared.graphs.values():
        console.print(Text.assemble("model ", (g.id, "bold"), f": {len(g.graph.nodes)} nodes, "
                                    f"{sum(g.planned_units.values()):.2f} planned units ({g.path})"), soft_wrap=True)
    console.print(f"listening on http://{host}:{port}/v1", highlight=False)
    config = uvicorn.Config(create_app(prepared), host=host, port=port, log_level="warning",
                            timeout_graceful_shutdown=int(request_timeout) + 5)
    uvicorn.Server(config).run()
