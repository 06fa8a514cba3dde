"""The one contract every LLM backend honours, and the request identity the cache and seeds use.

A backend turns (model, messages, sampling params, sample index) into a `Completion`. The sample
index is part of the request on purpose: two graph nodes that send the same prompt to the same
model must get independent samples (indices 0 and 1), while another graph asking the same thing
later may reuse them (common random numbers). Backends derive their seeds from the request and the
index, so a request repeats exactly, and the cache keys on the same identity.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

Message = dict[str, str]
"""One chat message: {"role": "system" | "user" | "assistant", "content": "..."}."""


@dataclass(frozen=True)
class SamplingParams:
    """Decoding settings of one call. Frozen and hashable so it can be part of a request key.

    The paper's preset is temperature 0.1, top_p 1 (SPEC §4.7); `max_tokens` is small by default
    because the embedded models are slow on two CPU cores.
    """

    temperature: float = 0.1
    top_p: float = 1.0
    max_tokens: int = 256
    stop: tuple[str, ...] = field(default_factory=tuple)
    json_schema: str | None = None
    """A JSON Schema (as JSON text) the reply must follow; backends that can constrain decoding
    (llama.cpp grammars, OpenAI `response_format`) enforce it, so weak optimizer agents always parse."""
    output_max_tokens: int | None = None
    """A graph's output node's own cap (the paper's FinalDecision had 1000 tokens, its workers 4096);
    None: `max_tokens`. A graph-level setting: `for_node` resolves it, so no call carries it."""

    def __post_init__(self) -> None:
        # Accept a list for `stop` (JSON/TOML hand us lists) but keep the object hashable.
        if not isinstance(self.stop, tuple):
            object.__setattr__(self, "stop", tuple(self.stop))
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.output_max_tokens is not None and self.output_max_tokens < 1:
            raise ValueError(f"output_max_tokens must be >= 1, got {self.output_max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        if d["output_max_tokens"] is None:  # unset: request keys (and cached replies) stay what they were
            del d["output_max_tokens"]
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SamplingParams:
        keys = ("temperature", "top_p", "max_tokens", "stop", "json_schema", "output_max_tokens")
        return cls(**{k: data[k] for k in keys if k in data})

    def for_node(self, is_output: bool) -> SamplingParams:
        """The settings of one node's call: the output node gets `output_max_tokens` when set."""
        if self.output_max_tokens is None:
            return self
        cap = self.output_max_tokens if is_output else self.max_tokens
        return replace(self, max_tokens=cap, output_max_tokens=None)


@dataclass(frozen=True)
class Completion:
    """What one call produced. `seconds` is the backend's time for the call; on a cache hit it is
    the time the original call took (so latency figures do not depend on the cache's state) and
    `cached` is True."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    cached: bool = False


@runtime_checkable
class Backend(Protocol):
    """Anything that can answer a chat request. Must raise `BackendError` (with a reason) instead of
    returning an empty text, and must be safe to call concurrently from one event loop."""

    async def complete(
        self, model: str, messages: list[Message], params: SamplingParams, sample: int = 0
    ) -> Completion: ...

    def stream(
        self, model: str, messages: list[Message], params: SamplingParams, sample: int = 0
    ) -> AsyncIterator[str | Completion]:
        """The same request, its text yielded in pieces as the model generates it, then one final
        `Completion` equal to what `complete` returns (its text is the pieces joined, stripped)."""
        ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Backend: ...

    async def __aexit__(self, *exc: object) -> None: ...


class BackendBase:
    """What every backend shares: it is an async context manager that frees its resources (HTTP
    clients, loaded models, the cache file) on exit, so callers write `async with backend:` and
    never probe for a close method. Subclasses override `aclose` when they hold anything."""

    async def stream(
        self, model: str, messages: list[Message], params: SamplingParams, sample: int = 0
    ) -> AsyncIterator[str | Completion]:
        """Backends that cannot stream send the whole reply as one piece (then the `Completion`);
        the embedded and the OpenAI-compatible backends override this with real token streaming."""
        completion = await self.complete(model, messages, params, sample)  # type: ignore[attr-defined]
        yield completion.text
        yield completion

    async def aclose(self) -> None:
        """Free what the backend holds (nothing by default)."""

    async def __aenter__(self) -> BackendBase:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def request_key(model: str, messages: list[Message], params: SamplingParams) -> str:
    """A stable hex digest of what is asked, without the sample index. Identical requests (same
    model, same messages in the same order, same params) share a key, whatever dict order."""
    payload = {
        "model": model,
        "messages": [{"role": m.get("role", ""), "content": m.get("content", "")} for m in messages],
        "params": params.to_dict(),
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def sample_key(model: str, messages: list[Message], params: SamplingParams, sample: int) -> str:
    """The cache key: the request key plus the sample index."""
    return hashlib.sha256(f"{request_key(model, messages, params)}:{int(sample)}".encode()).hexdigest()


def derive_seed(model: str, messages: list[Message], params: SamplingParams, sample: int) -> int:
    """A 31-bit seed fixed by the request and the sample index, so a request + sample repeats exactly
    while different samples of one request differ."""
    return int(sample_key(model, messages, params, sample)[:8], 16) & 0x7FFFFFFF


BASE_MODEL_STOPS: tuple[str, ...] = ("\n\n", "\nQuestion:", "\nProblem:", "\nUser:", "\nQ:")
"""Stop sequences for base (non-chat) models: without a chat template they go on to invent the
next question after their answer, usually after a blank line. One paragraph is the answer."""


def render_completion_prompt(messages: list[Message]) -> str:
    """Render chat messages as one completion-style prompt for a base model (no chat template).

    System text comes first as plain instructions, user turns as the problem, assistant turns as
    earlier answers; the prompt ends with an open "Answer:" line for the model to continue.
    """
    parts: list[str] = []
    for m in messages:
        role, content = m.get("role", "user"), (m.get("content") or "").strip()
        if not content:
            continue
        if role == "system":
            parts.append(content)
        elif role == "assistant":
            parts.append(f"Answer: {content}")
        else:
            parts.append(content)
    return "\n\n".join(parts) + "\n\nAnswer:"


def ttsgraph_home() -> Path:
    """Where ttsgraph keeps its own files (assembled models, the response cache):
    `$TTSGRAPH_HOME` if set, else `~/.cache/ttsgraph`."""
    env = os.environ.get("TTSGRAPH_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ttsgraph"
