"""Answer extraction and equivalence: the cases where naive graders get it wrong."""

from __future__ import annotations

import pytest

from ttsgraph.tasks.answers import choice_letter, code_block, final_number, last_boxed, normalize_number, numbers_equal
from ttsgraph.tasks.math import extract_math_answer, math_equal


# ---- MATH: boxed extraction and math-verify equivalence -----------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        (r"so \boxed{\frac{1}{2}}.", r"\frac{1}{2}"),
        (r"first \boxed{3} then \boxed{\left( 3, \frac{\pi}{2} \right)}", r"\left( 3, \frac{\pi}{2} \right)"),
        (r"nested \boxed{\sqrt{\frac{a}{b}}} end", r"\sqrt{\frac{a}{b}}"),
        (r"The answer is: $12$", "12"),
        (r"\fbox{7}", "7"),
        ("no final answer here", None),
        (r"unbalanced \boxed{3", None),  # a cut-off box is no answer, not a fallback guess
        ("Adding them up we get\n204", "204"),  # no \boxed{}: the bare final number
        ("Adding them up we get\n$204$.", "204"),
        ("So the total is 204.", "204"),
        (r"Hence the result is $\frac{3}{4}$", r"\frac{3}{4}"),
        ("Expanding, we get\nx^2+2x+1", "x^2+2x+1"),  # a final bare expression
        (r"which gives \(\sqrt{2}\)", r"\sqrt{2}"),
        ("There are 1,000 ways, I think", "1000"),
        ("7" * 5000, None),  # too long to be a final answer, too large to be read as a number
    ],
)
def test_math_extraction(text, expected):
    assert extract_math_answer(text) == expected


@pytest.mark.parametrize(
    "gold, predicted",
    [
        (r"\frac{1}{2}", "0.5"),  # fraction vs decimal
        (r"\dfrac{3}{4}", "0.75"),
        (r"\left( 3, \frac{\pi}{2} \right)", r"(3, \pi/2)"),  # same tuple, different spelling
        ("1, 2", "2, 1"),  # a list of solutions in another order
        (r"\{1,2\}", r"\{2,1\}"),
        (r"10\text{ inches}", "10"),  # unit noise in the gold
        ("10", r"10 \text{ cm}"),  # unit noise in the prediction
        (r"90^\circ", "90"),
        (r"\$18", "18"),
        ("x^2+2x+1", "(x+1)^2"),  # equivalent expressions
        (r"\frac{\sqrt{3}}{2}", r"\sqrt{3}/2"),
        (r"\text{(C)}", "C"),
    ],
)
def test_math_equivalent(gold, predicted):
    assert math_equal(gold, predicted)


@pytest.mark.parametrize(
    "gold, predicted",
    [
        ("(1,2)", "(2,1)"),  # an ordered pair is not a set
        ("3", "4"),
        (r"\frac{1}{2}", "0.55"),
        (r"2\sqrt{2}", r"\sqrt{2}"),
        ("x+1", "x-1"),
    ],
)
def test_math_not_equivalent(gold, predicted):
    assert not math_equal(gold, predicted)


def test_math_equal_works_off_the_main_thread():
    # math-verify's signal.alarm timeouts only work in the main thread; we must not crash elsewhere.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(math_equal, r"\frac{1}{4}", "0.25").result() is True
        assert pool.submit(math_equal, r"\frac{1}{4}", "0.2").result() is False


# ---- numbers (GSM8K, arithmetic, jsonl numeric) -------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ("She makes 9 * 2 = $18 every day.\n#### 18", "18"),
        ("The answer is $1,234.", "1234"),
        ("The answer is: 18.", "18"),
        ("So the total is 5 + 7 = 12 dollars. Answer: 12", "12"),
        ("Answer: -7", "-7"),
        ("answer = 3.50", "3.5"),
        ("It costs 40 and then 2 more, 42.", "42"),
        ("The final result is \\boxed{1,000}", "1000"),
        ("no digits at all", None),
        ("The answer is 18 apples, not 20", "18"),
        ("The volume is 700+280 = 980cm³", "980"),  # a unit's power is not the last number
        ("take 180/30 = 6 bottles of vitamin D3.", "6"),  # nor a digit inside a word
    ],
)
def test_final_number(text, expected):
    assert final_number(text) == expected


@pytest.mark.parametrize(
    "gold, reply",
    [
        ("2", "The answer is 1/2"),  # the last digit run was 2
        ("3", "The answer is 2/3"),
        ("6", "The answer is 1e6"),
        ("0", "The answer is 1 000"),
        ("2", "The answer is 2 1/2"),
        ("2", r"The answer is \frac{1}{2}"),
        ("10", "so the answer is 1.5 × 10^6"),
        ("4", "It is 3/4."),
        ("10", "That makes 10⁶"),
        ("-5", "so 10 - 5"),  # a detached minus is subtraction, not a sign
    ],
)
def test_numbers_are_read_whole_not_by_their_last_digits(gold, reply):
    extracted = final_number(reply)
    assert extracted is not None and not numbers_equal(extracted, gold), extracted


@pytest.mark.parametrize(
    "text, value",
    [
        ("1/2", "0.5"),
        ("-3/4", "-0.75"),
        ("2/3", "2/3"),
        ("2 1/2", "2.5"),
        (r"2\frac{1}{2}", "2.5"),
        (r"\dfrac{3}{4}", "0.75"),
        (r"-\frac12", "-0.5"),
        ("1e6", "1000000"),
        ("1.5E-3", "0.0015"),
        ("1.5 × 10^6", "1500000"),
        (r"3 \times 10^{-2}", "0.03"),
        ("2^10", "1024"),
        ("10⁶", "1000000"),
        ("5 × 10⁻³", "0.005"),
        ("1 000", "1000"),
        ("1,000,000", "1000000"),
        ("1{,}000", "1000"),
        (r"1\,000", "1000"),
        ("$1,234.50", "1234.5"),
        ("50%", "50"),
        ("−7", "-7"),
        (".25", "0.25"),
    ],
)
def test_written_forms_read_as_exact_values(text, value):
    assert normalize_number(text) == value
    assert final_number(f"Working... 17 steps. The answer is {text}") == value
    assert final_number(f"Working... 17 steps, so {text}") == value  # the last number, no marker


def test_exact_rationals_and_tolerance():
    assert numbers_equal("1/3", "2/6") and numbers_equal("0.333333", "1/3")
    assert numbers_equal("2 1/2", "5/2") and numbers_equal("1e6", "1,000,000")
    assert not numbers_equal("1/3", "0.33") and not numbers_equal("1e6", "1e5")
    assert normalize_number("1/0") is None


def test_unreadable_numbers_give_none_not_a_crash():
    assert normalize_number("1" * 5000) is None  # beyond Python's int-from-text limit
    assert normalize_number("10^99999") is None  # an exponent that would hang the grader
    assert final_number("3:30 p.m.") == "30"  # a reply is still read (only golds are refused)


@pytest.mark.parametrize("gold", ["3:30 p.m.", "February 3rd", "5:6", "18 apples", "1/2/2024", "x + 1"])
def test_jsonl_numeric_task_refuses_a_non_numeric_gold_naming_file_and_line(tmp_path, gold):
    import json

    from ttsgraph.errors import FileFormatError
    from ttsgraph.tasks import load_task

    path = tmp_path / "golds.jsonl"
    path.write_text(json.dumps({"question": "a", "answer": "4"}) + "\n" + json.dumps({"question": "b", "answer": gold}) + "\n")
    with pytest.raises(FileFormatError, match="one number") as info:
        load_task(f"jsonl:{path}", grader="numeric")
    assert str(info.value).startswith(f"{path}:2: ")


@pytest.mark.parametrize("gold, right, wrong", [("2 1/2", "The answer is 5/2", "The answer is 2"), ("1e6", "Answer: 1,000,000", "Answer: 6"), ("3/4", "Answer: 0.75", "Answer: 4")])
def test_jsonl_numeric_task_grades_by_value(tmp_path, gold, right, wrong):
    import json

    from ttsgraph.tasks import load_task

    path = tmp_path / "golds.jsonl"
    path.write_text(json.dumps({"question": "a", "answer": gold}) + "\n" + json.dumps({"question": "b", "answer": "1"}) + "\n")
    task = load_task(f"jsonl:{path}", grader="numeric")
    item = next(i for i in task.items("search") + task.items("test") if i.question == "a")
    assert task.grade(item, right).correct and not task.grade(item, wrong).correct


def test_number_normalization_and_equality():
    assert normalize_number("1,000") == "1000"
    assert normalize_number(" −5 ") == "-5"
    assert normalize_number("18.00") == "18"
    assert normalize_number("twelve") is None
    assert numbers_equal("18", "18.0")
    assert numbers_equal("$1,000", "1000")
    assert not numbers_equal("18", "19")
    assert not numbers_equal("18", "abc")


# ---- multiple choice --------------------------------------------------------------------------
CHOICES = ["Paris", "Berlin", "Madrid", "Rome"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Answer: C\nBecause...", "C"),
        ("The answer is (B).", "B"),
        ("<OUTPUT>Answer: D\nReasoning: it is.</OUTPUT>", "D"),
        ("I think it is\nA. Paris because...", "A"),
        ("After thinking, (C) is right", "C"),
        ("Let me reason.\nB", "B"),
        ("The capital is Madrid.", "C"),  # the text of exactly one choice
        ("It is either Paris or Rome.", None),  # two choices named: refuse to guess
        ("I don't know.", None),
        ("answer: \\boxed{B}", "B"),
        ("Answer: A. Actually (B) looks better", "A"),  # the explicit answer line wins
        ("A. Paris\nB. Berlin\nC. Madrid\nD. Rome", None),  # an echoed option list is no answer
        ("C. Madrid.\n\nB. is wrong because...", "C"),  # the leading line-start letter
    ],
)
def test_choice_letter(text, expected):
    assert choice_letter(text, choices=CHOICES) == expected


def test_choice_letter_ignores_letters_outside_the_choices():
    assert choice_letter("Answer: E", n_choices=4) is None
    assert choice_letter("Answer: E", n_choices=5) == "E"


# ---- code -----------------------------------------------------------------------------------
def test_code_block_prefers_the_block_defining_the_entry_point():
    text = "Helper:\n```python\nimport math\n```\nSolution:\n```python\ndef add(a, b):\n    return a + b\n```\n"
    assert code_block(text, "add") == "def add(a, b):\n    return a + b\n"
    assert code_block(text) == "import math\n"


def test_code_block_accepts_bare_code_and_unclosed_fences():
    assert code_block("def f(x):\n    return x\n", "f").startswith("def f(x):")
    assert "return 1" in code_block("```python\ndef g():\n    return 1\n", "g")
    assert code_block("I cannot help with that.") is None


def test_last_boxed_handles_nested_braces():
    assert last_boxed(r"\boxed{\frac{1}{\sqrt{2}}}") == r"\frac{1}{\sqrt{2}}"
    assert last_boxed("nothing") is None
