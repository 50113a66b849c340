#!/usr/bin/env bash
# Small files: word count over the corpus cut into 10,000 files of about 330 bytes, against the
# same bytes in 8 files, on Quern's embedded cluster, interleaved in one run, release build, a
# warm page cache, medians of N runs each (default 5), and the ratio (the goal: at most 3x).
# Small files are packed into shared map tasks (see coordinator/src/split.rs); without that,
# each would be a task of its own. Both outputs are checked identical. The inputs are made once
# from the shared corpus (its books cut at line boundaries) in $BENCH_DIR.
#   bash bench/small_files.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
# No progress lines on stderr: the bench prints its own results.
export QUERN_QUIET=1
runs=${1:-5}
dir=${BENCH_DIR:-/tmp/quern-small-bench}
quern=${CARGO_TARGET_DIR:-target}/release/quern
corpus=../shared/corpus/gutenberg
cargo build --release -q -p quern

# Cuts $dir/book at line boundaries into $1 files of about equal bytes, in directory $2.
cut_book() {
  mkdir -p "$2"
  LC_ALL=C awk -v total="$(wc -c < "$dir/book")" -v files="$1" -v out="$2" '
    { n = int(seen * files / total)
      if (n != last) { close(name); last = n }
      name = sprintf("%s/part-%05d.txt", out, n)
      print > name
      seen += length($0) + 1 }' "$dir/book"
}

if [ ! -f "$dir/.complete" ]; then
  rm -rf "$dir" && mkdir -p "$dir"
  cat "$corpus"/*.txt > "$dir/book"
  cut_book 10000 "$dir/small"
  cut_book 8 "$dir/big"
  touch "$dir/.complete"
fi
for input in small big; do
  echo "$input: $(cat "$dir/$input"/* | wc -c) bytes in $(ls "$dir/$input" | wc -l) files"
done
time_of() { local s e; s=$(date +%s.%N); "$@" > /dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
wordcount() { "$quern" run wordcount --input "$dir/$1" --output "$dir/$1-out" --reducers 2 --overwrite; }
small=(); big=()
for _ in $(seq "$runs"); do
  small+=("$(time_of wordcount small)")
  big+=("$(time_of wordcount big)")
done
if ! cmp -s <(LC_ALL=C sort "$dir"/small-out/part-r-*) <(LC_ALL=C sort "$dir"/big-out/part-r-*); then
  echo "the outputs differ: $dir/small-out and $dir/big-out" >&2
  exit 1
fi
echo "outputs identical: $(cat "$dir"/big-out/part-r-* | wc -l) words"
s=$(printf '%s\n' "${small[@]}" | median); b=$(printf '%s\n' "${big[@]}" | median)
echo "10,000 files: ${small[*]} s  median $s s"
echo "8 files:      ${big[*]} s  median $b s"
echo "ratio 10,000 files / 8 files: $(echo "scale=2; $s / $b" | bc)"
