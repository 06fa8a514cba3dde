"""Collaboration graphs: a DAG of LLM calls with one output node.

A node is one LLM call (`id`, `model`, `role`); an edge u→v hands u's answer to v. Parallel,
sequential and hybrid test-time scaling are all special shapes of this one structure, which is
why everything else in ttsgraph (cost, execution, search) speaks only in graphs.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, deque
from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from typing import Any

from ttsgraph.errors import GraphError
from ttsgraph.roles import ROLES, Role, normalize_role, role_spec

# The documented id characters (docs/graph-format.md): ids reach prompts, file names, terminals and
# the text form, so nothing that could be read as markup, an option (`--help`) or a control
# character gets in. Not starting with '-' or '.'; at most 64 characters.
ID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class Node:
    """One step: an LLM call (`model` answers as an assistant or fuses as a fuser) or a
    programmatic role (`vote`, whose `model` is None: it calls no model)."""

    id: str
    model: str | None
    role: Role = "assistant"


@dataclass
class Graph:
    """A DAG of nodes; `output` names the single sink whose answer is the graph's answer."""

    nodes: list[Node]
    edges: list[tuple[str, str]] = field(default_factory=list)
    output: str = ""

    def __post_init__(self) -> None:
        self.edges = [(str(u), str(v)) for u, v in self.edges]
        if not self.output:
            sinks = self._sinks()
            if len(sinks) == 1:
                self.output = sinks[0]

    # ----- lookups -------------------------------------------------------------------------
    def _index(self) -> tuple[dict[str, Node], dict[str, list[str]], dict[str, list[str]]]:
        """Nodes by id, predecessors and successors, built once per shape of the lists, so that
        lookups are O(1) and a 10,000-node graph is not O(nodes x edges). Graphs are replaced,
        not edited in place (no code writes `edges[i] = ...`), so the lists' identity and length
        tell when to rebuild."""
        key = (id(self.nodes), len(self.nodes), id(self.edges), len(self.edges))
        cached = self.__dict__.get("_cached_index")
        if cached is not None and cached[0] == key:
            return cached[1]
        by_id: dict[str, Node] = {}
        for n in self.nodes:
            by_id.setdefault(n.id, n)
        preds: dict[str, list[str]] = {}
        succs: dict[str, list[str]] = {}
        for u, v in self.edges:
            succs.setdefault(u, []).append(v)
            preds.setdefault(v, []).append(u)
        index = (by_id, preds, succs)
        self.__dict__["_cached_index"] = (key, index)
        return index

    @property
    def ids(self) -> list[str]:
        return [n.id for n in self.nodes]

    def node(self, node_id: str) -> Node:
        found = self._index()[0].get(node_id)
        if found is None:
            raise GraphError(f"unknown node {node_id!r}", node=node_id)
        return found

    def preds(self, node_id: str) -> list[str]:
        return list(self._index()[1].get(node_id, ()))

    def succs(self, node_id: str) -> list[str]:
        return list(self._index()[2].get(node_id, ()))

    def in_degree(self, node_id: str) -> int:
        return len(self.preds(node_id))

    def _sinks(self) -> list[str]:
        has_out = {u for u, _ in self.edges}
        return [n.id for n in self.nodes if n.id not in has_out]

    def topological_order(self) -> list[str]:
        """Kahn's algorithm in node-list order, so the order is deterministic; raises on a cycle."""
        indeg = {n.id: 0 for n in self.nodes}
        for _, v in self.edges:
            if v in indeg:
                indeg[v] += 1
        ready = deque(i for i in self.ids if indeg[i] == 0)
        succs = self._index()[2]
        order: list[str] = []
        while ready:
            cur = ready.popleft()
            order.append(cur)
            for v in succs.get(cur, ()):
                if v in indeg:
                    indeg[v] -= 1
                    if indeg[v] == 0:
                        ready.append(v)
        if len(order) != len(self.nodes):
            cycle = self.find_cycle()
            raise GraphError(f"cycle: {' -> '.join(cycle)}", node=cycle[0] if cycle else None,
                             edge=(cycle[-2], cycle[-1]) if len(cycle) >= 2 else None)
        return order

    def find_cycle(self) -> list[str]:
        """A cycle as a node path that starts and ends at the same node, or [] for a DAG.
        Depth-first with an explicit stack: a 10,000-node chain must not hit the recursion limit."""
        succs = self._index()[2]
        color = {i: 0 for i in self.ids}  # 0 unseen, 1 on the current path, 2 done
        for root in self.ids:
            if color[root]:
                continue
            path: list[str] = [root]
            todo = [iter(succs.get(root, ()))]
            color[root] = 1
            while todo:
                v = next(todo[-1], None)
                if v is None:
                    color[path.pop()] = 2
                    todo.pop()
                    continue
                if v not in color:
                    continue
                if color[v] == 1:
                    return path[path.index(v):] + [v]
                if color[v] == 0:
                    color[v] = 1
                    path.append(v)
                    todo.append(iter(succs.get(v, ())))
        return []

    def ancestors(self, node_id: str) -> set[str]:
        preds = self._index()[1]
        seen: set[str] = set()
        todo = [node_id]
        while todo:
            for u in preds.get(todo.pop(), ()):
                if u not in seen:
                    seen.add(u)
                    todo.append(u)
        return seen

    # ----- validation ----------------------------------------------------------------------
    def validate(self, models: Container[str] | None = None) -> None:
        """Raise GraphError naming the culprit node or edge; checks the structure and role rules.

        Dead nodes (no path to the output) are not an error here: `pruned()` removes and reports them.
        """
        if not self.nodes:
            raise GraphError("empty graph: it has no nodes")
        counts = Counter(self.ids)
        for node_id, k in counts.items():
            if k > 1:
                raise GraphError(f"duplicate node id {node_id!r} ({k} times)", node=node_id)
        for n in self.nodes:
            if not isinstance(n.id, str) or not ID_PATTERN.fullmatch(n.id):
                raise GraphError(f"invalid node id {n.id!r}: use 1-64 ASCII letters, digits, '_', '-', '.', "
                                 "not starting with '-' or '.'", node=n.id)
            if n.role not in ROLES:
                raise GraphError(f"node {n.id!r} has unknown role {n.role!r}", node=n.id)
            if not role_spec(n.role).calls_model:
                if n.model is not None:
                    raise GraphError(f"{n.role} node {n.id!r} calls no model: drop model={n.model!r}", node=n.id)
            elif not n.model:
                raise GraphError(f"node {n.id!r} ({n.role}) has no model", node=n.id)
            elif models is not None and n.model not in models:
                raise GraphError(f"node {n.id!r} uses unknown model {n.model!r}", node=n.id)
        known = set(self.ids)
        seen_edges: set[tuple[str, str]] = set()
        for u, v in self.edges:
            if u not in known or v not in known:
                bad = u if u not in known else v
                raise GraphError(f"edge {u} -> {v} refers to unknown node {bad!r}", edge=(u, v), node=bad)
            if u == v:
                raise GraphError(f"edge {u} -> {v} is a self-loop", edge=(u, v), node=u)
            if (u, v) in seen_edges:
                raise GraphError(f"edge {u} -> {v} appears twice", edge=(u, v))
            seen_edges.add((u, v))
        cycle = self.find_cycle()
        if cycle:
            raise GraphError(f"cycle: {' -> '.join(cycle)}", node=cycle[0], edge=(cycle[-2], cycle[-1]))
        sinks = self._sinks()
        if not self.output:
            if not sinks:
                raise GraphError("no sink: every node has a successor")
            raise GraphError(f"several sinks ({', '.join(sinks)}): name the output node")
        if self.output not in known:
            raise GraphError(f"output node {self.output!r} is not a node of the graph", node=self.output)
        if self.succs(self.output):
            raise GraphError(f"output node {self.output!r} has successors ({', '.join(self.succs(self.output))}): "
                             "the output must be the sink", node=self.output)
        roles = {n.id: n.role for n in self.nodes}
        for n in self.nodes:
            need = role_spec(n.role).min_preds
            if len(self.preds(n.id)) < need:
                raise GraphError(f"{n.role} node {n.id!r} has no predecessor: it needs at least {need}", node=n.id)
            if n.role != "fuser":
                continue
            preds = self.preds(n.id)
            fuser_preds = [p for p in preds if roles[p] == "fuser"]
            if fuser_preds:
                raise GraphError(f"fuser {n.id!r} is fed by fuser {fuser_preds[0]!r} (fuser -> fuser is not allowed)",
                                 node=n.id, edge=(fuser_preds[0], n.id))
            if not any(roles[p] == "assistant" for p in preds):
                raise GraphError(f"fuser {n.id!r} has no assistant predecessor", node=n.id)

    def pruned(self) -> tuple[Graph, list[str]]:
        """The graph without nodes that have no path to the output, and the ids removed."""
        keep = self.ancestors(self.output) | {self.output} if self.output else set(self.ids)
        removed = [i for i in self.ids if i not in keep]
        if not removed:
            return self, []
        g = Graph([n for n in self.nodes if n.id in keep],
                  [(u, v) for u, v in self.edges if u in keep and v in keep], self.output)
        return g, removed

    # ----- metrics -------------------------------------------------------------------------
    def levels(self) -> dict[str, int]:
        """Longest-path distance (in edges) from any source, per node."""
        level: dict[str, int] = {}
        for i in self.topological_order():
            level[i] = max((level[p] + 1 for p in self.preds(i)), default=0)
        return level

    def _worker_levels(self) -> list[int]:
        level = self.levels()
        return [level[i] for i in self.ids if i != self.output]

    @property
    def depth(self) -> int:
        """Longest chain of worker nodes feeding the output (the output alone counts as depth 1)."""
        return max(self._worker_levels(), default=0) + 1

    @property
    def width(self) -> int:
        """Most worker nodes that sit on one level (run side by side); 1 for the output alone."""
        return max(Counter(self._worker_levels()).values(), default=1)

    # ----- identity ------------------------------------------------------------------------
    def canonical_form(self) -> str:
        """A string equal for graphs that differ only by node names (`ttsgraph.canonical`)."""
        from ttsgraph.canonical import canonical_form

        return canonical_form(self)

    def canonical_hash(self) -> str:
        return hashlib.sha256(self.canonical_form().encode()).hexdigest()[:16]

    def models_used(self) -> Counter[str]:
        """Calls per model (nodes without a model, like votes, are not counted)."""
        return Counter(n.model for n in self.nodes if n.model is not None)

    # ----- (de)serialization ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "nodes": [{k: v for k, v in (("id", n.id), ("model", n.model), ("role", n.role)) if v is not None}
                      for n in self.nodes],
            "edges": [[u, v] for u, v in self.edges],
            "output": self.output,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Graph:
        """Build from the JSON form; shape errors raise GraphError naming the bad entry. Ids,
        models, roles and the output must be strings (a null id never becomes a node `None`)."""
        if not isinstance(data, dict):
            raise GraphError("a graph must be a JSON object with nodes, edges and output")
        raw_nodes = data.get("nodes")
        if not isinstance(raw_nodes, list):
            raise GraphError("'nodes' must be a list of {id, model, role} objects")
        nodes = []
        for k, raw in enumerate(raw_nodes):
            if not isinstance(raw, dict) or "id" not in raw:
                raise GraphError(f"nodes[{k}] must be an object with 'id' and 'model'")
            for key in ("id", "model", "role"):
                if raw.get(key) is not None and not isinstance(raw[key], str):
                    raise GraphError(f"nodes[{k}].{key} must be a string, got {_kind(raw[key])}")
            role = normalize_role(raw.get("role", "assistant"))
            model = raw.get("model")
            if model is None and role_spec(role).calls_model:
                raise GraphError(f"nodes[{k}] ({raw['id']!r}, {role}) has no 'model'", node=raw["id"])
            nodes.append(Node(raw["id"], model, role))
        raw_edges = data.get("edges", [])
        if raw_edges is None:
            raw_edges = []
        if not isinstance(raw_edges, list):
            raise GraphError(f"'edges' must be a list of [source, target] pairs, got {_kind(raw_edges)}")
        edges = []
        for k, e in enumerate(raw_edges):
            if not isinstance(e, list) or len(e) != 2 or not all(isinstance(x, str) for x in e):
                raise GraphError(f"edges[{k}] must be a [source, target] pair of node ids, got {_kind(e)}")
            edges.append((e[0], e[1]))
        output = data.get("output")
        if output is not None and not isinstance(output, str):
            raise GraphError(f"'output' must be a node id, got {_kind(output)}")
        return cls(nodes, edges, output or "")

    def relabeled(self, mapping: dict[str, str]) -> Graph:
        return Graph([Node(mapping.get(n.id, n.id), n.model, n.role) for n in self.nodes],
                     [(mapping.get(u, u), mapping.get(v, v)) for u, v in self.edges],
                     mapping.get(self.output, self.output))

    def __str__(self) -> str:  # compact, for logs
        return f"Graph({len(self.nodes)} nodes, {len(self.edges)} edges, output={self.output})"


def _kind(value: Any) -> str:
    """A JSON value described for an error message without echoing it (it may be huge)."""
    if value is None or isinstance(value, bool) or (isinstance(value, str) and len(value) <= 40):
        return json.dumps(value)  # escapes what a terminal must not see raw
    if isinstance(value, (list, dict)):
        return f"{'a list' if isinstance(value, list) else 'an object'} of {len(value)}"
    return "a number" if isinstance(value, (int, float)) else f"a {type(value).__name__}"


# ----- builders for the classic shapes -----------------------------------------------------

def single(model: str) -> Graph:
    """One call of one model: the no-scaling baseline."""
    return Graph([Node("out", model)], [], "out")


def parallel(n: int, model: str | Iterable[str], output_model: str | None = None,
             output_role: Role = "fuser") -> Graph:
    """n independent samples (one model, or one model per sample) fused by the output node."""
    models = [model] * n if isinstance(model, str) else list(model)
    if len(models) != n or n < 1:
        raise GraphError(f"parallel needs n >= 1 and n models, got n={n} and {len(models)} models")
    nodes = [Node(f"a{i + 1}", m) for i, m in enumerate(models)]
    out_model = None if not role_spec(output_role).calls_model else output_model or models[0]
    out = Node("out", out_model, output_role)
    return Graph(nodes + [out], [(x.id, "out") for x in nodes], "out")


def chain(k: int, model: str, output_model: str | None = None) -> Graph:
    """Sequential refinement: a1 → a2 → … → ak → out, each refining its predecessor."""
    if k < 1:
        raise GraphError(f"chain needs k >= 1, got {k}")
    nodes = [Node(f"a{i + 1}", model) for i in range(k)]
    edges = [(f"a{i + 1}", f"a{i + 2}") for i in range(k - 1)] + [(f"a{k}", "out")]
    return Graph(nodes + [Node("out", output_model or model)], edges, "out")


def parallel_chains(width: int, depth: int, model: str, output_model: str | None = None) -> Graph:
    """`width` independent chains of length `depth`, all ending in the output (multi-layer hybrid)."""
    if width < 1 or depth < 1:
        raise GraphError(f"parallel_chains needs width, depth >= 1, got {width} x {depth}")
    nodes, edges = [], []
    for w in range(width):
        for d in range(depth):
            nodes.append(Node(f"c{w + 1}_{d + 1}", model))
            if d:
                edges.append((f"c{w + 1}_{d}", f"c{w + 1}_{d + 1}"))
        edges.append((f"c{w + 1}_{depth}", "out"))
    return Graph(nodes + [Node("out", output_model or model)], edges, "out")


def tree(depth: int, branching: int, model: str, output_model: str | None = None) -> Graph:
    """A complete tree whose leaves answer and whose inner nodes synthesize their children, rooted at the output."""
    if depth < 1 or branching < 1:
        raise GraphError(f"tree needs depth, branching >= 1, got {depth}, {branching}")
    nodes = [Node("out", output_model or model)]
    edges: list[tuple[str, str]] = []
    frontier = ["out"]
    for level in range(1, depth + 1):
        nxt = []
        for parent in frontier:
            for b in range(branching):
                nid = f"t{level}_{len(nxt) + 1}"
                nodes.append(Node(nid, model))
                edges.append((nid, parent))
                nxt.append(nid)
        frontier = nxt
    nodes = nodes[1:] + nodes[:1]
    return Graph(nodes, edges, "out")


def star(leaves: int, model: str, output_model: str | None = None) -> Graph:
    """One root answer broadcast to `leaves` refiners, all of which feed the output."""
    if leaves < 1:
        raise GraphError(f"star needs leaves >= 1, got {leaves}")
    nodes = [Node("root", model)] + [Node(f"l{i + 1}", model) for i in range(leaves)]
    edges = [("root", f"l{i + 1}") for i in range(leaves)] + [(f"l{i + 1}", "out") for i in range(leaves)]
    return Graph(nodes + [Node("out", output_model or model)], edges, "out")


def self_consistency(k: int, model: str, output: str = "out") -> Graph:
    """k samples of one model (`n1..nk`) and a majority vote over their answers: self-consistency."""
    if k < 1:
        raise GraphError(f"self_consistency needs k >= 1, got {k}")
    nodes = [Node(f"n{i + 1}", model) for i in range(k)]
    return Graph(nodes + [Node(output, None, "vote")], [(n.id, output) for n in nodes], output)


def fully_connected(models: list[str], output_model: str) -> Graph:
    """Node i feeds every later node j > i and the output: the densest DAG on these models."""
    nodes = [Node(f"n{i + 1}", m) for i, m in enumerate(models)]
    edges = [(f"n{i + 1}", f"n{j + 1}") for i in range(len(models)) for j in range(i + 1, len(models))]
    edges += [(n.id, "out") for n in nodes]
    return Graph(nodes + [Node("out", output_model)], edges, "out")
