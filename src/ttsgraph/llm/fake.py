"""A scripted backend for unit tests only (never the default of a command).

It answers from a function, a dict or a list so tests can exercise the executor, the cache and the
search without a model, while still behaving like a backend: it counts tokens, takes time if asked,
and raises `BackendError` on an empty reply or when the script says so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ttsgraph.errors import BackendError
from ttsgraph.llm.base import BackendBase, Completion, Message, SamplingParams

@dataclass
class Call:
    """One recorded call, for assertions in tests."""

    model: str
    messages: list[Message]
    params: SamplingParams
    sample: int


def _count_tokens(text: str) -> int:
    # A crude stand-in for a tokenizer: whitespace-separated words, at least 1 for non-empty text.
    return max(1, len(text.split())) if text else 0


@dataclass
class ScriptedBackend(BackendBase):
    """Answers from `responder`:

    - a callable `(model, messages, sample) -> str` (it may return or raise an exception to simulate
      a failure);
    - a dict `{model: text}` (or `{model: callable}`);
    - a list of texts consumed in call order (then the last one repeats).

    `delay` (seconds, or a callable of the model) simulates backend time with `asyncio.sleep`, so
    concurrency is real. `seconds` (a callable of the model and messages), if given, is reported as
    the call's time instead of the measured one, so latencies (and a latency objective) are exactly
    reproducible. Every call is recorded in `calls`.
    """

    responder: Callable[[str, list[Message], int], object] | dict[str, object] | list[str]
    delay: float | Callable[[str], float] = 0.0
    seconds: Callable[[str, list[Message]], float] | None = None
    calls: list[Call] = field(default_factory=list)
    _next: int = 0

    async def complete(
        self, model: str, messages: list[Message], params: SamplingParams, sample: int = 0
    ) -> Completion:
        self.calls.append(Call(model, list(messages), params, sample))
        started = time.perf_counter()
        delay = self.delay(model) if callable(self.delay) else self.delay
        if delay:
            await asyncio.sleep(delay)
        out = self._respond(model, messages, sample)
        if isinstance(out, BaseException):
            raise out
        text = str(out)
        if not text.strip():
            raise BackendError("empty reply from scripted backend", model=model)
        prompt = " ".join(m.get("content", "") for m in messages)
        return Completion(
            text=text,
            prompt_tokens=_count_tokens(prompt),
            completion_tokens=min(_count_tokens(text), params.max_tokens),
            seconds=self.seconds(model, messages) if self.seconds else time.perf_counter() - started,
        )

    def _respond(self, model: str, messages: list[Message], sample: int) -> object:
        r = self.responder
        if isinstance(r, list):
            if not r:
                return ""
            out = r[min(self._next, len(r) - 1)]
            self._next += 1
            return out
        if isinstance(r, dict):
            if model not in r:
                return BackendError(f"no scripted reply for model {model!r}", model=model)
            entry = r[model]
            return entry(model, messages, sample) if callable(entry) else entry
        return r(model, messages, sample)
