"""Insight-1 data (SPEC §5): how each pool model does alone on a task, and a few equal-budget mixes.

Agent-REINFORCE's initialization asks the agent to pick model mixes "given the data", so the data
must exist and must be about *this* task and *this* pool: the paper's own table only describes
Llama models on MATH/MMLU/HumanEval. `measure_profile` scores each model alone (one node) and a
few budget-filling mixes (random sparse graphs, all assistants, the pool's output node) on the
same search items; the result is stored as JSON (in the run directory or under
`~/.cache/ttsgraph/profiles/`) and found again by task and pool, so it is measured once. The
paper's table is available as a preset for the paper's pool (`paper_profile`).

A profile also records the measured mean prompt and answer tokens of lone calls, which SPEC
suggests as the task lengths (A, B) for tasks without the paper's constants.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ttsgraph.cost import Budget
from ttsgraph.errors import FileFormatError, TtsGraphError
from ttsgraph.evaluator import Evaluator, Job
from ttsgraph.executor import ItemResult
from ttsgraph.graph import Graph, Node, single
from ttsgraph.llm.base import SamplingParams, ttsgraph_home
from ttsgraph.models import ModelPool
from ttsgraph.stats import wilson_interval

PROFILE_VERSION = 1
MIX_EDGE_P = 0.119  # the GPTSwarm sampler's initial density (SPEC §3.2): sparse random graphs

# SPEC §5: the paper's pilot numbers (%), Llama family; mixes at equal budget (1B=1, 3B=3, 8B=9 on
# MATH/MMLU; 1B=1, 3B=4, 8B=7 on HumanEval).
_L1, _L3, _L8, _L70 = "llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b", "llama-3.1-70b"
PAPER_SINGLES: dict[str, dict[str, float]] = {
    "math500": {_L1: 31, _L3: 40, _L8: 49, _L70: 68},
    "mmlu": {_L1: 31, _L3: 43, _L8: 64, _L70: 84},
    "humaneval": {_L1: 31, _L3: 48, _L8: 60, _L70: 68},
}
PAPER_MIXES: dict[str, list[tuple[dict[str, int], float]]] = {
    "math500": [({_L1: 9}, 39), ({_L3: 2, _L1: 3}, 45), ({_L3: 1, _L1: 6}, 44), ({_L3: 3}, 54), ({_L8: 1}, 49)],
    "mmlu": [({_L1: 9}, 30), ({_L3: 2, _L1: 3}, 45), ({_L3: 1, _L1: 6}, 39), ({_L3: 3}, 41), ({_L8: 1}, 64)],
    "humaneval": [({_L1: 7}, 38), ({_L3: 1, _L1: 3}, 48), ({_L8: 1}, 60)],
}
_PAPER_TASK = {"math": "math500", "math500": "math500", "mmlu": "mmlu", "humaneval": "humaneval"}


@dataclass
class Profile:
    """Accuracy of each model alone and of a few equal-budget mixes on one task's search items.

    `singles[model]` and each `mixes[k]` hold accuracy, correct, scored, errors and a Wilson
    `ci`; a mix also has its `counts` and `graph`. `source` is "measured" or "paper"."""

    task: str
    task_config: str | None
    pool: str
    models: list[str]
    items: int
    source: str
    singles: dict[str, dict[str, Any]]
    mixes: list[dict[str, Any]] = field(default_factory=list)
    mix_budget: str | None = None
    lengths: dict[str, float] | None = None
    seconds: float = 0.0
    created: str = ""
    key: str = ""
    item_ids: list[str] = field(default_factory=list)
    version: int = PROFILE_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


def task_identity(task: Any) -> tuple[str, str | None]:
    """(name, configuration id) of a task object, or (name, None) for a task name."""
    if isinstance(task, str):
        return task, None
    return str(getattr(task, "name", task)), getattr(task, "config_id", None)


def profile_key(task: Any, pool: ModelPool, *, items: int, seed: int, params: SamplingParams, mixes: int,
                mix_nodes: int | None) -> str:
    """What makes two profiles interchangeable: task (and its configuration), pool models and
    their bindings, items, seed, worker sampling settings and the mix settings."""
    name, config = task_identity(task)
    bindings = {m: (pool.spec(m).binding.key() if pool.spec(m).binding else None) for m in pool.models}
    blob = json.dumps({"v": PROFILE_VERSION, "task": name, "config": config, "models": pool.models,
                       "output": pool.output, "bindings": bindings, "items": items, "seed": seed,
                       "params": params.to_dict(), "mixes": mixes, "mix_nodes": mix_nodes}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def profiles_dir() -> Path:
    """Where profiles are kept when no run directory is given: `$TTSGRAPH_HOME/profiles`."""
    return ttsgraph_home() / "profiles"


def profile_path(task: Any, pool: ModelPool, key: str, run_dir: Path | None = None) -> Path:
    """`RUN/profile.json`, or `profiles/<task>[-<config>]-<pool>-<key>.json` in the cache."""
    if run_dir is not None:
        return Path(run_dir) / "profile.json"
    name, config = task_identity(task)
    stem = "-".join(x for x in (name.replace(":", "_").replace("/", "_"), config, pool.name, key) if x)
    return profiles_dir() / f"{stem}.json"


def save_profile(profile: Profile, path: Path) -> None:
    """Write atomically (temporary file + rename), so a concurrent reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(profile.to_dict(), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def load_profile(path: str | Path) -> Profile:
    """Read a stored profile; a bad file is a FileFormatError naming it."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FileFormatError(f"cannot read profile: {exc.strerror}", path=str(p)) from None
    except json.JSONDecodeError as exc:
        raise FileFormatError(f"invalid JSON: {exc.msg}", path=str(p), line=exc.lineno) from None
    if not isinstance(data, dict) or not isinstance(data.get("singles"), dict) or "task" not in data:
        raise FileFormatError("not a ttsgraph profile (needs task and singles)", path=str(p))
    return Profile.from_dict(data)


def find_profile(task: Any, pool: ModelPool, directory: Path | None = None) -> Profile | None:
    """The newest stored profile for this task (and configuration) over exactly this pool's
    models, else the paper's table when it applies, else None."""
    name, config = task_identity(task)
    folder = directory or profiles_dir()
    best: tuple[str, Profile] | None = None
    if folder.is_dir():
        for path in folder.glob("*.json"):
            try:
                prof = load_profile(path)
            except FileFormatError:
                continue
            if prof.task != name or prof.task_config != config or sorted(prof.models) != sorted(pool.models):
                continue
            if best is None or prof.created > best[0]:
                best = (prof.created, prof)
    if best is not None:
        return best[1]
    return paper_profile(name, pool)


def paper_profile(task: str, pool: ModelPool) -> Profile | None:
    """The paper's Insight-1 table (SPEC §5) for MATH/MMLU/HumanEval, restricted to the pool's
    models; None when the task has no paper numbers or the pool has none of the paper's models."""
    key = _PAPER_TASK.get(task.split(":")[0])
    if key is None:
        return None
    singles = {m: {"accuracy": acc / 100} for m, acc in PAPER_SINGLES[key].items() if m in pool.models}
    if not singles:
        return None
    mixes = [{"counts": counts, "accuracy": acc / 100} for counts, acc in PAPER_MIXES[key]
             if all(m in pool.models for m in counts)]
    budget = "1B=1, 3B=4, 8B=7 units" if key == "humaneval" else "about 9 units: 1B=1, 3B=3, 8B=9"
    return Profile(task=task, task_config=None, pool=pool.name, models=list(pool.models), items=100,
                   source="paper", singles=singles, mixes=mixes, mix_budget=budget, created="paper", key="paper")


def _score(results: list[ItemResult]) -> dict[str, Any]:
    scored = [r for r in results if r.error is None]
    correct = sum(1 for r in scored if r.correct)
    lo, hi = wilson_interval(correct, len(results))  # an errored item is not correct (one accuracy)
    return {"accuracy": correct / len(results) if results else None, "correct": correct, "scored": len(scored),
            "errors": len(results) - len(scored), "ci": [lo, hi],
            "error_reasons": sorted({r.error for r in results if r.error})[:3]}


def default_mix_nodes(pool: ModelPool, unit_costs: dict[str, int]) -> int:
    """The node budget of the equal-budget mixes: the largest model cost up to 9 (the paper's
    pilot used 9 with 1B=1, 3B=3, 8B=9), and at least 3 so there is something to mix."""
    affordable = [c for c in unit_costs.values() if c <= 9]
    return max(3, max(affordable) if affordable else 3)


def spread(options: list[dict[str, int]], k: int) -> list[dict[str, int]]:
    """Up to k options evenly spaced over the list (first and last included)."""
    if len(options) <= k:
        return list(options)
    if k <= 1:
        return [options[0]]
    idx = sorted({round(i * (len(options) - 1) / (k - 1)) for i in range(k)})
    return [options[i] for i in idx]


def mix_graphs(pool: ModelPool, lengths: Any, *, mixes: int, mix_nodes: int | None,
               seed: int) -> tuple[list[tuple[dict[str, int], Graph]], str]:
    """The equal-budget mixes and one random all-assistant graph per mix (seeded)."""
    from ttsgraph.search.space import SearchSpace

    probe = SearchSpace(pool, lengths, Budget.from_nodes(1, pool, lengths))
    costs = probe.unit_costs()
    b = mix_nodes or default_mix_nodes(pool, costs)
    space = SearchSpace(pool, lengths, Budget.from_nodes(b, pool, lengths))
    chosen = spread(space.combos(budget_filling=True), mixes) if mixes > 0 else []
    rng = np.random.default_rng(seed)
    out = []
    for counts in chosen:
        g = space.random_graph(counts, rng, MIX_EDGE_P)
        g = Graph([Node(n.id, n.model, "assistant") for n in g.nodes], list(g.edges), g.output)
        out.append(({m: n for m, n in counts.items() if n > 0}, g))
    label = f"node budget {b}: " + ", ".join(f"{m}={c}" for m, c in costs.items()) + f"; {space.budget.units:.2f} units"
    return out, label


async def measure_profile(
    task: Any,
    pool: ModelPool,
    evaluator: Evaluator,
    *,
    items: int = 5,
    seed: int = 0,
    mixes: int = 4,
    mix_nodes: int | None = None,
    params: SamplingParams | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> Profile:
    """Score every pool model alone and `mixes` equal-budget mixes on `items` search items.

    `progress(label, done, total)` is called after each graph × item. Raises TtsGraphError if
    the search split has no items."""
    params = params or SamplingParams()
    pool_items = list(task.items("search"))
    if not pool_items:
        raise TtsGraphError(f"task {task.name!r} has no search items to profile on")
    random.Random(f"ttsgraph-profile/{seed}").shuffle(pool_items)
    chosen = pool_items[: max(1, items)]
    graphs: list[tuple[str, Graph, dict[str, int] | None]] = [(m, single(m), None) for m in pool.models]
    mix_list, label = mix_graphs(pool, task.lengths, mixes=mixes, mix_nodes=mix_nodes, seed=seed)
    graphs += [("mix " + ", ".join(f"{n}x{m}" for m, n in counts.items()), g, counts) for counts, g in mix_list]
    total = len(graphs) * len(chosen)
    done = 0
    started = time.perf_counter()
    singles: dict[str, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    prompt_tokens: list[int] = []
    answer_tokens: list[int] = []

    def on_result(job: int, _: ItemResult) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(graphs[job][0], done, total)

    # one batch: every graph on the same items, so the evaluator may run them all at once
    scored = await evaluator.evaluate([Job(graph, chosen, params) for _, graph, _ in graphs], on_result)
    for (name, graph, counts), results in zip(graphs, scored):
        row = _score(results)
        if counts is None:
            singles[name] = row
            for r in results:
                for t in r.nodes:
                    if t.error is None and t.completion_tokens:
                        prompt_tokens.append(t.prompt_tokens)
                        answer_tokens.append(t.completion_tokens)
        else:
            rows.append({"counts": counts, "graph": graph.to_dict(), **row})
    name, config = task_identity(task)
    lengths = ({"prompt": float(np.mean(prompt_tokens)), "answer": float(np.mean(answer_tokens))}
               if prompt_tokens else None)
    return Profile(
        task=name, task_config=config, pool=pool.name, models=list(pool.models), items=len(chosen),
        source="measured", singles=singles, mixes=rows, mix_budget=label, lengths=lengths,
        seconds=time.perf_counter() - started, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        key=profile_key(task, pool, items=items, seed=seed, params=params, mixes=mixes, mix_nodes=mix_nodes),
        item_ids=[str(i.id) for i in chosen],
    )


__all__ = ["Profile", "measure_profile", "find_profile", "paper_profile", "load_profile", "save_profile",
           "profile_key", "profile_path", "profiles_dir", "spread", "mix_graphs"]
