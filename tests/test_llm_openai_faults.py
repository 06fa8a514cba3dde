"""The OpenAI-compatible backend's less travelled paths, against the stub server of
test_llm_openai_compat.py: the json_schema → json_object downgrade, a seed-rejected request whose
retry fails again, a reply without choices, a reply without usage, and a schema on a base-model
(completions) endpoint."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator

import pytest

from tests.test_llm_openai_compat import MSGS, Stub, backend_for, chat_reply, run
from ttsgraph.errors import BackendError
from ttsgraph.llm.base import SamplingParams
from ttsgraph.llm.openai_compat import Endpoint, OpenAICompatBackend


@pytest.fixture
def stub() -> Iterator[Stub]:
    server = Stub()
    yield server
    server.close()


SCHEMA = SamplingParams(json_schema=json.dumps({"type": "object", "properties": {"a": {"type": "integer"}}}))


def test_json_schema_is_downgraded_to_json_object_once_per_server(stub: Stub) -> None:
    """llama-cpp-python's server takes only {"type": "json_object", "schema": ...} and says so."""
    stub.script = [(500, {"error": {"message": "response_format: json_schema is not supported"}}, 0),
                   (200, chat_reply('{"a": 1}'), 0)]
    backend = backend_for(stub, retries=0)  # the downgrade is not a retry: it works with none left
    assert run(backend.complete("m", MSGS, SCHEMA)).text == '{"a": 1}'
    first, second = stub.requests[0]["response_format"], stub.requests[1]["response_format"]
    assert first["type"] == "json_schema" and first["json_schema"]["schema"] == json.loads(SCHEMA.json_schema or "")
    assert second == {"type": "json_object", "schema": json.loads(SCHEMA.json_schema or "")}
    run(backend.complete("m", MSGS, SCHEMA))
    assert stub.requests[2]["response_format"]["type"] == "json_object" and len(stub.requests) == 3  # remembered


def test_a_server_error_without_response_format_is_not_a_downgrade(stub: Stub) -> None:
    stub.script = [(500, {"error": {"message": "out of memory"}}, 0), (200, chat_reply("{}"), 0)]
    run(backend_for(stub, retries=1).complete("m", MSGS, SCHEMA))
    assert [r["response_format"]["type"] for r in stub.requests] == ["json_schema", "json_schema"]  # a plain retry


def test_a_seed_rejected_retry_that_fails_again_is_retried_or_reported(stub: Stub) -> None:
    seedless = (400, {"error": {"message": "Unrecognized request argument supplied: seed"}}, 0)
    stub.script = [seedless, (503, {"error": {"message": "busy"}}, 0), (200, chat_reply("ok"), 0)]
    assert run(backend_for(stub, retries=2).complete("m", MSGS, SamplingParams())).text == "ok"
    assert ["seed" in r for r in stub.requests] == [True, False, False]

    other = Stub()
    try:
        other.script = [seedless, (404, {"error": {"message": "model served-m not found"}}, 0)]
        with pytest.raises(BackendError, match="HTTP 404"):
            run(backend_for(other, retries=2).complete("m", MSGS, SamplingParams()))
        assert len(other.requests) == 2  # a client error after the seedless retry is not retried
    finally:
        other.close()


def test_a_reply_without_choices_is_an_error(stub: Stub) -> None:
    stub.script = [(200, {**chat_reply("x"), "choices": []}, 0)]
    with pytest.raises(BackendError, match="reply has no choices"):
        run(backend_for(stub).complete("m", MSGS, SamplingParams()))


def test_a_reply_without_usage_estimates_tokens_and_warns_once_per_server(stub: Stub) -> None:
    reply = chat_reply("four and more")
    del reply["usage"]
    stub.script = [(200, reply, 0)]
    backend = backend_for(stub)
    with pytest.warns(UserWarning, match="reports no token usage; estimating tokens from characters"):
        c = run(backend.complete("m", MSGS, SamplingParams()))
    assert (c.prompt_tokens, c.completion_tokens) == (len(MSGS[0]["content"]) // 4 + 1, len("four and more") // 4 + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second reply without usage: no second warning
        run(backend.complete("m", MSGS, SamplingParams()))


def test_a_schema_is_not_sent_to_a_completions_endpoint(stub: Stub) -> None:
    """Base-model endpoints have no response_format: the schema is dropped and the reply parsed
    as text (the agent's own parser checks it)."""
    stub.script = [(200, {"id": "x", "object": "text_completion", "created": 0, "model": "g",
                          "choices": [{"index": 0, "text": ' {"a": 2}', "finish_reason": "stop", "logprobs": None}],
                          "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}}, 0)]
    backend = OpenAICompatBackend({"g": Endpoint(stub.base_url, "g", chat=False)}, backoff=0.01)
    assert run(backend.complete("g", MSGS, SCHEMA)).text == '{"a": 2}'
    assert stub.requests[0]["path"] == "/v1/completions" and "response_format" not in stub.requests[0]
