#!/usr/bin/env bash
# The control plane at the MapReduce paper's scale, over the real protocol: the real `quern
# coordinator` in its own process (no TLS, no token on loopback, no journal, 1 s heartbeats), and
# 2,000 simulated workers in one other process (worker/examples/sim_workers.rs), each with its
# own registration, heartbeats and assignment stream. One job of 200,000 zero-work maps and
# 5,000 reduces: the input is a sparse file cut into 1 KiB splits that no one reads; maps succeed
# at once, reduces learn every map output's location and commit an empty part file.
# Prints the coordinator's CPU while the workers only heartbeat, the job's wall time, and the
# coordinator's peak RSS; then the floor under that idle CPU, the same heartbeats taken by a
# plain TCP loop (testkit/src/bin/heartbeat-floor.rs), and the coordinator's ratio to it.
#   bash bench/control_plane.sh        (WORKERS, SLOTS, MAPS, REDUCES, CONNECTIONS override;
#                                       PERF_DATA=FILE records a perf profile of the job)
set -euo pipefail
cd "$(dirname "$0")/.."
# No progress lines on stderr: the bench prints its own results.
export QUERN_QUIET=1
workers=${WORKERS:-2000} slots=${SLOTS:-4} maps=${MAPS:-200000} reduces=${REDUCES:-5000}
connections=${CONNECTIONS:-50}
target=${CARGO_TARGET_DIR:-target}
# Three builds: a target flag (--example, --bin) limits every -p of its command to that target.
cargo build --release -q -p quern
cargo build --release -q -p quern-worker --example sim_workers
cargo build --release -q -p quern-testkit --bin heartbeat-floor
quern=$target/release/quern
sim=$target/release/examples/sim_workers
floor=$target/release/heartbeat-floor
dir=$(mktemp -d "${TMPDIR:-/tmp}/quern-control-plane.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"

truncate -s $((maps * 1024)) "$dir/input"
"$quern" coordinator --listen 127.0.0.1:0 --heartbeat-interval 1s > "$dir/coordinator.out" 2> "$dir/coordinator.log" &
coordinator=$!
pids+=("$coordinator")
until grep -q 'listening on' "$dir/coordinator.out" 2>/dev/null; do
  kill -0 "$coordinator" || { cat "$dir/coordinator.log"; exit 1; }
  sleep 0.05
done
address=$(sed -n 's/.*listening on //p' "$dir/coordinator.out")

started=$(date +%s%N)
"$sim" --coordinator "$address" --workers "$workers" --slots "$slots" --connections "$connections" \
  > "$dir/sim.out" 2> "$dir/sim.log" &
pids+=($!)
until grep -q registered "$dir/sim.out" 2>/dev/null; do
  kill -0 "${pids[1]}" || { tail "$dir/sim.log"; exit 1; }
  sleep 0.1
done
echo "$workers simulated workers ($slots slots, $connections control + $connections task connections) registered in $((($(date +%s%N) - started) / 1000000)) ms"

ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/${1:-$coordinator}/stat"; }
cpu_seconds() { echo "scale=1; ($2 - $1) / $ticks" | bc; }
idle_window() { # SECONDS [PID]: the process's CPU over that long, as % of one core
  local before after; before=$(cpu_ticks "${2:-}"); sleep "$1"; after=$(cpu_ticks "${2:-}")
  echo "scale=1; 100 * ($after - $before) / $ticks / $1" | bc
}
# The machine is noisy: the median of three 10 s windows, each shown.
idle_cpu() { # [PID], the coordinator's by default
  local windows=() median
  for _ in 1 2 3; do windows+=("$(idle_window 10 "${1:-}")"); done
  median=$(printf '%s\n' "${windows[@]}" | sort -n | sed -n 2p)
  echo "${median}% of one core (median of 10 s windows: ${windows[*]})"
}
sleep 3
idle=$(idle_cpu)
echo "coordinator CPU, idle with $workers heartbeating workers: $idle"

if [ -n "${PERF_DATA:-}" ]; then
  perf record -g -o "$PERF_DATA" -p "$coordinator" 2> /dev/null &
  pids+=($!)
fi
started=$(date +%s%N)
coordinator_before=$(cpu_ticks) sim_before=$(cpu_ticks "${pids[1]}")
"$quern" submit wordcount --coordinator "$address" --input "$dir/input" --output "$dir/out" \
  --reducers "$reduces" --split-size 1KiB --wait > "$dir/submit.out"
wall=$((($(date +%s%N) - started) / 1000000))
coordinator_cpu=$(cpu_seconds "$coordinator_before" "$(cpu_ticks)")
sim_cpu=$(cpu_seconds "$sim_before" "$(cpu_ticks "${pids[1]}")")
parts=$(find "$dir/out" -name 'part-r-*' | wc -l)
[ -f "$dir/out/_SUCCESS" ] && [ "$parts" -eq "$reduces" ] || { echo "job incomplete: $parts parts"; exit 1; }
echo "job of $maps maps and $reduces reduces: $wall ms wall (submit to done, $parts empty parts)"
echo "CPU during the job: coordinator $coordinator_cpu s, simulated workers $sim_cpu s"
echo "coordinator peak RSS: $(awk '/VmHWM/ {printf "%.0f MiB", $2 / 1024}' "/proc/$coordinator/status")"
echo "coordinator CPU, idle after the job: $(idle_cpu)"
echo "reduce attempts killed (another attempt of the task finished first): $(grep -c '^killed' "$dir/sim.out" || true)"
failures=$(wc -l < "$dir/sim.log")
echo "simulated workers' failed calls: $failures"
[ "$failures" -eq 0 ] || cut -c1-160 "$dir/sim.log" | sort | uniq -c | sort -rn | head -5
grep -c 'worker lost' "$dir/coordinator.log" | sed 's/^/workers declared lost: /' || true

# The floor: the same heartbeats taken by a plain TCP loop (testkit/src/bin/heartbeat-floor.rs),
# the coordinator and its workers stopped first.
kill "${pids[@]}" 2>/dev/null || true
wait 2>/dev/null || true
pids=()
"$floor" receive 127.0.0.1:0 > "$dir/floor.out" &
pids+=($!)
until grep -q 'listening on' "$dir/floor.out" 2>/dev/null; do sleep 0.05; done
"$floor" send "$(sed -n 's/.*listening on //p' "$dir/floor.out")" "$workers" "$connections" &
pids+=($!)
sleep 3
floor_idle=$(idle_cpu "${pids[0]}")
echo "a plain TCP loop taking the same heartbeats: $floor_idle"
echo "coordinator over the floor: $(echo "scale=2; ${idle%%%*} / ${floor_idle%%%*}" | bc)x"
