"""Usage errors (Click's, before any command runs) under `--json`: one JSON object on stdout."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ttsgraph", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, needle", [
    (["eval", "--json", "--no-such-flag"], "No such option: --no-such-flag"),
    (["budget", "--json", "--nodes", "many"], "Invalid value for '--nodes'"),
])
def test_a_usage_error_under_json_is_one_json_object(args: list[str], needle: str) -> None:
    done = _run(*args)
    assert done.returncode == 2
    error = json.loads(done.stdout)["error"]
    assert needle in error and error.startswith(f"ttsgraph {args[0]}:") and "\n" not in error
    assert needle in done.stderr  # the usual message still goes to stderr


def test_without_json_stdout_stays_empty() -> None:
    done = _run("eval", "--no-such-flag")
    assert done.returncode == 2 and done.stdout == "" and "No such option" in done.stderr
