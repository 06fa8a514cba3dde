"""Every built-in optimizer against the contract in `ttsgraph.testing.optimizer_contract` (the same
class a new optimizer's own tests subclass)."""

from __future__ import annotations

from ttsgraph.testing.optimizer_contract import BUILTIN_OPTIMIZERS, OptimizerContract


class TestBuiltinOptimizers(OptimizerContract):
    optimizers = BUILTIN_OPTIMIZERS


def test_the_contract_is_importable_without_pytest() -> None:
    """A package user imports the contract module in any process: it must not pull pytest in."""
    import subprocess
    import sys

    code = ("import sys; import ttsgraph.testing.optimizer_contract as c; "
            "assert 'pytest' not in sys.modules, 'pytest imported'; print(len(c.BUILTIN_OPTIMIZERS))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "6", out.stderr[-2000:]
