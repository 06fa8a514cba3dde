"""A test run leaves the checkout as it found it: Hypothesis's storage and the browser test's
screenshots go to temporary directories, not `.hypothesis/` or `test-artifacts/` in the repo.

Runs a property-based test and the browser probe in a child pytest (from an empty working
directory, as Hypothesis writes relative to it) and compares `git status --ignored` before and
after."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _status() -> set[str]:
    out = subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return {line for line in out.splitlines() if "__pycache__" not in line and ".pytest_cache" not in line}


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout")
def test_a_test_run_writes_nothing_into_the_checkout(tmp_path: Path) -> None:
    before = _status()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    env.pop("HYPOTHESIS_STORAGE_DIRECTORY", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT),
         "-c", str(ROOT / "pyproject.toml"), f"--basetemp={tmp_path / 'basetemp'}",
         str(ROOT / "tests" / "test_graph.py"), str(ROOT / "tests" / "test_browser.py") + "::test_the_checks_can_fail"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in cwd.iterdir()) == []
    assert _status() == before
