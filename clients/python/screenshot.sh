#!/usr/bin/env bash
# Screenshots of the Tk client.
#
#   clients/python/screenshot.sh                 runs the GUI test under Xvfb and saves the window it
#                                                shows to docs/tk-client.png (the README's picture)
#   clients/python/screenshot.sh OUT.png [WINDOW] saves X window WINDOW (default: the whole screen)
#                                                of $DISPLAY to OUT.png; the GUI test calls this
#
# Needs ImageMagick's `import`; installs the Debian package if it is missing (as root or via sudo).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

if [ $# -eq 0 ]; then
  export CHAT_SERVER_BIN="${CHAT_SERVER_BIN:-$("$repo/scripts/cargo-target-dir")/release/chat-server}"
  export TK_CLIENT_SCREENSHOT="$repo/docs/tk-client.png"
  cd "$repo"
  exec xvfb-run -a -s "-screen 0 1280x800x24" \
    /usr/bin/python3 -m unittest discover -s clients/python/tests -p test_gui.py -v
fi

out="$1"
window="${2:-root}"
if ! command -v import >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends imagemagick >/dev/null
fi
import -window "$window" "png:$out"
