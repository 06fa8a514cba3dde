"""Graph identity: a form equal for graphs that differ only by node names, so the search treats
isomorphic graphs as one trial (and the store keys trials by its hash).

Colour refinement (1-dimensional Weisfeiler-Lehman on the directed graph) starting from
(model, role, is-output); the form lists the node colours and the coloured edges, sorted.
Renaming cannot change it. Graphs that colour refinement cannot tell apart share it, which for
DAGs with one sink built from a handful of models has not been seen to happen.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ttsgraph.graph import Graph

# Refinement stops after this many rounds: every graph a search meets is stable long before (so
# its hash is what it always was), and a 10,000-node chain stays fast. Still renaming-invariant.
MAX_REFINEMENT_ROUNDS = 16
_encode_str = json.JSONEncoder().encode  # a str as json.dumps writes it (ensure_ascii)


def canonical_form(graph: Graph) -> str:
    """The canonical form of `graph` (see the module docstring)."""
    colour = {n.id: json.dumps([n.model, n.role, n.id == graph.output]) for n in graph.nodes}
    preds = {i: graph.preds(i) for i in graph.ids}
    succs = {i: graph.succs(i) for i in graph.ids}
    for _ in range(min(len(graph.nodes) + 1, MAX_REFINEMENT_ROUNDS)):
        # Each node's new colour hashes json.dumps([colour, sorted pred colours, sorted succ
        # colours]); nodes with the same signature share one hash (a chain's middle nodes look
        # alike for many rounds), and the JSON text is assembled from pre-encoded colours.
        def around(ids: list[str]) -> tuple[str, ...]:
            return (colour[ids[0]],) if len(ids) == 1 else tuple(sorted([colour[x] for x in ids]))

        signature = {i: (colour[i], around(preds[i]), around(succs[i])) for i in graph.ids}
        quoted = {c: _encode_str(c) for c in set(colour.values())}
        digest = {
            sig: hashlib.sha256(f"[{quoted[sig[0]]}, [{', '.join([quoted[c] for c in sig[1]])}], "
                                f"[{', '.join([quoted[c] for c in sig[2]])}]]".encode()).hexdigest()[:16]
            for sig in set(signature.values())
        }
        new = {i: digest[signature[i]] for i in graph.ids}
        if len(set(new.values())) == len(set(colour.values())):
            colour = new
            break
        colour = new
    base = {n.id: [n.model, n.role, n.id == graph.output] for n in graph.nodes}
    nodes = sorted(json.dumps([colour[i], base[i]]) for i in graph.ids)
    edges = sorted(json.dumps([colour[u], colour[v]]) for u, v in graph.edges)
    return json.dumps({"nodes": nodes, "edges": edges}, separators=(",", ":"))
