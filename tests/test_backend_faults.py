"""Backend faults never take a run down: every fault a server or proxy produces, scripted by the
stub server on 127.0.0.1 (tests/fault_stub.py), becomes the failing item's error with its reason,
through the real `OpenAICompatBackend`, the executor and `ttsgraph eval` (which then exits 3,
"nothing was scored", instead of reporting accuracy 0.000)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ttsgraph.cli import app
from ttsgraph.cli.common import EXIT_NOTHING_SCORED
from ttsgraph.errors import BackendError
from ttsgraph.executor import Executor
from ttsgraph.graph import single
from ttsgraph.graph_io import save_graph
from ttsgraph.llm.base import SamplingParams
from ttsgraph.llm.fake import ScriptedBackend
from ttsgraph.llm.openai_compat import Endpoint, OpenAICompatBackend
from ttsgraph.models import load_pool
from ttsgraph.tasks import load_task
from tests.fault_stub import FAULTS, Stub, chat_reply

MSGS = [{"role": "user", "content": "What is 2 + 2?"}]
TIMEOUT = 0.5


@pytest.fixture
def stub() -> Iterator[Stub]:
    s = Stub()
    yield s
    s.close()


@pytest.mark.parametrize("fault", list(FAULTS))
def test_each_fault_is_a_backend_error_with_its_reason(stub: Stub, fault: str) -> None:
    entry, retried, reason = FAULTS[fault]
    stub.script = [entry]
    backend = OpenAICompatBackend({"m": Endpoint(stub.base_url, "served-m")}, timeout=TIMEOUT, retries=1, backoff=0.01)
    with pytest.raises(BackendError) as err:
        asyncio.run(backend.complete("m", MSGS, SamplingParams()))
    assert reason in err.value.reason
    assert len(stub.requests) == (2 if retried else 1)


def test_a_fault_then_a_good_reply_is_retried_to_success(stub: Stub) -> None:
    stub.script = [FAULTS["invalid-json"][0], (200, chat_reply("four"), 0.0)]
    backend = OpenAICompatBackend({"m": Endpoint(stub.base_url, "served-m")}, timeout=TIMEOUT, retries=1, backoff=0.01)
    assert asyncio.run(backend.complete("m", MSGS, SamplingParams())).text == "four"


def test_any_exception_from_a_backend_is_the_items_error_not_the_runs() -> None:
    """A 200 whose body was not JSON once escaped the executor as JSONDecodeError."""
    pool = load_pool("local")
    task = load_task("arithmetic")
    items = task.items("search")[:2]
    backend = ScriptedBackend(lambda model, messages, sample: json.JSONDecodeError("Expecting value", "x", 0))
    results = asyncio.run(Executor(backend, pool, task).run_items(single("smollm2-135m"), items))
    assert [r.error for r in results] == ["node out (smollm2-135m): JSONDecodeError: Expecting value: line 1 column 1 (char 0)"] * 2
    assert not any(r.correct for r in results)


def eval_against(stub: Stub, tmp_path: Path, *extra: str) -> tuple[int, dict]:
    models = tmp_path / "models.toml"
    models.write_text(f'[models.stubbed]\nlike = "smollm2-135m"\nbackend = "openai"\nbase_url = "{stub.base_url}"\n'
                      '[pool]\nmodels = ["stubbed"]\n')
    graph = tmp_path / "g.json"
    save_graph(single("stubbed"), graph)
    result = CliRunner().invoke(app, ["eval", str(graph), "--task", "arithmetic", "--models", str(models), "--limit", "2",
                                      "--no-cache", "--timeout", str(TIMEOUT), "--retries", "1", "--json", *extra])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, json.loads(result.stdout)


@pytest.mark.parametrize("fault", list(FAULTS))
def test_eval_where_every_item_errored_exits_3_saying_nothing_was_scored(stub: Stub, tmp_path: Path, fault: str) -> None:
    entry, retried, reason = FAULTS[fault]
    stub.script = [entry]
    code, report = eval_against(stub, tmp_path)
    assert code == EXIT_NOTHING_SCORED
    assert report["errors"] == report["items"] == 2 and report["correct"] == 0
    assert report["error"].startswith("nothing was scored: all 2 items errored") and reason in report["error"]
    assert all(reason in r for r in report["error_reasons"])
    assert len(stub.requests) == 2 * (2 if retried else 1)


def test_eval_with_good_replies_exits_0(stub: Stub, tmp_path: Path) -> None:
    stub.script = [(200, chat_reply("The answer is: 4"), 0.0)]
    code, report = eval_against(stub, tmp_path)
    assert code == 0 and report["errors"] == 0 and "error" not in report


def test_eval_where_some_items_errored_exits_0(stub: Stub, tmp_path: Path) -> None:
    stub.script = [FAULTS["400"][0], (200, chat_reply("The answer is: 4"), 0.0)]
    code, report = eval_against(stub, tmp_path, "--concurrency", "1")
    assert code == 0 and report["errors"] == 1 and "error" not in report
