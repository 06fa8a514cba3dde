"""`/ready`: can every backend the served graphs use be reached right now?

Embedded models are ready when llama-cpp-python imports and their GGUF file is found; an
OpenAI-compatible endpoint when its `GET /models` answers within two seconds. A load balancer
should route only to a ready server; `/health` only says the process is alive.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os

from ttsgraph.errors import TtsGraphError
from ttsgraph.models import ModelPool

PROBE_SECONDS = 2.0


async def _local(name: str, pool: ModelPool) -> str:
    from ttsgraph.llm.local import resolve_local_model

    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed"
    binding = pool.spec(name).binding
    try:
        model = resolve_local_model(name, binding.local_file if binding else None, pool.spec(name).chat)
        await asyncio.to_thread(model.locate)
    except TtsGraphError as exc:
        return str(exc)
    return "ok"


async def _remote(base_url: str, api_key_env: str | None) -> str:
    import openai  # the client the backend itself uses, so the probe sees what a call would

    key = "none"
    if api_key_env:
        key = os.environ.get(api_key_env) or ""
        if not key:
            return f"environment variable {api_key_env} is not set"
    client = openai.AsyncOpenAI(base_url=base_url, api_key=key, timeout=PROBE_SECONDS, max_retries=0)
    try:
        await client.models.list()
    except openai.APIStatusError as exc:
        return f"{base_url}/models answered HTTP {exc.status_code}"
    except openai.OpenAIError as exc:
        return f"{base_url} unreachable ({type(exc).__name__})"
    finally:
        await client.close()
    return "ok"


async def readiness(pool: ModelPool, models: list[str], fake: bool = False) -> dict[str, str]:
    """Each model's state: "ok" or why not. `fake` (tests' scripted backend): always ok."""
    async def one(name: str) -> str:
        binding = pool.spec(name).binding
        if fake or (binding is not None and binding.kind == "fake"):
            return "ok"
        if binding is None:
            return "no backend binding"
        if binding.kind == "local":
            return await _local(name, pool)
        return await _remote(binding.base_url or "", binding.api_key_env)

    states = await asyncio.gather(*(one(m) for m in models))
    return dict(zip(models, states))
