"""Request identity, seeds, sampling params, the base-model prompt and the scripted backend."""

from __future__ import annotations

import asyncio

import pytest

from ttsgraph.errors import BackendError
from ttsgraph.llm.base import (
    Completion,
    SamplingParams,
    derive_seed,
    render_completion_prompt,
    request_key,
    sample_key,
)
from ttsgraph.llm.fake import ScriptedBackend

MSGS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 3?"}]


def test_sampling_params_hashable_and_list_stop_normalized() -> None:
    a = SamplingParams(stop=["\n"])  # type: ignore[arg-type]
    b = SamplingParams(stop=("\n",))
    assert a == b and hash(a) == hash(b)
    assert a.to_dict()["stop"] == ["\n"]
    assert SamplingParams.from_dict(a.to_dict()) == a


@pytest.mark.parametrize("kwargs", [{"max_tokens": 0}, {"temperature": -1.0}, {"top_p": 0.0}, {"top_p": 1.5}])
def test_sampling_params_reject_nonsense(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SamplingParams(**kwargs)


def test_request_key_ignores_dict_order_but_not_content() -> None:
    p = SamplingParams()
    reordered = [{"content": m["content"], "role": m["role"]} for m in MSGS]
    assert request_key("m", MSGS, p) == request_key("m", reordered, p)
    assert request_key("m", MSGS, p) != request_key("other", MSGS, p)
    assert request_key("m", MSGS, p) != request_key("m", MSGS, SamplingParams(max_tokens=9))
    assert request_key("m", MSGS, p) != request_key("m", MSGS[::-1], p)


def test_sample_index_changes_key_and_seed_deterministically() -> None:
    p = SamplingParams()
    keys = {sample_key("m", MSGS, p, s) for s in range(5)}
    assert len(keys) == 5
    seeds = [derive_seed("m", MSGS, p, s) for s in range(5)]
    assert len(set(seeds)) == 5
    assert seeds == [derive_seed("m", MSGS, p, s) for s in range(5)]
    assert all(0 <= s < 2**31 for s in seeds)


def test_completion_prompt_for_base_models() -> None:
    prompt = render_completion_prompt(MSGS)
    assert prompt.startswith("Be brief.")
    assert "What is 2 + 3?" in prompt
    assert prompt.endswith("Answer:")


def test_scripted_backend_forms_and_errors() -> None:
    async def go() -> None:
        by_fn = ScriptedBackend(lambda model, messages, sample: f"{model}:{sample}")
        c = await by_fn.complete("m", MSGS, SamplingParams(), 3)
        assert isinstance(c, Completion) and c.text == "m:3" and c.prompt_tokens > 0
        by_dict = ScriptedBackend({"a": "x"})
        assert (await by_dict.complete("a", MSGS, SamplingParams())).text == "x"
        with pytest.raises(BackendError, match="no scripted reply"):
            await by_dict.complete("b", MSGS, SamplingParams())
        by_list = ScriptedBackend(["one", "two"])
        texts = [(await by_list.complete("a", MSGS, SamplingParams())).text for _ in range(3)]
        assert texts == ["one", "two", "two"]
        empty = ScriptedBackend(lambda *a: "   ")
        with pytest.raises(BackendError, match="empty"):
            await empty.complete("a", MSGS, SamplingParams())
        failing = ScriptedBackend(lambda *a: BackendError("boom", model="a"))
        with pytest.raises(BackendError, match="boom"):
            await failing.complete("a", MSGS, SamplingParams())
        assert len(by_fn.calls) == 1 and by_fn.calls[0].sample == 3

    asyncio.run(go())
