"""Custom JSONL tasks: graders, field names, system prompt, and errors that name file and line."""

from __future__ import annotations

import json

import pytest

from ttsgraph.errors import FileFormatError, TaskError
from ttsgraph.tasks import load_task


def _write(path, records):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def capitals(tmp_path):
    rows = [{"q": f"Capital number {k}?", "a": name} for k, name in enumerate(["Paris", "Rome", "Madrid", "Berlin", "Lisbon", "Vienna"])]
    return _write(tmp_path / "capitals.jsonl", rows)


def test_exact_grader_with_custom_fields_and_system_prompt(capitals):
    task = load_task(f"jsonl:{capitals}", question_field="q", answer_field="a", system_prompt="Be terse.")
    items = task.items("search") + task.items("test")
    assert len(items) == 6 and not {i.id for i in task.items("search")} & {i.id for i in task.items("test")}
    item = items[0]
    assert task.messages(item, "assistant", [], False)[0] == {"role": "system", "content": "Be terse."}
    assert task.grade(item, f"Let me think.\nAnswer: {item.answer.lower()}.").correct
    assert not task.grade(item, "Answer: Atlantis").correct
    assert task.grade(item, task.gold_text(item)).correct
    assert task.grader == "exact"


def test_numeric_choice_and_math_graders(tmp_path):
    numeric = load_task(f"jsonl:{_write(tmp_path / 'n.jsonl', [{'question': 'a', 'answer': '1,000'}, {'question': 'b', 'answer': 7}])}", grader="numeric")
    item = next(i for i in numeric.items("search") + numeric.items("test") if i.question == "a")
    assert numeric.grade(item, "The answer is 1000.").correct
    assert not numeric.grade(item, "The answer is 999").correct

    choice = load_task(f"jsonl:{_write(tmp_path / 'c.jsonl', [{'question': 'x', 'answer': 'B'}, {'question': 'y', 'answer': 'E'}])}", grader="choice")
    item = next(i for i in choice.items("search") + choice.items("test") if i.answer == "E")
    assert choice.grade(item, "Answer: E").correct and not choice.grade(item, "Answer: B").correct

    half = _write(tmp_path / "m.jsonl", [{"question": "x", "answer": r"\frac{1}{2}"}, {"question": "y", "answer": "3"}])
    math = load_task(f"jsonl:{half}", grader="math")
    item = next(i for i in math.items("search") + math.items("test") if i.question == "x")
    assert math.grade(item, "so \\boxed{0.5}").correct


@pytest.mark.parametrize(
    "lines, line_no, message",
    [
        (['{"question": "a", "answer": "1"}', '{"question": "b", "answer": "2"}', "{not json"], 3, "invalid JSON"),
        (['{"question": "a", "answer": "1"}', '["a", "b"]'], 2, "JSON object"),
        (['{"question": "a", "answer": "1"}', '{"question": "b"}'], 2, "missing field 'answer'"),
        (['{"question": "a", "answer": "1"}', "", '{"question": "", "answer": "2"}'], 3, "empty"),
        (['{"question": "a", "answer": "1"}', '{"question": "b", "answer": {"x": 1}}'], 2, "string or a number"),
    ],
)
def test_bad_records_name_file_and_line(tmp_path, lines, line_no, message):
    path = _write(tmp_path / "bad.jsonl", lines)
    with pytest.raises(FileFormatError, match=message) as info:
        load_task(f"jsonl:{path}")
    assert info.value.line == line_no and info.value.path == str(path)
    assert f"{path}:{line_no}:" in str(info.value)


def test_grader_specific_validation_and_duplicates(tmp_path):
    path = _write(tmp_path / "v.jsonl", [{"question": "a", "answer": "B"}, {"question": "b", "answer": "maybe"}])
    with pytest.raises(FileFormatError, match="letter") as info:
        load_task(f"jsonl:{path}", grader="choice")
    assert info.value.line == 2
    with pytest.raises(FileFormatError, match="numeric"):
        load_task(f"jsonl:{path}", grader="numeric")
    dup = _write(tmp_path / "d.jsonl", [{"id": "x", "question": "a", "answer": "1"}, {"id": "x", "question": "b", "answer": "2"}])
    with pytest.raises(FileFormatError, match="duplicate id") as info:
        load_task(f"jsonl:{dup}", id_field="id")
    assert info.value.line == 2


def test_missing_file_bad_grader_and_too_few_records(tmp_path):
    with pytest.raises(FileFormatError, match="not found"):
        load_task(f"jsonl:{tmp_path / 'nope.jsonl'}")
    with pytest.raises(TaskError, match="grader"):
        load_task(f"jsonl:{_write(tmp_path / 'a.jsonl', [{'question': 'a', 'answer': '1'}] * 2)}", grader="fuzzy")
    with pytest.raises(FileFormatError, match="at least 2"):
        load_task(f"jsonl:{_write(tmp_path / 'one.jsonl', [{'question': 'a', 'answer': '1'}])}")
    with pytest.raises(TaskError, match="path"):
        load_task("jsonl:")


def test_lengths_estimated_from_the_data(tmp_path):
    rows = [{"question": "x" * 400, "answer": "y" * 40}, {"question": "x" * 800, "answer": "y" * 40}]
    task = load_task(f"jsonl:{_write(tmp_path / 'len.jsonl', rows)}", system_prompt="s" * 40)
    assert task.lengths.prompt == round((40 + 1 + 600) / 4, 1) and task.lengths.answer == 10.0
    assert load_task(f"jsonl:{tmp_path / 'len.jsonl'}", answer_tokens=99).lengths.answer == 99
