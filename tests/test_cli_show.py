"""`ttsgraph show`, `budget`, `models` through the real console script entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ttsgraph.cli import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def run_json(*args: str) -> dict:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_show_paper_reference_graph_is_17_79_units():
    info = run_json("show", str(ROOT / "examples/paper-reference-b4.json"), "--task", "math", "--models", "paper")
    assert info["planned_units"] == pytest.approx(17.79, abs=0.01)
    assert info["planned_flops"] == pytest.approx(17.79 * 9.689e11, rel=1e-3)
    assert (info["width"], info["depth"]) == (1, 4)
    assert len(info["nodes"]) == 5 and len(info["edges"]) == 10
    assert info["budget_units"] is None and info["within_budget"] is None


def test_show_budget_fit_both_ways():
    graph = str(ROOT / "examples/paper-parallel-3b.json")
    fits = run_json("show", graph, "--models", "paper", "--budget", "18")
    assert fits["within_budget"] is True and fits["budget_units"] == 18
    over = run_json("show", graph, "--models", "paper", "--budget-nodes", "3")
    assert over["within_budget"] is False and over["budget_units"] < over["planned_units"]


def test_show_reports_pruned_nodes(tmp_path):
    path = tmp_path / "g.json"
    path.write_text(json.dumps({"nodes": [{"id": "a", "model": "llama-3.2-1b"}, {"id": "dead", "model": "llama-3.2-1b"},
                                          {"id": "out", "model": "llama-3.2-3b"}],
                                "edges": [["a", "out"]], "output": "out"}))
    info = run_json("show", str(path), "--models", "paper")
    assert info["pruned"] == ["dead"] and [n["id"] for n in info["nodes"]] == ["a", "out"]


def test_show_bad_graph_exits_2_naming_the_node(tmp_path):
    path = tmp_path / "g.json"
    path.write_text(json.dumps({"nodes": [{"id": "a", "model": "llama-9b"}, {"id": "out", "model": "llama-3.2-3b"}],
                                "edges": [["a", "out"]], "output": "out"}))
    result = runner.invoke(app, ["show", str(path), "--models", "paper"])
    assert result.exit_code == 2
    assert "unknown model 'llama-9b'" in result.output and "'a'" in result.output


def test_show_formats():
    graph = str(ROOT / "examples/hybrid.json")
    mermaid = runner.invoke(app, ["show", graph, "--format", "mermaid"])
    assert mermaid.exit_code == 0 and mermaid.stdout.startswith("flowchart LR") and "f{{" in mermaid.stdout
    dot = runner.invoke(app, ["show", graph, "--format", "dot"])
    assert dot.exit_code == 0 and '"a1" -> "r1";' in dot.stdout
    table = runner.invoke(app, ["show", graph, "--budget", "5"])
    assert table.exit_code == 0 and "over budget" in table.stdout


def test_budget_command():
    assert run_json("budget", "--task", "mmlu", "--nodes", "8", "--models", "paper")["units"] == pytest.approx(38.51,
                                                                                                                abs=0.01)
    assert run_json("budget", "--task", "humaneval", "--nodes", "12", "--models", "paper")["units"] == pytest.approx(
        56.39, abs=0.01)


def test_models_command():
    rows = run_json("models")["models"]
    names = {r["name"] for r in rows}
    assert {"llama-3.2-1b", "qwen2.5-72b", "smollm2-135m", "gemma-3-270m"} <= names
    pool = run_json("models", "--models", "paper")
    assert pool["pool"]["reference"] == "llama-3.2-1b"
    assert sum(r["in_pool"] for r in pool["models"]) == 4


def test_console_script_is_installed():
    exe = Path(sys.executable).parent / "ttsgraph"
    result = subprocess.run([str(exe), "budget", "--task", "math", "--nodes", "4", "--models", "paper", "--json"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["units"] == pytest.approx(17.79, abs=0.01)
