"""What the search agent is told, in our own words (SPEC §4.2–§4.5 and the TextGrad variant of §7).

Agent-REINFORCE replaces REINFORCE's gradient with text: the agent reads how the last graph did
and writes the next graph plus an updated edge-probability table. Everything the agent reads is
built here, so the wording can be audited (and ablated) in one place and reused by the TextGrad
and hybrid baselines. Prompts are plain functions of plain data: no I/O, no randomness, so the
same state always produces the same prompt (the response cache and resumed studies rely on it).

Two reply forms are offered and both are accepted by `agent_replies`: a JSON object (with a JSON
Schema that constrains weak local agents so they always produce the right shape) and the paper's
text form (`Graph:` block of Node lines + `Edge-probabilities:` block) for strong agents.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

SYSTEM = "You are a researcher who designs multi-agent systems built from language models."
"""The system message of every agent call (SPEC §4: one fixed researcher persona)."""

PROB_LEVELS: tuple[float, ...] = tuple(round(k / 10, 1) for k in range(11))
"""Edge probabilities a JSON-constrained agent may write (0.0, 0.1, …, 1.0). A fixed set keeps a
weak model from emitting endless digits and keeps the table comparable between rounds."""

# ---------------------------------------------------------------------------------------------
# Shared pieces
# ---------------------------------------------------------------------------------------------

SYSTEM_IS_A_DAG = (
    "The system is a directed acyclic graph. Every node is one call of a language model; an edge "
    "u -> v hands u's answer to v, which reads it together with the question. The output node's "
    "answer is the answer of the whole system."
)

INIT_INSIGHTS: tuple[str, ...] = (
    "More nodes usually help, but weak models get lost in long contexts, deep chains let later "
    "nodes overwrite answers that were already right, and both width and depth have a sweet spot "
    "beyond which accuracy falls. Too many weak models can hurt.",
    "Stronger models cope with longer contexts and are harder to talk out of a correct answer.",
    "Weigh 'more nodes' against 'too many weak nodes'.",
    "Use the measured data below: it shows which models and mixes this task favours.",
)
"""Insight 1 (and the pilot observations that go with it), for the initialization prompt."""

UPDATE_INSIGHTS: tuple[str, ...] = (
    "Larger models tolerate long contexts and are harder to corrupt.",
    "Put larger models on nodes with many predecessors.",
    "Feed a node that has several inputs from different models rather than from copies of one model.",
    "The best depth depends on the width and the other way round: wider graphs want shorter "
    "chains, deeper graphs want fewer parallel branches.",
    "Grow the graph outward from the output node, adding depth and width a little at a time.",
    "Tasks and model mixes differ in whether they prefer deep or wide graphs.",
)
"""Insights 2 and 3 and the placement heuristics (SPEC §4.3), for the update prompt."""

LATENCY_INIT_INSIGHTS: tuple[str, ...] = (
    "Aim for the highest efficiency at acceptable accuracy.",
    "Systems built from more, smaller models are generally faster; favour efficiency as long as "
    "accuracy stays acceptable.",
)
"""Added to the initialization prompt under the accuracy-latency objective (SPEC §4.5)."""

LATENCY_UPDATE_INSIGHTS: tuple[str, ...] = (
    "Fewer nodes means lower latency: drop weak-model nodes when accuracy hardly suffers.",
    "Keep contexts short by avoiding nodes with many predecessors.",
    "Sparse graphs (few edges) run much faster than dense ones; long chains add up their nodes' times.",
)
"""Latency heuristics of the update prompt (SPEC §4.5)."""


VOTE_RULE = (" The output node may instead be a 'vote': it calls no model and answers with the most frequent "
             "answer among its predecessors (a majority vote over several nodes costs nothing extra).")
"""R2's sentence on the vote role (issue 11): only the output node may vote, so R1's model counts
stay the workers'."""


def update_rules(output_id: str, output_model: str, *, latency: bool = False, stripped: bool = False,
                 assistants_only: bool = False) -> list[str]:
    """Rules R1–R6 (SPEC §4.3). `latency` relaxes R1 and R4 (SPEC §4.5); `stripped` keeps only the
    schema, acyclicity and the output-node rule (the TextGrad baseline of SPEC §7);
    `assistants_only` (the role ablation) makes R2 say that every node is an assistant."""
    r1 = ("R1. Use at most the required number of nodes of each model. A node you do not need may "
          "stay unused: give it no predecessors and no successors." if latency else
          "R1. Use exactly the required number of nodes of each model.")
    r2 = ("R2. A role is 'assistant' (writes a new answer; with predecessors it synthesizes their "
          "answers) or 'fuser' (reviews its predecessors' answers and condenses them into the best "
          "one). A fuser needs at least one assistant predecessor and may not be fed by a fuser." + VOTE_RULE)
    if assistants_only:
        r2 = ("R2. Every node is an 'assistant' (writes a new answer; with predecessors it synthesizes their "
              "answers). Do not use any other role.")
    r3 = ("R3. Keep the reply format and the order of its fields; change only the values. List every "
          "node id exactly once: do not add, drop or rename nodes.")
    r4 = ("R4. Change an edge's probability only if that edge was in the last graph: raise it if the "
          "edge helped, lower it if it did not." if latency else
          "R4. Raise an edge's probability only if that edge was in the last graph and helped; lower the "
          "others. Grow from the output node: first its incoming edges, then the incoming edges of its "
          "predecessors, and so on. Edges of graphs that scored well go up, edges of graphs that scored "
          "poorly go down.")
    r5 = ("R5. The graph must stay acyclic. Avoid nodes with many predecessors (their context grows "
          "too long) and very long chains (later nodes overwrite correct answers).")
    r6 = (f"R6. Node {output_id} is the output node: keep its model ({output_model}) and its role; only its "
          "incoming edges may change.") if assistants_only else (
          f"R6. Node {output_id} is the output node: keep its model ({output_model}) and its role, or make it "
          "a 'vote'; besides that only its incoming edges may change.")
    if stripped:
        return [r3, "R5. The graph must stay acyclic.", r6]
    return [r1, r2, r3, r4, r5, r6]


def _bullets(lines: Sequence[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


def counts_text(counts: Mapping[str, int]) -> str:
    """A model-count requirement as `model: n` pairs in a stable order."""
    return ", ".join(f"{m}: {n}" for m, n in counts.items() if n > 0) or "(none)"


def profile_text(profile: Mapping[str, Any] | None) -> str:
    """The Insight-1 data (SPEC §5) as short lines: single-model accuracies, then equal-budget mixes.

    `profile` is `Profile.to_dict()` (ttsgraph.profile) or None when nothing was measured."""
    if not profile:
        return "No measurements are available for this task; rely on the insights."
    singles = singles_text(profile)
    lines: list[str] = [singles] if singles else []
    mixes = profile.get("mixes") or []
    if mixes:
        budget = profile.get("mix_budget")
        head = "Random graphs at equal budget" + (f" ({budget})" if budget else "") + ":"
        lines.append(head)
        for row in mixes:
            lines.append(f"  {counts_text(row.get('counts', {}))}: {_pct(row.get('accuracy'))}")
    return "\n".join(lines) if lines else "No measurements are available for this task; rely on the insights."


def singles_text(profile: Mapping[str, Any] | None) -> str | None:
    """Each model's accuracy alone, from the profile (SPEC §4.3: the update prompt shows these too),
    or None when the profile has none."""
    singles = (profile or {}).get("singles") or {}
    if not singles:
        return None
    assert profile is not None
    head = f"Each model alone ({profile.get('source', 'measured')}, accuracy on {profile.get('items', '?')} search items):"
    return "\n".join([head] + [f"  {model}: {_pct(row.get('accuracy'))}" for model, row in singles.items()])


def incumbents_text(references: Sequence[Any], top: int = 3) -> str | None:
    """The classical strategies' scores (`Optimizer.reference`: evaluations with meta `name`), best
    first, as one line: the result the next graph must beat (None: none were scored)."""
    named = [r for r in references if r.meta.get("name")]
    if not named:
        return None
    best = sorted(named, key=lambda r: (-r.accuracy, r.planned_units))[:top]
    listed = "; ".join(f"{r.meta['name']}: {_pct(r.accuracy)} ({r.planned_units:.1f} units)" for r in best)
    return f"Classical strategies on the same questions (to beat): {listed}."


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{100 * float(value):.0f}%"


def edge_table_text(table: Sequence[Mapping[str, Any]]) -> str:
    """The edge-probability table in the paper's line form: `<k>: src=<id>, dst=<id>, prob=<p>`.
    Rows are `ProbGraph.edge_table()`-style dicts (`src`, `dst`, `prob`)."""
    return "\n".join(f"{k}: src={row['src']}, dst={row['dst']}, prob={float(row['prob']):.3f}"
                     for k, row in enumerate(table))


def edge_table_json(table: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The table as the JSON reply names it: {"src->dst": p}."""
    return {edge_key(str(row["src"]), str(row["dst"])): round(float(row["prob"]), 3) for row in table}


def graph_json(graph: Any) -> dict[str, Any]:
    """A graph in the JSON reply form: {id: {model, role, preds}} in node order."""
    return {n.id: {"model": n.model, "role": n.role, "preds": graph.preds(n.id)} for n in graph.nodes}


def edge_key(src: str, dst: str) -> str:
    """How an edge is named in the JSON reply (`"n1->out"`)."""
    return f"{src}->{dst}"


# ---------------------------------------------------------------------------------------------
# Initialization (SPEC §4.4)
# ---------------------------------------------------------------------------------------------

def init_prompt(task: str, combos: Sequence[Mapping[str, int]], profile: Mapping[str, Any] | None, *,
                picks: int = 2, latency: bool = False, json_reply: bool = True, stripped: bool = False,
                insights: bool = True) -> str:
    """Ask the agent to choose `picks` starting model mixes from the `combos` (the mixes that fit the budget).

    `stripped` is the TextGrad variant: one pick "from your knowledge of test-time scaling", no
    insights and no data; `insights=False` (the insight ablation) keeps the data but drops the
    pilot findings. The reply names mixes by their index in the listed options."""
    options = "\n".join(f"{k}: {counts_text(c)}" for k, c in enumerate(combos))
    parts = [
        f"Task: {task}.",
        "Under a fixed compute budget we are building a multi-agent system for this task. You choose "
        "the starting set of agents: every model you pick becomes one node, and the system will later "
        "be optimized into a graph. Each option below spends the budget almost exactly.",
        f"Options (index: model counts):\n{options}",
    ]
    if stripped:
        parts.append("Choose based on your knowledge of test-time scaling.")
    else:
        if insights:
            found = list(INIT_INSIGHTS) + (list(LATENCY_INIT_INSIGHTS) if latency else [])
            parts.append("What pilot studies found:\n" + _bullets(found))
        parts.append("Data:\n" + profile_text(profile))
    goal = ("the highest efficiency (lowest latency) at acceptable accuracy" if latency
            else "the highest accuracy")
    what = "one option" if picks == 1 else f"{picks} different options"
    if json_reply:
        parts.append(f"Pick {what} likely to give {goal}. Reply with JSON only: "
                     + '{"picks": [' + ", ".join(["<index>"] * picks) + "]}.")
    else:
        parts.append(f"Pick {what} likely to give {goal}. Reply with {picks} JSON object(s) of model counts, "
                     "one per line, copied from the options, and no other text.")
    return "\n\n".join(parts)


def init_schema(n_combos: int, picks: int = 2) -> dict[str, Any]:
    """JSON Schema of the initialization reply: `picks` distinct-ish option indices."""
    return {
        "type": "object",
        "properties": {"picks": {"type": "array", "items": {"enum": list(range(n_combos))},
                                 "minItems": picks, "maxItems": picks}},
        "required": ["picks"],
        "additionalProperties": False,
    }


# ---------------------------------------------------------------------------------------------
# Update (SPEC §4.2, §4.3, §4.5)
# ---------------------------------------------------------------------------------------------

def worked_example(models: Sequence[str], output_id: str, output_model: str, *, json_reply: bool,
                   assistants_only: bool = False) -> str:
    """One made-up round and a reply that follows the rules (the paper's update prompt shows a worked
    example, SPEC §4.2). Its ids (x1, x2) are not the graph's, so it cannot be copied as the answer.
    With `assistants_only` (the role ablation) x1 is an assistant, as every node must be."""
    from ttsgraph.graph import Graph, Node
    from ttsgraph.graph_io import to_text

    small, large = models[0], models[-1]
    after = Graph([Node("x2", small), Node("x1", large, "assistant" if assistants_only else "fuser"), Node(output_id, output_model)],
                  [("x2", "x1"), ("x1", output_id)], output_id)
    table = [{"src": "x1", "dst": output_id, "prob": 0.6}, {"src": "x2", "dst": "x1", "prob": 0.2},
             {"src": "x2", "dst": output_id, "prob": 0.0}]
    if json_reply:
        reply = json.dumps({"graph": graph_json(after), "edge_probabilities": edge_table_json(table)},
                           separators=(",", ":"))
    else:
        reply = f"Graph:\n{json.dumps(to_text(after))}\nEdge-probabilities:\n{json.dumps(edge_table_text(table).splitlines())}"
    return (f"Worked example (made-up ids and numbers; your graph has its own): the last graph was x1 ({large}) -> "
            f"{output_id}, with x2 ({small}) unused, and it scored 67%. Edge x1->{output_id} was used and the score "
            f"is good, so its probability goes up; growing outward from the output, x2 now feeds x1, which {'reads' if assistants_only else 'fuses'} "
            f"x2's answer {'before writing' if assistants_only else 'with'} its own; the unused edge x2->{output_id} stays low. The reply:\n{reply}")


def update_prompt(
    *,
    task: str,
    counts: Mapping[str, int],
    graph: Any,
    accuracy: float,
    batch: int,
    table: Sequence[Mapping[str, Any]],
    output_id: str,
    output_model: str,
    latency: float | None = None,
    latency_objective: bool = False,
    json_reply: bool = True,
    stripped: bool = False,
    note: str | None = None,
    singles: str | None = None,
    example: str | None = None,
    incumbents: str | None = None,
    insights: bool = True,
    assistants_only: bool = False,
) -> str:
    """The feedback prompt of one round: what the last graph was, how it did, and how to answer.

    `graph` is the last graph (a `Graph`), shown in the Node-line text form; with `json_reply` the
    last graph and table are also shown in the JSON reply form so a weak agent can copy and edit
    them. `latency` (seconds per question) is shown under the latency objective. `singles`
    (`singles_text`) and `example` (`worked_example`) are the profile's single-model accuracies
    and the worked example (SPEC §4.3), left out when None (the caller drops them to fit a small
    agent's context). `insights=False` and `assistants_only` are the insight and role ablations:
    no pilot findings, and R2 saying every node is an assistant."""
    from ttsgraph.graph_io import to_text

    result = f"accuracy {100 * accuracy:.0f}% on a batch of {batch} {task} search questions"
    if latency_objective and latency is not None:
        result += f"; mean latency {latency:.2f} s per question"
    parts = [
        f"Task: {task}. We are optimizing a multi-agent system for it. {SYSTEM_IS_A_DAG}",
        (f"Models in the graph (number of nodes of each): {counts_text(counts)}." if stripped else
         f"Required models (number of nodes of each): {counts_text(counts)}."),
        f"Last round: {result}.",
        f"Last graph:\n{to_text(graph)}",
    ]
    if note:
        parts.append(note)
    if not json_reply:
        parts.append("Last edge-probability table:\n" + (edge_table_text(table) if table else "(empty)"))
    parts.append("Rules:\n" + "\n".join(update_rules(output_id, output_model, latency=latency_objective,
                                                      stripped=stripped, assistants_only=assistants_only)))
    if not stripped and insights:
        insights = list(UPDATE_INSIGHTS) + (list(LATENCY_UPDATE_INSIGHTS) if latency_objective else [])
        parts.append("What pilot studies found:\n" + _bullets(insights))
    if singles:
        parts.append(singles)
    if incumbents:
        parts.append(incumbents)
    parts.append("Goal: lower the latency while the accuracy stays usable." if latency_objective
                 else "Goal: raise the accuracy.")
    if example:
        parts.append(example)
    if json_reply:
        last = {"graph": graph_json(graph), "edge_probabilities": edge_table_json(table)}
        parts.append(
            "Reply with one JSON object and nothing else: \"graph\" maps every node id to its model, role and "
            "predecessor ids; \"edge_probabilities\" maps every edge \"src->dst\" to its new probability "
            f"(0.0 to 1.0). The last graph and table in this form:\n{json.dumps(last, separators=(',', ':'))}"
        )
    else:
        parts.append(
            "Think step by step, then end your reply with exactly two blocks:\n"
            "Graph:\n\"Node <id> | model=<model> | role=<assistant|fuser|vote> | preds=[<ids>] | succs=[<ids>]\\n...\"\n"
            "Edge-probabilities:\n[\"0: src=<id>, dst=<id>, prob=<p>\", ...]\n"
            "with one Node line per node and one table line per edge of the table."
        )
    return "\n\n".join(parts)


def update_schema(ids: Sequence[str], output_id: str, models: Sequence[str], output_model: str,
                  output_role: str, edges: Sequence[tuple[str, str]], *, ordered: bool = True,
                  assistants_only: bool = False) -> dict[str, Any]:
    """JSON Schema of the update reply, built so a weak agent cannot produce a wrong shape.

    Every node id is a required key (no invented, renamed or missing ids); models and roles are
    enums; the output node's model and role are fixed (R6); the edge table has one required key
    per edge with a probability from `PROB_LEVELS`. With `ordered` (ids listed in a topological
    order) a worker may only name earlier workers as predecessors, so every reply is acyclic by
    construction; any DAG can be written that way. Model counts and the fuser rule cannot be
    expressed in JSON Schema: the reply parser checks them and the agent is asked again. The
    output node may also be a `vote` (same shape, at least one predecessor; its model is ignored).
    `assistants_only` (the role ablation) offers no fuser and no vote."""
    workers = [i for i in ids if i != output_id]
    nodes: dict[str, Any] = {}
    for k, node_id in enumerate(ids):
        fixed = node_id == output_id
        if fixed:
            allowed = workers
        elif ordered:
            allowed = workers[:workers.index(node_id)] if node_id in workers else workers[:k]
        else:
            allowed = [i for i in workers if i != node_id]
        preds: dict[str, Any] = {"type": "array", "items": {"enum": list(allowed)}, "maxItems": len(allowed)}
        if not allowed:
            preds = {"const": []}
        if fixed and allowed:
            preds["minItems"] = 1  # the output node must read at least one worker

        def variant(roles: list[str], preds: dict[str, Any], model: list[str]) -> dict[str, Any]:
            return {"type": "object",
                    "properties": {"model": {"enum": model}, "role": {"enum": roles}, "preds": preds},
                    "required": ["model", "role", "preds"], "additionalProperties": False}

        if fixed and allowed and not assistants_only:
            nodes[node_id] = {"anyOf": [variant([output_role], preds, [output_model]),
                                        variant(["vote"], preds, [output_model])]}
        elif fixed:
            nodes[node_id] = variant([output_role], preds, [output_model])
        elif allowed and not assistants_only:
            # a fuser needs something to fuse: it is only offered with at least one predecessor
            nodes[node_id] = {"anyOf": [variant(["assistant"], preds, list(models)),
                                        variant(["fuser"], {**preds, "minItems": 1}, list(models))]}
        else:
            nodes[node_id] = variant(["assistant"], preds, list(models))
    table = {edge_key(u, v): {"enum": list(PROB_LEVELS)} for u, v in edges}
    return {
        "type": "object",
        "properties": {
            "graph": {"type": "object", "properties": nodes, "required": list(ids), "additionalProperties": False},
            "edge_probabilities": {"type": "object", "properties": table, "required": [edge_key(u, v) for u, v in edges],
                                   "additionalProperties": False},
        },
        "required": ["graph", "edge_probabilities"],
        "additionalProperties": False,
    }


def retry_prompt(error: str, *, json_reply: bool = True) -> str:
    """The follow-up turn after a reply that broke the rules: the parse error, fed back verbatim."""
    form = "the JSON object" if json_reply else "the Graph: and Edge-probabilities: blocks"
    return (f"Your reply cannot be used: {error}\nFix this and reply again with {form} only, "
            "following every rule.")


def repair_note(removed: Sequence[str], counts: Mapping[str, int]) -> str:
    """Told to the agent in the next round when the budget repair dropped nodes (SPEC §2.3)."""
    return (f"Note: the last graph exceeded the compute budget, so node(s) {', '.join(removed)} were removed; "
            f"the required models are now {counts_text(counts)}.")
