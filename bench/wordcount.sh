#!/usr/bin/env bash
# Word count on about 1 GiB: Quern's embedded cluster against the fastest plain loop we can
# write (testkit/src/bin/wordcount-baseline.rs), over the same files, interleaved in one run,
# release builds, a warm page cache, medians of N runs each (default 5), and the ratio. Both
# outputs are checked identical. The input is made once from the shared corpus (copies of the
# books, 16 MiB files) in $BENCH_DIR.
#   bash bench/wordcount.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
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
if ! cmp -s <(LC_ALL=C sort "$dir"/quern-out/part-r-*) <(LC_ALL=C sort "$dir/baseline.txt"); then
  echo "the outputs differ: $dir/quern-out and $dir/baseline.txt" >&2
  exit 1
fi
echo "outputs identical: $(wc -l < "$dir/baseline.txt") words"
b=$(printf '%s\n' "${base[@]}" | median); q=$(printf '%s\n' "${quern[@]}" | median)
echo "baseline:   ${base[*]} s  median $b s"
echo "quern run:  ${quern[*]} s  median $q s"
echo "ratio quern/baseline: $(echo "scale=2; $q / $b" | bc)"
