"""The chat-completions request: parsed leniently where clients differ, strictly where it matters.

Clients send many fields (logprobs, user, metadata, vendor extensions); rejecting unknown ones
would break them, so anything we do not use is accepted and ignored. The fields that change what
the graph computes (`temperature`, `top_p`, `max_tokens`, `stop`, `seed`, `n`, `stream`) are
validated, and a bad one is a 400 that names it (`param`), as OpenAI does.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ttsgraph.config import Sampling
from ttsgraph.llm.base import Message, SamplingParams
from ttsgraph.serve.errors import bad_request

MAX_N = 8
"""Most choices one request may ask for (each runs the whole graph)."""

_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatRequest(BaseModel):
    """The fields of `POST /v1/chat/completions` that we use; the rest are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    messages: list[dict[str, Any]] = Field(min_length=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(1, ge=1, le=MAX_N)
    stream: bool = False
    stream_options: StreamOptions | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> list[str] | None:
        if value is None:
            return None
        stops = [value] if isinstance(value, str) else list(value)
        if len(stops) > 4:
            raise ValueError("at most 4 stop sequences")
        if any(not s for s in stops):
            raise ValueError("stop sequences must not be empty")
        return stops

    def params(self, defaults: Sampling) -> SamplingParams:
        """Per-request sampling for every node: the request's fields over the server's defaults."""
        return SamplingParams(
            temperature=defaults.temperature if self.temperature is None else self.temperature,
            top_p=defaults.top_p if self.top_p is None else self.top_p,
            max_tokens=self.max_completion_tokens or self.max_tokens or defaults.max_tokens,
            stop=tuple(self.stop) if self.stop is not None else defaults.stop,
        )

    @property
    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)


def parse_request(body: bytes) -> ChatRequest:
    """The request, or a 400 naming the malformed part."""
    try:
        data = json.loads(body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_request(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise bad_request("the body must be a JSON object")
    try:
        request = ChatRequest.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(x) for x in err.get("loc", ())]
        param = loc[0] if loc else None
        where = ".".join(loc) or "body"
        raise bad_request(f"{where}: {str(err.get('msg', exc)).removeprefix('Value error, ')}", param=param) from None
    request_messages(request)  # validated here, so a bad message is a 400 before anything runs
    return request


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list):
        parts = []
        for k, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise bad_request(f"{where}.content[{k}]: only text parts are supported", param="messages")
            parts.append(part["text"])
        return "".join(parts)
    raise bad_request(f"{where}.content: must be a string or a list of text parts", param="messages")


def request_messages(request: ChatRequest) -> list[Message]:
    """The messages as plain {role, content} text (developer → system, tool results → user)."""
    out: list[Message] = []
    for k, message in enumerate(request.messages):
        role = message.get("role")
        if role not in _ROLES:
            raise bad_request(f"messages[{k}].role: must be one of {', '.join(sorted(_ROLES))} (got {role!r})",
                              param="messages")
        role = {"developer": "system", "tool": "user", "function": "user"}.get(role, role)
        out.append({"role": role, "content": _text(message.get("content"), f"messages[{k}]")})
    if not any(m["role"] == "user" and m["content"].strip() for m in out):
        raise bad_request("messages: there is no user message with text (the question)", param="messages")
    return out
