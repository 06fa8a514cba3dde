"""Measure how single embedded models score on a task: the numbers behind the arithmetic defaults.

`python -m ttsgraph.tasks.calibrate --task arithmetic --limit 75 --vote 5` asks each model alone
(one sample), then optionally K samples at a higher temperature with a majority vote over the
extracted answers, and prints accuracies with Wilson 95% intervals. A task is useful for a search
only if these accuracies are strictly between 0 and 1 and voting or fusion moves them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter

from ttsgraph.errors import BackendError
from ttsgraph.llm.base import SamplingParams
from ttsgraph.stats import wilson_interval
from ttsgraph.tasks.base import Item, Task
from ttsgraph.tasks.registry import load_task
from ttsgraph.vote import majority_vote


async def _measure(
    backend, model: str, task: Task, items: list[Item], params: SamplingParams, samples: int, errors: Counter
) -> list[list[str | None]]:
    """Reply texts per item and sample (sample index 0..samples-1, as the cache keys them).
    A failed call (e.g. an empty reply) gives no text and is counted in `errors` by reason."""
    out: list[list[str | None]] = []
    for k, item in enumerate(items, 1):
        texts: list[str | None] = []
        for s in range(samples):
            try:
                completion = await backend.complete(model, task.messages(item, "assistant", [], False), params, s)
            except BackendError as e:
                errors[e.reason.split(" (")[0]] += 1
                texts.append(None)
                continue
            texts.append(completion.text)
        out.append(texts)
        print(f"\r{model}: {k}/{len(items)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return out


def _score(verdicts: list[bool]) -> dict:
    correct, n = sum(verdicts), len(verdicts)
    low, high = wilson_interval(correct, n)
    return {"correct": correct, "n": n, "accuracy": correct / n, "ci95": [round(low, 3), round(high, 3)]}


def _single(task: Task, items: list[Item], texts: list[str | None]) -> list[bool]:
    return [t is not None and task.grade(i, t).correct for i, t in zip(items, texts)]


async def calibrate(
    task: Task,
    models: list[str],
    limit: int,
    split: str = "test",
    max_tokens: int = 32,
    vote: int = 0,
    vote_temperature: float = 0.7,
    backend=None,
) -> dict:
    """Accuracy of each model alone on the first `limit` items of `split` (and of a K-sample majority
    vote when `vote` > 1). `backend` defaults to the embedded models."""
    if backend is None:
        from ttsgraph.llm.local import LocalBackend

        backend = LocalBackend()
    items = task.items(split)[:limit]
    report: dict = {"task": task.name, "split": split, "items": len(items), "max_tokens": max_tokens, "models": {}}
    async with backend:
        for model in models:
            start = time.perf_counter()
            errors: Counter = Counter()
            cold = SamplingParams(temperature=0.1, max_tokens=max_tokens)
            single = await _measure(backend, model, task, items, cold, 1, errors)
            row = {"single_t0.1": _score(_single(task, items, [t[0] for t in single]))}
            if vote > 1:
                hot_params = SamplingParams(temperature=vote_temperature, max_tokens=max_tokens)
                hot = await _measure(backend, model, task, items, hot_params, vote, errors)
                row[f"one_sample_t{vote_temperature}"] = _score(_single(task, items, [t[0] for t in hot]))
                voted = [majority_vote(texts, task, item)[0] for texts, item in zip(hot, items)]
                row[f"majority_of_{vote}_t{vote_temperature}"] = _score(voted)
            row["backend_errors"] = dict(errors)
            row["seconds"] = round(time.perf_counter() - start, 1)
            report["models"][model] = row
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ttsgraph.tasks.calibrate", description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="arithmetic")
    parser.add_argument("--option", "-o", action="append", default=[], help="task option KEY=VALUE")
    parser.add_argument("--models", default="smollm2-135m,gemma-3-270m")
    parser.add_argument("--split", default="test", choices=["search", "test"])
    parser.add_argument("--limit", type=int, default=75)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--vote", type=int, default=0, help="also K samples at --vote-temperature with a majority vote")
    parser.add_argument("--vote-temperature", type=float, default=0.7)
    args = parser.parse_args(argv)
    options = {}
    for opt in args.option:
        key, _, value = opt.partition("=")
        options[key] = int(value) if value.lstrip("-").isdigit() else value
    task = load_task(args.task, **options)
    report = asyncio.run(
        calibrate(task, args.models.split(","), args.limit, args.split, args.max_tokens, args.vote, args.vote_temperature)
    )
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
