"""Running a study's model calls on a Ray cluster (the optional `ttsgraph[distributed]` extra).

What runs where: the driver (the `ttsgraph` process) keeps everything that decides what a run
*means* — the optimizer, each graph × item job's DAG walk and sample indices, the response cache,
grading and the run store — and sends every uncached node call to a Ray actor. Each actor builds
its own backends from the run's pool (the embedded models load once per actor). Because the cache
is consulted before a call leaves the driver and written only by it, a run on Ray gives the same
per-item results, cache hits and common random numbers as the local evaluator.

Only `ray_backend` imports Ray, and only when a run asks for `--executor ray`.
"""
