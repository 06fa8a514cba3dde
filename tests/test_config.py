"""The typed run config: recipes, flags over recipes, errors that name the field, resume rules."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from ttsgraph.config import RunConfig, from_sources, legacy_config, make_config, resume_config
from ttsgraph.errors import FileFormatError, TtsGraphError

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "examples" / "recipes"


def demo_flags() -> list[str]:
    """The flags scripts/demo.sh passes to `ttsgraph search` for a new run (without --out)."""
    text = (ROOT / "scripts" / "demo.sh").read_text()
    command = text.split("exec .venv/bin/ttsgraph search \\")[-1]
    words = shlex.split(command.replace("\\\n", " "))
    return words[: words.index("--out")]


class Captured(TtsGraphError):
    pass


def captured_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *args: str) -> RunConfig:
    """Run `ttsgraph search ARGS` up to the point where the study would start; return its config."""
    from typer.testing import CliRunner

    import ttsgraph.cli.search as search
    from ttsgraph.cli import app

    seen: dict[str, RunConfig] = {}

    async def fake_run(cfg: RunConfig, *a: object, **k: object) -> None:
        seen["cfg"] = cfg
        raise Captured("captured")

    monkeypatch.setattr(search, "_run", fake_run)
    result = CliRunner().invoke(app, ["search", *args, "--out", str(tmp_path / f"run{len(list(tmp_path.iterdir()))}")])
    assert "cfg" in seen, result.output
    return seen["cfg"]


def test_demo_recipe_is_the_demo_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from_flags = captured_config(monkeypatch, tmp_path, *demo_flags())
    from_recipe = captured_config(monkeypatch, tmp_path, "--config", str(RECIPES / "demo.toml"))
    assert from_flags.to_json() == from_recipe.to_json()
    assert from_recipe.budget is not None and from_recipe.budget.nodes == 3
    assert from_recipe.optimizer.options == {"agent": "smollm2-135m"}


def test_flags_override_the_recipe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = captured_config(monkeypatch, tmp_path, "--config", str(RECIPES / "demo.toml"), "--iterations", "7",
                          "--max-tokens", "48", "--opt", "agent_retries=1")
    assert cfg.iterations == 7 and cfg.sampling.max_tokens == 48 and cfg.batch == 3
    assert cfg.optimizer.options == {"agent": "smollm2-135m", "agent_retries": 1}


def test_paper_recipe_loads_with_its_pool_file() -> None:
    cfg = from_sources(RECIPES / "paper-math-b4.toml", {})
    assert cfg.task == "math500" and cfg.budget is not None and cfg.budget.nodes == 4
    assert cfg.iterations == 10 and cfg.batch == 3 and cfg.sampling.temperature == 0.1
    assert cfg.models is not None and Path(cfg.models).is_file()


def test_a_bad_recipe_field_names_file_and_line(tmp_path: Path) -> None:
    recipe = tmp_path / "bad.toml"
    recipe.write_text('task = "arithmetic"\n\n[budget]\nnodes = 3\n\n[sampling]\nmax_tokens = 0\n')
    with pytest.raises(FileFormatError, match=r"bad.toml:7: field 'sampling.max_tokens'"):
        from_sources(recipe, {})
    recipe.write_text('task = "arithmetic"\nbatchh = 3\n')
    with pytest.raises(FileFormatError, match=r"bad.toml:2: field 'batchh'"):
        from_sources(recipe, {})
    recipe.write_text('task = "arithmetic"\n[budget\n')
    with pytest.raises(FileFormatError, match=r"bad.toml:2: not valid TOML"):
        from_sources(recipe, {})


def test_a_bad_flag_names_the_flag() -> None:
    with pytest.raises(TtsGraphError, match=r"^--max-tokens: "):
        from_sources(None, {"task": "arithmetic", "sampling": {"max_tokens": 0}})
    with pytest.raises(TtsGraphError, match="exactly one of budget units"):
        make_config({"task": "arithmetic", "budget": {"units": 3.0, "nodes": 2}})


@pytest.mark.parametrize("optimizer,key", [("random", "totally_bogus"), ("random", "edge_pp"),
                                           ("tpe", "edge_pp"), ("reinforce", "totally_bogus")])
def test_misspelled_optimizer_options_are_refused(optimizer: str, key: str) -> None:
    with pytest.raises(TtsGraphError, match=rf"unknown option '{key}' \(valid: "):
        make_config({"task": "arithmetic", "optimizer": {"name": optimizer, "options": {key: 1}}})


def test_unknown_optimizer_is_refused() -> None:
    with pytest.raises(TtsGraphError, match="unknown optimizer 'nope'"):
        make_config({"task": "arithmetic", "optimizer": {"name": "nope"}})


STORED = make_config({"task": "arithmetic", "budget": {"nodes": 3}, "iterations": 4, "batch": 2, "seed": 1,
                      "optimizer": {"name": "random"}, "lengths": [80.0, 20.0]})


def test_resume_continues_with_more_iterations_and_backend_flags() -> None:
    cfg = resume_config(STORED, {"iterations": 6, "test_limit": 5, "backend": {"concurrency": 2}})
    assert cfg.iterations == 6 and cfg.test_limit == 5 and cfg.backend.concurrency == 2
    assert cfg.lengths == (80.0, 20.0) and cfg.seed == 1
    assert resume_config(STORED, {"seed": 1, "budget": {"nodes": 3}}).to_json() == STORED.to_json()  # same values


@pytest.mark.parametrize("given,flag", [
    ({"budget": {"nodes": 4}}, "--budget-nodes"), ({"seed": 2}, "--seed"), ({"task": "gsm8k"}, "--task"),
    ({"optimizer": {"name": "tpe"}}, "--optimizer"), ({"batch": 3}, "--batch"),
    ({"sampling": {"max_tokens": 12}}, "--max-tokens"), ({"optimizer": {"options": {"edge_p": 0.5}}}, "--opt"),
])
def test_resume_refuses_flags_that_change_the_study(given: dict, flag: str) -> None:
    with pytest.raises(TtsGraphError, match=rf"^{flag}: this run was created with .+, not .+"):
        resume_config(STORED, given)


def test_resume_refuses_fewer_iterations() -> None:
    with pytest.raises(TtsGraphError, match="^--iterations: this run was created with 4; .* not 3"):
        resume_config(STORED, {"iterations": 3})


def test_legacy_run_config_converts() -> None:
    legacy = {"task": "arithmetic", "task_options": {}, "models": None, "budget": None, "budget_nodes": 3,
              "optimizer": "agent-reinforce", "optimizer_options": {"agent_retries": 1}, "agent": "smollm2-135m",
              "proposal": None, "iterations": 5, "batch": 3, "seed": 0, "select": "best", "objective": "accuracy",
              "latency_weight": 0.0, "test_limit": 20, "max_tokens": 32, "temperature": 0.1, "output_model": None,
              "race": 2, "race_items": 3, "lengths": [90.0, 30.0]}
    cfg = make_config(legacy_config(legacy))
    assert cfg.budget is not None and cfg.budget.nodes == 3 and cfg.race == 2
    assert cfg.optimizer.options == {"agent_retries": 1, "agent": "smollm2-135m"}
    assert cfg.sampling.max_tokens == 32 and cfg.lengths == (90.0, 30.0)
