#!/usr/bin/env bash
# Measures cluster mode the way BENCHMARKS.md reports it: one redis-server and NODES chat-server
# nodes on loopback (all pinned to CPU 0), the load harness on CPU 1, with every sender on the
# first node and every receiver on the others, so that each delivery crosses Redis. NODES=1 runs
# one node in cluster mode with senders and receivers on it (the baseline: no delivery crosses).
#
# Usage: benches/run-cluster.sh NODES [HARNESS FLAGS...]
#   e.g. benches/run-cluster.sh 2 --workload latency --receivers 1000 --senders 10 --rate 100
# Needs: redis-server (apt-get install redis-server). Everything stops when the run ends.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(scripts/cargo-target-dir)/release/chat-server"
nodes=${1:?usage: benches/run-cluster.sh NODES [HARNESS FLAGS...]}
shift
cargo build --release --quiet

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
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

redis_port=$(free_port)
taskset -c 0 redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  >/dev/null &
pids+=($!)
wait_for_port "$redis_port"

targets=()
for i in $(seq 1 "$nodes"); do
  port=$(free_port)
  taskset -c 0 "$bin" --listen "127.0.0.1:$port" \
    --redis "redis://127.0.0.1:$redis_port/" --node "n$i" --log-level warn &
  pids+=($!)
  wait_for_port "$port"
  targets+=(--addr "127.0.0.1:$port")
done

placement=()
[ "$nodes" -gt 1 ] && placement=(--senders-on 0)
taskset -c 1 cargo bench --quiet --bench load -- "${targets[@]}" "${placement[@]}" "$@"
