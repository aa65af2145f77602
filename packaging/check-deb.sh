#!/usr/bin/env bash
# Checks a built Debian package without installing it: the files it holds, the conffile, the
# stripped binary, the man page, the environment file against src/config.rs, the maintainer
# scripts, and `systemd-analyze verify` on its units (where systemd-analyze exists).
#
# Usage: packaging/check-deb.sh [PACKAGE.deb]   (default: the newest *.deb in cargo's target directory)
# ./test.sh runs it after packaging/build-deb.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

deb=${1:-$(ls -t "$(scripts/cargo-target-dir)"/debian/chat-server_*.deb 2>/dev/null | head -n 1)}
[ -n "$deb" ] && [ -f "$deb" ] || { echo "check-deb: no package; run packaging/build-deb.sh" >&2; exit 1; }

failures=0
fail() { echo "check-deb: FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "check-deb: ok: $*"; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$deb" "$work/root"
dpkg-deb -e "$deb" "$work/control"
contents=$(dpkg-deb --contents "$deb")
info=$(dpkg-deb --info "$deb")

# Files the package must hold.
for path in \
  usr/bin/chat-server \
  etc/default/chat-server \
  usr/lib/systemd/system/chat-server.service \
  usr/lib/systemd/system/chat-server@.service \
  usr/share/man/man1/chat-server.1.gz \
  usr/share/doc/chat-server/README.md \
  usr/share/doc/chat-server/PROTOCOL.md \
  usr/share/doc/chat-server/DEPLOY.md \
  usr/share/doc/chat-server/CLUSTER.md \
  usr/share/doc/chat-server/copyright; do
  if grep -qE " \./$path\$" <<<"$contents"; then ok "holds /$path"; else fail "missing /$path"; fi
done
if grep -qE '^-rwxr-xr-x .* \./usr/bin/chat-server$' <<<"$contents"; then
  ok "/usr/bin/chat-server is mode 755"
else
  fail "/usr/bin/chat-server is not mode 755"
fi

# Control fields and conffiles.
grep -q '^ Package: chat-server$' <<<"$info" || fail "control: Package is not chat-server"
grep -q '^ Depends: .*libc6' <<<"$info" || fail "control: no dependency on libc6"
if grep -qx '/etc/default/chat-server' "$work/control/conffiles" 2>/dev/null; then
  ok "/etc/default/chat-server is a conffile"
else
  fail "/etc/default/chat-server is not a conffile"
fi

# The binary: stripped (no symbol table, no debug sections) and, when it is for this machine,
# it runs.
sections=$(readelf -S --wide "$work/root/usr/bin/chat-server")
if grep -qE '\.symtab|\.debug_' <<<"$sections"; then fail "the binary is not stripped"; else ok "the binary is stripped"; fi
if [ "$(dpkg-deb -f "$deb" Architecture)" = "$(dpkg --print-architecture)" ]; then
  version=$(dpkg-deb -f "$deb" Version)
  if "$work/root/usr/bin/chat-server" --version | grep -qx "chat-server ${version%%-*}"; then
    ok "chat-server --version says $version"
  else
    fail "chat-server --version does not say $version"
  fi
fi

# The man page: a roff page with the options and the service's sections; rendered when man
# is installed.
page=$(gzip -dc "$work/root/usr/share/man/man1/chat-server.1.gz")
for section in NAME SYNOPSIS OPTIONS ENVIRONMENT FILES; do
  grep -q "^\.SH $section" <<<"$page" || fail "man page: no $section section"
done
if command -v man >/dev/null; then
  if MANWIDTH=80 man -l "$work/root/usr/share/man/man1/chat-server.1.gz" 2>/dev/null | grep -q -- '--max-connections'; then
    ok "man page renders"
  else
    fail "man page does not render"
  fi
fi

# The environment file: every CHAT_* setting of src/config.rs, commented out, none active.
envfile="$work/root/etc/default/chat-server"
settings=$(grep -oE 'env = "CHAT_[A-Z0-9_]+"' src/config.rs | sed -E 's/env = "(.*)"/\1/')
[ -n "$settings" ] || fail "found no env = \"CHAT_...\" in src/config.rs"
for name in $settings; do
  grep -qE "^#$name=" "$envfile" || fail "/etc/default/chat-server lacks #$name="
done
if grep -qE '^[^#[:space:]]' "$envfile"; then fail "/etc/default/chat-server sets something"; fi
ok "/etc/default/chat-server lists $(wc -w <<<"$settings") settings, all commented out"

# Maintainer scripts: enable and start on install, stop on removal, clean up on purge.
grep -q 'deb-systemd-helper enable chat-server.service' "$work/control/postinst" || fail "postinst does not enable the service"
grep -q 'deb-systemd-invoke $_dh_action chat-server.service' "$work/control/postinst" || fail "postinst does not start the service"
grep -q 'deb-systemd-invoke stop chat-server.service' "$work/control/prerm" || fail "prerm does not stop the service"
grep -q 'deb-systemd-helper purge chat-server.service' "$work/control/postrm" || fail "postrm does not purge the service's state"
grep -q '#DEBHELPER#' "$work/control/postrm" && fail "postrm still holds the #DEBHELPER# marker"
for script in postinst prerm postrm; do
  sh -n "$work/control/$script" || fail "$script is not valid sh"
done
ok "maintainer scripts"

# The template's sandbox is the plain unit's, line for line (systemd has no include).
sandbox() { sed -n '/^CapabilityBoundingSet=/,/^\[Install\]/p' "$1" | grep -v '^#'; }
units="$work/root/usr/lib/systemd/system"
if diff <(sandbox "$units/chat-server.service") <(sandbox "$units/chat-server@.service") >/dev/null; then
  ok "chat-server@.service has chat-server.service's sandbox"
else
  fail "the sandboxes of chat-server.service and chat-server@.service differ"
fi

# The units, verified as systemd would load them: a copy whose ExecStart points into the
# extracted package, so the check needs no installed binary; man pages looked up there too.
if command -v systemd-analyze >/dev/null; then
  mkdir -p "$work/units"
  for unit in chat-server.service chat-server@.service; do
    sed "s|/usr/bin/chat-server|$work/root/usr/bin/chat-server|" \
      "$work/root/usr/lib/systemd/system/$unit" >"$work/units/$unit"
  done
  if MANPATH="$work/root/usr/share/man" systemd-analyze verify \
    "$work/units/chat-server.service" "$work/units/chat-server@check.service"; then
    ok "systemd-analyze verify"
  else
    fail "systemd-analyze verify"
  fi
  exposure=$(systemd-analyze security --offline=true "$work/units/chat-server.service" 2>/dev/null |
    sed -nE 's/.*Overall exposure level for chat-server.service: ([0-9.]+).*/\1/p')
  echo "check-deb: exposure level (systemd-analyze security): ${exposure:-unknown}"
else
  echo "check-deb: systemd-analyze not installed: units not verified"
fi

if [ "$failures" -gt 0 ]; then
  echo "check-deb: $failures failed checks in $deb" >&2
  exit 1
fi
echo "check-deb: $deb is complete"
