#!/usr/bin/env bash
# The main job on the embedded default: set up (idempotent), then search the best test-time-scaling
# graph for the synthetic arithmetic task with Agent-REINFORCE, using the two local models
# (SmolLM2-135M-Instruct, Gemma-3-270M) as workers and SmolLM2 as the search agent, under a budget
# of b = 3 reference nodes (examples/recipes/demo.toml says the same). The classical strategies that fit (each
# model alone, self-consistency, a refinement chain, parallel + fuser) are scored first on the same
# items as the candidates; the finalists race on up to 20 search items and the cheapest one not
# significantly worse than the most accurate is returned, then scored on 20 held-out test items
# beside the best classical strategy. The last line: the selected graph against the best classical
# strategy on the test items, with the paired 95% CI.
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
  --classical --confirm 3 --confirm-items 20 \
  --test-limit 20 \
  --seed 0 \
  --out "$OUT" "$@"
