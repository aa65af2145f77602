#!/usr/bin/env bash
# Builds the Debian package target/debian/chat-server_VERSION_ARCH.deb.
#
# Usage: packaging/build-deb.sh [CARGO-DEB FLAGS]
#   packaging/build-deb.sh                                        # this machine's architecture
#   packaging/build-deb.sh --target aarch64-unknown-linux-gnu     # a cross build (docs/DEPLOY.md)
#
# First it writes the files generated from the command-line definition (the man page and
# /etc/default/chat-server) into target/package/, then `cargo deb` builds the release binary
# (a no-op when it is up to date) and packs everything listed in Cargo.toml's
# [package.metadata.deb]. Installs cargo-deb from crates.io if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deb --version >/dev/null 2>&1; then
  echo "== installing cargo-deb (cargo install cargo-deb --locked)"
  cargo install cargo-deb --locked --quiet
fi

# The generator is an example built for this machine, also when the package is for another.
cargo run --quiet --example package-files -- target/package
gzip -9nf target/package/chat-server.1

cargo deb "$@"
