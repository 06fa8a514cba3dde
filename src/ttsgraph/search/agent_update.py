"""Agent-REINFORCE's update round, apart from the optimizer's bookkeeping: what the agent is shown
(the edge table over the last graph's potential edges, the rules its reply must keep, the history
window that fits its context) and how its reply becomes the next proposal (the table applied,
optionally a graph sampled from it, the budget repair). Node ids never change between rounds: the
history the agent reads speaks of the same nodes as the graph it edits. Pure functions of their
arguments, so each step can be tested and reused (TextGrad shares all of them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ttsgraph.graph import Graph, Node
from ttsgraph.llm.base import Message
from ttsgraph.search import agent_prompts as P
from ttsgraph.search.agent_replies import Rules
from ttsgraph.search.prob_graph import ProbGraph
from ttsgraph.search.role_rules import fix_roles
from ttsgraph.search.space import OUTPUT_ID, SearchSpace

HISTORY_MAX_MODELS = 5  # with more worker nodes than this the history is dropped (context control, SPEC §4.1)
CHARS_PER_TOKEN = 2.0
"""Characters per token when keeping prompts inside a small agent's context. The update prompts are
dense (JSON, ids, probabilities): SmolLM2's tokenizer gives 2.2–2.3 characters per token on them,
so the earlier 3.5 undercounted by a third and the embedded agent's calls overflowed its 2048
tokens ("Requested tokens (2102) exceed context window") and fell back to sampling."""
HISTORY_REPLY_ROOM = 512  # tokens a prompt must leave for the reply (at most max_tokens)
Edge = tuple[str, str]


def potential(ids: Sequence[str], output: str, forward_only: bool = False) -> list[Edge]:
    """Potential edges in ProbGraph's order: ordered worker pairs (only earlier → later ones with
    `forward_only`), then worker → output."""
    workers = [i for i in ids if i != output]
    pairs = [(u, v) for a, u in enumerate(workers) for b, v in enumerate(workers) if a != b and (a < b or not forward_only)]
    return pairs + [(u, output) for u in workers]


def in_topological_order(graph: Graph) -> Graph:
    """The same graph (same ids) with its workers listed in a topological order and the output last:
    a reply schema that lets a node name only earlier nodes as predecessors is then acyclic by
    construction, while every id keeps naming the node it named last round."""
    workers = [i for i in graph.topological_order() if i != graph.output]
    return Graph([graph.node(i) for i in workers] + [graph.node(graph.output)], list(graph.edges), graph.output)


def table_rows(view: Graph, table: Mapping[str, float], forward_only: bool) -> list[dict[str, Any]]:
    """The edge table as the prompts show it: one row per potential edge of `view`."""
    return [{"src": u, "dst": v, "prob": table.get(P.edge_key(u, v), 0.0)}
            for u, v in potential(view.ids, view.output, forward_only)]


def output_model_of(view: Graph, space: SearchSpace, model_order: Sequence[str]) -> str:
    """The model the output node calls when it is not a vote: its own, or, after the agent made it
    a vote, the space's fixed output model (else the first of the pool's models)."""
    return view.node(view.output).model or space.output_model or model_order[0]


def rules_for(view: Graph, counts: Mapping[str, int], model_order: Sequence[str], *, forward_only: bool,
              latency: bool, output_model: str | None = None, lenient: bool = False, votes: bool = True) -> Rules:
    """What the reply to an update about `view` must respect (SPEC §4.3). `lenient` (TextGrad's
    stripped prompt) allows any pool model on a worker and checks no counts; `votes` lets the
    output node become a vote (or stay one) instead of calling `output_model` (issue 11)."""
    out = view.node(view.output)
    output_model = output_model or out.model or model_order[0]
    role = out.role if out.model is not None else "assistant"  # a vote goes back to answering
    models = tuple(model_order) if lenient else tuple(m for m in model_order if counts.get(m, 0) > 0)
    return Rules(ids=tuple(view.ids), output_id=out.id, output_model=output_model, output_role=role,
                 models=models or (output_model,), counts={m: k for m, k in counts.items() if k > 0},
                 edges=tuple(potential(view.ids, view.output, forward_only)), latency=latency, lenient=lenient,
                 output_vote=votes)


def estimate_tokens(messages: Sequence[Message]) -> int:
    return int(sum(len(m.get("content", "")) + 8 for m in messages) / CHARS_PER_TOKEN) + 16


def reply_budget(context: int | None, max_tokens: int, messages: Sequence[Message]) -> int | None:
    """Shrink the reply budget so prompt + reply fit a small agent's `context` window (None: no limit)."""
    if context is None:
        return None
    return max(64, min(max_tokens, context - estimate_tokens(messages)))


def fits_context(user: str, context: int, max_tokens: int) -> bool:
    """Whether a prompt alone (with the system message) leaves room for a reply in `context`."""
    messages: list[Message] = [{"role": "system", "content": P.SYSTEM}, {"role": "user", "content": user}]
    return estimate_tokens(messages) + min(HISTORY_REPLY_ROOM, max_tokens) <= context


def history_messages(user: str, turns: Sequence[Mapping[str, str]], *, keep: int, workers: int,
                     context: int | None, max_tokens: int) -> list[Message]:
    """System + up to `keep` earlier (prompt, reply) pairs + the new prompt. History is dropped with
    more than five worker nodes (SPEC §4.1) and trimmed, oldest first, so the prompt leaves room
    for the reply in a small agent's context."""
    kept = list(turns[-keep:]) if keep > 0 and workers <= HISTORY_MAX_MODELS else []
    while True:
        messages: list[Message] = [{"role": "system", "content": P.SYSTEM}]
        for t in kept:
            messages += [{"role": "user", "content": t["prompt"]}, {"role": "assistant", "content": t["reply"]}]
        messages.append({"role": "user", "content": user})
        if not kept or context is None or estimate_tokens(messages) + min(HISTORY_REPLY_ROOM, max_tokens) <= context:
            return messages
        kept = kept[1:]


def sample_from_table(space: SearchSpace, table: Mapping[str, float], placement: Graph,
                      rng: np.random.Generator) -> Graph:
    """Draw a graph from the edge table θ with the GPTSwarm sampler (SPEC §3.2), `placement`'s worker
    models on the same ids. Returns the whole draw: workers with no path to the output stay in it
    (they are not run), and nothing is repaired yet (`settle` does that, so a repair is told)."""
    workers = [n for n in placement.nodes if n.id != placement.output]
    pg = ProbGraph(space, counts=dict(Counter(n.model for n in workers)), votes=False)  # R6 fixes the output
    pg.fixed = [n.model for n in workers]
    back = dict(zip(pg.ids, (n.id for n in workers)))
    back[OUTPUT_ID] = placement.output
    pg.set_edge_table({(u, v): table.get(P.edge_key(back[u], back[v]), 0.0) for u, v in pg.potential})
    pg.sample(rng)
    assert pg.last_draw is not None
    draw = pg.last_draw.relabeled(back)
    if placement.node(placement.output).role == "vote":  # the agent's vote output stays a vote
        draw = Graph([n if n.id != draw.output else Node(n.id, None, "vote") for n in draw.nodes], draw.edges,
                     draw.output)
    return draw


@dataclass
class Settled:
    """The next proposal and what the agent will see of it next round."""

    proposal: Graph  # repaired to the budget, ids as in `view`
    view: Graph  # the graph as the agent sees it (unused nodes included), workers in topological order
    counts: dict[str, int]  # the models of the view from now on (a repair removes nodes for good)
    table: dict[str, float]  # the table over `view`'s potential edges
    note: str | None = None  # the repair, told to the agent next round
    meta: dict[str, Any] = field(default_factory=dict)  # `repaired`


def settle(space: SearchSpace, graph: Graph, table: Mapping[str, float], forward_only: bool) -> Settled:
    """Repair `graph` to the budget (nodes removed that way leave the graph the agent sees, and so
    its model counts) and list the view in topological order; ids are kept."""
    repaired, removed = space.repair(graph)
    dead = set(graph.pruned()[1])
    over_budget = [r for r in removed if r not in dead]
    view = graph
    meta: dict[str, Any] = {}
    if over_budget:
        keep = [n for n in graph.nodes if n.id not in over_budget]
        view = fix_roles(Graph(keep, [(u, v) for u, v in graph.edges if u not in over_budget and v not in over_budget],
                               graph.output))
        meta["repaired"] = over_budget
    view = in_topological_order(view)
    have = Counter(n.model for n in view.nodes if n.id != view.output)
    counts = {m: have.get(m, 0) for m in space.models}
    kept = {P.edge_key(u, v): table.get(P.edge_key(u, v), 0.0) for u, v in potential(view.ids, view.output, forward_only)}
    note = P.repair_note(over_budget, {m: k for m, k in counts.items() if k > 0}) if over_budget else None
    return Settled(repaired, view, counts, kept, note, meta)
