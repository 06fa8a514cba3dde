"""Failures in OpenAI's error shape, with the status a client library maps to its exception type.

Proxies that put an error inside the answer text make a client treat a broken graph as an answer.
Here every failure is an `ApiError` carrying the HTTP status and OpenAI's error object
(`{"error": {"message", "type", "param", "code"}}`), so the official client raises
`BadRequestError`, `AuthenticationError`, `NotFoundError`, `RateLimitError` or
`InternalServerError` as it would against OpenAI itself.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An HTTP error response. `param` names the request field at fault (400s); `headers` carries
    e.g. `Retry-After` on a 429."""

    def __init__(self, status: int, message: str, *, type: str, param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad_request(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, type="invalid_request_error", param=param, code="invalid_value" if param else None)


def unauthorized(message: str) -> ApiError:
    return ApiError(401, message, type="invalid_request_error", code="invalid_api_key")


def model_not_found(model: str, known: list[str]) -> ApiError:
    return ApiError(404, f"The model {model!r} does not exist (served here: {', '.join(known)})",
                    type="invalid_request_error", param="model", code="model_not_found")


def overloaded(running: int, queued: int, retry_after: int) -> ApiError:
    return ApiError(429, f"server overloaded: {running} graphs running and {queued} waiting; retry in {retry_after}s",
                    type="rate_limit_exceeded", code="overloaded", headers={"Retry-After": str(retry_after)})


def node_failed(reason: str) -> ApiError:
    """A node's backend failed for good: 502 names the node, its model and the reason."""
    return ApiError(502, f"graph node failed: {reason}", type="server_error", code="node_failed")


def timed_out(seconds: float) -> ApiError:
    return ApiError(504, f"the graph did not finish within the request timeout ({seconds:g}s)",
                    type="server_error", code="timeout")
