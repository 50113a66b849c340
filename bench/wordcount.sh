#!/usr/bin/env bash
# Word count on about 1 GiB: Quern's embedded cluster against a plain rayon loop over the same
# files, both in one run, medians of N runs each, and the ratio. The input is made once from the
# shared corpus (copies of the books, 16 MiB files) in $BENCH_DIR.
#   bash bench/wordcount.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
dir=${BENCH_DIR:-/tmp/quern-bench}
corpus=../shared/corpus/gutenberg
cargo build --release -q -p quern -p quern-testkit
if [ ! -f "$dir/input/.complete" ]; then
  mkdir -p "$dir/input"
  cat "$corpus"/*.txt > "$dir/book"
  for _ in $(seq 6); do cat "$dir/book" "$dir/book" "$dir/book"; done > "$dir/book16"
  for i in $(seq -w 1 64); do head -c $((16 << 20)) "$dir/book16" > "$dir/input/part-$i.txt"; done
  touch "$dir/input/.complete"
fi
echo "input: $(du -sh "$dir/input" | cut -f1) in $(ls "$dir/input" | wc -l) files"
time_of() { local s e; s=$(date +%s.%N); "$@" > /dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
base=(); quern=()
for _ in $(seq "$runs"); do
  base+=("$(time_of target/release/wordcount-baseline "$dir/input" "$dir/baseline.txt")")
  quern+=("$(time_of target/release/quern run wordcount --input "$dir/input" --output "$dir/quern-out" --reducers 2 --overwrite)")
done
b=$(printf '%s\n' "${base[@]}" | median); q=$(printf '%s\n' "${quern[@]}" | median)
echo "rayon loop: ${base[*]} s  median $b s"
echo "quern run:  ${quern[*]} s  median $q s"
echo "ratio quern/rayon: $(echo "scale=2; $q / $b" | bc)"
