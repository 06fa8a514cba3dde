"""Every recipe in examples/recipes/ loads: run recipes through `RunConfig` (the way `--config`
reads them), pool files through `load_pool`; the paper recipes keep the paper's protocol."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ttsgraph.config import from_sources
from ttsgraph.inputs import load_toml, read_text_file
from ttsgraph.models import load_pool

RECIPES = Path(__file__).resolve().parents[1] / "examples" / "recipes"
FILES = sorted(RECIPES.glob("*.toml"))


def is_pool_file(path: Path) -> bool:
    data = load_toml(read_text_file(path, "recipe"), path, "recipe")
    return "pool" in data or isinstance(data.get("models"), dict)


def test_the_recipes_are_there() -> None:
    names = {p.name for p in FILES}
    paper = {f"paper-{t}-b{b}.toml" for t in ("math", "mmlu", "humaneval") for b in (4, 8, 12)}
    assert paper <= names
    assert {"embedded-search.toml", "embedded-ablations.toml", "embedded-pilot.toml"} <= names


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_every_recipe_loads(path: Path) -> None:
    if is_pool_file(path):
        pool = load_pool(path)
        assert pool.models and pool.output in pool.models
        return
    cfg = from_sources(path, {})
    assert cfg.task
    if cfg.models is not None and cfg.models.endswith(".toml"):
        assert Path(cfg.models).is_file()  # resolved next to the recipe


@pytest.mark.parametrize("path", [p for p in FILES if re.fullmatch(r"paper-\w+-b\d+\.toml", p.name)],
                         ids=lambda p: p.name)
def test_paper_recipes_keep_the_paper_protocol(path: Path) -> None:
    cfg = from_sources(path, {})
    b = int(re.search(r"-b(\d+)\.toml$", path.name).group(1))  # type: ignore[union-attr]
    task = path.name.split("-")[1]
    assert cfg.budget is not None and cfg.budget.nodes == b
    assert (cfg.iterations, cfg.batch, cfg.sampling.temperature) == (10, 3, 0.1)
    assert cfg.optimizer.name == "agent-reinforce" and cfg.optimizer.options["budget_filling"] is True
    assert cfg.task == {"math": "math500", "mmlu": "mmlu", "humaneval": "humaneval"}[task]
    assert cfg.models is not None and Path(cfg.models).name == "paper-models.toml"
    assert set(load_pool(cfg.models).models) == {"llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b", "llama-3.1-70b"}
