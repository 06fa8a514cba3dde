"""`ttsgraph bench` on the scripted backend: every optimizer as a study, fixed baselines, paired
comparisons, the curve PNG; majority vote and budget matching of self-consistency."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ttsgraph.benchmark import (
    BenchConfig,
    BenchRow,
    RunOutcome,
    aggregate,
    compare,
    load_result,
    plot_curves,
    run_bench,
    run_self_consistency,
    self_consistency_samples,
)
from ttsgraph.cli import app
from ttsgraph.cost import Budget
from ttsgraph.llm.base import Message, SamplingParams
from ttsgraph.llm.cache import CachedBackend
from ttsgraph.llm.fake import ScriptedBackend
from ttsgraph.models import load_pool
from ttsgraph.search import agent_prompts as P
from ttsgraph.search.base import Optimizer, OptimizerOptions
from ttsgraph.search.space import SearchSpace
from ttsgraph.tasks.arithmetic import ArithmeticTask
from ttsgraph.testing.optimizer_contract import echo_agent  # the contract's scripted agent
from ttsgraph.vote import majority_vote

SMOL, GEMMA = "smollm2-135m", "gemma-3-270m"


def make_responder(task: ArithmeticTask):  # type: ignore[no-untyped-def]
    """Workers: SmolLM is right on even-numbered questions, Gemma on those divisible by 3; odd
    samples are always right and wrong answers all differ, so a vote over three or more samples is
    always right while a single call (sample 0) is not; a node
    that synthesizes copies its first predecessor's number. The agent: the contract's echo agent."""
    answers = {i.question: (k, i.answer) for k, i in enumerate(task.items("search") + task.items("test"))}

    def respond(model: str, messages: list[Message], sample: int) -> str:
        if messages[0]["content"] == P.SYSTEM:
            return echo_agent(model, messages, sample)
        text = messages[-1]["content"]
        if "[1]" in text:
            m = re.search(r"\[1\]\n.*?(-?\d+)\s*$", text.split("[2]")[0], flags=re.S)
            if m:
                return f"Answer: {m.group(1)}"
        for q, (k, a) in answers.items():
            if q in text:
                right = sample % 2 == 1 or (k % 2 == 0 if model == SMOL else k % 3 == 0)
                value = int(a) if right else int(a) + 1 + sample
                return f"Answer: {value}"
        raise AssertionError(f"unknown question in {text[:200]!r}")

    return respond


@pytest.fixture(scope="module")
def task() -> ArithmeticTask:
    return ArithmeticTask(seed=3, size=40)


# ---- self-consistency ---------------------------------------------------------------------

def test_majority_vote_groups_extracted_answers_and_breaks_ties_by_first_seen(task: ArithmeticTask) -> None:
    item = task.items("test")[0]
    right, wrong = item.answer, str(int(item.answer) + 1)
    assert majority_vote([f"Answer: {wrong}", f"Answer: {right}", f"Answer: {right}"], task, item) == (True, right, 2)
    assert majority_vote([f"Answer: {wrong}", f"Answer: {right}"], task, item) == (False, wrong, 1)
    assert majority_vote(["no idea", None, f"Answer: {right}"], task, item) == (True, right, 1)
    assert majority_vote(["no idea", None], task, item) == (False, None, 0)


def test_self_consistency_is_budget_matched() -> None:
    pool = load_pool("local")
    t = ArithmeticTask(seed=1, size=10)
    space = SearchSpace(pool, t.lengths, Budget(7.5))
    for model in pool.models:
        k = self_consistency_samples(space, model)
        assert k * space.node_units(model, 0) <= 7.5 + 1e-9 < (k + 1) * space.node_units(model, 0)


def test_self_consistency_shares_sample_zero_with_the_single_model_graph(task: ArithmeticTask, tmp_path: Path) -> None:
    from ttsgraph.executor import Executor
    from ttsgraph.graph import single

    pool = load_pool("local")
    scripted = ScriptedBackend(make_responder(task))
    backend = CachedBackend(scripted, tmp_path / "cache.sqlite")
    items = task.items("test")[:4]
    params = SamplingParams(max_tokens=16)
    asyncio.run(Executor(backend, pool, task, params).run_items(single(GEMMA), items))
    rows = asyncio.run(run_self_consistency(backend, task, GEMMA, 3, items, params))
    assert [r["cache_hits"] for r in rows] == [1] * 4  # sample 0 came from the single-model run
    assert [r["calls"] for r in rows] == [2] * 4
    assert sorted({c.sample for c in scripted.calls}) == [0, 1, 2]
    # samples 0 and 2 are wrong with different numbers unless Gemma is right on that question,
    # sample 1 is right: either a three-way tie won by sample 0 or a 3-vote win
    for k, (r, item) in enumerate(zip(rows, items)):
        assert r["error"] is None and r["correct"] == (r["answer"] == item.answer)
        assert r["votes"] in (1, 3)
        assert r["correct"] == (r["votes"] == 3)


def test_self_consistency_item_errors_only_when_every_sample_fails(task: ArithmeticTask) -> None:
    from ttsgraph.errors import BackendError

    def flaky(model: str, messages: list[Message], sample: int) -> object:
        if "Question" in messages[-1]["content"] or sample > 0:
            return BackendError("server gone", model=model)
        return make_responder(task)(model, messages, sample)

    items = task.items("test")[:2]
    rows = asyncio.run(run_self_consistency(ScriptedBackend(flaky), task, SMOL, 3, items, SamplingParams()))
    assert all(r["error"] is None and r["votes"] == 1 for r in rows)  # sample 0 answered
    dead = ScriptedBackend(lambda m, msgs, s: BackendError("server gone", model=m))
    rows = asyncio.run(run_self_consistency(dead, task, SMOL, 3, items, SamplingParams()))
    assert all(r["error"] == "server gone" and r["correct"] is False for r in rows)


# ---- aggregation ---------------------------------------------------------------------------------

def _run(seed: int, correct: list[bool]) -> RunOutcome:
    return RunOutcome("x", seed, "", {"nodes": []}, 0.5, correct, 0, 2.0, 6, 10, 2, 1.0, 0.5, 0.0, [(3, 0.5)])


def test_aggregate_pools_seeds_and_compare_pairs_items() -> None:
    row = aggregate("x", [_run(0, [True, False, True, True]), _run(1, [True, True, False, True])])
    assert row.test_correct == 6 and row.test_items == 8 and row.test_accuracy == 0.75
    assert row.per_item == [1.0, 0.5, 0.5, 1.0]
    assert row.test_ci[0] < 0.75 < row.test_ci[1]
    base = BenchRow("single:m", "single", 1, None, 0.5, (0.1, 0.9), 2, 4, 0, 1.0, 0, 4, 0, 0.0, 1.0, 0.0,
                    per_item=[1.0, 0.0, 0.0, 1.0])
    worse = BenchRow("sc:m", "self-consistency", 1, None, 0.25, (0.0, 0.7), 1, 4, 0, 3.0, 0, 4, 0, 0.0, 1.0, 0.0,
                     per_item=[1.0, 0.0, 0.0, 0.0])
    best, comps = compare([row, base, worse])
    assert best == "single:m"
    (c,) = comps
    assert c.name == "x" and c.against == "single:m" and c.items == 4
    assert c.difference == pytest.approx(0.25) and c.low < 0.25 < c.high


def test_plot_writes_a_png(tmp_path: Path) -> None:
    path = plot_curves({"a": [[(2, 0.5), (4, 1.0)], [(2, 0.0), (4, 0.5)]], "b": [[(2, 0.5)]]}, tmp_path / "c.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


# ---- the whole bench on the scripted backend ----------------------------------------------------

def test_bench_runs_every_optimizer_and_baseline_on_equal_terms(task: ArithmeticTask, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import ttsgraph.tasks

    monkeypatch.setattr(ttsgraph.tasks, "load_task", lambda name, **kw: task)
    scripted = ScriptedBackend(make_responder(task))
    events: list[str] = []
    config = BenchConfig(task="arithmetic", budget=7.5, seeds=2, iterations=3, batch=2, test_limit=6,
                         out=tmp_path / "bench", cache=tmp_path / "cache.sqlite", max_tokens=16, classical="off")
    result = asyncio.run(run_bench(config, fake_backend=scripted, progress=lambda e, i: events.append(e)))

    names = [r.name for r in result.rows]
    for opt in ("agent-reinforce", "tpe", "random", "reinforce", "textgrad", "hybrid"):
        assert opt in names
    assert f"single:{SMOL}" in names and f"single:{GEMMA}" in names
    assert any(n.startswith(f"sc:{SMOL}x") for n in names)
    test_ids = result.test_item_ids
    assert len(test_ids) == 6
    for row in result.rows:
        assert row.test_items == 6 * row.seeds and len(row.per_item) == 6
        assert row.planned_units <= 7.5 + 1e-9
        if row.kind == "optimizer":
            assert row.seeds == 2 and len(row.runs) == 2
            for run in row.runs:
                assert run.evaluations <= 3 * 2
                assert run.curve and run.curve[-1][0] == run.evaluations
                assert Path(run.run_dir, "run.sqlite").exists()
                assert 0.0 <= run.search_accuracy <= 1.0
    # one comparison per optimizer, all against the same best baseline
    assert {c.name for c in result.comparisons} == {r.name for r in result.rows if r.kind == "optimizer"}
    assert len({c.against for c in result.comparisons}) == 1
    best = next(r for r in result.rows if r.name == result.best_baseline)
    assert best.test_accuracy == max(r.test_accuracy for r in result.rows if r.kind != "optimizer")
    for c in result.comparisons:
        row = next(r for r in result.rows if r.name == c.name)
        assert c.difference == pytest.approx(sum(row.per_item) / 6 - sum(best.per_item) / 6)
    # self-consistency votes: odd samples are right, wrong ones all differ, so the vote is right
    sc = next(r for r in result.rows if r.name.startswith(f"sc:{SMOL}"))
    single_smol = next(r for r in result.rows if r.name == f"single:{SMOL}")
    assert sc.test_accuracy == 1.0 > single_smol.test_accuracy
    assert result.best_baseline is not None and result.best_baseline.startswith("sc:")
    # outputs
    saved = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert saved["best_baseline"] == result.best_baseline and len(saved["rows"]) == len(result.rows)
    assert Path(result.plot or "").read_bytes()[:4] == b"\x89PNG"
    assert json.loads(json.dumps(load_result(tmp_path / "bench").to_dict())) == json.loads(json.dumps(result.to_dict()))
    assert events.count("stage") == events.count("done") == (len(result.rows) - 6) + 6 * 2
    # a second run resumes every study from its store: nothing new is evaluated by a worker model
    before = len(scripted.calls)
    again = asyncio.run(run_bench(config, fake_backend=scripted))
    worker_calls = [c for c in scripted.calls[before:] if c.messages[0]["content"] != P.SYSTEM]
    assert worker_calls == []  # everything came from the stores and the cache
    assert [r.test_accuracy for r in again.rows] == [r.test_accuracy for r in result.rows]


def test_bench_runs_each_optimizer_with_and_without_the_classical_candidates(task: ArithmeticTask, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import ttsgraph.tasks
    from ttsgraph.store import RunStore

    monkeypatch.setattr(ttsgraph.tasks, "load_task", lambda name, **kw: task)
    config = BenchConfig(task="arithmetic", budget=7.5, optimizers=("random", "tpe"), seeds=1, iterations=3, batch=2,
                         test_limit=6, out=tmp_path / "bench", cache=tmp_path / "cache.sqlite", max_tokens=16,
                         confirm=2, confirm_items=6)
    result = asyncio.run(run_bench(config, fake_backend=ScriptedBackend(make_responder(task))))
    optimizer_rows = [r.name for r in result.rows if r.kind == "optimizer"]
    assert optimizer_rows == ["random", "random+classical", "tpe", "tpe+classical"]
    assert {c.name for c in result.comparisons} == set(optimizer_rows)
    for name in optimizer_rows:
        (run,) = next(r for r in result.rows if r.name == name).runs
        with RunStore.open(Path(run.run_dir)) as store:
            kinds = {t.kind for t in store.trials()}
            decision = store.get_config("selection")
        if name.endswith("+classical"):
            assert {"classical", "confirm"} <= kinds and decision["rule"] == "cheapest-not-worse"
            # the classical strategies and the confirmation are search items scored too
            assert run.evaluations > 3 * 2
        else:
            assert kinds == {"search"} and run.evaluations <= 3 * 2
    # with the classical strategies racing, the row never returns less than the best of them on the
    # search items: here self-consistency, which the responder makes always right
    with_classical = next(r for r in result.rows if r.name == "random+classical")
    assert with_classical.search_accuracy == 1.0


def test_bench_classical_mode_is_checked(tmp_path: Path) -> None:
    from ttsgraph.benchmark.config import check_config
    from ttsgraph.errors import TtsGraphError

    with pytest.raises(TtsGraphError, match="--classical must be one of both, on, off, got 'yes'"):
        check_config(BenchConfig(classical="yes"))
    assert [r[0] for r in BenchConfig(optimizers=("tpe",), classical="on").rows()] == ["tpe+classical"]
    assert [r[0] for r in BenchConfig(optimizers=("tpe",), classical="off").rows()] == ["tpe"]


# ---- the command line ------------------------------------------------------------------------------

def test_cli_rejects_an_unknown_optimizer_before_running_anything(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["bench", "--optimizers", "random,simulated-annealing", "--out", str(tmp_path / "o"),
                                   "--json"])
    assert res.exit_code == 2
    assert "simulated-annealing" in res.output and "random" in res.output
    assert not (tmp_path / "o").exists()


def test_cli_rejects_two_budgets(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["bench", "--budget", "5", "--budget-nodes", "2", "--optimizers", "random",
                                   "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "not both" in res.output


class _Numeric(Optimizer):
    name = "test-numeric"

    class Options(OptimizerOptions):
        edge_p: float = 0.119
        lr: float = 0.1

    async def ask(self) -> list:  # never asked: these tests only build options
        return []


class _Agentic(_Numeric):
    name = "test-agentic"

    class Options(OptimizerOptions):
        agent: str | None = None
        agent_max_tokens: int | None = None
        lr: float = 0.1


@pytest.fixture
def test_optimizers(monkeypatch: pytest.MonkeyPatch) -> None:
    from ttsgraph.search.base import OPTIMIZERS, get_optimizer

    get_optimizer("random")  # load the built-in ones first
    monkeypatch.setitem(OPTIMIZERS, _Numeric.name, _Numeric)
    monkeypatch.setitem(OPTIMIZERS, _Agentic.name, _Agentic)


def test_optimizer_options_reach_one_optimizer_or_every_one_that_has_them(test_optimizers: None) -> None:
    from ttsgraph.benchmark import check_config, optimizer_options
    from ttsgraph.cli.bench import parse_optimizer_options
    from ttsgraph.errors import TtsGraphError

    opts = parse_optimizer_options(["test-numeric:lr=0.05", "edge_p=0.2", "lr=0.3"])
    assert opts == {"test-numeric": {"lr": 0.05}, "*": {"edge_p": 0.2, "lr": 0.3}}
    config = BenchConfig(optimizers=("test-numeric", "test-agentic"), optimizer_options=opts, agent_max_tokens=99)
    check_config(config)
    # "*" goes where it is declared, a named option wins, the bench's agent settings reach agent optimizers only
    assert optimizer_options("test-numeric", config, SMOL) == {"edge_p": 0.2, "lr": 0.05}
    assert optimizer_options("test-agentic", config, SMOL) == {"agent": SMOL, "agent_max_tokens": 99, "lr": 0.3}
    with pytest.raises(TtsGraphError, match="none of the optimizers .* has an option 'edge_pp'"):
        check_config(BenchConfig(optimizers=("test-numeric", "test-agentic"),
                                 optimizer_options={"*": {"edge_pp": 0.2}}))
    with pytest.raises(TtsGraphError, match="'test-numeric': unknown option 'agent'"):  # named options are strict
        check_config(BenchConfig(optimizers=("test-numeric",), optimizer_options={"test-numeric": {"agent": SMOL}}))
    with pytest.raises(TtsGraphError, match="KEY=VALUE"):
        parse_optimizer_options(["reinforce:baseline"])
    res = CliRunner().invoke(app, ["bench", "--optimizers", "random", "--opt", "tpe:n_startup=2", "--json"])
    assert res.exit_code == 2 and "tpe" in res.output


def test_cli_show_reprints_a_finished_bench_and_names_a_missing_one(tmp_path: Path) -> None:
    run = RunOutcome("random", 0, str(tmp_path / "runs" / "random-seed0"), {"nodes": []}, 0.5, [True, False], 0, 2.0,
                     4, 8, 0, 1.0, 0.5, 0.0, [(2, 0.5), (4, 0.5)])
    row = aggregate("random", [run])
    base = BenchRow("single:m", "single", 1, None, 1.0, (0.3, 1.0), 2, 2, 0, 1.0, 0, 2, 0, 0.0, 1.0, 0.0,
                    per_item=[1.0, 1.0])
    best, comps = compare([row, base])
    from ttsgraph.benchmark import BenchResult

    cfg = {"task": "arithmetic", "budget_units": 3.3, "node_budget": 2, "pool": "local", "iterations": 2, "batch": 2,
           "seeds": 1, "out": str(tmp_path)}
    (tmp_path / "bench.json").write_text(json.dumps(BenchResult(cfg, [row, base], comps, best, ["a", "b"]).to_dict()))
    res = CliRunner().invoke(app, ["bench", "--show", str(tmp_path)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "random" in res.stdout and "single:m" in res.stdout and "-50.0" in res.stdout
    assert (tmp_path / "bench_curves.png").read_bytes()[:4] == b"\x89PNG"
    res = CliRunner().invoke(app, ["bench", "--show", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "bench.json" in res.output
