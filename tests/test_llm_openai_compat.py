"""The OpenAI-compatible backend's HTTP behaviour against a scripted stub server on 127.0.0.1:
retries on 429/5xx with backoff, no retry on 4xx, empty replies and dead servers as errors with
reasons, usage tokens, seeds, API keys from the environment. (Real model calls: test_llm_server.py.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ttsgraph.errors import BackendError
from ttsgraph.llm.base import SamplingParams, derive_seed
from ttsgraph.llm.openai_compat import Endpoint, OpenAICompatBackend
from tests.fault_stub import Stub, chat_reply

MSGS = [{"role": "user", "content": "What is 2 + 2?"}]


@pytest.fixture
def stub() -> Iterator[Stub]:
    s = Stub()
    yield s
    s.close()


def backend_for(stub: Stub, **kw: Any) -> OpenAICompatBackend:
    kw.setdefault("backoff", 0.01)
    kw.setdefault("timeout", 5.0)
    return OpenAICompatBackend({"m": Endpoint(stub.base_url, "served-m")}, **kw)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_success_uses_usage_seed_and_served_name(stub: Stub) -> None:
    stub.script = [(200, chat_reply("  four  ", 21, 3), 0)]
    params = SamplingParams(max_tokens=7, stop=("\n",))
    c = run(backend_for(stub).complete("m", MSGS, params, 2))
    assert (c.text, c.prompt_tokens, c.completion_tokens, c.cached) == ("four", 21, 3, False)
    req = stub.requests[0]
    assert req["path"] == "/v1/chat/completions" and req["model"] == "served-m"
    assert req["max_tokens"] == 7 and req["stop"] == ["\n"] and req["temperature"] == pytest.approx(0.1)
    assert req["seed"] == derive_seed("m", MSGS, params, 2)


def test_retries_5xx_and_429_then_succeeds(stub: Stub) -> None:
    stub.script = [(503, {"error": {"message": "busy"}}, 0), (429, {"error": {"message": "slow down"}}, 0),
                   (200, chat_reply("ok"), 0)]
    c = run(backend_for(stub, retries=3).complete("m", MSGS, SamplingParams()))
    assert c.text == "ok" and len(stub.requests) == 3


def test_gives_up_after_retries_with_the_last_reason(stub: Stub) -> None:
    stub.script = [(500, {"error": {"message": "kaput"}}, 0)]
    with pytest.raises(BackendError) as err:
        run(backend_for(stub, retries=2).complete("m", MSGS, SamplingParams()))
    assert len(stub.requests) == 3
    assert "HTTP 500" in err.value.reason and "after 3 attempts" in err.value.reason
    assert err.value.model == "m" and err.value.retriable


def test_client_errors_are_not_retried(stub: Stub) -> None:
    stub.script = [(404, {"error": {"message": "model served-m not found"}}, 0)]
    with pytest.raises(BackendError, match="HTTP 404"):
        run(backend_for(stub).complete("m", MSGS, SamplingParams()))
    assert len(stub.requests) == 1


def test_empty_reply_is_an_error_not_an_answer(stub: Stub) -> None:
    for content in ("", None, "   \n"):
        stub.script = [(200, chat_reply(content), 0)]
        with pytest.raises(BackendError, match="empty reply"):
            run(backend_for(stub).complete("m", MSGS, SamplingParams()))


def test_timeouts_are_retried_then_reported(stub: Stub) -> None:
    stub.script = [(200, chat_reply("late"), 8.0)]
    t0 = time.perf_counter()
    with pytest.raises(BackendError, match="timed out"):
        run(backend_for(stub, timeout=0.3, retries=1).complete("m", MSGS, SamplingParams()))
    # two attempts cut at 0.3 s each, far from the 16 s the replies would take
    assert len(stub.requests) == 2 and time.perf_counter() - t0 < 6


def test_dead_server_is_a_connection_error(stub: Stub) -> None:
    backend = backend_for(stub, retries=1)
    stub.close()
    with pytest.raises(BackendError, match="connection error"):
        run(backend.complete("m", MSGS, SamplingParams()))


def test_server_that_rejects_seed_is_called_without_it(stub: Stub) -> None:
    stub.script = [(400, {"error": {"message": "Unrecognized request argument: seed"}}, 0), (200, chat_reply("ok"), 0)]
    backend = backend_for(stub)
    assert run(backend.complete("m", MSGS, SamplingParams())).text == "ok"
    assert "seed" in stub.requests[0] and "seed" not in stub.requests[1]
    run(backend.complete("m", MSGS, SamplingParams()))
    assert "seed" not in stub.requests[2]  # remembered


def test_api_key_comes_from_the_named_variable(stub: Stub, monkeypatch: pytest.MonkeyPatch) -> None:
    stub.script = [(200, chat_reply("ok"), 0)]
    backend = OpenAICompatBackend({"m": Endpoint(stub.base_url, "served-m", "TTSGRAPH_TEST_KEY")}, backoff=0.01)
    monkeypatch.delenv("TTSGRAPH_TEST_KEY", raising=False)
    with pytest.raises(BackendError, match="TTSGRAPH_TEST_KEY"):
        run(backend.complete("m", MSGS, SamplingParams()))
    assert stub.requests == []
    monkeypatch.setenv("TTSGRAPH_TEST_KEY", "sekrit")
    run(backend.complete("m", MSGS, SamplingParams()))
    assert stub.headers[0].get("authorization") == "Bearer sekrit"


def test_base_models_use_the_completions_endpoint(stub: Stub) -> None:
    stub.script = [(200, {"id": "x", "object": "text_completion", "created": 0, "model": "g",
                          "choices": [{"index": 0, "text": " 4", "finish_reason": "stop", "logprobs": None}],
                          "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10}}, 0)]
    backend = OpenAICompatBackend({"g": Endpoint(stub.base_url, "g", chat=False)}, backoff=0.01)
    c = run(backend.complete("g", MSGS, SamplingParams()))
    assert c.text == "4" and c.completion_tokens == 1
    req = stub.requests[0]
    assert req["path"] == "/v1/completions" and req["prompt"].endswith("Answer:") and len(req["stop"]) <= 4


def test_unknown_model_is_an_error(stub: Stub) -> None:
    with pytest.raises(BackendError, match="no OpenAI-compatible endpoint"):
        run(backend_for(stub).complete("nope", MSGS, SamplingParams()))
