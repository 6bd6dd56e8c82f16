#!/usr/bin/env bash
# One shard of a Strata crash sweep, as a task of a Slurm job array. Each task runs
# `strata sweep --shard env`, which takes its shard from SLURM_ARRAY_TASK_ID (counted from
# SLURM_ARRAY_TASK_MIN) and the shard count from SLURM_ARRAY_TASK_COUNT, so the array's
# size is the only place the count is written. Submit it, then merge the summaries:
#
#   sbatch --array=0-15 deploy/slurm/sweep-array.sh --seeds 0..1000000
#   strata report merge strata-sweep-<jobid>/summary-*.json
#
# (sbatch --wait, or a job with --dependency=afterany:<jobid> running the merge, waits for
# the whole array.) The arguments go to `strata sweep` (--seeds, --ops, --mode,
# --duration ...); the ids may start anywhere (--array=1-16), but must be evenly spaced.
#
# Environment:
#   STRATA      the strata binary (default: `strata` on PATH)
#   STRATA_OUT  where each task writes summary-<task id>.json (its JSON summary, renamed
#               into place only once complete) and corpus-<task id>/ (its failing seeds)
#               (default: ./strata-sweep-<array job id>)
# Exit status: strata's (0 clean, 1 violations found, 2 bad arguments, 3 runtime failure).
#SBATCH --job-name=strata-sweep
#SBATCH --array=0-3
#SBATCH --cpus-per-task=1
#SBATCH --output=strata-sweep-%A_%a.log
set -euo pipefail

strata=${STRATA:-strata}
job=${SLURM_ARRAY_JOB_ID:?sweep-array.sh runs as a Slurm array task: submit it with sbatch --array=...}
task=${SLURM_ARRAY_TASK_ID:?no SLURM_ARRAY_TASK_ID: submit with sbatch --array=...}
out=${STRATA_OUT:-$PWD/strata-sweep-$job}
mkdir -p "$out"

set +e
"$strata" sweep --shard env --jobs "${SLURM_CPUS_PER_TASK:-1}" --json \
  --corpus "$out/corpus-$task" "$@" > "$out/summary-$task.json.partial"
status=$?
set -e
# 0 and 1 (violations found) both leave a complete summary; anything else leaves none, so
# that `report merge` names the shard as missing instead of merging half of it.
if [ "$status" -le 1 ]; then
  mv "$out/summary-$task.json.partial" "$out/summary-$task.json"
else
  rm -f "$out/summary-$task.json.partial"
fi
echo "strata sweep shard (task $task of array job $job): exit $status"
exit "$status"
