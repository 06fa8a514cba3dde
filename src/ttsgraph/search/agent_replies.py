"""Reading the search agent's replies: strict, with errors an agent can act on.

An agent reply is untrusted text. Whatever it says is checked against the rules of SPEC §4.3
before it can become a graph: every node id known and listed once, the required model counts,
the output node untouched, an acyclic graph with valid roles, probabilities in [0, 1], no CJK
text. A violation raises `AgentReplyError` whose message is fed back to the agent on retry, so
it names the offending node, edge or line. An agent is only held to the rules it was told:
with `Rules.lenient` (TextGrad's stripped prompt states only the schema, acyclicity and the
output node) model counts are free and broken roles are repaired, not rejected; the budget
repair then applies as to every graph.

Both reply forms are accepted whatever was asked for: the JSON object of
`agent_prompts.update_schema` (also a list-of-nodes variant) and the paper's text form
(`Graph:` block of Node lines + `Edge-probabilities:` block).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ttsgraph.errors import AgentReplyError, FileFormatError, GraphError
from ttsgraph.graph import Graph, Node, normalize_role
from ttsgraph.graph_io import from_text
from ttsgraph.search.role_rules import fix_roles

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uff00-\uffef]")
_TABLE_LINE = re.compile(
    r"src\s*=\s*['\"]?(?P<src>[^,'\"\s]+)['\"]?\s*,\s*dst\s*=\s*['\"]?(?P<dst>[^,'\"\s]+)['\"]?\s*,\s*"
    r"prob\s*=\s*(?P<p>-?[0-9]*\.?[0-9]+(?:[eE]-?[0-9]+)?)",
    re.IGNORECASE,
)
_VOTE_ROLE = re.compile(r"\brole\s*=\s*vote\b", re.IGNORECASE)
_VOTE_MODEL = re.compile(r"\|\s*model\s*=[^|]*\|")  # a vote calls no model, whatever model= the reply wrote
_ID_IN_PAREN = re.compile(r"^[A-Za-z_]*\((?P<id>[^)]+)\)$")  # "DirectAnswer(n1)" -> "n1"


@dataclass(frozen=True)
class Rules:
    """What a reply must respect this round (SPEC §4.3; `latency` relaxes R1 per §4.5)."""

    ids: tuple[str, ...]
    output_id: str
    output_model: str
    output_role: str
    models: tuple[str, ...]
    counts: Mapping[str, int]
    edges: tuple[tuple[str, str], ...]
    latency: bool = False
    lenient: bool = False  # check only the schema, acyclicity and the output node; repair roles
    output_vote: bool = True  # the output may be a vote instead (R6); off in the role ablation


@dataclass
class UpdateReply:
    """A parsed, rule-abiding update: the next graph and the new edge probabilities."""

    graph: Graph
    table: dict[tuple[str, str], float]
    form: str  # "json" or "text"


def check_language(text: str) -> None:
    """The paper's code rejects replies containing CJK text (a reasoning agent drifting language)."""
    m = _CJK.search(text)
    if m:
        raise AgentReplyError(f"the reply contains non-English (CJK) text near {text[max(0, m.start() - 20):m.end() + 20]!r}; "
                              "write in English only")


def extract_json(text: str) -> Any:
    """The first JSON value (object or list) in `text`, tolerating prose and ``` fences around it."""
    decoder = json.JSONDecoder()
    for k, ch in enumerate(text):
        if ch in "{[":
            try:
                value, _ = decoder.raw_decode(text[k:])
                return value
            except json.JSONDecodeError:
                continue
    raise AgentReplyError("no JSON object found in the reply")


# ---------------------------------------------------------------------------------------------
# Initialization replies
# ---------------------------------------------------------------------------------------------

def parse_init_reply(text: str, combos: Sequence[Mapping[str, int]], picks: int = 2) -> list[dict[str, int]]:
    """The mixes the agent picked, each one of `combos`. Accepts `{"picks": [indices or count
    dicts]}`, a bare list, or count dicts one per line (the paper's form)."""
    check_language(text)
    values: list[Any] = []
    try:
        value = extract_json(text)
    except AgentReplyError:
        value = None
    if isinstance(value, dict) and "picks" in value:
        values = value["picks"] if isinstance(value["picks"], list) else [value["picks"]]
    elif isinstance(value, list):
        values = value
    else:  # one dict per line: {"smollm2-135m": 3, ...}
        decoder = json.JSONDecoder()
        k = 0
        while k < len(text):
            if text[k] == "{":
                try:
                    v, end = decoder.raw_decode(text[k:])
                    values.append(v)
                    k += end
                    continue
                except json.JSONDecodeError:
                    pass
            k += 1
    if not values:
        raise AgentReplyError(f"expected {picks} picks, found none in the reply")
    chosen: list[dict[str, int]] = []
    normalized = [{m: int(n) for m, n in c.items() if int(n) > 0} for c in combos]
    for v in values:
        if isinstance(v, bool):
            raise AgentReplyError(f"pick {v!r} is not an option index")
        if isinstance(v, (int, float)) or (isinstance(v, str) and v.strip().isdigit()):
            idx = int(v)
            if not 0 <= idx < len(combos):
                raise AgentReplyError(f"pick {idx} is not one of the option indices 0..{len(combos) - 1}")
            chosen.append(dict(normalized[idx]))
        elif isinstance(v, dict):
            try:
                counts = {str(m): int(n) for m, n in v.items() if int(n) > 0}
            except (TypeError, ValueError):
                raise AgentReplyError(f"pick {v!r} must map model names to counts") from None
            if counts not in normalized:
                raise AgentReplyError(f"pick {json.dumps(v)} is not one of the listed options")
            chosen.append(counts)
        else:
            raise AgentReplyError(f"pick {v!r} is neither an option index nor a model-count object")
    return chosen[:picks]


# ---------------------------------------------------------------------------------------------
# Update replies
# ---------------------------------------------------------------------------------------------

def parse_update_reply(text: str, rules: Rules) -> UpdateReply:
    """Parse and check an update reply. Raises `AgentReplyError` naming the first broken rule."""
    check_language(text)
    value: Any = None
    try:
        value = extract_json(text)
    except AgentReplyError:
        pass
    if isinstance(value, dict) and "graph" in value:
        graph = _graph_from_json(value["graph"], rules)
        table = _table_from_json(value.get("edge_probabilities"), rules)
        form = "json"
    elif re.search(r"^\s*\W*graph\W*\s*:", text, re.IGNORECASE | re.MULTILINE) or "Node " in text:
        graph, table = _from_text_form(text, rules)
        form = "text"
    else:
        raise AgentReplyError('the reply has neither a JSON object with "graph" nor a "Graph:" block')
    if rules.lenient and not graph.find_cycle():  # a cycle is reported by the checks below
        graph = fix_roles(graph)
    _check_rules(graph, rules)
    return UpdateReply(graph, table, form)


def _clean_id(raw: Any) -> str:
    s = str(raw).strip().strip("'\"")
    m = _ID_IN_PAREN.match(s)
    return m.group("id") if m else s


def _graph_from_json(data: Any, rules: Rules) -> Graph:
    entries: list[tuple[str, Mapping[str, Any]]] = []
    if isinstance(data, dict):
        entries = [(_clean_id(k), v) for k, v in data.items()]
    elif isinstance(data, list):
        for k, v in enumerate(data):
            if not isinstance(v, dict) or "id" not in v:
                raise AgentReplyError(f"graph[{k}] must be an object with an \"id\"")
            entries.append((_clean_id(v["id"]), v))
    else:
        raise AgentReplyError('"graph" must map node ids to {model, role, preds}')
    known = set(rules.ids)
    nodes: list[Node] = []
    edges: list[tuple[str, str]] = []
    seen: set[str] = set()
    for node_id, spec in entries:
        if node_id not in known:
            raise AgentReplyError(f"unknown node id {node_id!r}: use only the ids {', '.join(rules.ids)} (no new or renamed nodes)")
        if node_id in seen:
            raise AgentReplyError(f"node {node_id!r} is listed twice")
        seen.add(node_id)
        if not isinstance(spec, Mapping):
            raise AgentReplyError(f"node {node_id!r} must be an object with model, role and preds")
        try:
            role = normalize_role(str(spec.get("role", "assistant")))
        except GraphError as exc:
            raise AgentReplyError(f"node {node_id!r}: {exc}") from None
        model = str(spec.get("model") or "").strip()
        if role == "vote":
            model = ""  # a vote calls no model, whatever the reply wrote (the schema keeps the field)
        elif not model:
            raise AgentReplyError(f"node {node_id!r} has no model")
        nodes.append(Node(node_id, model or None, role))
        preds = spec.get("preds", [])
        if not isinstance(preds, list):
            raise AgentReplyError(f"node {node_id!r}: preds must be a list of node ids")
        for p in preds:
            pid = _clean_id(p)
            if pid not in known:
                raise AgentReplyError(f"node {node_id!r} lists unknown predecessor {pid!r}")
            edges.append((pid, node_id))
    missing = [i for i in rules.ids if i not in seen]
    if missing:
        raise AgentReplyError(f"node ids missing from the reply: {', '.join(missing)} (list every node once)")
    order = {i: k for k, i in enumerate(rules.ids)}
    nodes.sort(key=lambda n: order[n.id])
    return Graph(nodes, list(dict.fromkeys(edges)), rules.output_id)


def probability(value: Any, where: str) -> float:
    """A probability the agent wrote, as a float in [0, 1]; else AgentReplyError naming `where`."""
    try:
        p = float(value)
    except (TypeError, ValueError):
        raise AgentReplyError(f"{where}: probability {value!r} is not a number") from None
    if not 0.0 <= p <= 1.0:
        raise AgentReplyError(f"{where}: probability {p} is outside [0, 1]")
    return p


def _edge_of(src: str, dst: str, rules: Rules, where: str) -> tuple[str, str]:
    known = set(rules.ids)
    for x in (src, dst):
        if x not in known:
            raise AgentReplyError(f"{where}: unknown node id {x!r}")
    if src == dst:
        raise AgentReplyError(f"{where}: an edge from {src!r} to itself is not allowed")
    return src, dst


def _table_from_json(data: Any, rules: Rules) -> dict[tuple[str, str], float]:
    table: dict[tuple[str, str], float] = {}
    if data is None:
        return table
    if isinstance(data, dict):
        for key, value in data.items():
            parts = re.split(r"\s*->\s*", str(key))
            if len(parts) != 2:
                raise AgentReplyError(f"edge_probabilities key {key!r} must look like \"src->dst\"")
            edge = _edge_of(_clean_id(parts[0]), _clean_id(parts[1]), rules, f"edge {key!r}")
            table[edge] = probability(value, f"edge {key!r}")
    elif isinstance(data, list):
        for k, row in enumerate(data):
            if isinstance(row, str):
                table.update(_table_from_lines(row, rules))
                continue
            if not isinstance(row, dict) or not {"src", "dst"} <= set(row):
                raise AgentReplyError(f"edge_probabilities[{k}] must have src, dst and p")
            edge = _edge_of(_clean_id(row["src"]), _clean_id(row["dst"]), rules, f"edge_probabilities[{k}]")
            table[edge] = probability(row.get("p", row.get("prob")), f"edge_probabilities[{k}]")
    else:
        raise AgentReplyError('"edge_probabilities" must map "src->dst" to a probability')
    return table


def _table_from_lines(text: str, rules: Rules) -> dict[tuple[str, str], float]:
    table: dict[tuple[str, str], float] = {}
    for m in _TABLE_LINE.finditer(text):
        where = f"table line {m.group(0)!r}"
        edge = _edge_of(_clean_id(m.group("src")), _clean_id(m.group("dst")), rules, where)
        table[edge] = probability(m.group("p"), where)
    return table


def _from_text_form(text: str, rules: Rules) -> tuple[Graph, dict[tuple[str, str], float]]:
    """The paper's form: a `Graph:` block (Node lines, possibly one quoted string with \\n escapes)
    and an `Edge-probabilities:` block (table lines, possibly a Python list of strings)."""
    split = re.split(r"^\s*\W*edge[-_ ]probabilities\W*\s*:", text, maxsplit=1, flags=re.IGNORECASE | re.MULTILINE)
    graph_part = split[0]
    table_part = split[1] if len(split) > 1 else ""
    gm = re.search(r"^\s*\W*graph\W*\s*:(?P<rest>.*)", graph_part, re.IGNORECASE | re.MULTILINE | re.DOTALL)
    block = gm.group("rest") if gm else graph_part
    block = block.replace("\\n", "\n").replace('"', "\n").replace("'", "\n")
    block = "\n".join(_VOTE_MODEL.sub("|", line) if _VOTE_ROLE.search(line) else line for line in block.splitlines())
    try:
        graph = from_text(block, known_ids=set(rules.ids), output=rules.output_id)
    except (FileFormatError, GraphError) as exc:
        raise AgentReplyError(f"Graph block: {exc}") from None
    table = _table_from_lines(table_part, rules) if table_part else {}
    return graph, table


def _check_rules(graph: Graph, rules: Rules) -> None:
    """R1 (counts), R6 (output node), pool models, structure and roles (R2, R5)."""
    out = next((n for n in graph.nodes if n.id == rules.output_id), None)
    if out is None:
        raise AgentReplyError(f"the output node {rules.output_id!r} is missing")
    voting = rules.output_vote and out.role == "vote"
    if not voting and (out.model != rules.output_model or out.role != rules.output_role):
        also = " (or be a vote)" if rules.output_vote else ""
        raise AgentReplyError(f"R6: the output node {rules.output_id!r} must keep model {rules.output_model} and role "
                              f"{rules.output_role}{also} (the reply has {out.model}, {out.role})")
    worker_votes = [n.id for n in graph.nodes if n.id != rules.output_id and n.role == "vote"]
    if worker_votes:
        raise AgentReplyError(f"node {worker_votes[0]!r} is a vote: only the output node {rules.output_id!r} may vote")
    for n in graph.nodes:
        if n.id != rules.output_id and n.model not in rules.models:  # the output is checked by R6 above
            raise AgentReplyError(f"node {n.id!r} uses model {n.model!r}, which is not among {', '.join(rules.models)}")
    try:
        graph.validate()
    except GraphError as exc:
        raise AgentReplyError(f"invalid graph: {exc}") from None
    workers = [n for n in graph.nodes if n.id != rules.output_id]
    if rules.lenient:
        return
    if rules.latency:
        used_ids = graph.ancestors(rules.output_id)
        used = Counter(n.model for n in workers if n.id in used_ids)
        over = {m: k for m, k in used.items() if k > rules.counts.get(m, 0)}
        if over:
            raise AgentReplyError("R1: more nodes of " + ", ".join(f"{m} ({k} > {rules.counts.get(m, 0)})"
                                                                   for m, k in over.items()) + " than allowed")
        dangling = [n.id for n in workers if n.id not in used_ids and (graph.preds(n.id) or graph.succs(n.id))]
        if dangling:
            raise AgentReplyError(f"R1: unused node(s) {', '.join(dangling)} must have no edges")
    else:
        got = Counter(n.model for n in workers)
        want = {m: k for m, k in rules.counts.items() if k > 0}
        if dict(got) != want:
            raise AgentReplyError("R1: the model counts must be exactly " + ", ".join(f"{m}: {k}" for m, k in want.items())
                                  + "; the reply has " + ", ".join(f"{m}: {k}" for m, k in got.items()))
        if not graph.preds(rules.output_id) and workers:
            raise AgentReplyError(f"the output node {rules.output_id!r} has no predecessors: connect at least one node to it")
