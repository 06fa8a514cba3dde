"""The graphs a server offers: each graph file or run directory is one model of `/v1/models`.

A run directory serves the graph its search selected (`RUN/best_graph.json`) under the run's name;
a graph file serves under its file name. Graphs are validated against the pool and pruned once at
start, so a request never meets a broken graph, and their planned FLOPs (in the pool's units) are
listed as metadata next to their nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttsgraph.cost import TaskLengths, planned_graph_flops, unit_flops
from ttsgraph.errors import FileFormatError, GraphError, TtsGraphError
from ttsgraph.graph import Graph
from ttsgraph.graph_io import load_graph
from ttsgraph.models import ModelPool
from ttsgraph.store import RunStore

BEST_GRAPH = "best_graph.json"


@dataclass(frozen=True)
class GraphSource:
    """Where a served graph comes from, before the pool is known."""

    id: str
    path: Path
    graph: Graph
    run_config: dict[str, Any] | None = None  # the run's stored RunConfig, for a run directory


@dataclass(frozen=True)
class ServedGraph:
    """One model of the server: the prepared (validated, pruned) graph and its planned cost."""

    id: str
    path: Path
    graph: Graph
    planned_units: dict[str, float]  # per node, in the pool's units

    def card(self, created: int) -> dict[str, Any]:
        """Its `/v1/models` entry: the standard fields, then the graph's nodes and planned units."""
        g = self.graph
        return {
            "id": self.id, "object": "model", "created": created, "owned_by": "ttsgraph",
            "ttsgraph": {
                "source": str(self.path),
                "output": g.output,
                "nodes": [{"id": n.id, "model": n.model, "role": n.role,
                           "planned_units": round(self.planned_units[n.id], 4)} for n in g.nodes],
                "edges": [list(e) for e in g.edges],
                "planned_units": round(sum(self.planned_units.values()), 4),
            },
        }


def _run_config(run_dir: Path) -> dict[str, Any] | None:
    """The run's stored config (read-only: no lock, another process may still be writing)."""
    if not (run_dir / RunStore.FILE).is_file():
        return None
    store = RunStore.open(run_dir, readonly=True)
    try:
        config = store.get_config("run")
    finally:
        store.close()
    return config if isinstance(config, dict) else None


def read_source(ref: str | Path) -> GraphSource:
    """A graph file, or a run directory's selected graph."""
    path = Path(ref).expanduser()
    if path.is_dir():
        best = path / BEST_GRAPH
        if not best.is_file():
            raise FileFormatError(f"not a finished run: {BEST_GRAPH} is missing (has its search ended?)", path=str(path))
        return GraphSource(path.resolve().name, path, load_graph(best), _run_config(path))
    if not path.exists():
        raise FileFormatError("no such graph file or run directory", path=str(path))
    return GraphSource(path.stem, path, load_graph(path))


def read_sources(refs: list[str]) -> list[GraphSource]:
    """Every GRAPH_OR_RUN; two with the same id are an error (a client could not tell them apart)."""
    if not refs:
        raise TtsGraphError("give at least one graph file or run directory to serve")
    sources = [read_source(r) for r in refs]
    seen: dict[str, Path] = {}
    for s in sources:
        if s.id in seen:
            raise TtsGraphError(f"two graphs would be served as model {s.id!r}: {seen[s.id]} and {s.path}; rename one")
        seen[s.id] = s.path
    return sources


def serve_graphs(sources: list[GraphSource], pool: ModelPool, lengths: TaskLengths) -> dict[str, ServedGraph]:
    """Validate each graph against the pool, prune it and price it."""
    unit = unit_flops(pool, lengths)
    served: dict[str, ServedGraph] = {}
    for s in sources:
        try:
            s.graph.validate(models=set(pool.models))
        except GraphError as exc:
            raise FileFormatError(f"{exc} (pool {pool.name!r}: {', '.join(pool.models)}; pass --models)",
                                  path=str(s.path)) from None
        g = s.graph.pruned()[0]
        planned = {nid: f / unit for nid, f in planned_graph_flops(g, pool, lengths).items()}
        served[s.id] = ServedGraph(s.id, s.path, g, planned)
    return served
