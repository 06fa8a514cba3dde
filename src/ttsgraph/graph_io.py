"""Graph files: the JSON format (docs/graph-format.md) and the line-based text form the agent reads.

JSON is what users write and what searches save; it round-trips exactly. The text form
(`Node <id> | model=… | role=… | preds=[…] | succs=[…]`, SPEC §4.2) is what an LLM agent reads and
writes, so its parser forgives spacing and case but never guesses an id: a reference to an id
that is not a node is an error that quotes the line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ttsgraph.errors import FileFormatError, GraphError
from ttsgraph.graph import Graph, Node, normalize_role
from ttsgraph.inputs import PARSER_FAULTS, parse_error, read_text_file
from ttsgraph.roles import role_spec

NO_MODEL = ("", "none", "null", "-")
"""What a `model=` field may say for a node that calls no model (a vote); omitting it is the norm."""


def graph_to_json(graph: Graph, extra: dict[str, Any] | None = None) -> str:
    data = graph.to_dict()
    if extra:
        data.update({k: v for k, v in extra.items() if k not in data})
    return json.dumps(data, indent=2) + "\n"


def save_graph(graph: Graph, path: str | Path, extra: dict[str, Any] | None = None) -> None:
    """Write the JSON form; `extra` adds optional fields (name, task, budget, accuracy…)."""
    Path(path).write_text(graph_to_json(graph, extra), encoding="utf-8")


def load_graph(path: str | Path) -> Graph:
    """Read a graph file: JSON (`.json`) or the text form (anything else). Validates structure.

    Errors name the file and, where it is known, the line.
    """
    p = Path(path)
    text = read_text_file(p, "graph file")
    if p.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FileFormatError(f"invalid JSON: {exc.msg} (column {exc.colno})", path=str(path), line=exc.lineno) from None
        except PARSER_FAULTS as exc:  # a 5,000-digit number, nesting past the parser's depth
            raise FileFormatError(f"invalid JSON: {parse_error(exc)}", path=str(path)) from None
        try:
            graph = Graph.from_dict(data)
            graph.validate()
        except GraphError as exc:
            raise FileFormatError(str(exc), path=str(path), line=_json_line(text, exc)) from None
        return graph
    try:
        return from_text(text)
    except FileFormatError as exc:
        raise FileFormatError(str(exc).removeprefix(f"line {exc.line}: "), path=str(path), line=exc.line) from None
    except GraphError as exc:
        raise FileFormatError(str(exc), path=str(path)) from None


def _json_line(text: str, exc: GraphError) -> int | None:
    """Best effort: the line of the node or edge the error names."""
    needles = []
    if exc.edge:
        needles.append(re.compile(r'\[\s*"%s"\s*,\s*"%s"\s*\]' % (re.escape(exc.edge[0]), re.escape(exc.edge[1]))))
    if exc.node:
        needles.append(re.compile(r'"id"\s*:\s*"%s"' % re.escape(exc.node)))
    for needle in needles:
        for k, line in enumerate(text.splitlines(), 1):
            if needle.search(line):
                return k
    return None


def to_text(graph: Graph) -> str:
    """One line per node in SPEC §4.2's form, then the output line; roles written by their names
    (assistant/fuser/vote); a node without a model (a vote) has no `model=` field."""
    lines = [
        f"Node {n.id} | {'' if n.model is None else f'model={n.model} | '}role={n.role} | "
        f"preds=[{', '.join(graph.preds(n.id))}] | "
        f"succs=[{', '.join(graph.succs(n.id))}]"
        for n in graph.nodes
    ]
    lines.append(f"Output: {graph.output}")
    return "\n".join(lines)


_NODE_RE = re.compile(r"^\s*node\s+(?P<id>[^\s|]+)\s*(?P<rest>\|.*)?$", re.IGNORECASE)
_FIELD_RE = re.compile(r"^\s*(?P<key>[a-z_]+)\s*[=:]\s*(?P<value>.*?)\s*$", re.IGNORECASE)
_OUTPUT_RE = re.compile(r"^\s*output\s*[:=]\s*(?P<id>\S+)\s*$", re.IGNORECASE)


def _id_list(value: str, line_no: int, line: str) -> list[str]:
    v = value.strip()
    if not (v.startswith("[") and v.endswith("]")):
        raise FileFormatError(f"expected a [list] of node ids in {line.strip()!r}", line=line_no)
    return [x.strip().strip("'\"") for x in v[1:-1].split(",") if x.strip().strip("'\"")]


def from_text(text: str, known_ids: set[str] | None = None, output: str | None = None) -> Graph:
    """Parse the text form. `known_ids`, when given, is the only set of ids allowed (the agent may
    not invent or rename nodes). Blank lines and lines that do not start with `Node`/`Output`
    are ignored, so a reply may carry prose around the block."""
    nodes: list[Node] = []
    edges: list[tuple[str, str]] = []
    refs: list[tuple[str, int, str]] = []
    where: dict[str, tuple[int, str]] = {}
    out = output
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m_out = _OUTPUT_RE.match(line)
        if m_out:
            out = m_out.group("id")
            refs.append((out, line_no, line))
            continue
        m = _NODE_RE.match(line)
        if not m:
            continue
        node_id = m.group("id")
        if node_id in where:
            raise FileFormatError(f"node {node_id!r} is listed twice (first on line {where[node_id][0]}): {line.strip()!r}",
                                  line=line_no)
        fields: dict[str, str] = {}
        for part in (m.group("rest") or "").split("|")[1:]:
            if not part.strip():
                continue
            fm = _FIELD_RE.match(part)
            if not fm:
                raise FileFormatError(f"cannot read field {part.strip()!r} in {line.strip()!r}", line=line_no)
            fields[fm.group("key").lower()] = fm.group("value")
        try:
            role = normalize_role(fields.get("role", "assistant"))
        except GraphError as exc:
            raise FileFormatError(f"{exc} in {line.strip()!r}", line=line_no) from None
        model = fields.get("model", "").strip()
        if role_spec(role).calls_model and not model:
            raise FileFormatError(f"node {node_id!r} has no model= in {line.strip()!r}", line=line_no)
        nodes.append(Node(node_id, None if model.lower() in NO_MODEL else model, role))
        where[node_id] = (line_no, line)
        refs.append((node_id, line_no, line))
        for p in _id_list(fields.get("preds", "[]"), line_no, line):
            edges.append((p, node_id))
            refs.append((p, line_no, line))
        for s in _id_list(fields.get("succs", "[]"), line_no, line):
            edges.append((node_id, s))
            refs.append((s, line_no, line))
    if not nodes:
        raise FileFormatError("no 'Node <id> | model=… | role=…' lines found")
    allowed = known_ids if known_ids is not None else set(where)
    for ref, line_no, line in refs:
        if ref not in allowed or ref not in where:
            raise FileFormatError(f"unknown node id {ref!r} in {line.strip()!r}", line=line_no)
    if known_ids is not None:
        missing = sorted(known_ids - set(where))
        if missing:
            raise FileFormatError(f"node ids missing from the reply: {', '.join(missing)}")
    unique_edges = list(dict.fromkeys(edges))
    graph = Graph(nodes, unique_edges, out or "")
    try:
        graph.validate()
    except GraphError as exc:
        line_no = where[exc.node][0] if exc.node in where else None
        raise FileFormatError(str(exc) + (f" in {where[exc.node][1].strip()!r}" if exc.node in where else ""),
                              line=line_no) from None
    return graph
