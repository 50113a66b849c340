#!/usr/bin/env bash
# Map output compression on and off (`--shuffle-compression none|lz4|zstd`), interleaved in one
# run, release builds, medians of N runs (default 3): the 1 GiB sort of bench/sort.sh (whose map
# output is as big as its input) and the 64 × 16 MiB word count of bench/wordcount.sh (whose map
# output is small: the combiner folds it). Prints each codec's median wall time, peak RSS and
# shuffle bytes, and its ratio to no compression; every codec's output is checked identical to
# the uncompressed run's.
#   bash bench/compression.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
# No progress lines on stderr: the bench prints its own results.
export QUERN_QUIET=1
runs=${1:-3}
release=${CARGO_TARGET_DIR:-target}/release
sort_dir=${BENCH_DIR:-/tmp/quern-sort-bench}
wc_dir=${BENCH_DIR:-/tmp/quern-bench}
codecs=(none lz4 zstd)
cargo build --release -q -p quern
[ -f "$sort_dir/input/.complete" ] || { echo "run bash bench/sort.sh once first: it makes the input" >&2; exit 1; }
[ -f "$wc_dir/input/.complete" ] || { echo "run bash bench/wordcount.sh 1 many once first: it makes the input" >&2; exit 1; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# bench NAME INPUT JOB ARGS...: every codec in turn, RUNS times; outputs compared to none's.
bench() {
  local name=$1 input=$2 job=$3; shift 3
  declare -A times=() peak=() shuffle=()
  echo "== $name: $(du -sh "$input" | cut -f1) in $(ls "$input" | wc -l) files"
  for _ in $(seq "$runs"); do
    for codec in "${codecs[@]}"; do
      local out="$sort_dir/out-$codec" report
      rm -rf "$out"
      report=$(/usr/bin/time -f "time %e %M" "$release/quern" run "$job" --input "$input" \
        --output "$out" --workers 2 --shuffle-compression "$codec" "$@" 2>&1) \
        || { echo "failed: $codec: $report" >&2; exit 1; }
      read -r _ t kb <<< "$(grep '^time ' <<< "$report")"
      times[$codec]+="$t "
      peak[$codec]=$(( kb > ${peak[$codec]:-0} ? kb : ${peak[$codec]:-0} ))
      shuffle[$codec]=$(awk '/shuffle:/ {print $2}' <<< "$report")
    done
    for codec in lz4 zstd; do
      cmp <(cat "$sort_dir/out-none"/part-r-*) <(cat "$sort_dir/out-$codec"/part-r-*) \
        || { echo "$codec: output differs from none's" >&2; exit 1; }
    done
  done
  local base
  base=$(tr ' ' '\n' <<< "${times[none]}" | grep . | median)
  for codec in "${codecs[@]}"; do
    local m
    m=$(tr ' ' '\n' <<< "${times[$codec]}" | grep . | median)
    printf '%-5s %s s  median %s s  ratio to none %s  peak %s MiB  shuffle %s MB\n' "$codec" \
      "${times[$codec]}" "$m" "$(echo "scale=2; $m / $base" | bc)" "$((peak[$codec] / 1024))" \
      "$(( ${shuffle[$codec]} / 1000000 ))"
  done
  rm -rf "$sort_dir"/out-*
}
bench sort "$sort_dir/input" sort --reducers 4
bench "word count" "$wc_dir/input" wordcount --reducers 2
