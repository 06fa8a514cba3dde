"""Numbers as values: the written forms a reply or a gold answer uses, read as exact rationals.

Taking the last run of digits reads `1/2` as 2, `2/3` as 3, `1e6` as 6, `1 000` as 0 and `2 1/2`
as 2, so wrong replies matched golds 2, 3, 6 and 0. Here one grammar reads a whole written number
(integers, decimals, thousands separators `1,000` / `1 000` / `1{,}000`, fractions `3/4` and
`\\frac{3}{4}`, mixed numbers `2 1/2`, scientific `1e6` / `1.5 × 10^6`, powers `2^10`, a leading
`$`, a trailing `%` or `\\%`, a unicode minus) into a `fractions.Fraction`, so equality is exact.
"""

from __future__ import annotations

import re
from fractions import Fraction

_SPACES = "[ \u00a0\u2009\u202f]"  # space, no-break space, thin spaces: thousands separators
_UINT = rf"(?:\d{{1,3}}(?:,\d{{3}})+(?!\d)|\d{{1,3}}(?:{_SPACES}\d{{3}})+(?!\d)|\d+)"
_UDEC = rf"(?:{_UINT}(?:\.\d+)?|\.\d+)"
_TIMES = r"(?:\\times|\\cdot|×|\*|x)"


def _tex_frac(n: str, d: str) -> str:
    """`\\frac{3}{4}` (also `\\dfrac`, `\\tfrac`, and `\\frac34` with single-digit arguments)."""
    return rf"\\[dt]?frac\s*(?:\{{\s*(?P<{n}>\d+)\s*\}}|(?P<{n}1>\d))\s*(?:\{{\s*(?P<{d}>\d+)\s*\}}|(?P<{d}1>\d))"


_BODY = (
    rf"(?P<mixed>(?P<mw>\d+)(?:[ \t\u00a0]+(?P<mn>\d+)\s*/\s*(?P<md>\d+)|\s*{_tex_frac('mtn', 'mtd')}))"
    rf"|(?P<frac>(?P<fn>{_UDEC})\s*/\s*(?P<fd>{_UDEC}))"
    rf"|(?P<tex>{_tex_frac('tn', 'td')})"
    rf"|(?P<sci>(?P<sm>{_UDEC})(?:[eE](?P<se>[-+−]?\d+)|\s*{_TIMES}\s*10\s*\^\s*\{{?\s*(?P<sp>[-+−]?\d+)\s*\}}?))"
    rf"|(?P<pow>(?P<pb>\d+)\s*\^\s*\{{?\s*(?P<pe>[-+−]?\d+)\s*\}}?)"
    rf"|(?P<plain>{_UDEC})"
)
# A number in running text: not glued to a word or to a decimal point before it; a minus sign only
# when attached (`10 - 5` ends in 5, not -5).
NUMBER = rf"(?<![\w.])(?P<sign>[-−])?(?:\\?\$\s*)?(?:{_BODY})(?:\s*\\?%)?"
NUMBER_RE = re.compile(NUMBER)
_MAX_EXPONENT = 400  # 10^400 is still a plain number; 10^(10^9) would hang the grader


def _dec(text: str) -> Fraction:
    return Fraction(re.sub(_SPACES + "|,", "", text))


def _exponent(text: str) -> int:
    value = int(text.replace("−", "-"))
    if abs(value) > _MAX_EXPONENT:
        raise ValueError("exponent too large")
    return value


def _value(m: re.Match) -> Fraction | None:
    g = m.groupdict()
    try:
        if g["mixed"]:
            num = g["mn"] or g["mtn"] or g["mtn1"]
            den = g["md"] or g["mtd"] or g["mtd1"]
            value = Fraction(int(g["mw"])) + Fraction(int(num), int(den))
        elif g["frac"]:
            value = _dec(g["fn"]) / _dec(g["fd"])
        elif g["tex"]:
            value = Fraction(int(g["tn"] or g["tn1"]), int(g["td"] or g["td1"]))
        elif g["sci"]:
            value = _dec(g["sm"]) * Fraction(10) ** _exponent(g["se"] or g["sp"])
        elif g["pow"]:
            value = Fraction(int(g["pb"])) ** _exponent(g["pe"])
        else:
            value = _dec(g["plain"])
    except (ValueError, ZeroDivisionError):
        return None
    return -value if g["sign"] else value


_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")


def clean(text: str) -> str:
    """LaTeX spacing and grouping that only decorate a number (`1{,}000`, `1\\,000`, `\\!`), and
    superscript exponents (`10⁶` is `10^{6}`; the `³` of `cm³` is dropped)."""
    text = text.replace("{,}", ",").replace("\\,", "\u2009").replace("\\!", "").replace("\\ ", " ")
    text = re.sub("(?<=[0-9])[⁰¹²³⁴⁵⁶⁷⁸⁹⁻]+", lambda m: "^{" + m.group().translate(_SUPERSCRIPTS) + "}", text)
    return re.sub("[⁰¹²³⁴⁵⁶⁷⁸⁹⁻]+", "", text)  # a unit's power (`cm³`) is not a number


def parse_number(text: str) -> Fraction | None:
    """The value of `text` when it is one written number (a trailing period allowed), else None."""
    s = clean(text).strip().rstrip(".").strip()
    m = NUMBER_RE.fullmatch(s)
    return _value(m) if m else None


def numbers_in(text: str) -> list[Fraction]:
    """The values of the numbers written in `text`, in order (unreadable ones left out)."""
    values = (_value(m) for m in NUMBER_RE.finditer(clean(text)))
    return [v for v in values if v is not None]


def canonical(value: Fraction) -> str:
    """`18`, `3.5`, `-0.125` for values a decimal writes exactly, else `p/q` (`1/3`)."""
    if value.denominator == 1:
        return str(value.numerator)
    den, twos, fives = value.denominator, 0, 0
    while den % 2 == 0:
        den, twos = den // 2, twos + 1
    while den % 5 == 0:
        den, fives = den // 5, fives + 1
    if den != 1:
        return f"{value.numerator}/{value.denominator}"
    places = max(twos, fives)
    scaled = abs(value.numerator) * 10**places // value.denominator
    digits = str(scaled).rjust(places + 1, "0")
    sign = "-" if value < 0 else ""
    return f"{sign}{digits[:-places]}.{digits[-places:]}"
