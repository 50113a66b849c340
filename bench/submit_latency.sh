#!/usr/bin/env bash
# Submit latency on a warm cluster, with the coordinator's journal on (--state-dir: every submit
# is fsynced before it is answered) against off (in memory), both in one run, interleaved. Two
# coordinators with two one-slot workers each; each run submits a tiny word count to each and
# times `quern submit` (until the job is accepted) and `quern submit --wait` (until it has
# finished), whole processes, as a user sees them. Prints medians and ratios.
#   bash bench/submit_latency.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
# No progress lines on stderr: the bench prints its own results.
export QUERN_QUIET=1
runs=${1:-21}
dir=${BENCH_DIR:-/tmp/quern-bench}/submit
cargo build --release -q -p quern
quern=${CARGO_TARGET_DIR:-target}/release/quern
rm -rf "$dir" && mkdir -p "$dir"
printf 'the quick brown fox\njumps over the lazy dog\n' > "$dir/in.txt"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT
start() { # NAME [COORDINATOR FLAGS…]: a coordinator and two workers; sets $NAME to its address
  local name=$1; shift
  "$quern" coordinator --listen 127.0.0.1:0 "$@" > "$dir/$name.out" 2> "$dir/$name.log" &
  pids+=($!)
  until grep -q 'listening on' "$dir/$name.out" 2>/dev/null; do sleep 0.05; done
  local address; address=$(sed -n 's/.*listening on //p' "$dir/$name.out")
  for _ in 1 2; do
    "$quern" worker --coordinator "$address" --slots 1 > /dev/null 2>> "$dir/$name.log" & pids+=($!)
  done
  until [ "$("$quern" status --coordinator "$address" | awk 'NR == 1 {print $1}')" -ge 2 ]; do sleep 0.05; done
  printf -v "$name" '%s' "$address"
}
start journal --state-dir "$dir/state"
start memory
# A failed submit ends the whole run: a failure timed as a latency would measure nothing.
ms_of() { local s e; s=$(date +%s%N); "$@" > /dev/null || kill -TERM $$; e=$(date +%s%N); echo $(((e - s) / 1000000)); }
submit() { # ADDRESS OUTPUT [--wait]
  "$quern" submit wordcount --coordinator "$1" --input "$dir/in.txt" --output "$dir/$2" --overwrite "${@:3}"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A t
for run in $(seq "$runs"); do
  for side in journal memory; do
    address=${!side}
    t[$side-submit]+="$(ms_of submit "$address" "out-$side-submit-$run") "
    t[$side-wait]+="$(ms_of submit "$address" "out-$side-wait-$run" --wait) "
  done
done
for what in submit wait; do
  j=$(printf '%s\n' ${t[journal-$what]} | median); m=$(printf '%s\n' ${t[memory-$what]} | median)
  label=$([ "$what" = submit ] && echo "submit (accepted)" || echo "submit --wait (done)")
  echo "$label: journal on ${j} ms, off ${m} ms (medians of $runs); ratio $(echo "scale=2; $j / $m" | bc)"
done
