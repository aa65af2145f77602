#!/usr/bin/env bash
# The install test: the real package in a real Debian system booted with systemd.
#
# Builds the package (unless one is given), makes a Debian root with debootstrap (once; kept
# for the next run), boots it with systemd-nspawn on a private network (the container has only
# its own loopback), and checks as a user would: the service is enabled and active after
# `dpkg -i`, answers on 5555 (nick, join, message between two users), logs to the journal with
# priorities, is restarted by systemd when killed, keeps its state in its state directory (the unit's
# CHAT_DATA_DIR: a registered nick stays registered across a restart, a SIGKILL and an upgrade),
# reads /etc/default/chat-server, keeps that conffile across an upgrade (the same package with a
# higher version), runs three cluster nodes from the template unit with Redis, and goes away
# cleanly on remove and purge.
#
# Usage: sudo packaging/test-install.sh [PACKAGE.deb]
# Environment: ROOT (default /var/lib/machines/chat-server-test; delete it to start afresh),
#              SUITE (default bookworm), MIRROR (default http://deb.debian.org/debian).
# Takes about 3 minutes the first time (debootstrap), about 15 s after that. Not part of
# ./test.sh; docs/DEPLOY.md has its last result.
set -euo pipefail
cd "$(dirname "$0")/.."

root=${ROOT:-/var/lib/machines/chat-server-test}
suite=${SUITE:-bookworm}
mirror=${MIRROR:-http://deb.debian.org/debian}

[ "$(id -u)" -eq 0 ] || { echo "test-install: needs root (debootstrap, systemd-nspawn)" >&2; exit 1; }
if ! command -v debootstrap >/dev/null || ! command -v systemd-nspawn >/dev/null; then
  echo "== installing debootstrap and systemd-container"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    debootstrap systemd-container >/dev/null
fi

deb=${1:-}
if [ -z "$deb" ]; then
  packaging/build-deb.sh >/dev/null
  deb=$(ls -t "$(scripts/cargo-target-dir)"/debian/chat-server_*.deb | head -n 1)
fi
echo "== package: $deb"

if [ ! -x "$root/lib/systemd/systemd" ] || [ ! -x "$root/usr/bin/redis-server" ]; then
  echo "== debootstrap $suite into $root"
  rm -rf "$root"
  mkdir -p "$(dirname "$root")"
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,redis-server,man-db \
    "$suite" "$root" "$mirror" >"$root.debootstrap.log" 2>&1 ||
    { tail -n 20 "$root.debootstrap.log" >&2; exit 1; }
fi
cp "$deb" "$root/root/chat-server.deb"
# The same package with a higher version, to test an upgrade.
repack=$(mktemp -d)
dpkg-deb -R "$deb" "$repack/pkg"
sed -i -E 's/^(Version: .*)$/\1+upgrade1/' "$repack/pkg/DEBIAN/control"
dpkg-deb -b "$repack/pkg" "$root/root/chat-server-upgrade.deb" >/dev/null
rm -rf "$repack"

# The chat check, run inside the container: two users on ADDR_A and ADDR_B (one server, or two
# cluster nodes) set nicks, join a room, and one's message reaches the other.
cat >"$root/root/chat-check.sh" <<'EOF'
#!/bin/bash
# Usage: chat-check.sh HOST PORT_A PORT_B ROOM
set -u
host=$1 port_a=$2 port_b=$3 room=$4
fail() { echo "chat-check: $*" >&2; exit 1; }
# expect FD TEXT: reads lines from FD until one equals TEXT (at most 20 lines, 10 s each).
expect() {
  local fd=$1 want=$2 line
  for _ in $(seq 20); do
    IFS= read -r -t 10 -u "$fd" line || fail "no line '$want' (connection closed or silent)"
    line=${line%$'\r'}
    [ "$line" = "$want" ] && return 0
  done
  fail "no line '$want' among 20"
}
exec 3<>"/dev/tcp/$host/$port_a" || fail "cannot connect to $host:$port_a"
exec 4<>"/dev/tcp/$host/$port_b" || fail "cannot connect to $host:$port_b"
nick_a="ann$RANDOM" nick_b="bob$RANDOM"
printf '/nick %s\n' "$nick_a" >&3
expect 3 "* Welcome, $nick_a. Rooms: main. Active room: main."
printf '/join %s\n' "$room" >&3
expect 3 "* Joined $room. Active room: $room."
printf '/nick %s\n' "$nick_b" >&4
expect 4 "* Welcome, $nick_b. Rooms: main. Active room: main."
printf '/join %s\n' "$room" >&4
expect 4 "* Joined $room. Active room: $room."
expect 3 "* [$room] $nick_b joined"
printf 'hello from %s\n' "$nick_b" >&4
expect 4 "You: hello from $nick_b"
expect 3 "[$room] $nick_b: hello from $nick_b"
printf '/quit\n' >&3
printf '/quit\n' >&4
echo "chat-check: $nick_a on $port_a and $nick_b on $port_b talked in $room"
EOF
chmod 755 "$root/root/chat-check.sh"

# The state check, run inside the container: registers a nick (register), or checks that the
# server still knows it is registered (check), which it can only have from its data dir.
cat >"$root/root/state-check.sh" <<'EOF'
#!/bin/bash
# Usage: state-check.sh register|check PORT NICK
set -u
what=$1 port=$2 nick=$3
fail() { echo "state-check: $*" >&2; exit 1; }
# expect TEXT: reads lines until one equals TEXT (at most 20 lines, 10 s each).
expect() {
  local want=$1 line
  for _ in $(seq 20); do
    IFS= read -r -t 10 -u 3 line || fail "no line '$want' (connection closed or silent)"
    line=${line%$'\r'}
    [ "$line" = "$want" ] && return 0
  done
  fail "no line '$want' among 20"
}
exec 3<>"/dev/tcp/127.0.0.1/$port" || fail "cannot connect to port $port"
printf '/nick %s\n' "$nick" >&3
if [ "$what" = register ]; then
  expect "* Welcome, $nick. Rooms: main. Active room: main."
  printf '/register kept-across-restarts\n' >&3
  expect "* $nick is now registered: from now on /nick $nick PASSWORD logs in as $nick."
else
  expect "! nick $nick is registered; use /nick $nick PASSWORD"
fi
printf '/quit\n' >&3
echo "state-check: $what $nick on $port"
EOF
chmod 755 "$root/root/state-check.sh"

log=$(mktemp)
echo "== booting $root (systemd-nspawn -b, private network)"
systemd-nspawn -D "$root" --register=no --keep-unit --private-network -b >"$log" 2>&1 &
nspawn=$!
leader=""
cleanup() {
  if [ -n "$leader" ]; then
    nsenter -t "$leader" -a systemctl poweroff >/dev/null 2>&1 || true
  fi
  for _ in $(seq 100); do kill -0 "$nspawn" 2>/dev/null || break; sleep 0.1; done
  kill "$nspawn" 2>/dev/null || true
  wait "$nspawn" 2>/dev/null || true
  rm -f "$log"
}
trap cleanup EXIT

# The container's PID 1 is nspawn's child once that child has become systemd.
for _ in $(seq 300); do
  leader=$(pgrep -P "$nspawn" | head -n 1 || true)
  [ -n "$leader" ] && [ "$(cat "/proc/$leader/comm" 2>/dev/null)" = systemd ] && break
  leader=""
  sleep 0.1
done
[ -n "$leader" ] || { cat "$log" >&2; echo "test-install: the container did not start" >&2; exit 1; }

# inside CMD...: runs CMD inside the container, with the container's own environment.
inside() { nsenter -t "$leader" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }

passed=0
failed=0
ok() { echo "test-install: ok: $*"; passed=$((passed + 1)); }
bad() { echo "test-install: FAIL: $*" >&2; failed=$((failed + 1)); }
check() { # check DESCRIPTION CMD...: ok when CMD succeeds inside the container
  local what=$1
  shift
  if inside "$@"; then ok "$what"; else bad "$what"; fi
}
# wait_active UNIT: the unit's state once it settles (a restart takes RestartSec=2s).
wait_active() {
  local state=""
  for _ in $(seq 100); do
    state=$(inside systemctl is-active "$1" 2>/dev/null || true)
    [ "$state" = active ] && break
    sleep 0.1
  done
  echo "$state"
}
main_pid() { inside systemctl show -P MainPID chat-server.service; }

# is-system-running fails until systemd answers on its bus, then --wait waits for the boot.
state=""
for _ in $(seq 120); do
  state=$(inside systemctl is-system-running --wait 2>/dev/null || true)
  case "$state" in running | degraded) break ;; esac
  sleep 0.5
done
echo "== container booted: $state"
[ "$state" = running ] || [ "$state" = degraded ] || { bad "systemd did not boot ($state)"; exit 1; }

echo "== install"
check "dpkg -i" dpkg -i /root/chat-server.deb
[ "$(inside systemctl is-enabled chat-server.service)" = enabled ] && ok "enabled on install" || bad "not enabled"
[ "$(wait_active chat-server.service)" = active ] && ok "active after install" || bad "not active"
check "answers on 5555: nick, join, message" /root/chat-check.sh 127.0.0.1 5555 5555 kitchen
check "man page installed" sh -c 'man -w chat-server | grep -q chat-server.1.gz'
check "runs as a dynamic user, not root" \
  sh -c '! grep -qE "^Uid:\s+0\s" "/proc/$(systemctl show -P MainPID chat-server)/status"'
keeper="keeper$RANDOM"
check "a nick registered" /root/state-check.sh register 5555 "$keeper"
check "its data dir is the state directory (the unit's CHAT_DATA_DIR=/var/lib/chat-server)" \
  sh -c 'test -s /var/lib/private/chat-server/chat.sqlite3 &&
    tr "\0" "\n" <"/proc/$(systemctl show -P MainPID chat-server)/environ" |
      grep -qx CHAT_DATA_DIR=/var/lib/chat-server'

echo "== journal"
check "'listening on' logged at priority info" \
  sh -c 'journalctl -u chat-server -p info..info -o cat | grep -q "listening on 0.0.0.0:5555"'
check "no timestamp or colour of its own in the journal" \
  sh -c '! journalctl -u chat-server -o cat | grep -qP "^\d{4}-|\x1b\["'
check "journalctl -p warning leaves info lines out" \
  sh -c '! journalctl -u chat-server -p warning -o cat | grep -q "listening on"'
check "the journal took the <N> prefixes (none left in the messages)" \
  sh -c '! journalctl -u chat-server -o cat | grep -q "^<[0-9]>"'
# A warning of its own: an instance pointed at a Redis port where nothing listens says so.
inside mkdir -p /etc/chat-server
printf 'CHAT_LISTEN=127.0.0.1:5570\nCHAT_REDIS=redis://127.0.0.1:6390/\n' |
  inside tee /etc/chat-server/warn.env >/dev/null
inside systemctl start chat-server@warn
check "a warning is filed at priority warning" sh -c '
  for _ in $(seq 50); do
    journalctl -u chat-server@warn -p warning..warning -o cat | grep -q "no Redis at" && exit 0
    sleep 0.1
  done
  exit 1'
inside systemctl stop chat-server@warn
inside rm /etc/chat-server/warn.env
exposure=$(inside systemd-analyze security chat-server.service 2>/dev/null |
  sed -nE 's/.*Overall exposure level for chat-server.service: ([0-9.]+ [A-Z]+).*/\1/p')
echo "test-install: exposure level (systemd-analyze security, in the container): ${exposure:-unknown}"

echo "== restart"
before=$(main_pid)
check "systemctl restart" systemctl restart chat-server.service
after=$(main_pid)
[ "$before" != "$after" ] && [ "$(wait_active chat-server.service)" = active ] &&
  ok "restarted (pid $before -> $after)" || bad "not restarted"
check "answers after restart" /root/chat-check.sh 127.0.0.1 5555 5555 kitchen
check "the registration survived the restart" /root/state-check.sh check 5555 "$keeper"
check "SIGTERM stops it cleanly (exit status 0)" \
  sh -c 'systemctl stop chat-server && [ "$(systemctl show -P ExecMainStatus chat-server)" = 0 ]'
check "systemctl start" systemctl start chat-server.service
before=$(main_pid)
inside systemctl kill --signal=SIGKILL chat-server.service
for _ in $(seq 100); do
  after=$(main_pid)
  [ "$after" != "$before" ] && [ "$after" != 0 ] && break
  sleep 0.1
done
[ "$after" != "$before" ] && [ "$(wait_active chat-server.service)" = active ] &&
  ok "restarted by systemd after SIGKILL (Restart=on-failure)" || bad "not restarted after SIGKILL"
check "the registration survived the SIGKILL" /root/state-check.sh check 5555 "$keeper"

echo "== configuration and upgrade"
inside sed -i 's|^#CHAT_LISTEN=.*|CHAT_LISTEN=127.0.0.1:6000|' /etc/default/chat-server
check "restart with CHAT_LISTEN=127.0.0.1:6000" systemctl restart chat-server.service
check "answers on 6000" /root/chat-check.sh 127.0.0.1 6000 6000 hall
before=$(main_pid)
check "upgrade (dpkg -i of the same package as version +upgrade1)" \
  sh -c 'dpkg -i /root/chat-server-upgrade.deb >/dev/null && dpkg -s chat-server | grep -q "^Version: .*+upgrade1"'
check "the edited conffile is kept" grep -qx 'CHAT_LISTEN=127.0.0.1:6000' /etc/default/chat-server
after=$(main_pid)
[ "$before" != "$after" ] && [ "$(wait_active chat-server.service)" = active ] &&
  ok "restarted by the upgrade (pid $before -> $after)" || bad "not restarted by the upgrade"
check "answers on 6000 after the upgrade" /root/chat-check.sh 127.0.0.1 6000 6000 hall
check "the registration survived the upgrade" /root/state-check.sh check 6000 "$keeper"

echo "== cluster: Redis and three template instances"
for node in a b c; do
  port=$((5560 + $(printf '%d' "'$node") - 96))
  printf 'CHAT_LISTEN=127.0.0.1:%s\nCHAT_REDIS=redis://127.0.0.1:6379/\n' "$port" |
    inside tee "/etc/chat-server/$node.env" >/dev/null
done
check "redis-server active" systemctl start redis-server.service
check "chat-server@a, @b, @c started" systemctl start chat-server@a chat-server@b chat-server@c
check "a user on node a talks to one on node b" /root/chat-check.sh 127.0.0.1 5561 5562 cluster
check "a user on node c talks to one on node a" /root/chat-check.sh 127.0.0.1 5563 5561 cluster2
check "instances have state directories of their own" test -d /var/lib/private/chat-server-b

echo "== remove and purge"
check "dpkg -r" sh -c 'dpkg -r chat-server >/dev/null'
check "service stopped" sh -c '! systemctl is-active -q chat-server.service'
check "template instances stopped" sh -c '! systemctl is-active -q chat-server@a chat-server@b chat-server@c'
check "binary removed" test ! -e /usr/bin/chat-server
check "conffile kept until purge" test -e /etc/default/chat-server
check "dpkg -P" sh -c 'dpkg -P chat-server >/dev/null'
check "conffile purged" test ! -e /etc/default/chat-server
check "state purged" sh -c '! ls -d /var/lib/private/chat-server* /var/lib/chat-server* 2>/dev/null | grep -q .'
check "no enablement left" sh -c '! ls /etc/systemd/system/*/chat-server.service 2>/dev/null | grep -q .'
check "nothing of the package left in dpkg" sh -c '! dpkg -l chat-server 2>/dev/null | grep -q "^[a-z][a-z] "'
inside rm -rf /etc/chat-server /root/chat-server.deb /root/chat-server-upgrade.deb /root/chat-check.sh \
  /root/state-check.sh
inside sh -c 'rm -f /etc/systemd/system/multi-user.target.wants/chat-server@*.service'

if [ "$failed" -gt 0 ]; then
  echo "== the journal of chat-server's units, for the failures above"
  inside journalctl -u 'chat-server*' --no-pager | tail -n 40
fi
echo "test-install: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
