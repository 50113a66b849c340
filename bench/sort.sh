#!/usr/bin/env bash
# Sort on about 1 GiB of 100-byte base64 lines in 8 files (the performance issue's workload):
# `quern run sort --reducers 4` with 2 workers, against GNU `LC_ALL=C sort -S 4G --parallel=2`
# (the gate) and an in-memory rayon sort (testkit/src/bin/sort-baseline.rs), interleaved in one
# run, release builds, medians of N runs (default 3). All three outputs are checked identical;
# the peak RSS of each side is printed.
#   bash bench/sort.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
# No progress lines on stderr: the bench prints its own results.
export QUERN_QUIET=1
runs=${1:-3}
dir=${BENCH_DIR:-/tmp/quern-sort-bench}
release=${CARGO_TARGET_DIR:-target}/release
cargo build --release -q -p quern -p quern-testkit
if [ ! -f "$dir/input/.complete" ]; then
  mkdir -p "$dir/input"
  for i in $(seq 1 8); do head -c 96MiB /dev/urandom | base64 -w 99 > "$dir/input/part-$i.txt"; done
  touch "$dir/input/.complete"
fi
echo "input: $(du -sh "$dir/input" | cut -f1) in $(ls "$dir/input" | wc -l) files"
# Wall seconds and peak RSS (KB) of a command, as "SECONDS KB"; the bench stops if it fails.
measure() {
  local report
  report=$(/usr/bin/time -f "%e %M" "$@" 2>&1 > /dev/null) || { echo "failed: $* $report" >&2; return 1; }
  echo "$report" | tail -1
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
gnu=(); mem=(); quern=(); gnu_kb=0; mem_kb=0; quern_kb=0
for _ in $(seq "$runs"); do
  # No output of an earlier run can pass the comparison below.
  rm -rf "$dir/gnu.txt" "$dir/rayon.txt" "$dir/quern-out"
  m=$(measure env LC_ALL=C sort -S 4G --parallel=2 -T "$dir" -o "$dir/gnu.txt" "$dir"/input/part-*.txt)
  read -r t kb <<< "$m"; gnu+=("$t"); gnu_kb=$(( kb > gnu_kb ? kb : gnu_kb ))
  m=$(measure "$release/sort-baseline" "$dir/input" "$dir/rayon.txt")
  read -r t kb <<< "$m"; mem+=("$t"); mem_kb=$(( kb > mem_kb ? kb : mem_kb ))
  m=$(measure "$release/quern" run sort --input "$dir/input" --output "$dir/quern-out" --reducers 4 --workers 2 --overwrite)
  read -r t kb <<< "$m"; quern+=("$t"); quern_kb=$(( kb > quern_kb ? kb : quern_kb ))
done
cmp "$dir/gnu.txt" "$dir/rayon.txt"
cmp "$dir/gnu.txt" <(cat "$dir"/quern-out/part-r-*)
echo "outputs identical: $(wc -l < "$dir/gnu.txt") lines"
g=$(printf '%s\n' "${gnu[@]}" | median); m=$(printf '%s\n' "${mem[@]}" | median); q=$(printf '%s\n' "${quern[@]}" | median)
echo "GNU sort:    ${gnu[*]} s  median $g s  peak $((gnu_kb / 1024)) MiB"
echo "rayon sort:  ${mem[*]} s  median $m s  peak $((mem_kb / 1024)) MiB"
echo "quern run:   ${quern[*]} s  median $q s  peak $((quern_kb / 1024)) MiB"
echo "ratio quern/GNU sort: $(echo "scale=2; $q / $g" | bc)"
echo "ratio quern/rayon sort: $(echo "scale=2; $q / $m" | bc)"
