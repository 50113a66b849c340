#!/usr/bin/env bash
# Flat memory: the peak RSS of `quern run` (the whole embedded cluster: coordinator and two
# one-slot workers) must not grow with the input.
#   word count: 1 GiB (16 files of the corpus 21 times over) against 10 GiB (the same files hard
#     linked 10 times over); goal: RSS at 10 GiB within 1.2x of RSS at 1 GiB.
#   sort: 1 GiB of 100-byte base64 lines (8 files) against 2 GiB (hard linked twice), with
#     --sort-buffer 64MiB; goal: at most slots x sort buffer + 150 MiB (278 MiB), at both sizes.
# Peak RSS and elapsed time from /usr/bin/time -v. The input is made in a temporary directory
# under $BENCH_DIR and removed at the end.
#   bash bench/memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# No progress lines on stderr: the bench prints its own results.
export QUERN_QUIET=1
release=${CARGO_TARGET_DIR:-target}/release
cargo build --release -q -p quern
mkdir -p "${BENCH_DIR:-/tmp/quern-bench}"
work=$(mktemp -d "${BENCH_DIR:-/tmp/quern-bench}/memory.XXXXXX")
trap 'rm -rf "$work"' EXIT
corpus=../shared/corpus/gutenberg

# peak COMMAND…: prints "PEAK_KB SECONDS" of a whole process.
peak() {
  /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '
    /Maximum resident set size/ {kb = $2}
    /Elapsed \(wall clock\)/ {n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]}
    END {print kb, s}'
}
mib() { echo $(( $1 / 1024 )); }

mkdir -p "$work/wc1" "$work/wc10" "$work/sort1" "$work/sort2"
cat "$corpus"/*.txt > "$work/book"
for _ in $(seq 21); do cat "$work/book"; done > "$work/wc1/part-01.txt"
for i in $(seq -w 2 16); do cp "$work/wc1/part-01.txt" "$work/wc1/part-$i.txt"; done
for copy in $(seq 10); do
  for f in "$work"/wc1/*.txt; do ln "$f" "$work/wc10/c$copy-$(basename "$f")"; done
done
for i in $(seq 1 8); do head -c 96MiB /dev/urandom | base64 -w 99 > "$work/sort1/part-$i.txt"; done
for copy in 1 2; do
  for f in "$work"/sort1/*.txt; do ln "$f" "$work/sort2/c$copy-$(basename "$f")"; done
done

run() { # NAME JOB INPUT [FLAGS…]
  local name=$1 job=$2 input=$3; shift 3
  read -r kb s < <(peak "$release/quern" run "$job" --input "$input" --output "$work/out" --overwrite "$@")
  echo "$name: $(du -shl "$input" | cut -f1) peak $(mib "$kb") MiB in $s s" >&2
  echo "$kb"
}
wc1=$(run "word count 1 GiB" wordcount "$work/wc1" --reducers 2)
wc10=$(run "word count 10 GiB" wordcount "$work/wc10" --reducers 2)
echo "ratio peak RSS 10 GiB / 1 GiB: $(echo "scale=2; $wc10 / $wc1" | bc) (goal <= 1.2)"
sort1=$(run "sort 1 GiB" sort "$work/sort1" --reducers 4 --workers 2 --sort-buffer 64MiB)
sort2=$(run "sort 2 GiB" sort "$work/sort2" --reducers 4 --workers 2 --sort-buffer 64MiB)
echo "sort peak RSS: $(mib "$sort1") MiB at 1 GiB, $(mib "$sort2") MiB at 2 GiB; bound 2 x 64 + 150 = 278 MiB"
