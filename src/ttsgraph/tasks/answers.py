"""Answer extractors shared by the graders: boxed LaTeX, final numbers, choice letters, code blocks.

Models rarely follow an output format exactly, especially small ones, so each extractor tries the
format the prompt asked for first and then progressively looser patterns. Every extractor returns
None rather than guessing when nothing plausible is present, so "no answer" is never scored as a
wrong answer that happens to match.
"""

from __future__ import annotations

import re

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


_NUMBER = r"[-−]?\s*\$?\s*(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-−]?\s*\.\d+"
_NUMBER_RE = re.compile(_NUMBER)
_FINAL_MARKERS = [
    re.compile(r"####\s*(" + _NUMBER + ")"),
    re.compile(r"answer\s*(?:is|:|=)\s*:?\s*\**\s*(" + _NUMBER + ")", re.IGNORECASE),
    re.compile(r"result\s*(?:is|:|=)\s*:?\s*\**\s*(" + _NUMBER + ")", re.IGNORECASE),
]


def normalize_number(text: str) -> str | None:
    """Canonical decimal string of a number written with commas, `$`, a unicode minus or a trailing
    period; None if `text` is not a single number."""
    s = text.strip().replace("−", "-").replace("$", "").replace(",", "").replace(" ", "")
    s = s.rstrip(".")
    s = re.sub(r"\\?%$", "", s)
    if not re.fullmatch(r"-?(?:\d+(?:\.\d*)?|\.\d+)", s):
        return None
    value = float(s)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def numbers_equal(a: str, b: str, rel: float = 1e-6) -> bool:
    """Numeric equality with a relative tolerance, for answers such as `18` vs `18.00`."""
    x, y = normalize_number(a), normalize_number(b)
    if x is None or y is None:
        return False
    fx, fy = float(x), float(y)
    return abs(fx - fy) <= rel * max(1.0, abs(fx), abs(fy))


def final_number(text: str) -> str | None:
    """The model's final number: after `####`, "The answer is", "Answer:", inside `\\boxed{}`,
    else the last number in the text."""
    for pattern in _FINAL_MARKERS:
        hits = pattern.findall(text)
        if hits:
            value = normalize_number(hits[-1])
            if value is not None:
                return value
    boxed = last_boxed(text)
    if boxed is not None:
        value = normalize_number(re.sub(r"\\text\{[^}]*\}|\\!|\\,", "", boxed))
        if value is not None:
            return value
    hits = _NUMBER_RE.findall(text)
    for hit in reversed(hits):
        value = normalize_number(hit)
        if value is not None:
            return value
    return None


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
