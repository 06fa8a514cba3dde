"""Endpoint pools (llm/endpoint_pool.py) against stub OpenAI-compatible servers on 127.0.0.1:
least-loaded choice, per-replica concurrency limits, failover, backoff and recovery, the all-down
error, shared cache entries between replicas, and the models.toml syntax."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fault_stub import Stub, chat_reply
from ttsgraph.errors import BackendError, FileFormatError
from ttsgraph.llm.base import SamplingParams
from ttsgraph.llm.identity import binding_identity
from ttsgraph.llm.llama_server import free_port
from ttsgraph.llm.router import build_backend, endpoint_states
from ttsgraph.models import Binding, PoolEndpoint, load_models_file, load_pool, with_binding

MODEL = "smollm2-135m"
PARAMS = SamplingParams(max_tokens=8)


class TimedStub(Stub):
    """A stub that notes when each request arrived (monotonic seconds)."""

    def __init__(self, reply: tuple[int, Any, float]) -> None:
        super().__init__()
        self.script = [reply]
        self.arrivals: list[float] = []

    def respond(self, path: str, body: dict[str, Any]) -> tuple[int, Any, float]:
        self.arrivals.append(time.monotonic())
        return super().respond(path, body)


@pytest.fixture
def stubs():  # type: ignore[no-untyped-def]
    made: list[Stub] = []

    def make(*script: tuple[int, Any, float]) -> TimedStub:
        stub = TimedStub(script[0])
        stub.script = list(script)
        made.append(stub)
        return stub

    yield make
    for stub in made:
        stub.close()


def ok(delay: float = 0.0, text: str = "hi") -> tuple[int, Any, float]:
    return 200, chat_reply(text), delay


def backend_over(urls: list[str], limits: list[int | None] | None = None, cache: Path | None = None,
                 retries: int = 2, backoff: float = 0.2):  # type: ignore[no-untyped-def]
    limits = limits or [None] * len(urls)
    binding = Binding("openai", served_name=MODEL,
                      endpoints=tuple(PoolEndpoint(u, m) for u, m in zip(urls, limits, strict=True)))
    pool = with_binding(load_pool("local"), MODEL, binding)
    return build_backend(pool, cache, timeout=5, retries=retries, backoff=backoff)


def ask(backend, n: int, prompt: str = "q") -> list[Any]:  # type: ignore[no-untyped-def]
    async def main() -> list[Any]:
        async with backend:
            return await asyncio.gather(*(backend.complete(MODEL, [{"role": "user", "content": f"{prompt}{k}"}],
                                                           PARAMS) for k in range(n)), return_exceptions=True)

    return asyncio.run(main())


def state_of(backend, url: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return next(s for s in endpoint_states(backend)[MODEL] if s["base_url"] == url)


def test_least_loaded_spreads_concurrent_calls(stubs) -> None:  # type: ignore[no-untyped-def]
    a, b, c = stubs(ok(0.3)), stubs(ok(0.3)), stubs(ok(0.3))
    results = ask(backend_over([a.base_url, b.base_url, c.base_url]), 6)
    assert all(r.text == "hi" for r in results)
    assert [len(s.requests) for s in (a, b, c)] == [2, 2, 2]


def test_busy_replica_is_avoided(stubs) -> None:  # type: ignore[no-untyped-def]
    """A replica still busy with a slow call gets nothing while another is idle."""
    slow, fast = stubs(ok(1.0)), stubs(ok(0.0))
    backend = backend_over([slow.base_url, fast.base_url])

    async def main() -> None:
        async with backend:
            first = asyncio.create_task(backend.complete(MODEL, [{"role": "user", "content": "x"}], PARAMS))
            await asyncio.sleep(0.2)  # the first call is on `slow` now
            for k in range(4):
                await backend.complete(MODEL, [{"role": "user", "content": f"y{k}"}], PARAMS)
            await first

    asyncio.run(main())
    assert len(slow.requests) == 1 and len(fast.requests) == 4


def test_per_endpoint_concurrency_limit_waits(stubs) -> None:  # type: ignore[no-untyped-def]
    a = stubs(ok(0.3))
    t0 = time.monotonic()
    results = ask(backend_over([a.base_url], [2]), 5)
    assert all(r.text == "hi" for r in results)
    early = [t for t in a.arrivals if t - t0 < a.arrivals[0] - t0 + 0.15]
    assert len(early) == 2  # the others waited for a slot
    assert time.monotonic() - t0 >= 0.85  # three waves of 0.3 s


def test_dead_endpoint_fails_over(stubs) -> None:  # type: ignore[no-untyped-def]
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    live = stubs(ok())
    backend = backend_over([dead, live.base_url], backoff=5.0)
    results = ask(backend, 6)
    assert all(not isinstance(r, BaseException) and r.text == "hi" for r in results)
    assert len(live.requests) == 6
    state = state_of(backend, dead)
    assert state["state"] == "set aside" and state["errors"] >= 1 and "connection error" in state["last_error"]
    assert state_of(backend, live.base_url)["state"] == "healthy"


def test_set_aside_then_recovers_with_backoff(stubs) -> None:  # type: ignore[no-untyped-def]
    flaky = stubs((503, {"error": {"message": "overloaded"}}, 0.0), (503, {"error": {"message": "x"}}, 0.0), ok())
    steady = stubs(ok())
    backend = backend_over([flaky.base_url, steady.base_url], backoff=1.0)

    async def one(k: int) -> str:
        return (await backend.complete(MODEL, [{"role": "user", "content": f"q{k}"}], PARAMS)).text

    async def main() -> list[dict[str, Any]]:
        seen = []
        async with backend:
            assert await one(0) == "hi"  # 503 on flaky, retried on steady
            seen.append(state_of(backend, flaky.base_url))
            assert await one(1) == "hi"  # flaky is set aside: steady only
            seen.append(state_of(backend, flaky.base_url))
            await asyncio.sleep(1.1)
            assert await one(2) == "hi"  # flaky tried again, 503 again: set aside for twice as long
            seen.append(state_of(backend, flaky.base_url))
            await asyncio.sleep(1.1)
            assert await one(3) == "hi"  # still set aside (2 s)
            await asyncio.sleep(1.1)
            assert await one(4) == "hi"  # back, and answers
            seen.append(state_of(backend, flaky.base_url))
        return seen

    seen = asyncio.run(main())
    assert seen[0]["state"] == "set aside" and seen[0]["backoff_s"] == 1.0
    assert len(flaky.requests) == 3 and "HTTP 503" in seen[0]["last_error"]
    assert seen[2]["consecutive_failures"] == 2 and seen[2]["backoff_s"] == 2.0
    assert seen[3]["state"] == "healthy" and seen[3]["consecutive_failures"] == 0 and seen[3]["errors"] == 2
    assert len(steady.requests) == 4


def test_all_down_names_every_endpoint(stubs) -> None:  # type: ignore[no-untyped-def]
    dead = f"http://127.0.0.1:{free_port()}/v1"
    broken = stubs((500, {"error": {"message": "boom"}}, 0.0))
    backend = backend_over([dead, broken.base_url], retries=1, backoff=0.05)
    t0 = time.monotonic()
    (result,) = ask(backend, 1)
    assert isinstance(result, BackendError) and result.retriable
    message = str(result)
    assert "all 2 endpoints are down" in message
    assert f"{dead} (connection error" in message and f"{broken.base_url} (HTTP 500" in message
    assert time.monotonic() - t0 < 3


def test_request_fault_does_not_set_aside(stubs) -> None:  # type: ignore[no-untyped-def]
    """A 400 is the request's fault: it fails the call at once and the replica stays healthy."""
    bad = stubs((400, {"error": {"message": "bad request"}}, 0.0))
    backend = backend_over([bad.base_url])
    (result,) = ask(backend, 1)
    assert isinstance(result, BackendError) and "HTTP 400" in str(result)
    assert state_of(backend, bad.base_url)["state"] == "healthy"


def test_replicas_share_cache_entries(stubs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    a, b, c = stubs(ok(text="from a")), stubs(ok(text="from b")), stubs(ok(text="from c"))
    cache = tmp_path / "cache.sqlite"
    first = ask(backend_over([a.base_url], cache=cache), 2)
    again = ask(backend_over([b.base_url, c.base_url], cache=cache), 2)
    assert [r.text for r in again] == [r.text for r in first] == ["from a", "from a"]
    assert all(r.cached for r in again) and not b.requests and not c.requests
    one = Binding("openai", served_name=MODEL, endpoints=(PoolEndpoint(a.base_url),))
    two = Binding("openai", served_name=MODEL, endpoints=(PoolEndpoint(b.base_url), PoolEndpoint(c.base_url)))
    single = Binding("openai", base_url=c.base_url, served_name=MODEL)
    assert binding_identity(one) == binding_identity(two) == binding_identity(single)


def test_models_toml_endpoints(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text('[models."llama-3.1-8b"]\nbackend = "openai"\nserved_name = "meta/llama"\n'
                    'endpoints = [{base_url = "http://a:8000/v1", max_concurrency = 8}, {base_url = "http://b:8000/v1"}]\n')
    binding = load_models_file(path).spec("llama-3.1-8b").binding
    assert binding is not None and binding.base_url is None
    assert binding.endpoints == (PoolEndpoint("http://a:8000/v1", 8), PoolEndpoint("http://b:8000/v1"))
    assert binding.concurrency_limit(4) == 12


@pytest.mark.parametrize(("endpoints", "says"), [
    ("[]", "'endpoints' is empty"),
    ('["http://a/v1"]', "endpoints[0] must be a table"),
    ('[{max_concurrency = 2}]', "endpoints[0] needs base_url"),
    ('[{base_url = "http://a/v1", max_concurrency = 0}]', "'max_concurrency' must be an integer > 0"),
    ('[{base_url = "http://a/v1", weight = 2}]', "unknown key 'weight'"),
    ('[{base_url = "http://a/v1"}, {base_url = "http://a/v1"}]', "listed twice"),
    ('"http://a/v1"', "'endpoints' must be a list of tables"),
])
def test_models_toml_endpoint_errors(tmp_path: Path, endpoints: str, says: str) -> None:
    path = tmp_path / "models.toml"
    path.write_text(f'[models."m"]\nlike = "llama-3.1-8b"\nbackend = "openai"\nendpoints = {endpoints}\n')
    with pytest.raises(FileFormatError) as err:
        load_models_file(path)
    assert says in str(err.value) and "models.toml" in str(err.value)


def test_models_toml_endpoints_and_base_url_conflict(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text('[models."m"]\nlike = "llama-3.1-8b"\nbackend = "openai"\nbase_url = "http://x/v1"\n'
                    'endpoints = [{base_url = "http://a/v1"}]\n')
    with pytest.raises(FileFormatError, match="base_url or endpoints, not both"):
        load_models_file(path)


def test_models_command_checks_each_endpoint(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from ttsgraph.cli import app

    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    gets: list[str] = []

    class Models(BaseHTTPRequestHandler):  # the stubs answer POSTs only: /v1/models is a GET
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            gets.append(self.path)
            data = json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0,
                                                            "owned_by": "me"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Models)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    live_url, dead = f"http://127.0.0.1:{server.server_address[1]}/v1", f"http://127.0.0.1:{free_port()}/v1"
    path = tmp_path / "models.toml"
    path.write_text(f'[models."{MODEL}"]\nbackend = "openai"\n'
                    f'endpoints = [{{base_url = "{live_url}", max_concurrency = 3}}, {{base_url = "{dead}"}}]\n')
    runner = CliRunner()
    unchecked = runner.invoke(app, ["models", "--models", str(path), "--json"])
    assert unchecked.exit_code == 0, unchecked.output
    assert [e["state"] for e in json.loads(unchecked.stdout)["endpoints"]] == ["not checked", "not checked"]
    try:
        checked = runner.invoke(app, ["models", "--models", str(path), "--check", "--json"])
    finally:
        server.shutdown()
        server.server_close()
    assert checked.exit_code == 1  # one endpoint is down
    rows = {e["base_url"]: e for e in json.loads(checked.stdout)["endpoints"]}
    assert rows[live_url]["state"] == "up" and rows[live_url]["max_concurrency"] == 3
    assert rows[dead]["state"] == "down" and "connection error" in rows[dead]["error"]
    assert gets == ["/v1/models"]


def test_shared_pools_prefer_their_home_replicas() -> None:
    """n pools over the same replicas (one per Ray actor) each fill their own replicas first, and
    use the others only when theirs are full or set aside."""
    from ttsgraph.llm.endpoint_pool import EndpointPool

    replicas = [PoolEndpoint(f"http://r{k}/v1", 1) for k in range(4)]

    async def picks(index: int, of: int, n: int, aside: int | None = None) -> list[str]:
        pool = EndpointPool(MODEL, replicas, share=(index, of), log=False)
        if aside is not None:
            pool.states[aside].set_aside_until = time.monotonic() + 60
        return [(await pool.acquire()).base_url for _ in range(n)]  # type: ignore[union-attr]

    assert asyncio.run(picks(1, 4, 1)) == ["http://r1/v1"]
    assert asyncio.run(picks(1, 2, 2)) == ["http://r1/v1", "http://r3/v1"]
    assert asyncio.run(picks(1, 2, 4))[2:] == ["http://r0/v1", "http://r2/v1"]  # home full: the others
    assert asyncio.run(picks(1, 4, 1, aside=1)) != ["http://r1/v1"]  # home set aside: another
    assert asyncio.run(picks(5, 8, 1)) == ["http://r1/v1"]  # more actors than replicas


def test_eval_reports_each_replica(stubs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`ttsgraph eval --json` over a pool with a dead replica: every item is answered by the live
    one, and the report names the dead one as set aside with its error."""
    import json

    from typer.testing import CliRunner

    from ttsgraph.cli import app
    from ttsgraph.graph import Graph, Node
    from ttsgraph.graph_io import save_graph

    live, dead = stubs(ok()), f"http://127.0.0.1:{free_port()}/v1"
    models = tmp_path / "models.toml"
    models.write_text(f'[models."{MODEL}"]\nbackend = "openai"\n'
                      f'endpoints = [{{base_url = "{dead}"}}, {{base_url = "{live.base_url}"}}]\n\n'
                      f'[pool]\nmodels = ["{MODEL}"]\n')
    graph = tmp_path / "g.json"
    save_graph(Graph([Node("out", MODEL)], [], "out"), graph)
    result = CliRunner().invoke(app, ["eval", str(graph), "--task", "arithmetic", "--limit", "3", "--models",
                                      str(models), "--no-cache", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["errors"] == 0 and len(live.requests) == 3
    states = {e["base_url"]: e for e in report["endpoints"][MODEL]}
    assert states[dead]["state"] in ("set aside", "retry due") and "connection error" in states[dead]["last_error"]
    assert states[live.base_url]["state"] == "healthy" and states[live.base_url]["requests"] == 3
