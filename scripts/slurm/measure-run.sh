#!/bin/bash
# Measure one training run on a Slurm cluster in two stages (see docs/measure.md):
#   1. one GPU job finds the run's joint CETT (the paper's stabilizing strategy) -> cett.json
#   2. an array of GPU jobs measures the checkpoints at that CETT, one shard each
#   3. a CPU job merges the shards (refusing shards that disagree) into one table
#
# Usage: scripts/slurm/measure-run.sh RUN_DIR RUN_NAME OUT_DIR [TASKS] [-- extra measure options]
#   e.g. scripts/slurm/measure-run.sh /data/runs/relu-0.1b relu-0.1b measurements/relu-0.1b 8 \
#            -- --warmup-checkpoints 3 --text /data/eval/valid.txt --metric ppl-p --metric zero
# Environment: SBATCH_ARGS (extra sbatch options, e.g. "--account=abc --partition=gpu"),
# SPARSITYLAWS_CACHE (GGUF conversions and offloaded weights; default $SCRATCH/sparsitylaws-cache).
set -euo pipefail
if [ $# -lt 3 ]; then
    sed -n '2,12p' "$0"; exit 2
fi
RUN_DIR=$1; RUN=$2; OUT=$3; shift 3
TASKS=8
if [ $# -gt 0 ] && [ "$1" != "--" ]; then TASKS=$1; shift; fi
[ "${1:-}" = "--" ] && shift
EXTRA=$(printf ' %q' "$@")
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT/shards" "$OUT/logs"
export SPARSITYLAWS_CACHE=${SPARSITYLAWS_CACHE:-${SCRATCH:-$HOME}/sparsitylaws-cache}
COMMON="--run-dir $(printf %q "$RUN_DIR") --run $(printf %q "$RUN")$EXTRA"
export COMMON OUT  # read by the two batch scripts (--export=ALL)
# shellcheck disable=SC2086
find=$(sbatch --parsable ${SBATCH_ARGS:-} --job-name="cett-$RUN" --output="$OUT/logs/cett-%j.log" \
    --export=ALL "$HERE/find-cett.sbatch")
# shellcheck disable=SC2086
array=$(sbatch --parsable ${SBATCH_ARGS:-} --job-name="measure-$RUN" --array="0-$((TASKS - 1))" \
    --dependency="afterok:$find" --output="$OUT/logs/measure-%A_%a.log" \
    --export=ALL "$HERE/measure-array.sbatch")
# shellcheck disable=SC2086
merge=$(sbatch --parsable ${SBATCH_ARGS:-} --job-name="merge-$RUN" --dependency="afterok:$array" \
    --output="$OUT/logs/merge-%j.log" --time=00:20:00 --cpus-per-task=2 --mem=8G \
    --wrap="sparsitylaws merge $(printf %q "$OUT")/shards -o $(printf %q "$OUT/$RUN.parquet")")
echo "submitted: find CETT $find, measure array $array ($TASKS tasks), merge $merge"
