#!/usr/bin/env bash
# Memory per stored message and restart time, in memory and with --data-dir: fills a fresh server
# (pinned to CPU 0) with ROOMS rooms of MESSAGES messages, then SESSIONS saved sessions
# (benches/fill-state.py), reading the server's RSS after each step; then, with the data dir,
# stops it with SIGTERM and starts it again RESTARTS times, timing the start until it greets a
# client, and the stop.
#
# Usage: benches/run-state.sh     Environment: ROOMS (1000), MESSAGES (200), SESSIONS (100000),
#                                 RESTARTS (3), PORT (7990)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOMS=${ROOMS:-1000}
MESSAGES=${MESSAGES:-200}
SESSIONS=${SESSIONS:-100000}
RESTARTS=${RESTARTS:-3}
PORT=${PORT:-7990}
BIN=target/release/chat-server
cargo build --release --quiet
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT

rss() { awk '/VmRSS/ { print $2 }' "/proc/$1/status"; }
now() { date +%s.%N; }
# Waits until the server greets a new connection (its loop runs).
wait_greeting() {
  for _ in $(seq 2000); do
    if exec 3<>"/dev/tcp/127.0.0.1/$PORT" 2>/dev/null; then
      read -r -t 10 _ <&3 && exec 3<&- && return 0
    fi
    sleep 0.005
  done
  echo "no greeting on $PORT" >&2
  exit 1
}
# Starts the server with extra arguments; sets PID, and TOOK to the seconds until it greets.
start() {
  local t0
  t0=$(now)
  taskset -c 0 "$BIN" --listen "127.0.0.1:$PORT" --log-level info "$@" >/dev/null 2>>"$DIR/log" &
  PID=$!
  wait_greeting
  TOOK=$(echo "$(now) - $t0" | bc)
}
# Stops it with SIGTERM; sets TOOK to the seconds until it exited.
stop() {
  local t0
  t0=$(now)
  kill -TERM "$PID"
  wait "$PID"
  TOOK=$(echo "$(now) - $t0" | bc)
}
fill() { python3 benches/fill-state.py "127.0.0.1:$PORT" "$@" >/dev/null; sleep 2; }

for mode in memory disk; do
  args=()
  [ "$mode" = disk ] && args=(--data-dir "$DIR/data")
  start "${args[@]}"
  base=$(rss "$PID")
  fill --rooms "$ROOMS" --messages "$MESSAGES" --sessions 0
  with_history=$(rss "$PID")
  fill --rooms 0 --sessions "$SESSIONS"
  with_sessions=$(rss "$PID")
  echo "$mode: RSS fresh $base KiB, with $ROOMS rooms x $MESSAGES messages $with_history KiB" \
    "($(( (with_history - base) * 1024 / (ROOMS * MESSAGES) )) bytes a message)," \
    "with $SESSIONS saved sessions too $with_sessions KiB" \
    "($(( (with_sessions - with_history) * 1024 / SESSIONS )) bytes a session)"
  if [ "$mode" = disk ]; then
    echo "disk: data dir $(du -sk "$DIR/data" | cut -f1) KiB while running"
    for run in $(seq "$RESTARTS"); do
      stop
      stopped=$TOOK
      start "${args[@]}"
      started=$TOOK
      sleep 2
      echo "disk: restart $run: stop ${stopped} s, start until it greets ${started} s," \
        "RSS after $(rss "$PID") KiB; $(grep -o 'loaded .* in [0-9]* ms' "$DIR/log" | tail -1)"
    done
    echo "disk: data dir $(du -sk "$DIR/data" | cut -f1) KiB after the restarts"
  fi
  stop
done
