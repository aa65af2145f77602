#!/usr/bin/env bash
# Small-host figures for BENCHMARKS.md ("Small hosts"): binary and package size, RSS of a fresh
# server, RSS with 1,000 and 10,000 idle users, time from start to listening, then a Pi-class
# box simulated with cgroup v1 (64 MiB of memory, 25% of one core): 2,000 users in 200 rooms at
# 200 messages/s, and a run that pushes the server to its memory limit.
#
# Usage: sudo benches/run-small-host.sh [size|start|idle|pi|push|all]   (default: all)
# Environment: OUT (default target/bench-small-host: raw JSON of every run), BIN (default
#   target/release/chat-server), MEM_LIMIT (bytes, default 64 MiB), CPU_QUOTA (microseconds per
#   100 ms period, default 25000), SENDQ (push: the server's --sendq, default its own default),
#   LURKERS (push: clients that stop reading, default 200), RATE (pi: messages/s, default 200),
#   RUNS (pi: runs, default 3).
# Loopback only; every run is bounded in time. The server runs on CPU 0, the harness on CPU 1.
# The cgroups (chatpi under the memory and cpu hierarchies) are removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-all}
OUT=${OUT:-target/bench-small-host}
BIN=${BIN:-$(scripts/cargo-target-dir)/release/chat-server}
MEM_LIMIT=${MEM_LIMIT:-$((64 * 1024 * 1024))}
CPU_QUOTA=${CPU_QUOTA:-25000}
CG=chatpi
MEMCG=/sys/fs/cgroup/memory/$CG
CPUCG=/sys/fs/cgroup/cpu/$CG
mkdir -p "$OUT"

cargo build --release --quiet
cargo bench --quiet --bench load --no-run 2>/dev/null
load() { taskset -c 1 cargo bench --quiet --bench load -- "$@"; }
# json FILE EXPR: a value from a harness report (EXPR in Python; fields as r.name, r.latency.p99_ms).
json() {
  python3 -c "import json,sys,types; r=json.load(open(sys.argv[1]), object_hook=lambda d: types.SimpleNamespace(**d)); print($2)" "$1"
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

size() {
  echo "== size"
  echo "binary: $(stat -c %s "$BIN") bytes ($BIN, stripped: $(readelf -S "$BIN" | grep -c '\.symtab' || true) symbol tables)"
  local deb
  deb=$(ls -t "$(scripts/cargo-target-dir)"/debian/chat-server_*.deb 2>/dev/null | head -n 1 || true)
  [ -n "$deb" ] && echo "package: $(stat -c %s "$deb") bytes ($deb), installed size $(dpkg-deb -f "$deb" Installed-Size) KiB"
}

start() {
  echo "== start to listening (READY=1 on a notify socket), and RSS of a fresh server: 20 runs"
  python3 - "$BIN" <<'EOF'
import os, socket, statistics, subprocess, sys, tempfile, time
binary = sys.argv[1]
times, rss = [], []
for _ in range(20):
    d = tempfile.mkdtemp()
    path = os.path.join(d, "notify")
    n = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); n.bind(path); n.settimeout(10)
    t0 = time.monotonic()
    p = subprocess.Popen(["taskset", "-c", "0", binary, "--listen", "127.0.0.1:0", "--log-level", "warn"],
                         env=dict(os.environ, NOTIFY_SOCKET=path), stderr=subprocess.DEVNULL)
    assert n.recv(64) == b"READY=1"
    times.append((time.monotonic() - t0) * 1000)
    time.sleep(0.5)  # settled
    with open(f"/proc/{p.pid}/status") as f:
        rss.append(next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")))
    p.terminate(); p.wait(); n.close(); os.unlink(path); os.rmdir(d)
print(f"start to READY=1: median {statistics.median(times):.2f} ms, min {min(times):.2f}, max {max(times):.2f} "
      f"(exec of the binary included; taskset adds its own exec)")
print(f"fresh server VmRSS: median {statistics.median(rss)} KiB, min {min(rss)}, max {max(rss)}")
EOF
}

idle() {
  for n in 1000 10000; do
    echo "== idle $n users over 100 rooms (median of 3 fresh servers)"
    for run in 1 2 3; do
      load --spawn --server-cpu 0 --workload idle --connections "$n" --rooms 100 --duration 3 \
        --json --quiet >"$OUT/idle$n-$run.json"
      json "$OUT/idle$n-$run.json" \
        'f"run: RSS {r.server_rss_kib} KiB, fresh {r.server_rss_base_kib} KiB, {r.server_rss_per_conn_bytes:.0f} B per user"'
    done
  done
}

cgroup_make() {
  cgroup_remove
  mkdir "$MEMCG" "$CPUCG"
  echo "$MEM_LIMIT" >"$MEMCG/memory.limit_in_bytes"
  echo 100000 >"$CPUCG/cpu.cfs_period_us"
  echo "$CPU_QUOTA" >"$CPUCG/cpu.cfs_quota_us"
}
cgroup_remove() {
  for cg in "$MEMCG" "$CPUCG"; do
    [ -d "$cg" ] || continue
    # Anything left inside goes back to the root group first.
    while read -r pid; do echo "$pid" >"$(dirname "$cg")/cgroup.procs" 2>/dev/null || true; done <"$cg/cgroup.procs"
    rmdir "$cg"
  done
}
trap cgroup_remove EXIT

# limited_server PORT [ARGS...]: starts the server inside the cgroups (it enters them before it
# execs, so every byte it allocates is counted) and sets $server_pid. Its thousands of users come
# from one loopback address and send as fast as the run says: the per-address limit and flood
# control are off.
limited_server() {
  local port=$1
  shift
  sh -c 'echo $$ >"$1/cgroup.procs"; echo $$ >"$2/cgroup.procs"; shift 2; exec "$@"' sh \
    "$MEMCG" "$CPUCG" taskset -c 0 "$BIN" --listen "127.0.0.1:$port" \
    --max-per-ip 0 --flood-rate 0 "$@" \
    2>"$OUT/server-$port.log" &
  server_pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "the server did not start" >&2
  return 1
}
stop_server() {
  kill -TERM "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
}
cgroup_report() {
  echo "cgroup: limit $(($(cat "$MEMCG/memory.limit_in_bytes") / 1024)) KiB, peak usage" \
    "$(($(cat "$MEMCG/memory.max_usage_in_bytes") / 1024)) KiB, limit hits $(cat "$MEMCG/memory.failcnt")," \
    "$(grep oom_kill "$MEMCG/memory.oom_control" | tr '\n' ' '), CPU throttled" \
    "$(grep nr_throttled "$CPUCG/cpu.stat" | cut -d' ' -f2) of $(grep nr_periods "$CPUCG/cpu.stat" | cut -d' ' -f2) periods"
  # Kernel memory charged to the group (socket structures and the like); cgroup v1 charges
  # socket buffers (kmem.tcp) only once a kmem.tcp limit is set, which this script does not.
  echo "cgroup kernel memory: peak $(($(cat "$MEMCG/memory.kmem.max_usage_in_bytes") / 1024)) KiB," \
    "socket buffers charged: peak $(($(cat "$MEMCG/memory.kmem.tcp.max_usage_in_bytes") / 1024)) KiB"
}

pi() {
  local rate=${RATE:-200}
  echo "== Pi-class: 2,000 users in 200 rooms of 10, $rate msgs/s, memory $((MEM_LIMIT / 1048576)) MiB, CPU $((CPU_QUOTA / 1000))% of one core (${RUNS:-3} runs)"
  for run in $(seq "${RUNS:-3}"); do
    cgroup_make
    local port
    port=$(free_port)
    limited_server "$port" --log-level warn
    load --addr "127.0.0.1:$port" --server-pid "$server_pid" --workload rooms --rooms 200 \
      --room-size 10 --rate "$rate" --duration 30 --warmup 5 --json --quiet >"$OUT/pi-$rate-$run.json"
    local hwm
    hwm=$(grep VmHWM "/proc/$server_pid/status" | awk '{print $2}')
    json "$OUT/pi-$rate-$run.json" \
      'f"run: {r.msgs_in_per_sec:.0f} msgs/s in, {r.deliveries_per_sec:.0f} deliveries/s, p50 {r.latency.p50_ms:.2f} ms, p99 {r.latency.p99_ms:.2f} ms, p99.9 {r.latency.p999_ms:.2f} ms, max {r.latency.max_ms:.1f} ms, server CPU {100*r.server_cpu_share:.1f}%, RSS {r.server_rss_kib} KiB, errors {r.errors}"'
    echo "server VmHWM $hwm KiB"
    cgroup_report
    stop_server
  done
}

push() {
  local lurkers=${LURKERS:-200}
  echo "== push: the server at its memory limit ($((MEM_LIMIT / 1048576)) MiB, CPU $((CPU_QUOTA / 1000))%), ${SENDQ:-default} sendq, $lurkers lurkers"
  cgroup_make
  local port mport kernel_lines
  kernel_lines=$(dmesg 2>/dev/null | wc -l || echo 0)
  port=$(free_port)
  mport=$(free_port)
  local extra=()
  [ -n "${SENDQ:-}" ] && extra=(--sendq "$SENDQ")
  limited_server "$port" --log-level info --metrics "127.0.0.1:$mport" "${extra[@]}"
  taskset -c 1 python3 benches/push-memory.py --port "$port" --pid "$server_pid" --cgroup "$CG" \
    --metrics-port "$mport" --lurkers "$lurkers" --blasters 2 --chatters 10 --duration 60 |
    tee "$OUT/push-${SENDQ:-default}-$lurkers.json"
  cgroup_report
  if kill -0 "$server_pid" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$server_pid/status"; then
    echo "server: alive"
  else
    wait "$server_pid" 2>/dev/null && status=0 || status=$?
    echo "server: gone, exit status $status ($( [ "$status" -gt 128 ] && kill -l $((status - 128)) ))"
  fi
  echo "server log: $(grep -c 'dropped: output buffer passed' "$OUT/server-$port.log" || true) clients dropped at their sendq," \
    "$(grep -c 'dropped near the memory limit' "$OUT/server-$port.log" || true) near the memory limit; last lines:"
  tail -n 3 "$OUT/server-$port.log"
  # Only what the kernel logged during this run.
  dmesg 2>/dev/null | tail -n "+$((kernel_lines + 1))" | grep -iE 'oom|killed process' | tail -n 3 || true
  stop_server
}

case "$what" in
  size) size ;;
  start) start ;;
  idle) idle ;;
  pi) pi ;;
  push) push ;;
  all) size; start; idle; pi; push ;;
  *) echo "usage: $0 [size|start|idle|pi|push|all]" >&2; exit 2 ;;
esac
