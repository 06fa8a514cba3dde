"""The `ttsgraph` command line. Each sub-command lives in its own module of this package and
registers itself on the shared Typer `app`; importing the package loads them all."""

from __future__ import annotations

import importlib
import pkgutil

from ttsgraph.cli.app import app

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name not in {"app", "common"}:
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["app"]
