"""Answer extractors shared by the graders: boxed LaTeX, final numbers, choice letters, code blocks.

Models rarely follow an output format exactly, especially small ones, so each extractor tries the
format the prompt asked for first and then progressively looser patterns. Every extractor returns
None rather than guessing when nothing plausible is present, so "no answer" is never scored as a
wrong answer that happens to match.
"""

from __future__ import annotations

import re
from fractions import Fraction

from ttsgraph.tasks.numbers import NUMBER, canonical, clean, numbers_in, parse_number

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (braces balanced), or None."""
    result = None
    for m in _BOXED.finditer(text):
        depth, start = 1, m.end()
        k = start
        while k < len(text) and depth:
            if text[k] == "{":
                depth += 1
            elif text[k] == "}":
                depth -= 1
            k += 1
        if depth == 0:
            result = text[start : k - 1].strip()
    return result


_FINAL_MARKERS = [
    re.compile(r"####\s*(" + NUMBER + ")"),
    re.compile(r"answer\s*(?:is|:|=)\s*:?\s*\**\s*(" + NUMBER + ")", re.IGNORECASE),
    re.compile(r"result\s*(?:is|:|=)\s*:?\s*\**\s*(" + NUMBER + ")", re.IGNORECASE),
]


def normalize_number(text: str) -> str | None:
    """Canonical form (`ttsgraph.tasks.numbers.canonical`) of `text` when it is one written number
    (`1,000`, `$18`, `−5`, `3/4`, `2 1/2`, `1e6`, `50%`, a trailing period), else None."""
    value = parse_number(text)
    return None if value is None else canonical(value)


def numbers_equal(a: str, b: str, rel: float = 1e-6) -> bool:
    """Whether two written numbers have the same value: exactly, or within a relative tolerance
    (so `0.333333` matches `1/3`); False when either is not a number."""
    x, y = parse_number(a), parse_number(b)
    if x is None or y is None:
        return False
    return x == y or abs(x - y) <= Fraction(rel) * max(Fraction(1), abs(x), abs(y))


def final_number(text: str) -> str | None:
    """The model's final number: after `####`, "The answer is", "Answer:", inside `\\boxed{}`,
    else the last number in the text; a whole written number, never a piece of one."""
    text = clean(text)
    for pattern in _FINAL_MARKERS:
        hits = [m.group(1) for m in pattern.finditer(text)]
        if hits:
            value = normalize_number(hits[-1])
            if value is not None:
                return value
    boxed = last_boxed(text)
    if boxed is not None:
        value = normalize_number(re.sub(r"\\text\{[^}]*\}", "", boxed))
        if value is not None:
            return value
    values = numbers_in(text)
    return canonical(values[-1]) if values else None


LETTERS = "ABCDEFGHIJ"


def choice_letter(text: str, choices: list[str] | None = None, n_choices: int = 4) -> str | None:
    """The chosen option letter: `Answer: C`, `(C)`, `C.` / `C)` at a line start, a lone trailing
    letter, or the exact text of one choice. The first explicit "Answer:" wins; otherwise the last
    letter-like mention."""
    letters = LETTERS[: len(choices) if choices else n_choices]
    cls = f"[{letters}]"
    explicit = re.findall(rf"answer\s*(?:is|:)?\s*:?\s*\**\s*\(?({cls})\b\)?", text, re.IGNORECASE)
    explicit = [e for e in explicit if e in letters]
    if explicit:
        return explicit[0].upper()
    boxed = last_boxed(text)
    if boxed:
        m = re.fullmatch(rf"\s*(?:\\text\{{)?\(?({cls})\)?\}}?\s*", boxed)
        if m:
            return m.group(1)
    paren = re.findall(rf"\(({cls})\)", text)
    if paren:
        return paren[-1]
    # A letter opening a line ("C. Paris"). Small models often echo the whole option list; three or
    # more different letters at line starts is an echo, not a choice. Otherwise the first one is the
    # model's leading answer.
    line_starts = re.findall(rf"(?m)^\s*\**({cls})(?:[.):]\s|[.):]?\**\s*$)", text)
    if line_starts:
        if len(set(line_starts)) >= 3:
            return None
        return line_starts[0]
    named = re.findall(rf"(?:option|choice)\s+({cls})\b", text)
    if named:
        return named[-1]
    if choices:
        lowered = text.lower()
        found = [(lowered.rfind(c.strip().lower()), LETTERS[k]) for k, c in enumerate(choices) if c.strip()]
        found = [f for f in found if f[0] >= 0]
        # Only trust a text match when exactly one choice's text occurs.
        if len(found) == 1:
            return found[0][1]
    stripped = text.strip().rstrip(".")
    if stripped in letters and len(stripped) == 1:
        return stripped
    return None


_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


def code_block(text: str, entry_point: str | None = None) -> str | None:
    """Python code from a reply: the first fenced block that defines `entry_point` (else the first
    python/unlabelled block); a reply that is bare code is returned as is."""
    blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(text)]
    blocks = [(lang, body) for lang, body in blocks if lang in ("", "python", "py", "python3") and body.strip()]
    if entry_point:
        for _, body in blocks:
            if re.search(rf"\bdef\s+{re.escape(entry_point)}\s*\(", body):
                return body.rstrip() + "\n"
    if blocks:
        return blocks[0][1].rstrip() + "\n"
    stripped = re.sub(r"</?OUTPUT>", "", text).strip("\n")
    if stripped and re.search(r"^\s*(def |import |from |return |    )", stripped, re.MULTILINE):
        return stripped.rstrip() + "\n"
    return None
