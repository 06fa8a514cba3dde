"""AgentClient: schema passed to the backend, every call audited (failed and rejected ones too)."""

from __future__ import annotations

import asyncio
import json

import pytest

from ttsgraph.errors import BackendError
from ttsgraph.llm.fake import ScriptedBackend
from ttsgraph.search.agent import AgentClient

MSGS = [{"role": "system", "content": "s"}, {"role": "user", "content": "pick"}]


def test_ask_passes_the_schema_and_logs_the_exchange() -> None:
    backend = ScriptedBackend(['{"picks": [0, 1]}'])
    client = AgentClient(backend, "smollm2-135m")
    schema = {"type": "object", "properties": {"picks": {"type": "array"}}}
    text, seconds = asyncio.run(client.ask(MSGS, schema, kind="init", iteration=0, max_tokens=77))
    assert text == '{"picks": [0, 1]}' and seconds >= 0
    params = backend.calls[0].params
    assert json.loads(params.json_schema) == schema and params.max_tokens == 77 and params.temperature == 0.1
    (ex,) = client.drain()
    assert (ex.kind, ex.ok, ex.reply, ex.schema, ex.messages) == ("init", True, text, True, MSGS)
    assert client.drain() == []  # drained once
    assert client.calls == 1


def test_rejected_and_failed_calls_stay_in_the_log_with_reasons() -> None:
    replies = iter(["not json", BackendError("server down", model="m")])
    backend = ScriptedBackend(lambda model, messages, sample: next(replies))
    client = AgentClient(backend, "m")
    asyncio.run(client.ask(MSGS))
    client.reject("no JSON object found in the reply")
    client.annotate(fallback="sampled")
    with pytest.raises(BackendError):
        asyncio.run(client.ask(MSGS, attempt=1))
    first, second = client.drain()
    assert (first.ok, first.error, first.meta) == (False, "no JSON object found in the reply", {"fallback": "sampled"})
    assert second.ok is False and second.reply is None and "server down" in (second.error or "")
    assert second.attempt == 1


def test_state_keeps_the_counters_and_leaves_the_exchanges_to_the_store() -> None:
    """Regression (issue 10): the state held the undrained exchanges, which the study stores right
    after taking the state, so a resumed study stored them a second time."""
    client = AgentClient(ScriptedBackend(["a", "b"]), "m")
    asyncio.run(client.ask(MSGS))
    client.drain()
    asyncio.run(client.ask(MSGS))
    state = json.loads(json.dumps(client.state_dict()))
    other = AgentClient(ScriptedBackend(["x"]), "m")
    other.load_state_dict(state)
    assert other.calls == 2 and other.total_wall == pytest.approx(client.total_wall)
    assert other.drain() == [] and "pending" not in state


def test_a_repeated_prompt_draws_a_new_sample_and_resumes_in_step(tmp_path) -> None:
    """With a response cache, sample 0 every time would hand a stalled search the same reply forever."""
    from ttsgraph.llm.cache import CachedBackend

    inner = ScriptedBackend(lambda model, messages, sample: f"reply {sample}")
    cached = CachedBackend(inner, tmp_path / "cache.sqlite")
    client = AgentClient(cached, "m")
    first = asyncio.run(client.ask(MSGS))[0]
    state = json.loads(json.dumps(client.state_dict()))
    second = asyncio.run(client.ask(MSGS))[0]
    other_prompt = asyncio.run(client.ask(MSGS[:1]))[0]
    assert (first, second, other_prompt) == ("reply 0", "reply 1", "reply 0")
    resumed = AgentClient(cached, "m")
    resumed.load_state_dict(state)
    assert asyncio.run(resumed.ask(MSGS))[0] == "reply 1"  # same sample as the uninterrupted run...
    assert resumed.log[-1].cached  # ...served from the cache


def test_a_prompt_repeated_in_a_later_round_is_a_new_sample_and_the_counter_stays_small() -> None:
    """The counter is part of every stored optimizer state: it must not grow with the rounds."""
    from ttsgraph.search.agent import SAMPLES_PER_ROUND

    client = AgentClient(ScriptedBackend(lambda model, messages, sample: f"reply {sample}"), "m")
    sizes = []
    for k in range(12):
        assert asyncio.run(client.ask(MSGS, iteration=k))[0] == f"reply {k * SAMPLES_PER_ROUND}"
        asyncio.run(client.ask([{"role": "user", "content": f"q{k}"}], iteration=k))
        sizes.append(len(client.state_dict()["asked"]))
    assert set(sizes) == {2}
