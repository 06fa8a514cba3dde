"""`ttsgraph serve` over a scripted backend: a real uvicorn server on 127.0.0.1 called with the
official `openai` client (and raw HTTP where the client hides what we check)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import openai
import pytest

from ttsgraph.config import BackendSettings, Sampling
from ttsgraph.errors import BackendError
from ttsgraph.graph import chain, parallel
from ttsgraph.graph_io import save_graph
from ttsgraph.llm.base import Completion, Message, SamplingParams
from ttsgraph.llm.fake import ScriptedBackend
from ttsgraph.serve import ServeOptions, create_app, prepare
from ttsgraph.serve.runner import ServerThread

KEY_ENV = "TTSGRAPH_TEST_SERVE_KEY"
KEY = "sekret"


def _question(messages: list[Message]) -> str:
    return next(m["content"] for m in reversed(messages) if m["role"] == "user")


class StreamingScript(ScriptedBackend):
    """A scripted backend that takes time when the question says SLOW (1.5 s) or HANG (10 s),
    fails on FAIL, and streams its reply word by word."""

    def __init__(self) -> None:
        def reply(model: str, messages: list[Message], sample: int) -> object:
            q = _question(messages)
            if "FAIL" in q and "Answers from" not in q:
                return BackendError("HTTP 500: boom", model=model)
            if "Answers from" in q:
                return f"final answer one two three (sample {sample})"
            return f"{model} says {sample}"

        super().__init__(reply)
        self.started: list[str] = []  # questions of calls begun (`calls` records only those that got past the delay)
        self.streamed = 0  # pieces streamed so far

    async def complete(self, model: str, messages: list[Message], params: SamplingParams,
                       sample: int = 0) -> Completion:
        q = _question(messages)
        self.started.append(q)
        if "Answers from" not in q:
            await asyncio.sleep(10.0 if "HANG" in q else 1.5 if "SLOW" in q else 0.0)
        return await super().complete(model, messages, params, sample)

    async def stream(self, model: str, messages: list[Message], params: SamplingParams,
                     sample: int = 0) -> AsyncIterator[str | Completion]:
        done = await self.complete(model, messages, params, sample)
        pause = 0.5 if "SLOWOUT" in _question(messages) else 0.01
        for k, word in enumerate(done.text.split(" ")):
            await asyncio.sleep(pause)
            if k == 2 and "BREAK" in _question(messages):
                raise BackendError("stream broke: connection reset", model=model)
            self.streamed += 1
            yield (" " if k else "") + word
        yield done


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, StreamingScript]]:
    tmp = tmp_path_factory.mktemp("serve")
    save_graph(parallel(3, "smollm2-135m"), tmp / "par.json")
    save_graph(chain(1, "smollm2-135m"), tmp / "one.json")
    mp = pytest.MonkeyPatch()
    mp.setenv(KEY_ENV, KEY)
    backend = StreamingScript()
    options = ServeOptions(graphs=[str(tmp / "par.json"), str(tmp / "one.json")], models="local",
                           api_key_env=KEY_ENV, max_concurrency=2, queue=1, request_timeout=3.0,
                           sampling=Sampling(max_tokens=16), backend=BackendSettings(cache=str(tmp / "cache.sqlite"), concurrency=16))
    with ServerThread(create_app(prepare(options, check=False), fake_backend=backend)) as server:
        yield server, backend
    mp.undo()


def client(server: ServerThread, key: str = KEY, **kw: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0, **kw)  # type: ignore[arg-type]


def ask(server: ServerThread, content: str = "What is 2+3?", **kw: object):  # type: ignore[no-untyped-def]
    return client(server).chat.completions.create(model="par", messages=[{"role": "user", "content": content}], **kw)


def raw(server: ServerThread, path: str, body: bytes | None = None, key: str | None = KEY) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(server.url + path, data=body, method="POST" if body is not None else "GET")
    req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_models_list_graphs_with_nodes_and_planned_units(served) -> None:  # type: ignore[no-untyped-def]
    server, _ = served
    models = {m.id: m for m in client(server).models.list().data}
    assert set(models) == {"par", "one"}
    meta = models["par"].model_extra["ttsgraph"]
    assert [n["model"] for n in meta["nodes"]] == ["smollm2-135m"] * 4
    assert meta["planned_units"] > 3.0 and meta["output"] == "out"


def test_plain_completion_sums_usage_over_nodes_and_reports_each(served) -> None:  # type: ignore[no-untyped-def]
    server, _ = served
    reply = ask(server, temperature=0.5, max_tokens=12, stop=["zzz"], seed=1)
    assert reply.object == "chat.completion" and reply.model == "par"
    assert reply.choices[0].message.content.startswith("final answer")
    ext = reply.model_extra["ttsgraph"]["choices"][0]
    assert len(ext["nodes"]) == 4 and ext["critical_path_seconds"] >= 0
    assert reply.usage.prompt_tokens == sum(n["prompt_tokens"] for n in ext["nodes"])
    assert reply.usage.completion_tokens == sum(n["completion_tokens"] for n in ext["nodes"])
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_sampling_fields_reach_every_node(served) -> None:  # type: ignore[no-untyped-def]
    server, backend = served
    before = len(backend.calls)
    ask(server, "sampling check", temperature=0.7, top_p=0.9, max_tokens=9, stop=["END"], seed=5)
    calls = backend.calls[before:]
    assert len(calls) == 4
    assert {(c.params.temperature, c.params.top_p, c.params.max_tokens, c.params.stop) for c in calls} == {
        (0.7, 0.9, 9, ("END",))}


def test_seed_reproduces_and_unseeded_requests_differ(served) -> None:  # type: ignore[no-untyped-def]
    server, _ = served
    a = ask(server, "seeded?", seed=42).choices[0].message.content
    b = ask(server, "seeded?", seed=42).choices[0].message.content
    c = ask(server, "seeded?", seed=43).choices[0].message.content
    assert a == b != c
    free = {ask(server, "unseeded?").choices[0].message.content for _ in range(3)}
    assert len(free) == 3


def test_seeded_request_is_cached_unseeded_is_not(served) -> None:  # type: ignore[no-untyped-def]
    server, backend = served
    ask(server, "cache me", seed=7)
    before = len(backend.calls)
    again = ask(server, "cache me", seed=7)
    assert len(backend.calls) == before  # every node came from the cache
    assert all(n["cached"] for n in again.model_extra["ttsgraph"]["choices"][0]["nodes"])
    ask(server, "never cached")
    before = len(backend.calls)
    ask(server, "never cached")
    assert len(backend.calls) == before + 4


def test_n_runs_the_graph_n_times_with_distinct_samples(served) -> None:  # type: ignore[no-untyped-def]
    server, _ = served
    reply = ask(server, "two please", n=2, seed=3)
    assert [c.index for c in reply.choices] == [0, 1]
    assert reply.choices[0].message.content != reply.choices[1].message.content
    assert len(reply.model_extra["ttsgraph"]["choices"]) == 2


def test_stream_sends_role_then_pieces_then_finish_and_usage(served) -> None:  # type: ignore[no-untyped-def]
    server, _ = served
    chunks = list(ask(server, "stream it", stream=True, stream_options={"include_usage": True}, seed=11))
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in chunks[1:] if c.choices and c.choices[0].delta.content]
    assert len(pieces) >= 3
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0] is chunks[-2]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    plain = ask(server, "stream it", seed=11)
    assert "".join(pieces) == plain.choices[0].message.content  # same sample, streamed or not
    assert chunks[-1].usage.total_tokens == plain.usage.total_tokens


def test_stream_with_n_two_interleaves_choices_and_finishes_each(served) -> None:  # type: ignore[no-untyped-def]
    server, _ = served
    chunks = list(ask(server, "two streams", stream=True, n=2, seed=12))
    assert {c.index for c in chunks[0].choices} == {0, 1}
    text = {0: "", 1: ""}
    for c in chunks[1:]:
        for choice in c.choices:
            text[choice.index] += choice.delta.content or ""
    plain = ask(server, "two streams", n=2, seed=12)
    assert [text[0], text[1]] == [c.message.content for c in plain.choices]
    assert sorted(ch.index for c in chunks for ch in c.choices if ch.finish_reason) == [0, 1]


def test_a_failure_after_the_first_token_is_an_error_event(served) -> None:  # type: ignore[no-untyped-def]
    server, _ = served
    received = []
    with pytest.raises(openai.APIError, match="stream broke"):
        for chunk in ask(server, "BREAK midway", stream=True, seed=13):
            received.append(chunk)
    assert any(c.choices and c.choices[0].delta.content for c in received)  # pieces came before the error


def test_stream_without_usage_option_has_no_usage_chunk(served) -> None:  # type: ignore[no-untyped-def]
    server, _ = served
    status, headers, body = raw(server, "/v1/chat/completions", json.dumps(
        {"model": "par", "stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode())
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = [line.removeprefix("data: ") for line in body.decode().split("\n\n") if line]
    assert events[-1] == "[DONE]"
    objs = [json.loads(e) for e in events[:-1]]
    assert all("usage" not in o for o in objs) and objs[-1]["choices"][0]["finish_reason"] == "stop"
    assert "ttsgraph" in objs[-1]


def test_system_message_passes_through_to_every_node(served) -> None:  # type: ignore[no-untyped-def]
    server, backend = served
    before = len(backend.calls)
    client(server).chat.completions.create(model="par", seed=9, messages=[
        {"role": "system", "content": "Answer like a pirate."}, {"role": "user", "content": "q?"}])
    calls = backend.calls[before:]
    assert len(calls) == 4
    assert all(c.messages[0]["role"] == "system" and c.messages[0]["content"].startswith("Answer like a pirate.")
               for c in calls)
    out = calls[-1].messages[-1]["content"]
    assert out.startswith("q?") and "[1]" in out and "[3]" in out


def test_unknown_fields_are_ignored(served) -> None:  # type: ignore[no-untyped-def]
    server, _ = served
    reply = client(server).chat.completions.create(
        model="one", messages=[{"role": "user", "content": "hi"}], user="u1", logprobs=False,
        extra_body={"vendor_thing": {"x": 1}, "top_k": 3})
    assert reply.choices[0].message.content


@pytest.mark.parametrize("body, param", [
    (b"{not json", None),
    (json.dumps({"model": "par", "messages": [{"role": "user", "content": "x"}], "temperature": 9}), "temperature"),
    (json.dumps({"model": "par", "messages": [{"role": "user", "content": "x"}], "n": 0}), "n"),
    (json.dumps({"model": "par", "messages": []}), "messages"),
    (json.dumps({"model": "par", "messages": [{"role": "assistant", "content": "only me"}]}), "messages"),
    (json.dumps({"model": "par", "messages": [{"role": "user", "content": "x"}], "stop": ["a"] * 5}), "stop"),
])
def test_bad_requests_are_400_naming_the_parameter(served, body, param) -> None:  # type: ignore[no-untyped-def]
    server, _ = served
    status, _, data = raw(server, "/v1/chat/completions", body if isinstance(body, bytes) else body.encode())
    assert status == 400
    error = json.loads(data)["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]


def test_client_raises_bad_request_for_a_bad_parameter(served) -> None:  # type: ignore[no-untyped-def]
    server, _ = served
    with pytest.raises(openai.BadRequestError, match="top_p"):
        ask(server, top_p=0)


def test_missing_or_wrong_key_is_401(served) -> None:  # type: ignore[no-untyped-def]
    server, _ = served
    with pytest.raises(openai.AuthenticationError, match="incorrect API key"):
        client(server, key="wrong").chat.completions.create(model="par", messages=[{"role": "user", "content": "x"}])
    status, _, data = raw(server, "/v1/models", key=None)
    assert status == 401 and "missing API key" in json.loads(data)["error"]["message"]
    assert raw(server, "/health", key=None)[0] == 200  # operations endpoints need no key


def test_unknown_model_is_404(served) -> None:  # type: ignore[no-untyped-def]
    server, _ = served
    with pytest.raises(openai.NotFoundError, match="'nope' does not exist"):
        client(server).chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert raw(server, "/v1/no/such/route")[0] == 404


def test_failing_node_is_502_naming_node_and_reason(served) -> None:  # type: ignore[no-untyped-def]
    server, _ = served
    with pytest.raises(openai.InternalServerError) as info:
        ask(server, "please FAIL", seed=1)
    assert info.value.status_code == 502
    assert "node a" in info.value.message and "boom" in info.value.message
    with pytest.raises(openai.InternalServerError) as info:  # before the first token: a real 502 too
        ask(server, "please FAIL", stream=True, seed=1)
    assert info.value.status_code == 502


def test_timeout_is_504(served) -> None:  # type: ignore[no-untyped-def]
    server, _ = served
    with pytest.raises(openai.InternalServerError) as info:
        ask(server, "HANG now")
    assert info.value.status_code == 504 and "timeout" in info.value.message


def _metric(server: ServerThread, name: str) -> float:
    text = raw(server, "/metrics", key=None)[2].decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def test_overload_is_429_with_retry_after_and_admitted_requests_finish(served) -> None:  # type: ignore[no-untyped-def]
    server, _ = served
    results: list[object] = []

    def slow(k: int) -> None:
        try:
            results.append(ask(server, f"SLOW {k}").choices[0].message.content)
        except openai.OpenAIError as exc:
            results.append(exc)

    threads = [threading.Thread(target=slow, args=(k,)) for k in range(3)]  # 2 run, 1 waits
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while (_metric(server, "ttsgraph_graphs_in_flight"), _metric(server, "ttsgraph_graphs_queued")) != (2, 1):
        assert time.monotonic() < deadline, "the three requests were never admitted"
        time.sleep(0.05)
    with pytest.raises(openai.RateLimitError) as info:
        ask(server, "one too many")
    assert int(info.value.response.headers["retry-after"]) >= 1
    for t in threads:
        t.join()
    assert len(results) == 3 and all(isinstance(r, str) for r in results)


def test_client_disconnect_cancels_the_graph(served) -> None:  # type: ignore[no-untyped-def]
    server, backend = served
    with pytest.raises(openai.APITimeoutError):
        client(server, timeout=0.4).chat.completions.create(
            model="par", messages=[{"role": "user", "content": "SLOW and abandoned"}])
    time.sleep(2.0)  # the workers would have finished by now, and the output node started
    started = [q for q in backend.started if "SLOW and abandoned" in q]
    finished = [c for c in backend.calls if "SLOW and abandoned" in _question(c.messages)]
    assert len(started) == 3 and finished == []  # three workers began, were cancelled; the output node never ran
    assert _metric(server, 'ttsgraph_requests_total{model="par",status="499"}') == 1


def test_client_leaving_mid_stream_stops_the_output_node_and_frees_its_slot(served) -> None:  # type: ignore[no-untyped-def]
    import http.client

    server, backend = served
    before = _metric(server, 'ttsgraph_requests_total{model="par",status="499"}')
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("POST", "/v1/chat/completions", json.dumps({
        "model": "par", "stream": True, "messages": [{"role": "user", "content": "SLOWOUT please"}]}),
        {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200 and response.read1(1)  # the stream has begun
    streamed = backend.streamed
    conn.close()  # the client leaves while the output node is still writing
    deadline = time.monotonic() + 5
    while _metric(server, 'ttsgraph_requests_total{model="par",status="499"}') == before:
        assert time.monotonic() < deadline, "the abandoned stream was never closed"
        time.sleep(0.05)
    time.sleep(1.0)
    assert backend.streamed <= streamed + 2  # the output node stopped (it had 6 more pieces at 0.5 s each)
    assert _metric(server, "ttsgraph_graphs_in_flight") == 0


def test_ready_and_metrics(served) -> None:  # type: ignore[no-untyped-def]
    server, _ = served
    status, _, body = raw(server, "/ready", key=None)
    assert status == 200 and json.loads(body)["ready"] is True
    assert _metric(server, 'ttsgraph_requests_total{model="par",status="200"}') >= 5
    assert _metric(server, 'ttsgraph_node_calls_total{model="smollm2-135m"}') > 0
    assert _metric(server, 'ttsgraph_node_errors_total{model="smollm2-135m"}') >= 1
    assert _metric(server, "ttsgraph_time_to_first_token_seconds_count") >= 1


def test_request_log_line(served, caplog) -> None:  # type: ignore[no-untyped-def]
    server, _ = served
    with caplog.at_level("INFO", logger="ttsgraph.serve"):
        reply = ask(server, "log me", seed=2)
    line = next(r.getMessage() for r in caplog.records if reply.id in r.getMessage())
    assert "model=par status=200" in line and f"tokens={reply.usage.total_tokens}" in line


# ----- pure pieces: prompts, the request, graph sources ----------------------------------------

def test_task_prompts_use_the_task_and_put_the_client_system_first() -> None:
    from ttsgraph.serve.prompts import prompts_for
    from ttsgraph.tasks import load_task

    task = load_task("arithmetic")
    prompts = prompts_for([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "1+2?"}], task)
    alone = prompts("assistant", [], False)
    assert alone[0]["role"] == "system" and alone[0]["content"].startswith("Be brief.\n\n")
    assert task.answer_rule in alone[0]["content"] and alone[-1]["content"] == "1+2?"
    fused = prompts("fuser", ["3", "4"], False)
    assert "[1]\n3" in fused[-1]["content"] and "[2]\n4" in fused[-1]["content"]


def test_generic_prompts_keep_history_and_take_the_last_user_message() -> None:
    from ttsgraph.serve.prompts import prompts_for

    messages = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "reply"},
                {"role": "user", "content": "second"}]
    prompts = prompts_for(messages, None)
    assert prompts("assistant", [], False) == messages  # a lone node sees the conversation as one model would
    synth = prompts("assistant", ["x"], True)
    assert synth[1:3] == messages[:2] and synth[-1]["content"].startswith("second")


def test_text_parts_are_joined_and_other_parts_rejected() -> None:
    from ttsgraph.serve.errors import ApiError
    from ttsgraph.serve.protocol import parse_request, request_messages

    ok = parse_request(json.dumps({"model": "m", "messages": [{"role": "developer", "content": "d"}, {
        "role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]}).encode())
    assert request_messages(ok) == [{"role": "system", "content": "d"}, {"role": "user", "content": "ab"}]
    with pytest.raises(ApiError, match=r"messages\[0\].content\[0\]: only text parts"):
        parse_request(json.dumps({"model": "m", "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}).encode())


def test_a_run_directory_serves_its_best_graph_under_the_run_name(tmp_path: Path) -> None:
    from ttsgraph.serve.graphs import read_sources

    run = tmp_path / "my-run"
    run.mkdir()
    save_graph(parallel(2, "smollm2-135m"), run / "best_graph.json")
    save_graph(chain(1, "smollm2-135m"), tmp_path / "my-run.json")
    [source] = read_sources([str(run)])
    assert source.id == "my-run" and len(source.graph.nodes) == 3
    with pytest.raises(Exception, match="two graphs would be served as model 'my-run'"):
        read_sources([str(run), str(tmp_path / "my-run.json")])
    (tmp_path / "unfinished").mkdir()
    with pytest.raises(Exception, match="best_graph.json is missing"):
        read_sources([str(tmp_path / "unfinished")])


def test_a_graph_whose_model_is_not_in_the_pool_fails_before_serving(tmp_path: Path) -> None:
    from ttsgraph.errors import TtsGraphError

    save_graph(chain(1, "llama-3.1-8b"), tmp_path / "big.json")
    with pytest.raises(TtsGraphError, match="big.json.*pass --models"):
        prepare(ServeOptions(graphs=[str(tmp_path / "big.json")], models="local"), check=False)


def test_a_run_directory_brings_its_pool_and_lengths(tmp_path: Path) -> None:
    from ttsgraph.store import RunStore

    run = tmp_path / "r"
    store = RunStore.create(run)
    store.set_config("run", {"task": "arithmetic", "models": "local", "lengths": [12.0, 34.0]})
    store.close()
    save_graph(chain(1, "smollm2-135m"), run / "best_graph.json")
    prepared = prepare(ServeOptions(graphs=[str(run)]), check=False)
    assert prepared.pool.name == "local" and (prepared.lengths.prompt, prepared.lengths.answer) == (12.0, 34.0) and prepared.task is None


@pytest.mark.parametrize("args, message", [
    (["missing.json"], "missing.json: no such graph file or run directory"),
    (["examples/single.json", "--api-key-env", "TTSGRAPH_SURELY_UNSET"],
     "--api-key-env: environment variable TTSGRAPH_SURELY_UNSET is not set"),
    (["examples/single.json", "--max-tokens", "0"], "--max-tokens"),
    (["examples/single.json", "--task", "nosuchtask"], "unknown task 'nosuchtask'"),
])
def test_cli_refuses_bad_input_in_one_line_before_listening(args: list[str], message: str) -> None:
    from typer.testing import CliRunner

    from ttsgraph.cli import app

    root = Path(__file__).resolve().parents[1]
    result = CliRunner().invoke(app, ["serve", *[str(root / a) if a.endswith(".json") else a for a in args]])
    assert result.exit_code == 2 and message in result.output.replace("\n", " ")
    assert "listening" not in result.output
