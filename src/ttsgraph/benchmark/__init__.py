"""`ttsgraph bench`: several optimizers and fixed baselines, side by side, on equal terms.

A searched graph is only worth its search if it beats what needs no search at the same cost.
So a bench runs every optimizer × seed as an ordinary study, then scores every selected graph on
the *same* held-out test items next to fixed baselines spending the same budget, and compares
each optimizer with the best baseline item by item.

Modules: `config` (BenchConfig, budget, per-optimizer options), `baselines` (single models,
budget-matched self-consistency), `results` (rows, comparisons, bench.json, curves), `run`
(`run_bench`).
"""

from ttsgraph.benchmark.baselines import run_baselines, run_self_consistency, self_consistency_samples
from ttsgraph.benchmark.config import DEFAULT_OPTIMIZERS, BenchConfig, check_config, optimizer_options
from ttsgraph.benchmark.results import (
    BenchResult,
    BenchRow,
    Comparison,
    RunOutcome,
    aggregate,
    compare,
    load_result,
    plot_curves,
)
from ttsgraph.benchmark.run import run_bench, run_study

__all__ = ["BenchConfig", "BenchResult", "BenchRow", "Comparison", "RunOutcome", "DEFAULT_OPTIMIZERS", "aggregate",
           "check_config", "compare", "load_result", "optimizer_options", "plot_curves", "run_bench",
           "run_baselines", "run_self_consistency", "run_study", "self_consistency_samples"]
