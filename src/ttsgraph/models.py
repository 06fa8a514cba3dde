"""The model catalogue, user models files and named pools.

A model carries the architecture numbers the FLOPs formula needs (non-embedding parameters M,
layers L, hidden size D) and, optionally, a binding that says where it is served. The catalogue
knows the numbers of well-known open models; a `models.toml` adds models, overrides numbers and
binds each model to an OpenAI-compatible endpoint or to the embedded llama.cpp engine.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from ttsgraph.errors import FileFormatError, UnknownModelError
from ttsgraph.inputs import load_toml, read_text_file

BackendKind = Literal["openai", "local", "fake"]


@dataclass(frozen=True)
class PoolEndpoint:
    """One replica of an endpoint pool (models.toml `endpoints = [{base_url = ..., max_concurrency = 4}]`):
    its base URL and how many calls it takes at once (None: no limit of its own)."""

    base_url: str
    max_concurrency: int | None = None


@dataclass(frozen=True)
class Binding:
    """Where a model is served: an OpenAI-compatible endpoint (or a pool of replicas, `endpoints`),
    the embedded engine, or the test fake."""

    kind: BackendKind
    base_url: str | None = None
    served_name: str | None = None
    api_key_env: str | None = None
    local_file: str | None = None
    max_concurrency: int | None = None
    revision: str | None = None  # user-set identity of what is served (models.toml `revision`)
    endpoints: tuple[PoolEndpoint, ...] = ()  # replicas of one model; then base_url is None

    def key(self) -> str:
        """Identity of the serving resource, so concurrency can be bounded per backend."""
        if self.endpoints:
            return f"{self.kind}:pool:" + ",".join(e.base_url for e in self.endpoints)
        return f"{self.kind}:{self.base_url or self.local_file or ''}"

    def concurrency_limit(self, default: int) -> int:
        """Calls in flight to this binding at once: `max_concurrency` when set; for an endpoint
        pool the sum of its replicas' limits (`default` for a replica without one), so a pool of
        N replicas is kept N times as busy as one server."""
        if self.max_concurrency:
            return self.max_concurrency
        if self.endpoints:
            return sum(e.max_concurrency or default for e in self.endpoints)
        return default


@dataclass(frozen=True)
class ModelSpec:
    """A model's identity and architecture numbers (SPEC §2.1)."""

    name: str
    family: str
    size_b: float
    params: float  # non-embedding parameters, M
    layers: int  # L
    hidden: int  # D
    binding: Binding | None = None
    chat: bool = True  # False: a base model, prompted in completion style


def _m(name: str, family: str, size_b: float, params: float, layers: int, hidden: int, **kw: Any) -> ModelSpec:
    return ModelSpec(name, family, size_b, params, layers, hidden, **kw)


_LOCAL = Binding("local")

# Paper pool numbers are those of the authors' cost model (SPEC §2.1); the others are the
# published configurations (non-embedding parameter counts, rounded).
_CATALOGUE: list[ModelSpec] = [
    _m("llama-3.2-1b", "llama", 1, 1.0e9, 16, 2048),
    _m("llama-3.2-3b", "llama", 3, 3.0e9, 28, 3072),
    _m("llama-3.1-8b", "llama", 8, 8.0e9, 32, 4096),
    _m("llama-3.1-70b", "llama", 70, 7.0e10, 80, 8192),
    _m("gemma-3-1b", "gemma", 1, 1.0e9, 26, 1152),
    _m("gemma-2b", "gemma", 2, 2.0e9, 18, 2048),
    _m("gemma-7b", "gemma", 7, 7.8e9, 28, 3072),
    _m("gemma-3-4b", "gemma", 4, 3.2e9, 34, 2560),
    _m("gemma-3-12b", "gemma", 12, 10.8e9, 48, 3840),
    _m("gemma-3-27b", "gemma", 27, 25.6e9, 62, 5376),
    _m("qwen2.5-0.5b", "qwen", 0.5, 0.36e9, 24, 896),
    _m("qwen2.5-1.5b", "qwen", 1.5, 1.31e9, 28, 1536),
    _m("qwen2.5-3b", "qwen", 3, 2.77e9, 36, 2048),
    _m("qwen2.5-7b", "qwen", 7, 6.53e9, 28, 3584),
    _m("qwen2.5-14b", "qwen", 14, 13.1e9, 48, 5120),
    _m("qwen2.5-32b", "qwen", 32, 31.0e9, 64, 5120),
    _m("qwen2.5-72b", "qwen", 72, 70.0e9, 80, 8192),
    _m("smollm2-135m", "smollm", 0.135, 1.06e8, 30, 576, binding=_LOCAL),
    _m("smollm2-360m", "smollm", 0.36, 3.15e8, 32, 960),
    _m("smollm2-1.7b", "smollm", 1.7, 1.61e9, 24, 2048),
    _m("gemma-3-270m", "gemma", 0.27, 1.0e8, 18, 640, binding=_LOCAL, chat=False),
]


def builtin_catalogue() -> dict[str, ModelSpec]:
    return {m.name: m for m in _CATALOGUE}


@dataclass
class ModelPool:
    """The models a search may use, the unit (reference) model and the output node's model."""

    name: str
    models: list[str]
    specs: dict[str, ModelSpec]
    reference: str
    output: str
    source: str | None = None  # the models file, when there is one

    def spec(self, name: str) -> ModelSpec:
        try:
            return self.specs[name]
        except KeyError:
            raise UnknownModelError(
                f"unknown model {name!r}; known: {', '.join(sorted(self.specs))}"
                + (f" (models file {self.source})" if self.source else "")
            ) from None

    def by_size(self) -> list[str]:
        """Pool models from smallest to largest (nominal size, then non-embedding parameters)."""
        return sorted(self.models, key=lambda m: (self.specs[m].size_b, self.specs[m].params, m))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "models": list(self.models), "reference": self.reference,
                "output": self.output, "source": self.source}


POOLS: dict[str, dict[str, Any]] = {
    "paper": {"models": ["llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b", "llama-3.1-70b"],
              "reference": "llama-3.2-1b", "output": "llama-3.2-3b"},
    "paper-full": {"models": ["llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b", "llama-3.1-70b",
                              "gemma-3-1b", "gemma-2b", "gemma-7b"],
                   "reference": "llama-3.2-1b", "output": "llama-3.2-3b"},
    "local": {"models": ["smollm2-135m", "gemma-3-270m"], "reference": "smollm2-135m", "output": "smollm2-135m"},
}


def _pool(name: str, specs: dict[str, ModelSpec], models: list[str], reference: str | None,
          output: str | None, source: str | None = None) -> ModelPool:
    pool = ModelPool(name, models, specs, reference or "", output or "", source)
    for m in models:
        pool.spec(m)
    if not pool.reference:
        pool.reference = pool.by_size()[0]
    if not pool.output:
        pool.output = pool.by_size()[0]
    pool.spec(pool.reference)
    pool.spec(pool.output)
    return pool


def load_pool(spec: str | Path | None = None) -> ModelPool:
    """A named pool (`local` is the default, `paper`, `paper-full`) or a models.toml file."""
    if spec is None or str(spec) in POOLS:
        name = "local" if spec is None else str(spec)
        p = POOLS[name]
        return _pool(name, builtin_catalogue(), list(p["models"]), p["reference"], p["output"])
    path = Path(spec)
    try:
        exists = path.exists()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        exists = False
    if not exists:
        raise FileFormatError(f"no such models file, and not a pool name ({', '.join(POOLS)})", path=repr(str(spec)))
    return load_models_file(path)


# Each key's type: a models.toml is user input, so a wrong type is an error naming the key and
# line, not a Python exception later (`models = "x"` is not a list of 1-letter model names).
_MODEL_KEYS: dict[str, type | tuple[type, ...]] = {
    "family": str, "size_b": (int, float), "params": (int, float), "layers": int, "hidden": int, "chat": bool,
    "backend": str, "base_url": str, "served_name": str, "api_key_env": str, "file": str, "max_concurrency": int,
    "like": str, "revision": str, "endpoints": list}
_POOL_KEYS: dict[str, type | tuple[type, ...]] = {
    "name": str, "models": list, "reference": str, "output": str, "base": str}
_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", list: "a list of model names",
               (int, float): "a number"}


def _check_types(table: dict[str, Any], types: dict[str, Any], where: str, src: str, line: int | None) -> None:
    """Every key known and of its type; numbers finite and positive; lists of strings."""
    for key, value in table.items():
        if key not in types:
            raise FileFormatError(f"{where}: unknown key {key!r} (allowed: {', '.join(sorted(types))})",
                                  path=src, line=line)
        want = types[key]
        ok = isinstance(value, want) and not (isinstance(value, bool) and want is not bool)
        if ok and isinstance(value, (int, float)) and not isinstance(value, bool):
            ok = math.isfinite(value) and value > 0
        if ok and isinstance(value, list) and key != "endpoints":  # endpoints: checked by _endpoints
            ok = all(isinstance(x, str) for x in value)
        if not ok:
            what = "a list of tables" if key == "endpoints" else _TYPE_NAMES[want]
            what += " > 0" if want in (int, (int, float)) else ""
            raise FileFormatError(f"{where}: {key!r} must be {what}", path=src, line=line)


def _endpoints(entry: dict[str, Any], where: str, src: str, line: int | None) -> tuple[PoolEndpoint, ...]:
    """A binding's `endpoints = [{base_url = "...", max_concurrency = 4}, ...]`: a non-empty list of
    tables, each with a base URL and an optional positive limit, no URL twice, not beside base_url."""
    raw = entry.get("endpoints")
    if raw is None:
        return ()
    if "base_url" in entry:
        raise FileFormatError(f"{where}: give base_url or endpoints, not both", path=src, line=line)
    if not raw:
        raise FileFormatError(f"{where}: 'endpoints' is empty", path=src, line=line)
    out: list[PoolEndpoint] = []
    for k, table in enumerate(raw):
        at = f"{where}: endpoints[{k}]"
        if not isinstance(table, dict):
            raise FileFormatError(f"{at} must be a table {{base_url = \"...\", max_concurrency = N}}",
                                  path=src, line=line)
        _check_types(table, {"base_url": str, "max_concurrency": int}, at, src, line)
        if not table.get("base_url"):
            raise FileFormatError(f"{at} needs base_url", path=src, line=line)
        if any(e.base_url == table["base_url"] for e in out):
            raise FileFormatError(f"{at}: base_url {table['base_url']!r} is listed twice", path=src, line=line)
        out.append(PoolEndpoint(table["base_url"], table.get("max_concurrency")))
    return tuple(out)


def _line_of(text: str, pattern: str) -> int | None:
    for k, line in enumerate(text.splitlines(), 1):
        if re.search(pattern, line):
            return k
    return None


def load_models_file(path: Path) -> ModelPool:
    """Parse a models.toml: `[models."name"]` tables and an optional `[pool]` table.

    Errors carry the file and line: TOML syntax errors the line tomllib reports, semantic
    errors (unknown key, missing number, unknown model) the line of the offending table.
    """
    src = str(path)
    text = read_text_file(path, "models file")
    data = load_toml(text, path, "models file")

    unknown_top = set(data) - {"models", "pool"}
    if unknown_top:
        key = sorted(unknown_top)[0]
        raise FileFormatError(f"unknown top-level table {key!r}: expected [models.<name>] or [pool]",
                              path=src, line=_line_of(text, rf"^\s*\[?{re.escape(key)}\b"))
    catalogue = builtin_catalogue()
    declared: list[str] = []
    tables = data.get("models", {})
    if not isinstance(tables, dict):
        raise FileFormatError("'models' must be tables [models.<name>]", path=src, line=_line_of(text, r"^\s*models\s*="))
    for name, entry in tables.items():
        line = _line_of(text, rf"^\s*\[\s*models\.\"?{re.escape(name)}\"?\s*\]")
        if not isinstance(entry, dict):
            raise FileFormatError(f"models.{name} must be a table", path=src, line=line)
        _check_types(entry, _MODEL_KEYS, f"model {name!r}", src, line)
        base = catalogue.get(str(entry.get("like", name)))
        if base is None and "like" in entry:
            raise FileFormatError(f"model {name!r}: 'like' names unknown model {entry['like']!r}", path=src, line=line)
        numbers = {}
        for key in ("params", "layers", "hidden"):
            value = entry.get(key, getattr(base, key) if base else None)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise FileFormatError(f"model {name!r} is not in the catalogue: give '{key}' as a positive number",
                                      path=src, line=line)
            numbers[key] = value
        kind = entry.get("backend", base.binding.kind if base and base.binding else None)
        binding = None
        if kind is not None:
            if kind not in ("openai", "local", "fake"):
                raise FileFormatError(f"model {name!r}: backend must be 'openai', 'local' or 'fake', got {kind!r}",
                                      path=src, line=line)
            endpoints = _endpoints(entry, f"model {name!r}", src, line)
            if endpoints and kind != "openai":
                raise FileFormatError(f"model {name!r}: 'endpoints' is for backend = 'openai'", path=src, line=line)
            if kind == "openai" and not entry.get("base_url") and not endpoints:
                raise FileFormatError(f"model {name!r}: an 'openai' backend needs base_url or endpoints",
                                      path=src, line=line)
            local_file = entry.get("file")
            if local_file and not Path(local_file).is_absolute():
                local_file = str((path.parent / local_file).resolve())
            binding = Binding(kind, entry.get("base_url"), entry.get("served_name", name), entry.get("api_key_env"),
                              local_file, entry.get("max_concurrency"), entry.get("revision"), endpoints)
        size_b = entry.get("size_b", base.size_b if base else numbers["params"] / 1e9)
        catalogue[name] = ModelSpec(
            name, str(entry.get("family", base.family if base else "custom")), float(size_b),
            float(numbers["params"]), int(numbers["layers"]), int(numbers["hidden"]), binding,
            bool(entry.get("chat", base.chat if base else True)))
        declared.append(name)

    pool_cfg = data.get("pool", {})
    pline = _line_of(text, r"^\s*\[\s*pool\s*\]")
    if not isinstance(pool_cfg, dict):
        raise FileFormatError("'pool' must be a table [pool]", path=src, line=_line_of(text, r"^\s*pool\s*="))
    _check_types(pool_cfg, _POOL_KEYS, "[pool]", src, pline)
    base_pool = POOLS.get(str(pool_cfg.get("base", "")), {})
    if "base" in pool_cfg and not base_pool:
        raise FileFormatError(f"[pool]: base must be one of {', '.join(POOLS)}", path=src, line=pline)
    models = list(pool_cfg.get("models") or base_pool.get("models") or declared)
    if not models:
        raise FileFormatError("no models: declare [models.<name>] tables or [pool] models", path=src)
    for m in models:
        if m not in catalogue:
            raise FileFormatError(f"[pool] lists unknown model {m!r}", path=src, line=pline)

    try:
        return _pool(str(pool_cfg.get("name", path.stem)), catalogue, models,
                     pool_cfg.get("reference") or base_pool.get("reference"),
                     pool_cfg.get("output") or base_pool.get("output"), src)
    except UnknownModelError as exc:
        raise FileFormatError(str(exc), path=src, line=pline) from None


def with_binding(pool: ModelPool, name: str, binding: Binding) -> ModelPool:
    """A copy of the pool where `name` is served by `binding` (tests and tools bind at run time)."""
    specs = dict(pool.specs)
    specs[name] = replace(pool.spec(name), binding=binding)
    return replace(pool, specs=specs)
