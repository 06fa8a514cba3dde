"""ttsgraph: compute-optimal test-time-scaling graphs of LLMs (Agent-REINFORCE, arXiv 2511.00086)."""

__version__ = "0.1.0"
