"""`ttsgraph search` end to end in a subprocess, with the scripted backend injected (unit level)
and, under `-m integration`, a real small search on the embedded models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# The CLI never defaults to the fake backend; this runner swaps it in for the router, like a test
# double, and then runs the real command line in its own process (so it can be SIGKILLed).
FAKE_RUNNER = textwrap.dedent('''
    import re, sys
    import ttsgraph.runtime as s
    from ttsgraph.llm.fake import ScriptedBackend
    from ttsgraph.llm.router import build_backend as real_build

    def answer(text):
        expr = re.search(r"What is ([-+*\\d ]+)\\?", text).group(1)
        return int(eval(expr))

    def respond(model, messages, sample):
        text = messages[-1]["content"]
        value = answer(text)
        good = model == "gemma-3-270m" or sum(map(ord, text.split("What is")[1][:12])) % 2 == 0
        return f"Answer: {value if good else value + 1}"

    delay = float(__import__("os").environ.get("FAKE_DELAY", "0"))
    s.build_backend = lambda pool, cache, *a, **k: real_build(pool, cache, fake=ScriptedBackend(respond, delay=delay))
    s.check_bindings = lambda *a, **k: None
    from ttsgraph.cli import app
    app(sys.argv[1:], prog_name="ttsgraph")
''')


def run_cli(tmp_path: Path, *args: str, delay: float = 0.0, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The command in its own process, with the scripted backend (for the SIGKILL test)."""
    runner = tmp_path / "fake_runner.py"
    runner.write_text(FAKE_RUNNER)
    env = {**os.environ, "FAKE_DELAY": str(delay), "TTSGRAPH_HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, str(runner), *args], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """The command in this process (fast), with the scripted backend swapped in for the router."""
    from typer.testing import CliRunner

    import ttsgraph.runtime as s
    from ttsgraph.cli import app
    from ttsgraph.llm.fake import ScriptedBackend
    from ttsgraph.llm.router import build_backend as real_build

    ns: dict = {}
    exec("import re\n" + FAKE_RUNNER.split("delay =")[0].split("import build_backend as real_build")[1], ns)
    monkeypatch.setattr(s, "build_backend", lambda pool, cache, *a, **k: real_build(
        pool, cache, fake=ScriptedBackend(ns["respond"])))
    monkeypatch.setattr(s, "check_bindings", lambda *a, **k: None)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TTSGRAPH_HOME", str(tmp_path / "home"))
    runner = CliRunner()

    def invoke(*args: str, check: bool = True):
        result = runner.invoke(app, list(args))
        if check and result.exit_code != 0:
            raise AssertionError(f"exit {result.exit_code}\n{result.output}\n{result.stderr}") from result.exception
        return result

    return invoke


BASE = ("search", "--task", "arithmetic", "--option", "size=20", "--budget-nodes", "3", "--optimizer", "random",
        "--iterations", "4", "--batch", "2", "--seed", "5", "--test-limit", "4")


def test_search_json_has_the_documented_keys(tmp_path, cli):
    proc = cli(*BASE, "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "c.sqlite"), "--json")
    data = json.loads(proc.stdout)
    for key in ("best_graph", "search_accuracy", "test_accuracy", "test_ci", "planned_units", "evaluations",
                "backend_calls", "cache_hits", "eval_seconds", "agent_seconds", "run_dir", "trials"):
        assert key in data, key
    assert data["search_evaluations"] == 8 and data["trials"] == 4 and data["evaluations"] > 8  # + classical, confirmation
    assert 0 <= data["test_ci"][0] <= data["test_accuracy"] <= data["test_ci"][1] <= 1
    assert data["agent_seconds"] == 0.0 and data["backend_calls"] > 0
    best = json.loads((tmp_path / "run" / "best_graph.json").read_text())
    assert best["nodes"] == data["best_graph"]["nodes"]
    # the same command again hits the cache for every call
    again = json.loads(cli(*BASE, "--out", str(tmp_path / "run2"), "--cache", str(tmp_path / "c.sqlite"),
                           "--json").stdout)
    assert again["backend_calls"] == 0 and again["cache_hits"] > 0
    assert again["best_graph"] == data["best_graph"] and again["test_accuracy"] == data["test_accuracy"]


def test_search_human_output_prints_the_best_graph(tmp_path, cli):
    proc = cli(*BASE, "--no-cache")
    assert "best graph" in proc.stdout and "Node out" in proc.stdout and "test accuracy" in proc.stdout
    assert (tmp_path / "runs" / "arithmetic-random-b3-s5" / "best_graph.json").exists()


def test_existing_run_needs_resume_and_bad_input_is_a_clean_error(tmp_path, cli):
    cli(*BASE, "--out", "r", "--no-cache", "--json")
    res = cli(*BASE, "--out", "r", "--no-cache", check=False)
    assert res.exit_code == 2 and "--resume" in res.stderr
    res = cli("search", "--task", "arithmetic", "--budget", "1", "--budget-nodes", "2", check=False)
    assert res.exit_code == 2 and "exactly one" in res.stderr
    res = cli("search", "--task", "arithmetic", "--budget", "1.5", "--out", "tiny", check=False)
    assert res.exit_code == 2 and "smallest reference graph" in res.stderr
    assert not (tmp_path / "tiny").exists()  # a run that never started leaves nothing behind
    res = cli(*BASE[:9], "--optimizer", "nope", "--out", "x", check=False)
    assert res.exit_code == 2 and "unknown optimizer" in res.stderr
    assert not (tmp_path / "x").exists()
    res = cli("search", "--resume", "--out", "missing", check=False)
    assert res.exit_code == 2 and "not a run directory" in res.stderr
    res = cli(*BASE, "--select", "first", "--out", "y", check=False)
    assert res.exit_code == 2 and "--select" in res.stderr


def test_resume_of_a_finished_run_changes_nothing(tmp_path, cli):
    first = json.loads(cli(*BASE, "--out", "r", "--cache", "c.sqlite", "--json").stdout)
    again = json.loads(cli("search", "--resume", "--out", "r", "--json").stdout)  # the run's own cache
    assert again["trials"] == first["trials"] and again["best_graph"] == first["best_graph"]
    assert again["evaluations"] == first["evaluations"]
    # the test re-score came from the run's own cache (no --cache given on resume)
    assert again["backend_calls"] < first["backend_calls"] and again["cache_hits"] > first["cache_hits"]


def test_resume_continues_longer_runs_and_refuses_flags_that_change_the_study(tmp_path, cli):
    first = json.loads(cli(*BASE, "--out", "r", "--cache", "c.sqlite", "--json").stdout)
    assert first["trials"] == 4
    res = cli("search", "--resume", "--out", "r", "--seed", "6", check=False)
    assert res.exit_code == 2 and "--seed: this run was created with 5, not 6" in res.stderr
    res = cli("search", "--resume", "--out", "r", "--budget-nodes", "4", check=False)
    assert res.exit_code == 2 and "--budget-nodes: this run was created with 3, not 4" in res.stderr
    res = cli("search", "--resume", "--out", "r", "--iterations", "3", check=False)
    assert res.exit_code == 2 and "can only go on longer" in res.stderr
    longer = json.loads(cli("search", "--resume", "--out", "r", "--iterations", "6", "--json").stdout)
    assert longer["trials"] == 6 and longer["search_evaluations"] == 12  # two more iterations, not silently 4
    res = cli("search", "--resume", "--out", "r", "--no-classical", check=False)  # classical: part of the study
    assert res.exit_code == 2 and "--no-classical: this run was created with True, not False" in res.stderr
    again = json.loads(cli(*BASE[:9], *BASE[11:], "--resume", "--out", "r", "--json").stdout)
    assert again["trials"] == 6  # the same values again are accepted, and the stored run now says 6


def test_misspelled_optimizer_option_is_refused_before_anything_runs(tmp_path, cli):
    for bad in ("totally_bogus=1", "edge_pp=0.9"):
        res = cli(*BASE, "--opt", bad, "--out", "z", check=False)
        assert res.exit_code == 2 and f"unknown option '{bad.split('=')[0]}' (valid: " in res.stderr
        assert "edge_p" in res.stderr.split("(valid: ")[1]
        assert not (tmp_path / "z").exists()


def test_pareto_selection_latency_objective_and_racing(tmp_path, cli):
    data = json.loads(cli(*BASE, "--out", "p", "--no-cache", "--select", "pareto", "--objective", "accuracy-latency",
                          "--latency-weight", "0.5", "--race", "2", "--race-items", "3", "--json").stdout)
    assert data["pareto"] and data["best_trial"] in data["pareto"]
    assert data["search_evaluations"] == 8 + 2 * 3  # racing re-scores are counted
    from ttsgraph.store import RunStore

    with RunStore.open(tmp_path / "p", readonly=True) as store:
        assert len(store.trials("race")) == 2
        assert store.get_config("run")["objective"] == "accuracy-latency"
        from ttsgraph.tasks import load_task

        lengths = load_task("arithmetic", size=20).lengths
        assert store.get_config("run")["lengths"] == [lengths.prompt, lengths.answer]  # pinned for --resume


def ttsgraph_cmd() -> list[str]:
    script = Path(sys.executable).parent / "ttsgraph"
    return [str(script)] if script.exists() else [sys.executable, "-c", "from ttsgraph.cli import app; app()"]


@pytest.mark.integration
def test_real_small_search_on_the_embedded_models(tmp_path):
    """The embedded default, small: Agent-REINFORCE with SmolLM2 as agent, SmolLM2 + Gemma-3-270M as
    workers, arithmetic, 3 iterations × 2 items (no pretest, short agent replies), the classical
    strategies first and two finalists confirmed on 4 items."""
    proc = subprocess.run(
        [*ttsgraph_cmd(), "search", "--task", "arithmetic", "--budget-nodes", "2", "--optimizer", "agent-reinforce",
         "--agent", "smollm2-135m", "--opt", "pretest=false", "--opt", "agent_max_tokens=192",
         "--iterations", "3", "--batch", "2", "--test-limit", "2", "--max-tokens", "24", "--confirm", "2",
         "--confirm-items", "4",
         "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "c.sqlite"), "--concurrency", "2", "--json"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    assert data["search_evaluations"] == 6 and data["trials"] >= 3
    vs = data["vs_classical"]  # the selected graph against the best classical strategy, paired
    assert vs["search"]["n"] == 4 and vs["test"]["n"] == 2 and vs["search"]["low"] <= vs["search"]["high"]
    assert data["backend_calls"] > 0 and data["test_ci"] is not None
    assert data["agent_seconds"] > 0  # the agent was really asked
    assert 0.0 <= data["search_accuracy"] <= 1.0
    from ttsgraph.store import RunStore

    with RunStore.open(tmp_path / "run", readonly=True) as store:
        assert store.agent_log(), "agent exchanges are stored for audit"
        updates = [e for e in store.agent_log() if e["kind"].startswith("update")]
        assert updates and "Classical strategies on the same questions" in updates[0]["prompt"][-1]["content"]
        kinds = [t.kind for t in store.trials()]
        assert kinds.index("search") == kinds.count("classical")  # the classical strategies came first
        budget = store.get_config("space")["budget_units"]
        for t in store.trials():
            assert t.planned_units <= budget + 1e-9
            for r in store.item_results(t.id):
                assert r["error"] is None, r["error"]
                assert all(n["text"] for n in r["trace"]["nodes"])
