#!/usr/bin/env bash
# Sets up this machine, builds nfsgw with its bundled plugins, and serves the demo directory
# (a local mount at host:/demo on 127.0.0.1:20490), printing the mount commands.
#   scripts/demo.sh [--dir DIR]       Ctrl-C stops it.
set -euo pipefail
. "$(dirname "$0")/common.sh"
say "WebAssembly toolchain"
bash "$NFSGW_REPO/scripts/wasm-toolchain.sh"
say "cargo build --release (the first build takes several minutes)"
cargo build --release --manifest-path "$NFSGW_REPO/Cargo.toml" -p nfsgw
exec "$NFSGW_BIN" demo "$@"
