#!/usr/bin/env bash
# Measures chat-server and its peers, ngircd and InspIRCd (Debian packages), with the load harness
# the way BENCHMARKS.md reports them: server pinned to CPU 0, harness to CPU 1, a fresh server for
# every run, 64-byte payloads, window 8, each workload RUNS times; then prints the medians.
#
# Usage: benches/run-peers.sh [SERVER...]        SERVER: chat, ngircd, inspircd (default: all three)
#        benches/run-peers.sh summary            medians of what is in $OUT, as a Markdown table
# Environment: RUNS (default 3), OUT (default target/bench-results), WORKLOADS (names below).
# Needs: apt-get install ngircd inspircd (the peers' own daemons are never started or touched: this
# script runs its own instances on 127.0.0.1:6667/6668 from benches/peers/*.conf, and stops them).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
OUT=$(realpath -m "${OUT:-target/bench-results}")
ALL_WORKLOADS="fanout1000 latency idle10k rooms churn fanout5000 idle19k small100 small100idle"
WORKLOADS=${WORKLOADS:-$ALL_WORKLOADS}
mkdir -p "$OUT"

# The harness flags of each workload (common flags are added below).
flags() {
  case $1 in
    fanout1000) echo "--workload fanout --receivers 1000 --senders 10" ;;
    # ngircd needs minutes to seat 5,000 users in one channel (every JOIN costs O(members)).
    fanout5000) echo "--workload fanout --receivers 5000 --senders 10 --setup-timeout 900" ;;
    latency) echo "--workload latency --receivers 1000 --senders 10 --rate 100" ;;
    idle10k) echo "--workload idle --connections 10000 --rooms 100 --duration 3" ;;
    idle19k) echo "--workload idle --connections 19000 --rooms 100 --duration 3" ;;
    rooms) echo "--workload rooms --rooms 500 --room-size 10 --rate 5000" ;;
    churn) echo "--workload churn --connections 50" ;;
    # A small room, alone and then with 18,000 idle connections sitting on the server.
    small100) echo "--workload fanout --receivers 100 --senders 10" ;;
    small100idle) echo "--workload fanout --receivers 100 --senders 10 --idle 18000" ;;
    *) echo "unknown workload $1" >&2; exit 2 ;;
  esac
}

PEER_PID=""
stop_peer() {
  if [ -n "$PEER_PID" ]; then
    kill "$PEER_PID" 2>/dev/null || true
    wait "$PEER_PID" 2>/dev/null || true
    PEER_PID=""
  fi
}
trap stop_peer EXIT

wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  return 1
}

# Starts a fresh peer daemon pinned to CPU 0; sets PEER_PID and PORT.
start_peer() {
  case $1 in
    ngircd)
      taskset -c 0 /usr/sbin/ngircd --nodaemon --config benches/peers/ngircd.conf \
        >"$OUT/ngircd.log" 2>&1 &
      PEER_PID=$!
      PORT=6667
      ;;
    inspircd)
      taskset -c 0 /usr/sbin/inspircd --runasroot --nofork \
        --config="$PWD/benches/peers/inspircd.conf" >"$OUT/inspircd.log" 2>&1 &
      PEER_PID=$!
      PORT=6668
      ;;
  esac
  wait_port "$PORT"
  sleep 0.5
}

run_one() { # SERVER WORKLOAD RUN
  local server=$1 workload=$2 run=$3 out
  out="$OUT/$server.$workload.$run.json"
  # shellcheck disable=SC2046
  local common=(--payload 64 --window 8 --json --quiet $(flags "$workload"))
  case $workload in
    idle*) ;;
    *) common+=(--duration 10 --warmup 2) ;;
  esac
  echo "== $server $workload run $run" >&2
  case $server in
    chat)
      taskset -c 1 "$HARNESS" --spawn --server-cpu 0 --server-bin "$SERVER_BIN" "${common[@]}" \
        >"$out" || true
      ;;
    ngircd)
      start_peer ngircd
      taskset -c 1 "$HARNESS" --addr "127.0.0.1:$PORT" \
        --server-pid "$PEER_PID" --protocol irc --irc-oper bench:bench --inflight 8 \
        "${common[@]}" >"$out" || true
      stop_peer
      ;;
    inspircd)
      start_peer inspircd
      taskset -c 1 "$HARNESS" --addr "127.0.0.1:$PORT" \
        --server-pid "$PEER_PID" --protocol irc "${common[@]}" >"$out" || true
      stop_peer
      ;;
    *) echo "unknown server $server" >&2; exit 2 ;;
  esac
}

summary() {
  python3 - "$OUT" <<'EOF'
import glob, json, os, statistics, sys
out = sys.argv[1]
runs = {}
for path in sorted(glob.glob(os.path.join(out, "*.json"))):
    server, workload, _run, _ = os.path.basename(path).split(".")
    try:
        runs.setdefault((workload, server), []).append(json.load(open(path)))
    except ValueError:
        print(f"(unreadable: {path})", file=sys.stderr)
def med(reports, get):
    values = [v for v in (get(r) for r in reports) if v is not None]
    return statistics.median(values) if values else None
metrics = [
    ("deliveries/server CPU-s", lambda r: r.get("deliveries_per_server_cpu_sec"), 1e6, "{:.2f}M"),
    ("deliveries/s", lambda r: r["deliveries_per_sec"] or None, 1e3, "{:.0f}k"),
    ("msgs in/s", lambda r: r["msgs_in_per_sec"] or None, 1, "{:.0f}"),
    ("server CPU share", lambda r: r.get("server_cpu_share"), 0.01, "{:.0f}%"),
    ("p50 ms", lambda r: (r.get("latency") or {}).get("p50_ms"), 1, "{:.2f}"),
    ("p99 ms", lambda r: (r.get("latency") or {}).get("p99_ms"), 1, "{:.2f}"),
    ("p99.9 ms", lambda r: (r.get("latency") or {}).get("p999_ms"), 1, "{:.2f}"),
    ("set-up/s", lambda r: r["setup_per_sec"], 1, "{:.0f}"),
    ("RSS bytes/conn", lambda r: r.get("server_rss_per_conn_bytes"), 1, "{:.0f}"),
    ("sessions/s", lambda r: r["sessions_per_sec"] or None, 1, "{:.0f}"),
    ("harness CPU share", lambda r: r["harness_cpu_share"], 0.01, "{:.0f}%"),
    ("errors", lambda r: r["errors"] + r["failed_connects"], 1, "{:.0f}"),
]
print("| workload | server | runs | " + " | ".join(m[0] for m in metrics) + " |")
print("|---" * (3 + len(metrics)) + "|")
for (workload, server), reports in sorted(runs.items()):
    cells = []
    for _name, get, scale, fmt in metrics:
        v = med(reports, get)
        cells.append("-" if v is None else fmt.format(v / scale))
    print(f"| {workload} | {server} | {len(reports)} | " + " | ".join(cells) + " |")
EOF
}

if [ "${1:-}" = summary ]; then
  summary
  exit 0
fi
SERVERS=("$@")
[ ${#SERVERS[@]} -gt 0 ] || SERVERS=(chat ngircd inspircd)
# Copies of the binaries, so a rebuild while the matrix runs changes nothing under it.
cargo build --release --quiet
cp "$(scripts/cargo-target-dir)/release/chat-server" "$OUT/chat-server"
SERVER_BIN="$OUT/chat-server"
cargo bench --no-run --quiet --bench load --message-format=json |
  python3 -c 'import json, sys
for m in map(json.loads, sys.stdin):
    if m.get("executable") and m["target"]["name"] == "load":
        print(m["executable"])' | head -1 | xargs -I{} cp {} "$OUT/load-harness"
HARNESS="$OUT/load-harness"
for workload in $WORKLOADS; do
  for server in "${SERVERS[@]}"; do
    # The peers are compared on the workloads of the bar; the idle-neighbour check is ours.
    case "$server:$workload" in
      ngircd:idle19k | inspircd:idle19k | ngircd:small100* | inspircd:small100*) continue ;;
    esac
    for run in $(seq "$RUNS"); do
      run_one "$server" "$workload" "$run"
    done
  done
done
summary
