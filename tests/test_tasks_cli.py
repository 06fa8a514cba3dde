"""`ttsgraph tasks`: the table, the single JSON object, and error reporting."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ttsgraph.cli import app

runner = CliRunner()


def test_tasks_json_lists_every_builtin_with_sizes():
    result = runner.invoke(app, ["tasks", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)["tasks"]}
    assert set(rows) == {"math500", "gsm8k", "mmlu", "humaneval", "arithmetic"}
    assert rows["math500"]["items"] == 500 and rows["mmlu"]["items"] == 14042 and rows["humaneval"]["items"] == 164
    assert rows["gsm8k"]["test"] == 1319
    for r in rows.values():
        assert r["search"] > 0 and r["test"] > 0 and r["search"] + r["test"] == r["items"]
        assert r["A"] > 0 and r["B"] > 0 and r["grader"]
    assert (rows["math500"]["A"], rows["math500"]["B"]) == (202, 275)


def test_tasks_table_and_jsonl_check(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text('{"question": "1+1?", "answer": "2"}\n{"question": "2+2?", "answer": "4"}\n')
    result = runner.invoke(app, ["tasks", "--task", f"jsonl:{path}", "--option", "grader=numeric"])
    assert result.exit_code == 0, result.output
    assert "jsonl:" in result.stdout and "numeric" in result.stdout


def test_tasks_bad_jsonl_exits_2_naming_the_line(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"question": "1+1?", "answer": "2"}\n{"question": "oops"}\n')
    result = runner.invoke(app, ["tasks", "--task", f"jsonl:{path}", "--json"])
    assert result.exit_code == 2
    assert f"{path}:2" in result.output.replace("\n", "")


REQUIRED = {"eval": ["g.json"], "show": ["g.json"], "budget": ["--nodes", "2"]}


@pytest.mark.parametrize("command", ["eval", "search", "profile", "bench", "show", "budget", "tasks"])
def test_every_command_that_takes_a_task_takes_task_options_as_option(command: str) -> None:
    """`eval --grader` was rejected as an unknown flag and the JSONL options were only in `tasks
    --help`: now one `--option` everywhere, listed in every --help, and the old spelling points at it."""
    help_text = " ".join(runner.invoke(app, [command, "--help"]).stdout.replace("│", " ").split())
    assert "--option" in help_text and "jsonl:PATH: grader (exact, numeric, choice or math), question_field," in help_text
    result = runner.invoke(app, [command, *REQUIRED.get(command, []), "--grader", "numeric"])
    assert result.exit_code == 2
    assert "--grader is a task option: write --option grader=numeric" in result.stderr
