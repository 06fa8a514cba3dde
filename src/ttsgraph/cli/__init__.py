"""The `ttsgraph` command line. Each sub-command lives in its own module of this package and
registers itself on the shared Typer `app`; importing the package loads them all."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer.core

from ttsgraph.cli.app import app

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name not in {"app", "common"}:
        importlib.import_module(f"{__name__}.{_info.name}")


def _click_exceptions() -> object:
    """Click's exceptions module as Typer uses it: recent Typer vendors Click as `typer._click`."""
    vendored = getattr(typer.core, "_click", None)
    if vendored is not None and hasattr(vendored, "exceptions"):
        return vendored.exceptions
    import click.exceptions

    return click.exceptions


def main(argv: list[str] | None = None) -> None:
    """The console script. Without `--json` it is Typer's own. Under `--json` a usage error (an
    unknown flag, a value of the wrong type) also prints one JSON object `{"error": ...}` on
    stdout, as the commands' own errors do, so a script reading stdout always gets JSON."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--json" not in args:
        app(args=args, prog_name="ttsgraph")
        return
    errors = _click_exceptions()
    try:
        status = app(args=args, prog_name="ttsgraph", standalone_mode=False)
    except errors.UsageError as exc:  # type: ignore[attr-defined]
        from ttsgraph.cli.common import emit_json, one_line

        where = f"{exc.ctx.command_path}: " if exc.ctx is not None else ""
        emit_json({"error": one_line(where + exc.format_message())})
        exc.show()
        sys.exit(exc.exit_code)
    except errors.ClickException as exc:  # type: ignore[attr-defined]
        exc.show()
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(1)
    if isinstance(status, int) and status:  # non-standalone Click returns an Exit's status
        sys.exit(status)


__all__ = ["app", "main"]
