"""Prometheus metrics of one server, in their own registry (two servers in one process, as in
tests, never share counters).

Requests by status, latency and time-to-first-token histograms, graphs in flight and queued, and
node calls, errors, cache hits and tokens by model: what an operator needs to see whether the
graph or one of its backends is the bottleneck.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ttsgraph.executor import GraphRun

_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("ttsgraph_requests", "Chat completion requests by model and HTTP status.",
                                ["model", "status"], registry=r)
        self.latency = Histogram("ttsgraph_request_seconds", "Request latency (admission to last byte).",
                                 ["model"], buckets=_BUCKETS, registry=r)
        self.ttft = Histogram("ttsgraph_time_to_first_token_seconds", "Streaming requests: time to the first token.",
                              ["model"], buckets=_BUCKETS, registry=r)
        self.in_flight = Gauge("ttsgraph_graphs_in_flight", "Requests whose graphs are running.", registry=r)
        self.queued = Gauge("ttsgraph_graphs_queued", "Requests waiting for a slot.", registry=r)
        self.node_calls = Counter("ttsgraph_node_calls", "Node calls by model (cache hits included).",
                                  ["model"], registry=r)
        self.node_errors = Counter("ttsgraph_node_errors", "Node calls that failed, by model.", ["model"], registry=r)
        self.cache_hits = Counter("ttsgraph_node_cache_hits", "Node calls answered by the response cache.",
                                  ["model"], registry=r)
        self.tokens = Counter("ttsgraph_node_tokens", "Tokens by model and kind (prompt, completion).",
                              ["model", "kind"], registry=r)

    def admission(self, running: int, waiting: int) -> None:
        self.in_flight.set(running)
        self.queued.set(waiting)

    def graph_run(self, run: GraphRun) -> None:
        for t in run.nodes:
            if not t.called:
                continue
            self.node_calls.labels(t.model).inc()
            if t.error is not None:
                self.node_errors.labels(t.model).inc()
                continue
            if t.cached:
                self.cache_hits.labels(t.model).inc()
            self.tokens.labels(t.model, "prompt").inc(t.prompt_tokens)
            self.tokens.labels(t.model, "completion").inc(t.completion_tokens)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
