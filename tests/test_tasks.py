"""Task protocol: splits, self-grading, prompts per role, loading by name, the arithmetic generator."""

from __future__ import annotations

import random

import pytest

from ttsgraph.errors import TaskError
from ttsgraph.tasks import load_task
from ttsgraph.tasks.arithmetic import ArithmeticTask, evaluate
from ttsgraph.tasks.base import Item

# HumanEval is graded in the sandbox; its self-grading lives in tests/test_sandbox.py.
PLAIN_TASKS = ["math500", "gsm8k", "mmlu", "arithmetic"]
ALL_TASKS = PLAIN_TASKS + ["humaneval"]


@pytest.fixture(scope="module")
def tasks():
    return {name: load_task(name) for name in ALL_TASKS}


@pytest.mark.parametrize("name", ALL_TASKS)
def test_splits_are_disjoint_nonempty_and_stable(tasks, name):
    task = tasks[name]
    search, test = task.items("search"), task.items("test")
    assert search and test
    ids_s, ids_t = {i.id for i in search}, {i.id for i in test}
    assert len(ids_s) == len(search) and len(ids_t) == len(test)  # ids unique
    assert not ids_s & ids_t
    assert not {i.question for i in search} & {i.question for i in test} or name == "mmlu"
    again = load_task(name)
    assert [i.id for i in again.items("test")] == [i.id for i in test]  # deterministic across loads


def test_sizes_match_the_datasets(tasks):
    total = {n: len(tasks[n].items("search")) + len(tasks[n].items("test")) for n in ALL_TASKS}
    assert total["math500"] == 500
    assert total["mmlu"] == 14042
    assert total["humaneval"] == 164
    assert len(tasks["gsm8k"].items("test")) == 1319 and len(tasks["gsm8k"].items("search")) == 7473


def test_seed_changes_the_split_but_not_the_ids():
    a, b = load_task("math500", seed=0), load_task("math500", seed=1)
    assert {i.id for i in a.items("test")} != {i.id for i in b.items("test")}
    assert {i.id for i in a.items("test") + a.items("search")} == {i.id for i in b.items("test") + b.items("search")}


def test_filters_never_move_items_between_splits(tasks):
    full_search = {i.id for i in tasks["mmlu"].items("search")}
    sub = load_task("mmlu:college_physics")
    assert sub.items("search") and sub.items("test")
    assert {i.id for i in sub.items("search")} <= full_search
    assert all(i.meta["subject"] == "college physics" for i in sub.items("test"))
    level5 = load_task("math500", level=5, subject="Algebra")
    full_math_test = {i.id for i in tasks["math500"].items("test")}
    assert level5.items("test") and {i.id for i in level5.items("test")} <= full_math_test
    assert all(i.meta["level"] == 5 and i.meta["subject"] == "Algebra" for i in level5.items("test"))


@pytest.mark.parametrize("name", PLAIN_TASKS)
def test_gold_answers_grade_as_correct(tasks, name):
    task = tasks[name]
    items = task.items("search") + task.items("test")
    if len(items) > 1500:  # gsm8k/mmlu: a seeded sample keeps the unit suite fast
        items = random.Random(0).sample(items, 1500)
    grades = [task.grade(i, task.gold_text(i)) for i in items]
    wrong = [(i.id, g) for i, g in zip(items, grades) if not g.correct]
    assert not wrong, wrong[:3]


@pytest.mark.parametrize("name, ceiling", [("math500", 0.05), ("gsm8k", 0.05), ("arithmetic", 0.2), ("mmlu", 0.35)])
def test_shuffled_gold_scores_near_chance(tasks, name, ceiling):
    task = tasks[name]
    items = task.items("test")[: 150 if name == "math500" else 400]  # math-verify is ~30 ms a mismatch
    shuffled = items[:]
    random.Random(1).shuffle(shuffled)
    accuracy = sum(task.grade(i, task.gold_text(j)).correct for i, j in zip(items, shuffled)) / len(items)
    assert accuracy <= ceiling
    if name == "mmlu":  # four options: chance is 25%
        assert accuracy >= 0.15


def test_empty_or_missing_answer_is_not_correct(tasks):
    for name in PLAIN_TASKS:
        task = tasks[name]
        item = task.items("test")[0]
        grade = task.grade(item, "")
        assert not grade.correct and grade.extracted is None and grade.detail


# ---- prompts --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL_TASKS)
def test_prompts_per_role(tasks, name):
    task = tasks[name]
    item = task.items("test")[0]
    alone = task.messages(item, "assistant", [], False)
    assert [m["role"] for m in alone] == ["system", "user"]
    assert item.question.strip()[:40] in alone[1]["content"]
    preds = ["first candidate answer ALPHA", "second candidate answer BETA"]
    synth = task.messages(item, "assistant", preds, False)
    fused = task.messages(item, "fuser", preds, False)
    output = task.messages(item, "fuser", preds, True)
    for msgs in (synth, fused, output):
        body = msgs[-1]["content"]
        assert "ALPHA" in body and "BETA" in body and body.index("ALPHA") < body.index("BETA")
        assert item.question.strip()[:40] in body
    assert synth[0]["content"] != alone[0]["content"]  # synthesis instructions differ from answering
    assert fused[0]["content"] != synth[0]["content"]  # the fuser has its own instructions
    assert output == synth  # the output node with predecessors uses the synthesis prompt
    assert task.messages(item, "IO", [], False) == alone  # paper aliases
    assert task.messages(item, "fuser", [], False) == alone  # nothing to fuse: answer directly


def test_unknown_role_is_a_task_error(tasks):
    with pytest.raises(TaskError, match="role"):
        tasks["arithmetic"].messages(tasks["arithmetic"].items("test")[0], "critic", [], False)


def test_mmlu_prompt_lists_the_choices(tasks):
    item = tasks["mmlu"].items("test")[0]
    user = tasks["mmlu"].messages(item, "assistant", [], False)[1]["content"]
    for letter, choice in zip("ABCD", item.meta["choices"]):
        assert f"{letter}. {choice}" in user


def test_arithmetic_caps_long_predecessors_keeping_the_tail(tasks):
    task = tasks["arithmetic"]
    item = task.items("test")[0]
    long_reply = "blah " * 500 + "Answer: 42"
    body = task.messages(item, "assistant", [long_reply], False)[-1]["content"]
    assert "Answer: 42" in body and len(body) < 600


# ---- loading by name ---------------------------------------------------------------------------
def test_load_task_names_and_options():
    assert load_task("math").name == "math500"
    assert load_task("mmlu:High School Physics").name == "mmlu:high_school_physics"
    assert load_task("arithmetic", digits=2, prompt_tokens=11, answer_tokens=7).lengths.prompt == 11
    with pytest.raises(TaskError, match="unknown task"):
        load_task("imagenet")
    with pytest.raises(TaskError, match="does not take"):
        load_task("gsm8k", digits=3)
    with pytest.raises(TaskError, match="unknown subject"):
        load_task("mmlu:astrology")
    with pytest.raises(TaskError, match="level"):
        load_task("math500", level=9)
    with pytest.raises(TaskError, match="split"):
        load_task("arithmetic").items("train")


def test_paper_lengths_for_paper_tasks(tasks):
    assert (tasks["math500"].lengths.prompt, tasks["math500"].lengths.answer) == (202, 275)
    assert (tasks["mmlu"].lengths.prompt, tasks["mmlu"].lengths.answer) == (213, 215)
    assert (tasks["humaneval"].lengths.prompt, tasks["humaneval"].lengths.answer) == (180, 115)
    assert 20 < tasks["gsm8k"].lengths.prompt < 200  # a chars/4 estimate from the questions


# ---- arithmetic ---------------------------------------------------------------------------------
def test_arithmetic_answers_follow_operator_precedence():
    task = ArithmeticTask(digits=2, terms=4, ops="+-*", size=100, seed=3)
    for item in task.items("search") + task.items("test"):
        assert int(item.answer) == eval(item.meta["expression"])  # noqa: S307 - our own generated expression
    assert evaluate([2, 3, 4], ["+", "*"]) == 14
    assert evaluate([10, 2, 3], ["-", "*"]) == 4


def test_arithmetic_knobs_shape_the_questions():
    task = ArithmeticTask(digits=3, terms=5, ops="*", size=20, seed=7)
    for item in task.items("test"):
        operands = item.meta["expression"].split(" * ")
        assert len(operands) == 5 and all(100 <= int(x) <= 999 for x in operands)
    other = ArithmeticTask(digits=3, terms=5, ops="*", size=20, seed=8)
    assert [i.question for i in other.items("test")] != [i.question for i in task.items("test")]
    assert ArithmeticTask(digits=2, terms=3, size=50).lengths.prompt > ArithmeticTask(digits=1, terms=2, size=50).lengths.prompt


def test_arithmetic_rejects_impossible_configurations():
    with pytest.raises(TaskError, match="distinct"):
        ArithmeticTask(digits=1, terms=2, ops="+", size=100)
    with pytest.raises(TaskError, match="ops"):
        ArithmeticTask(ops="/")
    with pytest.raises(TaskError, match="terms"):
        ArithmeticTask(terms=1)


def test_item_is_frozen():
    item = Item("x/1", "q", "a", {"k": 1})
    with pytest.raises(AttributeError):
        item.answer = "b"  # type: ignore[misc]


def test_humaneval_unsafe_exec_option_parses_text_values():
    assert load_task("humaneval", unsafe_exec="false").unsafe_exec is False
    assert load_task("humaneval", unsafe_exec="true").unsafe_exec is True
    assert load_task("humaneval").unsafe_exec is False
    with pytest.raises(TaskError, match="unsafe_exec"):
        load_task("humaneval", unsafe_exec="maybe")


def test_estimated_prompt_length_counts_the_whole_prompt(tasks):
    arithmetic = tasks["arithmetic"]
    item = arithmetic.items("test")[0]
    system, user = (m["content"] for m in arithmetic.messages(item, "assistant", [], False))
    assert arithmetic.lengths.prompt > len(user) / 4 + len(system) / 8  # the system prompt is counted
