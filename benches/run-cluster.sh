#!/usr/bin/env bash
# Measures cluster mode the way BENCHMARKS.md reports it: one redis-server and NODES chat-server
# nodes on loopback (all pinned to CPU 0), the load harness on CPU 1, with every sender on the
# first node and every receiver on the others, so that each delivery crosses Redis. NODES=1 runs
# one node in cluster mode with senders and receivers on it (the baseline: no delivery crosses).
#
# Usage: benches/run-cluster.sh NODES [HARNESS FLAGS...]
#   e.g. benches/run-cluster.sh 2 --workload latency --receivers 1000 --senders 10 --rate 100
# Environment:
#   CHAT_SERVER_BIN   the node binary (default: this tree's release build, built first)
#   SAMPLES_OUT       also write the sampled peaks (below) to this file, as JSON
# Needs: redis-server and redis-cli (apt-get install redis-server). Everything stops when the
# run ends.
#
# While the harness runs, every node's RSS and flow-control metrics (--metrics) and Redis's
# pub/sub clients (CLIENT LIST: omem is a subscriber's output buffer) are sampled 4 times a
# second; their peaks, the nodes' counters at the end and how many subscribers Redis cut for
# their output buffer (from its log) are printed after the harness's report, on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
nodes=${1:?usage: benches/run-cluster.sh NODES [HARNESS FLAGS...]}
shift
if [ -n "${CHAT_SERVER_BIN:-}" ]; then
  bin=$CHAT_SERVER_BIN
else
  bin="$(scripts/cargo-target-dir)/release/chat-server"
  cargo build --release --quiet
fi
# The harness is built before anything starts, so the samples cover the run only.
cargo bench --no-run --quiet --bench load
logs=$(mktemp -d)

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_for_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  exit 1
}

pids=()
sampler=""
cleanup() {
  [ -n "$sampler" ] && kill "$sampler" 2>/dev/null
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$logs"
}
trap cleanup EXIT

redis_port=$(free_port)
taskset -c 0 redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  >"$logs/redis.log" &
pids+=($!)
wait_for_port "$redis_port"
echo "redis: $(redis-cli -p "$redis_port" config get client-output-buffer-limit | tr '\n' ' ')" >&2

targets=()
node_specs=()
for i in $(seq 1 "$nodes"); do
  port=$(free_port)
  metrics=$(free_port)
  # Without the per-address limit and flood control, as the harness's spawned server: every
  # client comes from 127.0.0.1, and the senders send as fast as they may on purpose.
  taskset -c 0 "$bin" --listen "127.0.0.1:$port" --metrics "127.0.0.1:$metrics" \
    --redis "redis://127.0.0.1:$redis_port/" --node "n$i" --log-level warn \
    --max-per-ip 0 --flood-rate 0 2>"$logs/n$i.log" &
  pid=$!
  pids+=("$pid")
  wait_for_port "$port"
  targets+=(--addr "127.0.0.1:$port")
  node_specs+=("n$i:$pid:$metrics")
done

# Samples until killed (SIGTERM), then prints the peaks.
python3 - "$redis_port" "$logs/samples.json" "${node_specs[@]}" <<'EOF' &
import json, signal, subprocess, sys, time, urllib.request

redis_port, out, specs = sys.argv[1], sys.argv[2], sys.argv[3:]
nodes = [dict(zip(("name", "pid", "metrics"), s.split(":"))) for s in specs]
peaks = {n["name"]: {"rss_kib": 0, "backlog": 0, "paced_samples": 0, "behind_samples": 0,
                     "down_samples": 0} for n in nodes}
redis_peak = {"pubsub_omem_bytes": 0, "samples": 0}
last_metrics = {}

def metrics(node):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{node['metrics']}/metrics", timeout=1) as r:
            text = r.read().decode()
    except OSError:
        return {}
    return {name: float(value) for name, value in
            (line.split(" ", 1) for line in text.splitlines() if line and line[0] != "#")
            if "{" not in name}

def rss(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0

def finish(*_):
    result = {"nodes": peaks, "redis": redis_peak, "counters": last_metrics}
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    sys.exit(0)

signal.signal(signal.SIGTERM, finish)
while True:
    redis_peak["samples"] += 1
    for n in nodes:
        p = peaks[n["name"]]
        p["rss_kib"] = max(p["rss_kib"], rss(n["pid"]))
        m = metrics(n)
        if m:
            p["backlog"] = max(p["backlog"], int(m.get("chat_cluster_backlog", 0)))
            p["paced_samples"] += int(m.get("chat_cluster_paced", 0))
            p["behind_samples"] += int(m.get("chat_cluster_behind", 0))
            p["down_samples"] += int(m.get("chat_cluster_up", 1) == 0)
            last_metrics[n["name"]] = {k: v for k, v in m.items()
                                       if k.startswith("chat_cluster") or k == "chat_deliveries_total"}
    try:
        clients = subprocess.run(["redis-cli", "-p", redis_port, "client", "list", "type", "pubsub"],
                                 capture_output=True, text=True, timeout=2).stdout
    except (OSError, subprocess.TimeoutExpired):
        clients = ""
    for line in clients.splitlines():
        fields = dict(f.split("=", 1) for f in line.split(" ") if "=" in f)
        redis_peak["pubsub_omem_bytes"] = max(redis_peak["pubsub_omem_bytes"],
                                              int(fields.get("omem", 0)))
    time.sleep(0.25)
EOF
sampler=$!

placement=()
[ "$nodes" -gt 1 ] && placement=(--senders-on 0)
status=0
taskset -c 1 cargo bench --quiet --bench load -- "${targets[@]}" "${placement[@]}" "$@" || status=$?

kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
sampler=""
echo "== sampled during the run (peaks; counters at the end)" >&2
cat "$logs/samples.json" >&2
[ -n "${SAMPLES_OUT:-}" ] && cp "$logs/samples.json" "$SAMPLES_OUT"
# Redis logs each client it cuts for passing its output buffer limit.
echo "redis: $(grep -c 'output buffer limits' "$logs/redis.log" || true) subscriber(s) cut for their output buffer" >&2
for i in $(seq 1 "$nodes"); do
  if [ -s "$logs/n$i.log" ]; then
    echo "== n$i log (last 5 lines)" >&2
    tail -n 5 "$logs/n$i.log" >&2
  fi
done
exit "$status"
