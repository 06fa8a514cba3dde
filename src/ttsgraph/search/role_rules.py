"""Which role a node may take, and how the sampler draws one (SPEC §3.2).

A fuser reviews and condenses what its predecessors answered, so it needs assistants to fuse:
the output node and source nodes are assistants, a node fed by a fuser (or by no assistant) is an
assistant, and only a node fed by assistants (and votes) is free to become a fuser. A vote is
drawn for the output only (`as_vote_output`): it calls no model, so it needs predecessors and
replaces the output's model. Repair (`fix_roles`), the sampler and
the log-probability of a draw (`forced_role`, `fuser_probability`) all read the rule from here, so
what is sampled, what is scored and what is repaired can never disagree.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ttsgraph.graph import Graph, Node

FUSER_PRIOR = 0.5
"""GPTSwarm's prior: a free node becomes a fuser with probability min(1, π[fuser] + 0.5)."""


def fix_roles(graph: Graph) -> Graph:
    """Make roles valid with the fewest changes: a fuser without an assistant predecessor (or fed
    by a fuser), and the output node, become assistants. Visits nodes in topological order."""
    roles = {n.id: n.role for n in graph.nodes}
    changed = False
    for nid in graph.topological_order():
        if roles[nid] != "fuser":  # votes take any predecessors; assistants anything
            continue
        preds = graph.preds(nid)
        if (nid == graph.output or not preds or any(roles[p] == "fuser" for p in preds)
                or not any(roles[p] == "assistant" for p in preds)):
            roles[nid] = "assistant"
            changed = True
    if not changed:
        return graph
    return with_roles(graph, roles)


def with_roles(graph: Graph, roles: dict[str, str]) -> Graph:
    """The same graph with these roles (nodes not named keep theirs)."""
    nodes = [Node(n.id, n.model, roles.get(n.id, n.role)) for n in graph.nodes]  # type: ignore[arg-type]
    return Graph(nodes, list(graph.edges), graph.output)


def forced_role(graph: Graph, nid: str, roles: dict[str, str]) -> str | None:
    """The role a node must take given its predecessors' roles (None: it is free and drawn)."""
    preds = graph.preds(nid)
    if (nid == graph.output or not preds or any(roles[p] == "fuser" for p in preds)
            or not any(roles[p] == "assistant" for p in preds)):
        return "assistant"
    return None


def as_vote_output(graph: Graph) -> Graph:
    """The graph with its output node a vote (no model): a majority over what feeds it."""
    nodes = [Node(n.id, None, "vote") if n.id == graph.output else n for n in graph.nodes]
    return Graph(nodes, list(graph.edges), graph.output)


def fuser_probability(pi_fuser: float) -> float:
    """The probability that a free node becomes a fuser, given the learnt π[fuser]."""
    return min(1.0, pi_fuser + FUSER_PRIOR)


def assign_roles(graph: Graph, rng: np.random.Generator,
                 fuser_prob: Callable[[str], float] | None = None) -> tuple[Graph, float]:
    """Draw roles in topological order by the rule above: a free node becomes a fuser with
    `fuser_prob(node_id)` (without one, π = 0.5, so every free node fuses). Every outcome
    satisfies the role rules, so no resampling is needed. Returns the graph and the
    log-probability of the drawn roles."""
    roles: dict[str, str] = {}
    logp = 0.0
    for nid in graph.topological_order():
        forced = forced_role(graph, nid, roles)
        if forced is not None:
            roles[nid] = forced
            continue
        p = fuser_prob(nid) if fuser_prob is not None else fuser_probability(0.5)
        fuse = rng.random() < p
        roles[nid] = "fuser" if fuse else "assistant"
        logp += math.log(max(p if fuse else 1 - p, 1e-300))
    return with_roles(graph, roles), logp


__all__ = ["FUSER_PRIOR", "as_vote_output", "assign_roles", "fix_roles", "forced_role", "fuser_probability", "with_roles"]
