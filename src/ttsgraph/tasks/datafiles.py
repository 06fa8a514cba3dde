"""Reading the datasets vendored with the package (gzip JSONL under `tasks/data/`).

Vendoring means an installed wheel evaluates MATH-500, GSM8K and MMLU with no network and no
checkout of the shared data directory. Files are read once per process and cached.
"""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from importlib import resources

from ttsgraph.errors import FileFormatError, TaskError


@lru_cache(maxsize=None)
def load_records(filename: str) -> tuple[dict, ...]:
    """All records of a vendored `<name>.jsonl.gz`, in file order."""
    ref = resources.files("ttsgraph.tasks").joinpath("data", filename)
    if not ref.is_file():
        raise TaskError(f"vendored data file {filename} is missing from the installed package")
    records = []
    with ref.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise FileFormatError(f"invalid JSON: {e.msg}", path=f"tasks/data/{filename}", line=line_no) from e
    return tuple(records)
