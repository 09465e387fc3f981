#!/usr/bin/env bash
# A/B of a change on this machine, whose speed drifts by 30-40 % over minutes: runs a bench in
# two built checkouts in interleaved ABBA order, so drift falls on both sides alike, and prints
# each run's headline lines in the order they ran.
#
#   bench/ab.sh <before-dir> <after-dir> <pairs> <bench> [ENV=VALUE ...]
#   e.g. git worktree add /tmp/before HEAD~1 && ln -s "$PWD/node_modules" /tmp/before/ \
#        && (cd /tmp/before && npm run -s build) && npm run -s build \
#        && bench/ab.sh /tmp/before . 3 pipeline BENCH_ONLY=full
#
# <bench> is api or pipeline (dist/bench/<bench>.bench.js of each checkout; build both first).
# Judge a change by whether its runs beat the other side's across the pairs, not by one pair.
set -euo pipefail
[ $# -ge 4 ] || { sed -n '2,12p' "$0"; exit 2; }
before=$1 after=$2 pairs=$3 bench=$4
shift 4
for dir in "$before" "$after"; do
  [ -f "$dir/dist/bench/$bench.bench.js" ] || { echo "no dist/bench/$bench.bench.js in $dir: build it first" >&2; exit 2; }
done
headline='^(burst|sustained|  service CPU|ceiling|full speed|[0-9,]+/s offered|  settled end|  accepted → submitted:|  receipt → webhook received:)'
run() {
  echo "== $1"
  (cd "$1" && env "${@:2}" node "dist/bench/$bench.bench.js" 2>&1 | grep -E "$headline" | sed 's/ (goal[^)]*)//g')
}
for i in $(seq 1 "$pairs"); do
  if [ $((i % 2)) = 1 ]; then order=("$before" "$after"); else order=("$after" "$before"); fi
  for dir in "${order[@]}"; do run "$dir" "$@"; done
done
