"""Reading the files users hand us (graphs, models.toml, recipes, JSONL tasks) without crashing.

Every such file is untrusted text: it may be a directory, a symlink loop, binary, start with a
byte-order mark, hold a 5,000-digit number or nest past the parser's depth. Each case must end as
one `FileFormatError` naming the file, never a traceback, so the readers share these helpers.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from ttsgraph.errors import FileFormatError

# What the parsers raise besides their own syntax errors: ValueError for an integer past Python's
# digit limit, RecursionError for nesting past the interpreter's depth.
PARSER_FAULTS = (ValueError, RecursionError)


def read_text_file(path: str | Path, what: str) -> str:
    """A user's file as text: UTF-8, a leading byte-order mark dropped (editors on Windows write
    one); unreadable (a directory, a symlink loop, no permission) or binary is a FileFormatError."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise FileFormatError(f"cannot read {what}: {exc.strerror or type(exc).__name__}", path=str(path)) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"{what} is not UTF-8 text (byte {exc.start}: {exc.reason})", path=str(path)) from None


def parse_error(exc: BaseException) -> str:
    """A parser's complaint cut to one short line (it may quote the offending input)."""
    lines = str(exc).splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 120 else text[:120] + "…"


def load_toml(text: str, path: str | Path, what: str) -> dict[str, Any]:
    """Parse TOML; a syntax error names the line tomllib reports, any other parser fault the file."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise FileFormatError(f"not valid TOML: {parse_error(exc)}", path=str(path),
                              line=int(m.group(1)) if m else None) from None
    except PARSER_FAULTS as exc:
        raise FileFormatError(f"not valid TOML ({what}): {parse_error(exc)}", path=str(path)) from None
