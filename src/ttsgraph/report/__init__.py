"""`ttsgraph report`: one self-contained HTML page (plus PNGs) for a search run or a bench.

The report reads only the run store (`RUN/run.sqlite`), so it can be made at any time, also while
a search is still running or after it crashed. It shows what a user needs to trust (or distrust)
a search's answer: the graph the study chose (its recorded decision, `ttsgraph.selection`), how
the search got there, the accuracy / FLOPs / latency trade-off of every candidate graph with the
Pareto front, where the compute went per model, the held-out test result with its interval, the
agent's transcript, and the latency model's prediction of each graph beside the measured latency.

The page works offline and from disk: images are base64 PNGs inside the HTML, styles are inline,
and there is no script, font or remote resource. A bench directory (one run directory per
optimizer × seed below it) gives one curve per optimizer and one table row per optimizer.

Modules: `data` (reading stores and bench.json), `analysis` (latency estimates, usage, the front),
`markup` (HTML helpers), `sections` (tables), `build` (the page).
"""

from ttsgraph.report.analysis import add_estimates
from ttsgraph.report.build import ReportResult, build_report
from ttsgraph.report.data import RunData, Trial, attach_bench_tests, find_runs, load_bench_summary, load_run

__all__ = ["build_report", "ReportResult", "load_run", "find_runs", "add_estimates", "RunData", "Trial",
           "attach_bench_tests", "load_bench_summary"]
