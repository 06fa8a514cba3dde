"""Typed errors. Every error names what is wrong and where (file, line, node, edge, model)
so a user can fix the input without reading a traceback."""

from __future__ import annotations


class TtsGraphError(Exception):
    """Base of every error ttsgraph raises on purpose."""


class GraphError(TtsGraphError):
    """An invalid collaboration graph; `node` / `edge` name the culprit when there is one."""

    def __init__(self, message: str, *, node: str | None = None, edge: tuple[str, str] | None = None):
        super().__init__(message)
        self.node = node
        self.edge = edge


class FileFormatError(TtsGraphError):
    """A bad input file (graph file, models.toml, JSONL task, agent reply); names file and line."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        elif line is not None:
            where = f"line {line}: "
        super().__init__(where + message)
        self.path = path
        self.line = line


class UnknownModelError(TtsGraphError):
    """A model name that is neither in the built-in catalogue nor in the user's models file."""


class BudgetError(TtsGraphError):
    """A graph or configuration that cannot fit the compute budget."""


class BackendError(TtsGraphError):
    """An LLM call that failed for good (after retries) or returned nothing usable."""

    def __init__(self, message: str, *, model: str | None = None, retriable: bool = False):
        super().__init__(f"{model}: {message}" if model else message)
        self.model = model
        self.reason = message
        self.retriable = retriable


class TaskError(TtsGraphError):
    """A task that cannot be loaded (unknown name, bad data, bad filter)."""


class SandboxError(TtsGraphError):
    """Model-written code cannot be run safely (no sandbox and no --unsafe-exec)."""


class AgentReplyError(TtsGraphError):
    """An optimizer agent's reply that cannot be parsed or breaks the rules."""
