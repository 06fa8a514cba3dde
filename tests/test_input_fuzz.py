"""Input files never crash: mutated graph files (JSON and the text form), models.toml files, JSONL
tasks and recipes either work or end with exit status 2 and one line naming the problem, never a
traceback, and each within 2 s of CPU time (graphs up to 10,000 nodes).

The mutations are the categories a hostile user tried (issue 14 part 4): wrong JSON types
anywhere, rich markup in ids and names, huge integers, deep nesting, non-UTF-8 bytes, lone
surrogates, a byte-order mark, ids that are options or control characters, directories and
symlink loops in place of files.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ttsgraph.cli import app
from ttsgraph.graph import chain, parallel, star
from ttsgraph.graph_io import graph_to_json, to_text

runner = CliRunner()
MODEL = "smollm2-135m"
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

HOSTILE_TEXT = ["[x]", "[link=file:///etc/passwd]x", "[/]", "[bold]", "--help", "-x", "a\x00b", "a\u202eb",
                "\u2603", "\U0001f600", "a b", "", " ", ".hidden", "x" * 200, ":smile:", "a\nb", "\ufeffa"]
HOSTILE_JSON = ['null', '5', 'true', '1.5', '-1', '1e999', '"\\ud800"', '"\\udfff x"', '[]', '{}', '[[[[[[]]]]]]',
                '"[x]"', '"--help"', '9' * 5000, '[' * 5000 + ']' * 5000, '"a\\u0000b"', '"\\u202e"']


def invoke(args: list[str]) -> tuple[int, str, str, float]:
    """Run the CLI in-process; returns (exit status, stdout, stderr, CPU seconds)."""
    started = time.process_time()
    result = runner.invoke(app, args)
    seconds = time.process_time() - started
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{args}: traceback {type(result.exception).__name__}: {result.exception}")
    return result.exit_code, result.stdout, result.stderr, seconds


def check_clean(args: list[str], *, as_json: bool = False, max_seconds: float = 2.0) -> int:
    """Exit 0, or exit 2 with exactly one line `error: …` (and a JSON error object with --json)."""
    code, stdout, stderr, seconds = invoke(args + (["--json"] if as_json else []))
    assert seconds < max_seconds, f"{args}: {seconds:.2f} s CPU"
    assert "Traceback" not in stderr + stdout
    assert code in (0, 2), (code, stdout, stderr)
    if code == 2:
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), stderr
        assert all(c.isprintable() for c in lines[0]), repr(lines[0])
        if as_json:
            assert set(json.loads(stdout)) == {"error"}
    return code


def base_graph() -> dict[str, Any]:
    return parallel(2, MODEL).to_dict()


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every position in a JSON value (the root included)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, prefix + (key,))
    elif isinstance(value, list):
        for k, item in enumerate(value):
            found += paths(item, prefix + (k,))
    return found


def replaced(value: Any, path: tuple, raw: str) -> str:
    """The JSON text of `value` with the item at `path` replaced by the raw JSON text `raw`."""
    marker = "__ttsgraph_fuzz__"
    if not path:
        return raw
    data = json.loads(json.dumps(value))
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = marker
    return json.dumps(data, indent=1).replace(json.dumps(marker), raw)


@st.composite
def graph_files(draw: st.DrawFn) -> bytes:
    """A graph JSON file with one hostile value, key removal or byte-level damage."""
    data = base_graph()
    kind = draw(st.sampled_from(["value", "text", "drop", "bytes"]))
    if kind == "value":
        path = draw(st.sampled_from(paths(data)))
        return replaced(data, path, draw(st.sampled_from(HOSTILE_JSON))).encode()
    if kind == "text":
        path = draw(st.sampled_from([p for p in paths(data) if p and isinstance(p[-1], (str, int))]))
        return replaced(data, path, json.dumps(draw(st.sampled_from(HOSTILE_TEXT)))).encode()
    if kind == "drop":
        key = draw(st.sampled_from(["nodes", "edges", "output"]))
        data.pop(key)
        return json.dumps(data).encode()
    text = json.dumps(data).encode()
    cut = draw(st.integers(0, len(text)))
    junk = draw(st.sampled_from([b"\xff\xfe", b"\x80", b"\xef\xbb\xbf", b"\x00", b"\xed\xa0\x80", b""]))
    return junk + text[:cut] if draw(st.booleans()) else text[:cut] + junk + text[cut:]


@given(content=graph_files(), as_json=st.booleans())
@FUZZ
def test_mutated_graph_json_never_crashes(tmp_path: Path, content: bytes, as_json: bool) -> None:
    path = tmp_path / "g.json"
    path.write_bytes(content)
    check_clean(["show", str(path), "--task", "arithmetic"], as_json=as_json)


@st.composite
def text_forms(draw: st.DrawFn) -> bytes:
    lines = to_text(star(2, MODEL)).splitlines()
    k = draw(st.integers(0, len(lines) - 1))
    kind = draw(st.sampled_from(["inject", "replace", "bom", "bytes"]))
    if kind == "inject":
        line = lines[k]
        at = draw(st.integers(0, len(line)))
        lines[k] = line[:at] + draw(st.sampled_from(HOSTILE_TEXT + ["|", "=", "[", "]", "preds=[x", "role=REV"])) + line[at:]
    elif kind == "replace":
        lines[k] = lines[k].replace(draw(st.sampled_from(["root", "l1", MODEL, "assistant", "out"])),
                                    draw(st.sampled_from(HOSTILE_TEXT)))
    text = "\n".join(lines).encode("utf-8", "surrogatepass")
    if kind == "bom":
        return b"\xef\xbb\xbf" + text
    if kind == "bytes":
        return text + draw(st.sampled_from([b"\xff", b"\xed\xa0\x80", b"\x00\x00"]))
    return text


@given(content=text_forms(), as_json=st.booleans())
@FUZZ
def test_mutated_text_form_never_crashes(tmp_path: Path, content: bytes, as_json: bool) -> None:
    path = tmp_path / "g.txt"
    path.write_bytes(content)
    check_clean(["show", str(path), "--task", "arithmetic"], as_json=as_json)


def test_text_form_with_a_byte_order_mark_reads_like_without(tmp_path: Path) -> None:
    path = tmp_path / "g.txt"
    path.write_bytes(b"\xef\xbb\xbf" + to_text(star(2, MODEL)).encode())
    code, stdout, _, _ = invoke(["show", str(path), "--task", "arithmetic", "--json"])
    assert code == 0 and len(json.loads(stdout)["nodes"]) == 4


MODELS_TOML = f"""[models."my-model"]
like = "{MODEL}"
backend = "openai"
base_url = "http://127.0.0.1:9/v1"
served_name = "x"
max_concurrency = 2

[pool]
models = ["my-model", "{MODEL}"]
reference = "{MODEL}"
output = "my-model"
"""
TOML_VALUES = ['"x"', '5', 'true', '-3', '0', 'nan', 'inf', '1.5', '[]', '["x"]', '[1, 2]', '{a = 1}', '9' * 5000,
               '"[link=file:///etc/passwd]x"', '"\\u202e"', '"--help"', '[' * 3000 + ']' * 3000]


@st.composite
def models_files(draw: st.DrawFn) -> bytes:
    lines = MODELS_TOML.splitlines()
    kind = draw(st.sampled_from(["value", "top", "bytes", "name"]))
    if kind == "value":
        k = draw(st.sampled_from([i for i, line in enumerate(lines) if " = " in line]))
        lines[k] = lines[k].split(" = ")[0] + " = " + draw(st.sampled_from(TOML_VALUES))
    elif kind == "top":
        lines.insert(0, draw(st.sampled_from(["models = " + v for v in TOML_VALUES] + ["pool = 5", "x = 1"])))
    elif kind == "name":
        name = draw(st.sampled_from(HOSTILE_TEXT[:12])).replace("\\", "").replace('"', "")
        lines = [line.replace("my-model", name.encode("unicode_escape").decode()) for line in lines]
    text = "\n".join(lines).encode()
    if kind == "bytes":
        return draw(st.sampled_from([b"\x00\xff\xfe", b"\x89PNG\r\n\x1a\n", b"\xef\xbb\xbf"])) + text
    return text


@given(content=models_files(), as_json=st.booleans())
@FUZZ
def test_mutated_models_toml_never_crashes(tmp_path: Path, content: bytes, as_json: bool) -> None:
    path = tmp_path / "models.toml"
    path.write_bytes(content)
    check_clean(["models", "--models", str(path)], as_json=as_json)
    graph = tmp_path / "g.json"
    graph.write_text(graph_to_json(parallel(2, MODEL)))
    check_clean(["show", str(graph), "--models", str(path), "--task", "arithmetic"], as_json=as_json)


def test_a_string_for_a_list_of_models_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text(f'[pool]\nmodels = "{MODEL}"\n')
    _, _, stderr, _ = invoke(["models", "--models", str(path)])
    assert "'models' must be a list of model names" in stderr and "unknown model" not in stderr


JSONL_RECORDS = [{"question": "What is 2+2?", "answer": "4", "id": "a"},
                 {"question": "What is 3+3?", "answer": "6", "id": "b"},
                 {"question": "What is 1+1?", "answer": "2", "id": "c"}]


@st.composite
def jsonl_files(draw: st.DrawFn) -> bytes:
    lines = [json.dumps(r) for r in JSONL_RECORDS]
    k = draw(st.integers(0, len(lines) - 1))
    kind = draw(st.sampled_from(["value", "line", "bytes"]))
    if kind == "value":
        field = draw(st.sampled_from(["question", "answer", "id"]))
        lines[k] = replaced(JSONL_RECORDS[k], (field,), draw(st.sampled_from(HOSTILE_JSON))).replace("\n", "")
    elif kind == "line":
        lines[k] = draw(st.sampled_from(HOSTILE_JSON + ["{", "[", '"x"']))
    text = "\n".join(lines).encode()
    if kind == "bytes":
        return text + draw(st.sampled_from([b"\n\xff\xfe", b"\xef\xbb\xbf", b"\n\x00"]))
    return text


TASK_OPTIONS = [[], ["--option", "grader=numeric"], ["--option", "id_field=id"], ["--option", "grader=choice"],
                ["--option", "grader=5"], ["--option", "seed=x"], ["--option", "search_fraction=2"],
                ["--option", "question_field=nope"], ["--option", "bogus=1"], ["--option", "noequals"]]


@given(content=jsonl_files(), options=st.sampled_from(TASK_OPTIONS), as_json=st.booleans())
@FUZZ
def test_mutated_jsonl_task_never_crashes(tmp_path: Path, content: bytes, options: list[str], as_json: bool) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(content)
    check_clean(["tasks", "--task", f"jsonl:{path}", *options], as_json=as_json)


def test_jsonl_task_that_is_a_directory_or_a_symlink_loop(tmp_path: Path) -> None:
    loop = tmp_path / "loop.jsonl"
    os.symlink(loop, loop)
    for path in (tmp_path, loop):
        assert check_clean(["tasks", "--task", f"jsonl:{path}"], as_json=True) == 2


RECIPE = 'task = "arithmetic"\nmodels = "local"\niterations = 2\n[sampling]\nmax_tokens = 16\n'


@given(line=st.sampled_from(["task", "models", "iterations", "seed", "budget", "sampling", "backend"]),
       value=st.sampled_from(TOML_VALUES + ["\x00", "= ="]), prefix=st.sampled_from([b"", b"\xef\xbb\xbf", b"\xff"]))
@FUZZ
def test_mutated_recipe_never_crashes(tmp_path: Path, line: str, value: str, prefix: bytes) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_bytes(prefix + (RECIPE + f"{line} = {value}\n").encode())
    # eval reads the recipe first, then the graph: a recipe that passes meets a missing graph (exit 2)
    assert check_clean(["eval", str(tmp_path / "missing.json"), "--config", str(recipe)]) == 2


@pytest.mark.parametrize("shape", ["star", "chain"])
@pytest.mark.parametrize("fmt", ["table", "json", "mermaid"])
def test_show_is_fast_on_10000_nodes(tmp_path: Path, shape: str, fmt: str) -> None:
    """A 10,000-node star took 42.6 s in `show`; a 1,100-node chain hit the recursion limit."""
    graph = star(10_000, MODEL) if shape == "star" else chain(10_000, MODEL)
    path = tmp_path / "big.json"
    path.write_text(graph_to_json(graph))
    code, stdout, _, seconds = invoke(["show", str(path), "--task", "arithmetic", "--format", fmt])
    assert code == 0 and seconds < 2.0, seconds
    if fmt == "json":
        assert len(json.loads(stdout)["nodes"]) == len(graph.nodes)


def test_markup_in_a_model_name_prints_as_written(tmp_path: Path) -> None:
    name = "[link=file:///etc/passwd]x"
    models = tmp_path / "models.toml"
    models.write_text(f'[models."{name}"]\nlike = "{MODEL}"\n')
    code, stdout, _, _ = invoke(["models", "--models", str(models)])
    assert code == 0 and name in stdout
    graph = tmp_path / "g.json"
    graph.write_text(json.dumps({"nodes": [{"id": "a", "model": "[bold]m"}], "edges": []}))
    _, _, stderr, _ = invoke(["show", str(graph)])
    assert "'[bold]m'" in stderr


@pytest.mark.parametrize("bad", [5, True, "ab", [["a", "out", "x"]], [[None, "out"]]])
def test_edges_of_the_wrong_type_are_one_line_naming_edges(tmp_path: Path, bad: Any) -> None:
    path = tmp_path / "g.json"
    path.write_text(json.dumps({**base_graph(), "edges": bad}))
    assert check_clean(["show", str(path)]) == 2
    _, _, stderr, _ = invoke(["show", str(path)])
    assert "edges" in stderr and "  " not in stderr  # rich markup once ate "[source, target]"


@pytest.mark.parametrize("node_id", [None, 5, "--help", "a\u202eb", "\U0001f600", "a\x00b", "[x]"])
def test_ids_outside_the_documented_characters_are_refused(tmp_path: Path, node_id: Any) -> None:
    path = tmp_path / "g.json"
    path.write_text(json.dumps({"nodes": [{"id": node_id, "model": MODEL}], "edges": []}))
    assert check_clean(["show", str(path)]) == 2


@pytest.mark.parametrize("damage", ["cycle", "unknown-node", "duplicate-id", "text-form", "text-form-cycle"])
def test_broken_10000_node_graphs_fail_fast(tmp_path: Path, damage: str) -> None:
    """Large broken graphs: one line, exit 2, under 2 s of CPU (the cycle check is iterative)."""
    data = chain(10_000, MODEL).to_dict()
    if damage in ("cycle", "text-form-cycle"):
        data["edges"].append(["a10000", "a1"])
    elif damage == "unknown-node":
        data["edges"].append(["a5000", "nowhere"])
    elif damage == "duplicate-id":
        data["nodes"][-2]["id"] = "a1"
    path = tmp_path / ("big.txt" if damage.startswith("text-form") else "big.json")
    if damage.startswith("text-form"):
        text = to_text(chain(10_000, MODEL))
        if damage == "text-form-cycle":
            text = text.replace("Node a1 | model=smollm2-135m | role=assistant | preds=[]",
                                "Node a1 | model=smollm2-135m | role=assistant | preds=[a10000]")
        path.write_text(text)
    else:
        path.write_text(json.dumps(data))
    expected = 0 if damage == "text-form" else 2
    assert check_clean(["show", str(path), "--task", "arithmetic"], as_json=True) == expected
