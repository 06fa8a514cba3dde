#!/usr/bin/env bash
# The main job on the embedded default (local models, no GPU, no network): set up, then run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/ttsgraph eval examples/parallel.json --task arithmetic --models local --limit 5 "$@"
