"""Agent benchmark: how usable a weak embedded agent's update replies are, with and without the
JSON Schema. Prints, per mode, the fraction of replies that parse and pass every rule (first
try), the rule that failed most, and seconds per agent call.

Each case is a real update prompt built by Agent-REINFORCE from a random initial graph of the
local pool (budget b nodes, a random budget-filling mix); the agent is asked once per case and
mode, exactly as in a search (no retries, so the first-try acceptance is measured).

Usage: .venv/bin/python bench/agent.py [--cases 3] [--budget-nodes 3] [--agent smollm2-135m]
                                       [--modes json,text] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from typing import Any

import numpy as np

from ttsgraph.cost import Budget
from ttsgraph.errors import AgentReplyError, BackendError
from ttsgraph.llm.local import LocalBackend
from ttsgraph.models import load_pool
from ttsgraph.search import agent_prompts as P
from ttsgraph.search.agent import AgentClient
from ttsgraph.search.agent_reinforce import AgentReinforce
from ttsgraph.search.agent_replies import parse_update_reply
from ttsgraph.search.base import Evaluation
from ttsgraph.search.space import SearchSpace
from ttsgraph.tasks import load_task


def _prompt_for(space: SearchSpace, task: Any, seed: int, fmt: str) -> tuple[AgentReinforce, list[dict[str, str]]]:
    """An optimizer after its initial graph was scored, and the messages of its first update."""
    rng = np.random.default_rng(seed)
    combos = space.combos()
    counts = combos[int(rng.integers(len(combos)))]
    opt = AgentReinforce(space, seed=seed, backend=LocalBackend({}), task=task, profile={}, pretest=False,
                         agent_format=fmt)
    proposals = opt._ask_initial({m: int(counts.get(m, 0)) for m in opt.model_order})
    p = proposals[0]
    opt.tell([Evaluation(trial=0, graph=p.graph, accuracy=float(rng.integers(0, 4)) / 3, utility=0.0, correct=0,
                         scored=3, errors=0, item_ids=[], planned_units=space.units(p.graph), measured_units=0.0,
                         latency=1.0)])
    view = opt.view
    assert view is not None
    out = opt._output_node()
    user = P.update_prompt(task=opt.task_name, counts={m: k for m, k in opt.counts.items() if k > 0}, graph=view,
                           accuracy=float(opt.last["accuracy"]), batch=3, table=opt._table_rows(), output_id=out.id,
                           output_model=out.model, json_reply=fmt == "json")
    return opt, [{"role": "system", "content": P.SYSTEM}, {"role": "user", "content": user}]


async def run(cases: int, budget_nodes: int, agent: str, modes: list[str]) -> dict[str, Any]:
    pool, task = load_pool("local"), load_task("arithmetic")
    space = SearchSpace(pool, task.lengths, Budget.from_nodes(budget_nodes, pool, task.lengths))
    backend = LocalBackend()
    report: dict[str, Any] = {"agent": agent, "cases": cases, "budget_nodes": budget_nodes, "modes": {}}
    try:
        for mode in modes:
            accepted = 0
            reasons: Counter[str] = Counter()
            seconds: list[float] = []
            tokens: list[int] = []
            for case in range(cases):
                opt, messages = _prompt_for(space, task, case, mode)
                schema = None
                if mode == "json":
                    rules = opt._rules()
                    out = opt._output_node()
                    schema = P.update_schema(list(rules.ids), out.id, list(rules.models), out.model, out.role,
                                             list(rules.edges))
                client = AgentClient(backend, agent)
                started = time.perf_counter()
                try:
                    text, _ = await client.ask(messages, schema, max_tokens=opt._max_tokens(messages))
                except BackendError as exc:
                    reasons[f"backend: {exc.reason[:60]}"] += 1
                    continue
                seconds.append(time.perf_counter() - started)
                tokens.append(len(text) // 4)
                try:
                    parse_update_reply(text, opt._rules())
                    accepted += 1
                except AgentReplyError as exc:
                    reasons[str(exc).split(":")[0][:60]] += 1
            report["modes"][mode] = {
                "accepted": accepted, "asked": cases, "acceptance": accepted / cases if cases else 0.0,
                "top_failures": reasons.most_common(3),
                "seconds_per_call": sum(seconds) / len(seconds) if seconds else None,
                "approx_reply_tokens": sum(tokens) / len(tokens) if tokens else None,
            }
    finally:
        await backend.aclose()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--budget-nodes", type=int, default=3)
    parser.add_argument("--agent", default="smollm2-135m")
    parser.add_argument("--modes", default="json,text")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = asyncio.run(run(args.cases, args.budget_nodes, args.agent, args.modes.split(",")))
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"agent {report['agent']}, {report['cases']} update prompts, node budget {report['budget_nodes']}")
    for mode, row in report["modes"].items():
        secs = row["seconds_per_call"]
        print(f"  {mode:5s} accepted first try {row['accepted']}/{row['asked']} ({100 * row['acceptance']:.0f}%)"
              f"  {secs:.1f} s/call" if secs is not None else "  n/a",
              f" ~{row['approx_reply_tokens']:.0f} reply tokens" if row["approx_reply_tokens"] else "",
              f" failures: {row['top_failures']}" if row["top_failures"] else "")


if __name__ == "__main__":
    main()
