"""The catalogue, named pools and models.toml parsing (with file:line errors)."""

from __future__ import annotations

import pytest

from ttsgraph.errors import FileFormatError, UnknownModelError
from ttsgraph.models import builtin_catalogue, load_pool

REQUIRED = ["llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b", "llama-3.1-70b", "gemma-3-1b", "gemma-2b", "gemma-7b",
            "qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-3b", "qwen2.5-7b", "qwen2.5-14b", "qwen2.5-32b", "qwen2.5-72b",
            "smollm2-135m", "smollm2-360m", "smollm2-1.7b", "gemma-3-270m"]


def test_catalogue_has_the_pool_models_with_numbers():
    cat = builtin_catalogue()
    for name in REQUIRED:
        spec = cat[name]
        assert spec.name == name == name.lower() and " " not in name
        assert spec.params > 0 and spec.layers > 0 and spec.hidden > 0 and spec.size_b > 0 and spec.family
    assert (cat["llama-3.2-1b"].params, cat["llama-3.2-1b"].layers, cat["llama-3.2-1b"].hidden) == (1e9, 16, 2048)
    assert cat["gemma-3-270m"].chat is False and cat["smollm2-135m"].chat is True


def test_named_pools():
    paper = load_pool("paper")
    assert paper.models == ["llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b", "llama-3.1-70b"]
    assert (paper.reference, paper.output) == ("llama-3.2-1b", "llama-3.2-3b")
    local = load_pool(None)
    assert local.name == "local" and set(local.models) == {"smollm2-135m", "gemma-3-270m"}
    assert all(local.spec(m).binding and local.spec(m).binding.kind == "local" for m in local.models)
    with pytest.raises(UnknownModelError, match="unknown model 'nope'"):
        paper.spec("nope")


def test_models_file_binds_overrides_and_adds(tmp_path):
    path = tmp_path / "models.toml"
    path.write_text('''
[pool]
models = ["llama-3.2-1b", "my-model"]
output = "my-model"

[models."llama-3.2-1b"]
backend = "openai"
base_url = "http://127.0.0.1:8000/v1"
served_name = "llama3.2:1b"
api_key_env = "MY_KEY"

[models.my-model]
family = "custom"
params = 2.5e9
layers = 30
hidden = 2560
backend = "local"
file = "weights/my.gguf"
chat = false
''')
    pool = load_pool(path)
    assert pool.models == ["llama-3.2-1b", "my-model"]
    assert pool.reference == "llama-3.2-1b" and pool.output == "my-model"
    b = pool.spec("llama-3.2-1b").binding
    assert (b.kind, b.base_url, b.served_name, b.api_key_env) == ("openai", "http://127.0.0.1:8000/v1", "llama3.2:1b",
                                                                  "MY_KEY")
    assert pool.spec("llama-3.2-1b").layers == 16  # numbers kept from the catalogue
    mine = pool.spec("my-model")
    assert (mine.params, mine.layers, mine.hidden, mine.chat) == (2.5e9, 30, 2560, False)
    assert mine.binding.local_file == str((tmp_path / "weights/my.gguf").resolve())


@pytest.mark.parametrize("text,line,match", [
    ('[models.a]\nparams = 1e9\nlayers = = 3\n', 3, "not valid TOML"),
    ('\n\n[models.newthing]\nparams = 1e9\nlayers = 4\n', 3, "give 'hidden'"),
    ('[models."llama-3.2-1b"]\nbackend = "openai"\n', 1, "needs base_url"),
    ('[models."llama-3.2-1b"]\nbackend = "grpc"\nbase_url = "x"\n', 1, "backend must be"),
    ('x = 1\n[models."llama-3.2-1b"]\ncolour = "red"\n', None, "unknown top-level"),
    ('[models."llama-3.2-1b"]\ncolour = "red"\n', 1, "unknown key 'colour'"),
    ('[pool]\nmodels = ["llama-3.2-1b", "ghost"]\n', 1, "unknown model 'ghost'"),
])
def test_bad_models_file_errors_name_file_and_line(tmp_path, text, line, match):
    path = tmp_path / "models.toml"
    path.write_text(text)
    with pytest.raises(FileFormatError, match=match) as info:
        load_pool(path)
    assert str(path) in str(info.value)
    if line is not None:
        assert info.value.line == line


def test_unknown_pool_name_is_a_clear_error():
    with pytest.raises(FileFormatError, match="not a pool name"):
        load_pool("no-such-pool")
