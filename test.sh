#!/usr/bin/env bash
# Runs the whole test suite, installing what it needs first (Debian packages via apt-get).
# Usage: ./test.sh        (CI runs exactly this through .ci/run)
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages the suite needs: Xvfb and Tk for the desktop client's tests, Redis for
# cluster mode, xauth for xvfb-run, ImageMagick for the client's screenshot, binutils (readelf)
# to check that the packaged binary is stripped.
needed=(xvfb xauth python3-tk redis-server imagemagick binutils)
missing=()
for pkg in "${needed[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings

echo "== Rust tests (unit, integration, doc)"
cargo build --release --quiet
cargo test --quiet

echo "== Debian package (build, then check its contents and units)"
# build-deb.sh installs cargo-deb from crates.io if it is missing (about 2 minutes, once).
packaging/build-deb.sh
packaging/check-deb.sh

if [ -f benches/load/main.rs ]; then
  echo "== load harness smoke run"
  cargo bench --quiet --bench load -- --smoke
fi

echo "== churn soak run (30 s)"
cargo bench --quiet --bench soak -- --duration 30

if [ -d clients/python/tests ]; then
  echo "== Tk client tests (under Xvfb)"
  # Cargo's target directory, wherever CARGO_TARGET_DIR or a cargo config puts it.
  CHAT_SERVER_BIN="$(scripts/cargo-target-dir)/release/chat-server" \
    xvfb-run -a -s "-screen 0 1280x800x24" \
    /usr/bin/python3 -m unittest discover -s clients/python/tests -v
fi
echo "== all tests passed"
