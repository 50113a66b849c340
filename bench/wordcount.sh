#!/usr/bin/env bash
# Word count on about 1 GiB: Quern's embedded cluster (`quern run wordcount --reducers 2`, two
# one-slot workers) against the fastest plain loop we can write
# (testkit/src/bin/wordcount-baseline.rs), over the same files, interleaved in one run, release
# builds, a warm page cache, medians of N runs each (default 5), and the ratio. Both outputs are
# checked identical. Two inputs, made once from the shared corpus in $BENCH_DIR:
#   many: 64 files of 16 MiB (copies of the books, cut at 16 MiB);
#   big:  16 files of ~69 MB (the corpus 21 times over, whole books).
#   bash bench/wordcount.sh [RUNS] [many|big|both]
set -euo pipefail
cd "$(dirname "$0")/.."
# No progress lines on stderr: the bench prints its own results.
export QUERN_QUIET=1
runs=${1:-5}
which=${2:-both}
dir=${BENCH_DIR:-/tmp/quern-bench}
corpus=../shared/corpus/gutenberg
release=${CARGO_TARGET_DIR:-target}/release
cargo build --release -q -p quern -p quern-testkit
make_inputs() {
  mkdir -p "$dir"
  cat "$corpus"/*.txt > "$dir/book"
  if [ ! -f "$dir/input/.complete" ]; then
    mkdir -p "$dir/input"
    for _ in $(seq 6); do cat "$dir/book" "$dir/book" "$dir/book"; done > "$dir/book16"
    for i in $(seq -w 1 64); do head -c $((16 << 20)) "$dir/book16" > "$dir/input/part-$i.txt"; done
    touch "$dir/input/.complete"
  fi
  if [ ! -f "$dir/input-big/.complete" ]; then
    mkdir -p "$dir/input-big"
    for _ in $(seq 21); do cat "$dir/book"; done > "$dir/input-big/part-01.txt"
    for i in $(seq -w 2 16); do cp "$dir/input-big/part-01.txt" "$dir/input-big/part-$i.txt"; done
    touch "$dir/input-big/.complete"
  fi
}
time_of() { local s e; s=$(date +%s.%N); "$@" > /dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# bench NAME INPUT_DIR: both sides interleaved, the outputs compared, medians and the ratio.
bench() {
  local name=$1 input=$2 base=() quern=()
  echo "== $name: $(du -sh "$input" | cut -f1) in $(ls "$input" | wc -l) files"
  for _ in $(seq "$runs"); do
    base+=("$(time_of "$release/wordcount-baseline" "$input" "$dir/baseline.txt")")
    quern+=("$(time_of "$release/quern" run wordcount --input "$input" --output "$dir/quern-out" --reducers 2 --overwrite)")
  done
  if ! cmp -s <(LC_ALL=C sort "$dir"/quern-out/part-r-*) <(LC_ALL=C sort "$dir/baseline.txt"); then
    echo "the outputs differ: $dir/quern-out and $dir/baseline.txt" >&2
    exit 1
  fi
  echo "outputs identical: $(wc -l < "$dir/baseline.txt") words"
  local b q
  b=$(printf '%s\n' "${base[@]}" | median); q=$(printf '%s\n' "${quern[@]}" | median)
  echo "baseline:   ${base[*]} s  median $b s"
  echo "quern run:  ${quern[*]} s  median $q s"
  echo "ratio quern/baseline ($name): $(echo "scale=2; $q / $b" | bc)"
}
make_inputs
case $which in
  many) bench many "$dir/input" ;;
  big) bench big "$dir/input-big" ;;
  both) bench many "$dir/input"; bench big "$dir/input-big" ;;
  *) echo "which input: many, big or both, not '$which'" >&2; exit 2 ;;
esac
