"""Text renderings of a graph (Mermaid, Graphviz DOT) for docs, terminals and reports."""

from __future__ import annotations

from ttsgraph.graph import Graph


def _label(graph: Graph, node_id: str) -> str:
    n = graph.node(node_id)
    tag = " (output)" if node_id == graph.output else ""
    return f"{n.id}: {n.role}{tag}" if n.model is None else f"{n.id}: {n.model} · {n.role}{tag}"


def to_mermaid(graph: Graph) -> str:
    """Mermaid flowchart: assistants as rectangles, fusers as hexagons, votes as rhombi, the output
    as a circle (its label names its role)."""
    lines = ["flowchart LR"]
    for n in graph.nodes:
        text = _label(graph, n.id).replace('"', "'")
        if n.id == graph.output:
            lines.append(f'  {n.id}(("{text}"))')
        elif n.role == "fuser":
            lines.append(f'  {n.id}{{{{"{text}"}}}}')
        elif n.role == "vote":
            lines.append(f'  {n.id}{{"{text}"}}')
        else:
            lines.append(f'  {n.id}["{text}"]')
    lines += [f"  {u} --> {v}" for u, v in graph.edges]
    return "\n".join(lines)


_DOT_SHAPES = {"fuser": "hexagon", "vote": "diamond"}


def to_dot(graph: Graph) -> str:
    """Graphviz DOT with the same shape conventions as the Mermaid form."""
    lines = ["digraph ttsgraph {", "  rankdir=LR;"]
    for n in graph.nodes:
        shape = "doublecircle" if n.id == graph.output else _DOT_SHAPES.get(n.role, "box")
        text = _label(graph, n.id).replace('"', "'")
        lines.append(f'  "{n.id}" [label="{text}", shape={shape}];')
    lines += [f'  "{u}" -> "{v}";' for u, v in graph.edges]
    lines.append("}")
    return "\n".join(lines)
