"""The code a Ray actor runs: one model call at a time, answered by backends built on the actor.

Kept free of Ray so it can be tested (and read) as plain Python: `ray_backend` wraps this class
with `ray.remote`. Replies are plain dicts, not exceptions: a backend failure on an actor must
reach the driver as the same `BackendError` (reason, retriability) a local call would raise, not
as one of Ray's wrapped task errors.
"""

from __future__ import annotations

from typing import Any

from ttsgraph.errors import BackendError, TtsGraphError
from ttsgraph.llm.base import Backend, Completion, Message, SamplingParams
from ttsgraph.models import ModelPool


class ModelWorker:
    """Answers node calls for one run's pool. The backend has no response cache: the driver is the
    only reader and writer of the cache, so every call that reaches an actor is a real call."""

    def __init__(self, pool: ModelPool, *, timeout: float, retries: int,
                 share: tuple[int, int] | None = None) -> None:
        from ttsgraph.llm.router import build_backend

        # `share`: this actor's place among the run's actors, so their endpoint pools spread
        # over the replicas instead of all choosing the same one (llm/endpoint_pool.py)
        self.backend: Backend = build_backend(pool, None, timeout=timeout, retries=retries, share=share)

    def ready(self) -> bool:
        """Answers once the actor is constructed (the driver waits for every actor)."""
        return True

    async def complete(self, model: str, messages: list[Message], params: dict[str, Any],
                       sample: int) -> dict[str, Any]:
        try:
            c = await self.backend.complete(model, messages, SamplingParams.from_dict(params), sample)
        except BackendError as exc:
            return {"ok": False, "reason": exc.reason, "retriable": exc.retriable}
        except TtsGraphError as exc:
            return {"ok": False, "reason": str(exc), "retriable": False}
        return {"ok": True, "text": c.text, "prompt_tokens": c.prompt_tokens,
                "completion_tokens": c.completion_tokens, "seconds": c.seconds}

    async def aclose(self) -> None:
        await self.backend.aclose()


def decode_reply(model: str, reply: dict[str, Any]) -> Completion:
    """An actor's reply as the driver's `Completion`, or the `BackendError` the actor met."""
    if not reply.get("ok"):
        raise BackendError(str(reply.get("reason")), model=model, retriable=bool(reply.get("retriable")))
    return Completion(text=reply["text"], prompt_tokens=int(reply["prompt_tokens"]),
                      completion_tokens=int(reply["completion_tokens"]), seconds=float(reply["seconds"]))
