"""Custom tasks from a JSONL file: one object a line with a question and an answer.

This is how a practitioner brings their own benchmark. The grader is chosen explicitly
(`exact`, `numeric`, `choice`, `math`) because guessing it from the data would silently grade
"1,000" against "1000" as a string. Any bad record stops loading with the file and line named.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from ttsgraph.errors import FileFormatError, TaskError
from ttsgraph.inputs import PARSER_FAULTS, parse_error, read_text_file
from ttsgraph.tasks.answers import choice_letter, final_number, normalize_number, numbers_equal
from ttsgraph.tasks.base import Item, Task, chars_per_4_lengths, seeded_split
from ttsgraph.tasks.math import extract_math_answer, math_equal

GRADERS = ("exact", "numeric", "choice", "math")

_RULES = {
    "exact": "End your reply with a line 'Answer: <your answer>'.",
    "numeric": "End your reply with 'The answer is: N' where N is the final number.",
    "choice": "Begin your reply with 'Answer: X', where X is the letter of the correct choice.",
    "math": "End with 'The answer is: ' and the final answer inside \\boxed{}.",
}


def normalize_exact(text: str) -> str:
    """Case-, whitespace- and trailing-punctuation-insensitive form for the `exact` grader."""
    s = re.sub(r"\s+", " ", text.strip().strip("*").strip()).casefold()
    return s.rstrip(".").strip().strip("\"'").strip()


def extract_exact(text: str) -> str | None:
    """What follows the last `Answer:` / `The answer is`; else the last non-empty line."""
    hits = re.findall(r"(?:answer\s*is|answer\s*:)\s*:?\s*(.+)", text, re.IGNORECASE)
    if hits:
        return hits[-1].strip()
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else None


# The options a jsonl task takes and their types: `--option KEY=VALUE` arrives as text, an int or a
# bool, and a wrong type must be refused here, not fail later inside a split or a grader.
OPTION_TYPES: dict[str, tuple[type, ...]] = {
    "question_field": (str,), "answer_field": (str,), "id_field": (str, type(None)), "grader": (str,),
    "system_prompt": (str, type(None)), "seed": (int,), "search_fraction": (int, float)}


def _check_options(**options: object) -> None:
    for key, value in options.items():
        if not isinstance(value, OPTION_TYPES[key]) or isinstance(value, bool):
            raise TaskError(f"jsonl: option {key} must be {' or '.join(t.__name__ for t in OPTION_TYPES[key])}, "
                            f"got {value!r}")
    if options["grader"] not in GRADERS:
        raise TaskError(f"jsonl: unknown grader {options['grader']!r}; use one of {', '.join(GRADERS)}")
    fraction = float(options["search_fraction"])  # type: ignore[arg-type]
    if not 0.0 < fraction < 1.0:
        raise TaskError(f"jsonl: option search_fraction must be between 0 and 1 (exclusive), got {fraction}")


def _encodable(text: str) -> bool:
    """Whether the text is valid Unicode (JSON's \\ud800 escapes can make lone surrogates, which no
    file, database or terminal can take)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class JsonlTask(Task):
    """`jsonl:PATH` with options question_field, answer_field, id_field, grader, system_prompt,
    seed, search_fraction."""

    def __init__(
        self,
        path: str | Path,
        question_field: str = "question",
        answer_field: str = "answer",
        id_field: str | None = None,
        grader: str = "exact",
        system_prompt: str | None = None,
        seed: int = 0,
        search_fraction: float = 0.5,
    ) -> None:
        super().__init__()
        _check_options(question_field=question_field, answer_field=answer_field, id_field=id_field, grader=grader,
                       system_prompt=system_prompt, seed=seed, search_fraction=search_fraction)
        self.path = Path(path)
        self.name = f"jsonl:{path}"
        self.grader = grader
        self.question_field, self.answer_field, self.id_field = question_field, answer_field, id_field
        self.system_prompt = system_prompt
        self.persona = "a careful assistant"
        self.answer_rule = _RULES[grader]
        self.synthesis_rule = _RULES[grader]
        self.fuser_instructions = f"Keep the correct reasoning, drop repetition. {_RULES[grader]}"
        self.seed, self.search_fraction = seed, search_fraction
        self._all = self._read()
        self.lengths = chars_per_4_lengths(self._all, prompt_of=self.prompt_text)

    def _read(self) -> list[Item]:
        where = str(self.path)
        if not self.path.exists() and not self.path.is_symlink():
            raise FileFormatError("file not found", path=where)
        lines = read_text_file(self.path, "JSONL task").splitlines()
        items: list[Item] = []
        seen: dict[str, int] = {}
        for line_no, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise FileFormatError(f"invalid JSON ({e.msg} at column {e.colno})", path=where, line=line_no) from None
            except PARSER_FAULTS as e:  # a 5,000-digit number, nesting past the parser's depth
                raise FileFormatError(f"invalid JSON ({parse_error(e)})", path=where, line=line_no) from None
            if not isinstance(record, dict):
                raise FileFormatError(f"expected a JSON object, got {type(record).__name__}", path=where, line=line_no)
            values = {}
            for field in (self.question_field, self.answer_field) + ((self.id_field,) if self.id_field else ()):
                if field not in record:
                    raise FileFormatError(f"missing field {field!r} (has: {', '.join(sorted(record)) or 'nothing'})", path=where, line=line_no)
                value = record[field]
                if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                    raise FileFormatError(f"field {field!r} must be a string or a number, got {type(value).__name__}", path=where, line=line_no)
                if isinstance(value, float) and not math.isfinite(value):
                    raise FileFormatError(f"field {field!r} must be a finite number", path=where, line=line_no)
                value = str(value)
                if not _encodable(value):
                    raise FileFormatError(f"field {field!r} holds a lone surrogate (\\ud800-\\udfff), not text",
                                          path=where, line=line_no)
                if not value.strip():
                    raise FileFormatError(f"field {field!r} is empty", path=where, line=line_no)
                values[field] = value
            if self.grader == "choice" and not re.fullmatch(r"\s*[A-J]\s*", values[self.answer_field]):
                raise FileFormatError(f"grader 'choice' needs a letter answer A-J, got {values[self.answer_field]!r}", path=where, line=line_no)
            if self.grader == "numeric" and normalize_number(values[self.answer_field]) is None:
                # Refused, not cut to its last number: "3:30 p.m." would silently become 30.
                raise FileFormatError(f"grader 'numeric' needs one number as the answer, got {values[self.answer_field]!r}", path=where, line=line_no)
            key = values[self.id_field] if self.id_field else str(line_no)
            if key in seen:
                raise FileFormatError(f"duplicate id {key!r} (first on line {seen[key]})", path=where, line=line_no)
            seen[key] = line_no
            items.append(Item(id=f"{self.path.stem}/{key}", question=values[self.question_field], answer=values[self.answer_field].strip(), meta={"line": line_no}))
        if len(items) < 2:
            raise FileFormatError(f"needs at least 2 records to split into search and test, found {len(items)}", path=where)
        return items

    def _load_splits(self) -> dict[str, list[Item]]:
        search, test = seeded_split(self._all, self.seed, self.search_fraction)
        return {"search": search, "test": test}

    def _answer_system(self) -> str:
        return self.system_prompt if self.system_prompt else super()._answer_system()

    def extract(self, text: str) -> str | None:
        if self.grader == "numeric":
            return final_number(text)
        if self.grader == "choice":
            return choice_letter(text, n_choices=10)
        if self.grader == "math":
            return extract_math_answer(text)
        return extract_exact(text)

    def _matches(self, extracted: str, item: Item) -> tuple[bool, str]:
        if self.grader == "numeric":
            ok = numbers_equal(extracted, item.answer)
        elif self.grader == "choice":
            ok = extracted.strip().upper() == item.answer.strip().upper()
        elif self.grader == "math":
            ok = math_equal(item.answer, extracted)
        else:
            ok = normalize_exact(extracted) == normalize_exact(item.answer)
        return ok, "" if ok else f"expected {item.answer}"

    def gold_text(self, item: Item) -> str:
        if self.grader == "math":
            return f"The answer is: \\boxed{{{item.answer}}}"
        return f"Answer: {item.answer}"
