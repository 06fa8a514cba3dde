"""What an optimizer stores per iteration does not grow with the iteration number (issue 10).

The defect: the base optimizer's state carried its whole history, and the study saves the state
after every tell, so a K-iteration run stored K(K+1)/2 evaluations. Now the state is fixed-size
and the history is rebuilt from the stored trials on resume, so the optimizer_state table grows
linearly. Checked on real 30-iteration studies (scripted backend, arithmetic task).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ttsgraph.cost import Budget
from ttsgraph.evaluator import LocalEvaluator
from ttsgraph.llm.base import Message
from ttsgraph.llm.fake import ScriptedBackend
from ttsgraph.models import load_pool
from ttsgraph.search.base import SearchContext, get_optimizer
from ttsgraph.search.space import SearchSpace
from ttsgraph.store import RunStore
from ttsgraph.study import Study
from ttsgraph.tasks.arithmetic import ArithmeticTask

ITERATIONS, BATCH = 30, 1

def slack(size: int) -> float:
    """Characters a fixed-size state may vary by: the RNG state's integers and the logits'
    decimals print with more or fewer digits."""
    return 64 + 0.05 * size


def state_sizes(name: str, run_dir: Path) -> list[int]:
    """Run a study; the length of the optimizer state JSON stored after each iteration."""
    task = ArithmeticTask(seed=1, size=40)
    pool = load_pool("local")
    space = SearchSpace(pool, task.lengths, Budget(9.0))
    answers = {i.question: i.answer for s in ("search", "test") for i in task.items(s)}

    def worker(model: str, messages: list[Message], sample: int) -> str:
        q = next(q for q in answers if q in messages[-1]["content"])
        return f"Answer: {answers[q] if sample % 2 == 0 else '0'}"

    backend = ScriptedBackend(worker)
    opt = get_optimizer(name)(space, seed=0, iterations=ITERATIONS, batch=BATCH,
                              context=SearchContext(backend=backend, task=task))
    with RunStore.create(run_dir) as store:
        study = Study(store, task, pool, space, opt, LocalEvaluator(backend, pool, task), iterations=ITERATIONS,
                      batch=BATCH, seed=0, test_limit=0)
        asyncio.run(study.run())
        rows = store.db.execute("SELECT iteration, length(state_json) FROM optimizer_state ORDER BY id").fetchall()
    assert [r[0] for r in rows] == list(range(ITERATIONS))
    return [int(r[1]) for r in rows]


@pytest.mark.parametrize("name", ["random", "tpe", "reinforce"])
def test_the_stored_optimizer_state_does_not_grow_with_the_iterations(name: str, tmp_path: Path) -> None:
    sizes = state_sizes(name, tmp_path / "run")
    assert sizes[ITERATIONS - 1] <= sizes[2] + slack(sizes[2]), sizes
    assert max(sizes[2:]) - min(sizes[2:]) <= slack(sizes[2]), sizes
    # linear: the whole table is about ITERATIONS states of the first ones' size (quadratic before)
    assert sum(sizes) <= ITERATIONS * (max(sizes[:3]) + slack(sizes[2])), sizes
