#!/usr/bin/env bash
# The main job on the embedded default: set up (idempotent), then search the best test-time-scaling
# graph for the synthetic arithmetic task with Agent-REINFORCE, using the two local models
# (SmolLM2-135M-Instruct, Gemma-3-270M) as workers and SmolLM2 as the search agent, under a budget
# of b = 3 reference nodes; re-score the two best candidates on 3 more search items (racing, so
# a graph lucky on one item does not win), score the chosen graph on 20 held-out test items, print it.
#
# Usage: bash scripts/demo.sh [extra `ttsgraph search` options]
# Rerunning continues (or just re-reports) the same run: it lives in $DEMO_OUT (default
# runs/demo-arithmetic), and every LLM call is cached, so nothing is paid twice.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${DEMO_OUT:-runs/demo-arithmetic}
if [ -f "$OUT/run.sqlite" ]; then
  echo "[demo] continuing the run in $OUT (delete it to start over)"
  exec .venv/bin/ttsgraph search --resume --out "$OUT" "$@"
fi
echo "[demo] searching: Agent-REINFORCE on arithmetic, local pool, budget b=3 (results in $OUT)"
exec .venv/bin/ttsgraph search \
  --task arithmetic \
  --models local \
  --optimizer agent-reinforce --agent smollm2-135m \
  --budget-nodes 3 \
  --iterations 5 --batch 3 \
  --max-tokens 32 \
  --race 2 --race-items 3 \
  --test-limit 20 \
  --seed 0 \
  --out "$OUT" "$@"
