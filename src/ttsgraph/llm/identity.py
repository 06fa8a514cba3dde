"""What produced a cached answer: the identity of a model's binding, part of the cache key.

A pool model name says nothing about what serves it: re-binding `my-model` to another server or
another GGUF file must not replay the old one's answers. The identity is the backend kind plus
what is actually served: for an OpenAI-compatible server the served name (not the URL, so replicas
of one model behind different URLs share their entries), for the embedded engine the digest of the
GGUF file. A user who knows better sets `revision` in models.toml, which then stands for the
served thing (e.g. a model release tag behind a name that never changes).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path

from ttsgraph.models import Binding

Identity = str | Callable[[], str]
"""An identity, or a function computing it (a file digest: computed once, when first needed)."""

_DIGESTS: dict[tuple[str, int, int], str] = {}
_DIGESTS_LOCK = threading.Lock()


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file (32 hex digits), remembered per (path, mtime, size): a GGUF of hundreds of
    megabytes is read once per process, not once per call; touching the file recomputes it."""
    p = Path(path).resolve()
    stat = p.stat()
    key = (str(p), stat.st_mtime_ns, stat.st_size)
    with _DIGESTS_LOCK:
        known = _DIGESTS.get(key)
    if known is not None:
        return known
    digest = hashlib.sha256()
    with p.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    value = digest.hexdigest()[:32]
    with _DIGESTS_LOCK:
        _DIGESTS[key] = value
    return value


def binding_identity(binding: Binding | None, locate: Callable[[], Path] | None = None) -> Identity:
    """The identity of what serves a model: `openai:<served name>`, `local:sha256:<digest>` (the
    file `locate()` returns), `<kind>@<revision>` when models.toml sets one, `fake` for tests."""
    if binding is None or binding.kind == "fake":
        return "fake"
    if binding.revision:
        return f"{binding.kind}@{binding.revision}"
    if binding.kind == "openai":
        return f"openai:{binding.served_name}"
    if locate is None:
        raise ValueError("a local binding's identity needs its file")
    return lambda: f"local:sha256:{file_digest(locate())}"
