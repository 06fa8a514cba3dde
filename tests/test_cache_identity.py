"""Cache identity: a model re-bound to another server (or another GGUF, or another `revision`)
misses the cache instead of replaying the old binding's answers; replicas of one model (same
served name behind another URL) share entries. Driven through `build_backend` against two stub
servers on 127.0.0.1 (tests/fault_stub.py)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ttsgraph.llm.base import SamplingParams
from ttsgraph.llm.identity import binding_identity, file_digest
from ttsgraph.llm.router import build_backend
from ttsgraph.models import Binding, load_pool, with_binding
from tests.fault_stub import Stub, chat_reply

MSGS = [{"role": "user", "content": "What is 2 + 2?"}]
MODEL = "smollm2-135m"


@pytest.fixture
def servers() -> Iterator[tuple[Stub, Stub]]:
    a, b = Stub(), Stub()
    a.script, b.script = [(200, chat_reply("from A"), 0.0)], [(200, chat_reply("from B"), 0.0)]
    yield a, b
    a.close()
    b.close()


def ask(binding: Binding, cache: Path) -> str:
    pool = with_binding(load_pool("local"), MODEL, binding)

    async def go() -> str:
        async with build_backend(pool, cache, retries=0, timeout=5) as backend:
            return (await backend.complete(MODEL, MSGS, SamplingParams(), 0)).text

    return asyncio.run(go())


def test_rebinding_to_another_server_misses_and_replicas_share(servers: tuple[Stub, Stub], tmp_path: Path) -> None:
    a, b = servers
    cache = tmp_path / "c.sqlite"
    assert ask(Binding("openai", a.base_url, "served-x"), cache) == "from A"
    # another model behind the same pool name: not A's cached answer
    assert ask(Binding("openai", b.base_url, "served-y"), cache) == "from B"
    # a replica of A's model (same served name, other URL): A's entry is reused, B is not called
    calls = len(b.requests)
    assert ask(Binding("openai", b.base_url, "served-x"), cache) == "from A"
    assert len(b.requests) == calls


def test_a_revision_set_in_models_toml_is_part_of_the_identity(servers: tuple[Stub, Stub], tmp_path: Path) -> None:
    a, b = servers
    cache = tmp_path / "c.sqlite"
    assert ask(Binding("openai", a.base_url, "x", revision="2024-01"), cache) == "from A"
    assert ask(Binding("openai", b.base_url, "x", revision="2024-01"), cache) == "from A"
    assert ask(Binding("openai", b.base_url, "x", revision="2024-06"), cache) == "from B"
    models = tmp_path / "models.toml"
    models.write_text(f'[models.mine]\nlike = "{MODEL}"\nbackend = "openai"\nbase_url = "http://h/v1"\n'
                      'revision = "r7"\n')
    assert load_pool(models).spec("mine").binding.revision == "r7"


def test_local_identity_is_the_files_digest_computed_once_per_mtime(tmp_path: Path) -> None:
    one, two = tmp_path / "one.gguf", tmp_path / "two.gguf"
    one.write_bytes(b"GGUF weights one")
    two.write_bytes(b"GGUF weights two")
    ident = {p: binding_identity(Binding("local", local_file=str(p)), lambda p=p: p) for p in (one, two)}
    first = ident[one]()
    assert first.startswith("local:sha256:") and first != ident[two]()
    # same path, mtime and size: remembered, not read again (the changed bytes go unseen) ...
    stat = one.stat()
    one.write_bytes(b"GGUF weights ONE")
    os.utime(one, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert ident[one]() == first
    # ... and a touched file is read again
    os.utime(one, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert ident[one]() != first and file_digest(one) == ident[one]().removeprefix("local:sha256:")


def test_served_name_not_url_is_the_openai_identity() -> None:
    assert binding_identity(Binding("openai", "http://a/v1", "x")) == binding_identity(Binding("openai", "http://b/v1", "x"))
    assert binding_identity(Binding("openai", "http://a/v1", "x")) != binding_identity(Binding("local", local_file="x"),
                                                                                       lambda: Path(__file__))
