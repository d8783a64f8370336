#!/usr/bin/env bash
# The lab's gpu preset end to end on one GPU in 10 minutes (issue 22): sizing (training and
# measuring timed on this machine), corpus, training and measuring (5 worker processes sharing
# the GPU), fit, report; the results are copied to measurements/ as lab-gpu.*, ready to commit.
#
#   scripts/lab-gpu.sh                # from the repository root or anywhere
#
# Needs the lab extra (pip install -e ".[lab]"; a .venv in the repository is used if present).
# Settings (environment): PLAN (gpu), TOTAL_S (600), WORKERS (5), OUT (/tmp/lab-gpu),
# DEST (measurements).  The log of every stage is in $OUT/deadline.log and $OUT/logs/.
# To resume after an interruption, rerun the sized plan itself:
#   sparsitylaws lab $OUT/lab-gpu.plan.toml -o $OUT --workers $WORKERS
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi
PLAN="${PLAN:-gpu}"
TOTAL_S="${TOTAL_S:-600}"
WORKERS="${WORKERS:-5}"
OUT="${OUT:-/tmp/lab-gpu}"
DEST="${DEST:-measurements}"
python - <<'PY'
import torch
print("device:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU: CPU")
PY
exec python -m sparsitylaws.lab.deadline "$PLAN" --total-s "$TOTAL_S" --workers "$WORKERS" \
    -o "$OUT" --dest "$DEST"
