"""Kill `ttsgraph search` with SIGKILL mid-run, resume it with --resume, and check the run equals an
uninterrupted one with the same seed: same trials (graphs, items, outcomes), same best graph, same
test score. Unit level with the scripted backend in a real subprocess; integration level with the
embedded models."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest



def _fake_runner() -> str:
    """The scripted-backend runner shared with tests/test_search_cli.py."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_search_cli_tests", Path(__file__).with_name("test_search_cli.py"))
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return str(module.FAKE_RUNNER)


def _trial_count(run: Path) -> int:
    db = run / "run.sqlite"
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return int(con.execute("SELECT COUNT(*) FROM trials").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def _trials(run: Path) -> list[tuple]:
    con = sqlite3.connect(f"file:{run / 'run.sqlite'}?mode=ro", uri=True)
    try:
        return [tuple(r) for r in con.execute(
            "SELECT iteration, position, kind, graph_hash, item_ids_json, correct, scored, errors, planned_units "
            "FROM trials ORDER BY id")]
    finally:
        con.close()


def _states(run: Path) -> list[int]:
    con = sqlite3.connect(f"file:{run / 'run.sqlite'}?mode=ro", uri=True)
    try:
        return [r[0] for r in con.execute("SELECT iteration FROM optimizer_state ORDER BY id")]
    finally:
        con.close()


def kill_resume_compare(cmd: list[str], args: list[str], tmp: Path, env: dict[str, str], kill_after: int,
                        timeout: float) -> tuple[dict, dict, int]:
    """Start, SIGKILL once `kill_after` trials are stored, resume; then an uninterrupted run."""
    run = tmp / "killed"
    proc = subprocess.Popen([*cmd, *args, "--out", str(run), "--json"], cwd=tmp, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while _trial_count(run) < kill_after:
            if proc.poll() is not None:
                raise AssertionError(f"search ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError("search too slow to reach the kill point")
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    at_kill = _trial_count(run)
    resumed = subprocess.run([*cmd, "search", "--resume", "--out", str(run), "--json", *args[args.index("--cache"):
                                                                                             args.index("--cache") + 2]],
                             cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    straight = subprocess.run([*cmd, *args, "--out", str(tmp / "straight"), "--json"], cwd=tmp, env=env,
                              capture_output=True, text=True, timeout=timeout)
    assert straight.returncode == 0, straight.stderr[-3000:]
    return _json(resumed), _json(straight), at_kill


def _json(proc: subprocess.CompletedProcess[str]) -> dict:
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"not one JSON object on stdout ({exc}):\n{proc.stdout[-2000:]}\n"
                             f"stderr:\n{proc.stderr[-2000:]}") from None


def _assert_same(tmp: Path, resumed: dict, straight: dict) -> None:
    assert _trials(tmp / "killed") == _trials(tmp / "straight")
    assert _states(tmp / "killed") == _states(tmp / "straight")  # one state per iteration, none repeated
    for key in ("best_graph", "search_accuracy", "test_accuracy", "test_ci", "planned_units", "evaluations",
                "trials"):
        assert resumed[key] == straight[key], key
    assert json.loads((tmp / "killed" / "best_graph.json").read_text())["nodes"] == straight["best_graph"]["nodes"]


def test_sigkill_and_resume_equals_uninterrupted_run_fake_backend(tmp_path):
    kill_after = 3  # mid-iteration: 3 trials of the 7 (in-process crash points: tests/test_study.py)
    runner = tmp_path / "fake_runner.py"
    runner.write_text(_fake_runner())
    env = {**os.environ, "FAKE_DELAY": "0.05", "TTSGRAPH_HOME": str(tmp_path / "home")}
    args = ["search", "--task", "arithmetic", "--option", "size=30", "--budget-nodes", "3", "--optimizer", "random",
            "--iterations", "7", "--batch", "3", "--seed", "9", "--test-limit", "4",
            "--cache", str(tmp_path / "cache.sqlite")]
    resumed, straight, at_kill = kill_resume_compare([sys.executable, str(runner)], args, tmp_path, env,
                                                     kill_after, timeout=240)
    assert kill_after <= at_kill < 7
    assert resumed["trials"] == straight["trials"] == 7
    _assert_same(tmp_path, resumed, straight)


def ttsgraph_cmd() -> list[str]:
    script = Path(sys.executable).parent / "ttsgraph"
    return [str(script)] if script.exists() else [sys.executable, "-c", "from ttsgraph.cli import app; app()"]


@pytest.mark.integration
def test_sigkill_and_resume_equals_uninterrupted_run_embedded_models(tmp_path):
    """Real SmolLM2/Gemma calls; the killed run and its resume fill the shared cache, so the
    uninterrupted run (same seed) must reproduce every trial exactly."""
    env = {**os.environ}
    args = ["search", "--task", "arithmetic", "--budget-nodes", "2", "--optimizer", "random", "--iterations", "3",
            "--batch", "1", "--seed", "3", "--test-limit", "1", "--max-tokens", "12", "--concurrency", "2",
            "--cache", str(tmp_path / "cache.sqlite")]
    resumed, straight, at_kill = kill_resume_compare(ttsgraph_cmd(), args, tmp_path, env, 1, timeout=600)
    assert 1 <= at_kill < 3
    _assert_same(tmp_path, resumed, straight)
    assert straight["backend_calls"] == 0  # everything came from the cache the first run filled
