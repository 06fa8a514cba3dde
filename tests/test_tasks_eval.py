"""Every task end to end through `ttsgraph eval` with the real embedded models (tiny limits).

The embedded models are too weak to be right on MATH/MMLU/GSM8K/HumanEval, so these tests check
that each task's prompts, extraction and grading run on real replies without errors (HumanEval in
the sandbox), not what the accuracy is.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ttsgraph import sandbox
from ttsgraph.cli import app

pytestmark = pytest.mark.integration
runner = CliRunner()
SINGLE = str(Path(__file__).resolve().parents[1] / "examples" / "single.json")

CASES = [
    ("arithmetic", 2),
    ("math500", 1),
    ("gsm8k", 1),
    ("mmlu:high_school_geography", 1),
    ("humaneval", 1),
]


def _eval(tmp_path, graph: str, task: str, limit: int, *extra: str) -> tuple[dict, list[dict]]:
    out_dir = tmp_path / f"out-{task.replace(':', '_').replace('/', '_')}"
    args = [
        "eval", graph, "--task", task, "--limit", str(limit), "--max-tokens", "24",
        "--cache", str(tmp_path / "cache.sqlite"), "--out", str(out_dir), "--json", *extra,
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    traces = [json.loads(line) for line in (out_dir / "traces.jsonl").read_text().splitlines() if line.strip()]
    return summary, traces


@pytest.mark.parametrize("task, limit", CASES)
def test_eval_runs_every_builtin_task_on_the_embedded_default(tmp_path, task, limit, missing_sandbox):
    if task == "humaneval" and sandbox.available_sandbox() is None:
        missing_sandbox("any", "HumanEval grading needs bwrap or unshare")
    start = time.monotonic()
    summary, traces = _eval(tmp_path, SINGLE, task, limit)
    assert summary["items"] == limit and summary["errors"] == 0, summary.get("error_reasons")
    assert summary["correct"] + summary["wrong"] == limit
    assert summary["backend_calls"] == limit and summary["measured_flops"] > 0
    assert len(traces) == limit
    for trace in traces:
        assert trace["output_text"].strip()  # a real, non-empty reply was graded
        assert isinstance(trace["correct"], bool)
    print(f"{task}: {time.monotonic() - start:.1f}s")


def test_eval_custom_jsonl_task(tmp_path):
    path = tmp_path / "sums.jsonl"
    path.write_text("".join(json.dumps({"question": f"What is {a} + {b}?", "answer": a + b}) + "\n" for a, b in [(1, 2), (3, 4), (2, 2), (5, 1)]))
    summary, traces = _eval(tmp_path, SINGLE, f"jsonl:{path}", 2, "--option", "grader=numeric")
    assert summary["items"] == 2 and summary["errors"] == 0
    assert all(t["output_text"].strip() for t in traces)


def test_fusion_graph_of_both_embedded_models_on_arithmetic(tmp_path):
    # Gemma (base model, completion prompt) answers, SmolLM2 synthesizes: both prompt paths, real replies.
    graph = tmp_path / "fuse.json"
    graph.write_text(json.dumps({
        "nodes": [
            {"id": "a", "model": "gemma-3-270m", "role": "assistant"},
            {"id": "b", "model": "smollm2-135m", "role": "assistant"},
            {"id": "out", "model": "smollm2-135m", "role": "fuser"},
        ],
        "edges": [["a", "out"], ["b", "out"]],
        "output": "out",
    }))
    summary, traces = _eval(tmp_path, str(graph), "arithmetic", 1)
    assert summary["errors"] == 0 and summary["backend_calls"] == 3
    nodes = {n["id"]: n for n in traces[0]["nodes"]}
    assert all(nodes[k]["text"].strip() for k in ("a", "b", "out"))
