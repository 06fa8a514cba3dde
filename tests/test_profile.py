"""`ttsgraph profile`: singles and equal-budget mixes are scored on the same search items, stored,
found again by task and pool, and reused; the paper preset carries SPEC §5's numbers."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from typer.testing import CliRunner

from ttsgraph.cli import app
from ttsgraph.errors import FileFormatError
from ttsgraph.llm.base import SamplingParams
from ttsgraph.llm.fake import ScriptedBackend
from ttsgraph.evaluator import LocalEvaluator
from ttsgraph.llm.router import build_backend
from ttsgraph.models import load_pool
from ttsgraph.profile import (
    find_profile,
    load_profile,
    measure_profile,
    paper_profile,
    profile_key,
    profile_path,
    save_profile,
    spread,
)
from ttsgraph.tasks import load_task

S, G = "smollm2-135m", "gemma-3-270m"


def answer_of(question: str) -> int:
    expr = re.search(r"What is ([-+*\d ]+)\?", question).group(1)  # type: ignore[union-attr]
    return int(eval(expr))  # test-only: our own digits and + -


def worker(model: str, messages: list[dict[str, str]], sample: int) -> str:
    """Gemma always right, SmolLM always wrong, except when synthesizing others' answers."""
    q = messages[-1]["content"]
    right = model == G or "Answers from other models" in q
    return f"Answer: {answer_of(q) + (0 if right else 1)}"


def test_measure_scores_singles_and_mixes_on_the_same_items() -> None:
    pool, task = load_pool("local"), load_task("arithmetic", size=12)
    fake = ScriptedBackend(worker)
    seen: list[tuple[str, int, int]] = []
    prof = asyncio.run(measure_profile(task, pool, LocalEvaluator(build_backend(pool, None, fake=fake), pool, task), items=4, mixes=3,
                                       progress=lambda label, done, total: seen.append((label, done, total))))
    assert prof.singles[G]["accuracy"] == 1.0 and prof.singles[S]["accuracy"] == 0.0
    assert prof.singles[G]["scored"] == 4 and prof.singles[G]["ci"][0] > 0.4
    assert len(prof.mixes) == 3 and prof.mix_budget and "node budget 3" in prof.mix_budget
    for row in prof.mixes:
        assert sum(row["counts"].values()) == 3  # equal budget: both models cost 1 unit
        assert row["scored"] == 4 and 0.0 <= row["accuracy"] <= 1.0
    # every graph saw the same items: 2 singles + 3 mixes, 4 items each
    assert seen[-1][1:] == (20, 20)
    assert len(prof.item_ids) == 4 and all(i.startswith("arithmetic/") for i in prof.item_ids)
    assert prof.lengths is not None and prof.lengths["prompt"] > 0
    assert prof.source == "measured" and prof.task_config == task.config_id


def test_save_find_and_reject(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTSGRAPH_HOME", str(tmp_path))
    pool, task = load_pool("local"), load_task("arithmetic", size=12)
    prof = asyncio.run(measure_profile(task, pool, LocalEvaluator(build_backend(pool, None, fake=ScriptedBackend(worker)), pool, task),
                                       items=2, mixes=1))
    key = profile_key(task, pool, items=2, seed=0, params=SamplingParams(), mixes=1, mix_nodes=None)
    assert prof.key == key
    path = profile_path(task, pool, key)
    save_profile(prof, path)
    assert load_profile(path).to_dict() == json.loads(json.dumps(prof.to_dict()))
    found = find_profile(task, pool)
    assert found is not None and found.singles == prof.singles
    assert find_profile(load_task("arithmetic", size=12, digits=2), pool) is None  # other configuration
    assert find_profile(task, load_pool("paper")) is None
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(FileFormatError, match="bad.json"):
        load_profile(bad)


def test_paper_preset_holds_the_insight_1_table() -> None:
    prof = paper_profile("math500", load_pool("paper"))
    assert prof is not None and prof.source == "paper"
    assert prof.singles["llama-3.1-8b"]["accuracy"] == pytest.approx(0.49)
    best = max(prof.mixes, key=lambda r: r["accuracy"])
    assert best["counts"] == {"llama-3.2-3b": 3} and best["accuracy"] == pytest.approx(0.54)
    assert paper_profile("mmlu", load_pool("paper")).singles["llama-3.1-8b"]["accuracy"] == pytest.approx(0.64)
    assert paper_profile("arithmetic", load_pool("paper")) is None
    assert paper_profile("math500", load_pool("local")) is None


def test_spread_keeps_the_ends() -> None:
    assert spread([{"a": i} for i in range(7)], 3) == [{"a": 0}, {"a": 3}, {"a": 6}]
    assert spread([{"a": 1}], 4) == [{"a": 1}]


def test_cli_preset_prints_one_json_object() -> None:
    result = CliRunner().invoke(app, ["profile", "--task", "mmlu", "--models", "paper", "--preset", "paper", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["source"] == "paper" and data["singles"]["llama-3.2-3b"]["accuracy"] == pytest.approx(0.43)
    bad = CliRunner().invoke(app, ["profile", "--task", "arithmetic", "--models", "paper", "--preset", "paper"])
    assert bad.exit_code == 2 and "no Insight-1 numbers" in bad.output


@pytest.mark.integration
def test_cli_measures_with_the_embedded_models_then_reuses(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTSGRAPH_HOME", str(tmp_path / "home"))
    args = ["profile", "--task", "arithmetic", "--items", "2", "--mixes", "1", "--max-tokens", "24",
            "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "cache.sqlite"), "--json"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    data = json.loads(first.stdout[first.stdout.index("{"):first.stdout.rindex("}") + 1])
    assert data["reused"] is False and set(data["singles"]) == {S, G}
    assert all(row["scored"] + row["errors"] == 2 for row in data["singles"].values())
    assert (tmp_path / "run" / "profile.json").is_file()
    second = CliRunner().invoke(app, args)
    again = json.loads(second.stdout[second.stdout.index("{"):second.stdout.rindex("}") + 1])
    assert again["reused"] is True and again["singles"] == data["singles"]
