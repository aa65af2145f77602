#!/usr/bin/env bash
# Measures chat-server with and without --data-dir, alternating in one run (the VM's speed drifts
# within the hour, so only interleaved figures compare): fanout N=1000 and rooms, RUNS pairs of
# each, server pinned to CPU 0 and harness to CPU 1 as in BENCHMARKS.md, a fresh server and a
# fresh data dir for every run; then prints the medians and the ratio.
#
# Usage: benches/run-datadir.sh            Environment: RUNS (default 3), OUT (default
#        benches/run-datadir.sh summary    target/bench-datadir), WORKLOADS (fanout1000 rooms)
# The data dir reaches the server the harness spawns through CHAT_DATA_DIR, which it inherits.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
OUT=$(realpath -m "${OUT:-target/bench-datadir}")
WORKLOADS=${WORKLOADS:-fanout1000 rooms}
mkdir -p "$OUT"

flags() {
  case $1 in
    fanout1000) echo "--workload fanout --receivers 1000 --senders 10" ;;
    rooms) echo "--workload rooms --rooms 500 --room-size 10 --rate 5000" ;;
    *) echo "unknown workload $1" >&2; exit 2 ;;
  esac
}

summary() {
  python3 - "$OUT" <<'EOF'
import glob, json, os, statistics, sys
out = sys.argv[1]
runs = {}
pairs = {}
for path in glob.glob(os.path.join(out, "*.json")):
    workload, mode, run = os.path.basename(path)[:-5].split("-")
    with open(path) as f:
        result = json.load(f)
    runs.setdefault((workload, mode), []).append(result)
    pairs.setdefault((workload, run), {})[mode] = result
def med(rows, get):
    return statistics.median(get(r) for r in rows)
print("| workload | store | runs | msgs/s in | deliveries per server CPU-s | server CPU | p50 | p99 | RSS |")
print("|---|---|---|---|---|---|---|---|---|")
for workload in sorted({w for w, _ in runs}):
    figures = {}
    for mode in ("memory", "disk"):
        rows = runs.get((workload, mode), [])
        if not rows:
            continue
        figures[mode] = (med(rows, lambda r: r["deliveries_per_server_cpu_sec"]),
                         med(rows, lambda r: r["latency"]["p99_ms"]))
        print(f"| {workload} | {mode} | {len(rows)} | {med(rows, lambda r: r['msgs_in_per_sec']):,.0f} "
              f"| {figures[mode][0] / 1e6:.2f}M | {med(rows, lambda r: r['server_cpu_share']) * 100:.0f}% "
              f"| {med(rows, lambda r: r['latency']['p50_ms']):.2f} ms | {figures[mode][1]:.2f} ms "
              f"| {med(rows, lambda r: r['server_rss_kib']):,.0f} KiB |")
    if len(figures) == 2:
        (d_mem, p_mem), (d_disk, p_disk) = figures["memory"], figures["disk"]
        print(f"| {workload} | disk / memory, of the medians | | | {d_disk / d_mem:.2f}x | | | {p_disk / p_mem:.2f}x | |")
        # Each pair ran back to back, under the same load from the rest of the machine.
        both = [p for (w, _), p in pairs.items() if w == workload and len(p) == 2]
        cpu = statistics.median(p["disk"]["deliveries_per_server_cpu_sec"]
                                / p["memory"]["deliveries_per_server_cpu_sec"] for p in both)
        p99 = statistics.median(p["disk"]["latency"]["p99_ms"] / p["memory"]["latency"]["p99_ms"]
                                for p in both)
        print(f"| {workload} | disk / memory, median of {len(both)} pairs | | | {cpu:.2f}x | | | {p99:.2f}x | |")
EOF
}

if [ "${1:-}" = summary ]; then
  summary
  exit 0
fi

cargo build --release --quiet
cargo bench --quiet --bench load --no-run
common="--spawn --server-cpu 0 --payload 64 --window 8 --duration 10 --warmup 2 --json --quiet"
for run in $(seq "$RUNS"); do
  # Odd runs measure memory first, even runs the data dir first.
  modes="memory disk"
  [ $((run % 2)) -eq 0 ] && modes="disk memory"
  for workload in $WORKLOADS; do
    for mode in $modes; do
      dir=$(mktemp -d)
      echo "== run $run: $workload, $mode" >&2
      if [ "$mode" = disk ]; then
        # shellcheck disable=SC2046 # the flags are words
        CHAT_DATA_DIR="$dir" taskset -c 1 cargo bench --quiet --bench load -- $common \
          $(flags "$workload") >"$OUT/$workload-$mode-$run.json"
        du -sk "$dir" >&2
      else
        # shellcheck disable=SC2046
        env -u CHAT_DATA_DIR taskset -c 1 cargo bench --quiet --bench load -- $common \
          $(flags "$workload") >"$OUT/$workload-$mode-$run.json"
      fi
      rm -rf "$dir"
    done
  done
done
summary
