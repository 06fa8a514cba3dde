#!/usr/bin/env bash
# Sets up everything the tests need (idempotent), then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
exec .venv/bin/python -m pytest -q -rs "$@"  # -rs: the log names every skipped test and why
