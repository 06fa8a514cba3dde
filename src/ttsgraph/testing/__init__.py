"""Test helpers for code built on ttsgraph, importable like `optuna.testing`.

`optimizer_contract.OptimizerContract` is the contract every optimizer passes; subclass it in a
test module, name your optimizers, and pytest runs the whole contract on them. Nothing here
imports pytest until a check that needs it runs, so importing the package costs nothing.
"""
