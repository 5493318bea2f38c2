#!/usr/bin/env bash
# Runs every test of nfsgw on this machine, installing what is missing first:
#   format and lint, unit tests, end-to-end tests with real NFS clients (nfs3_client, libnfs),
#   nfsgw.exe cross-built for Windows and served under Wine (scripts/windows-test.sh),
#   the local Hub + Xet test server proven with the real huggingface_hub/hf_xet clients (tests/hub),
#   and the Linux kernel NFS client in QEMU (workload + pjdfstest).
#   scripts/test.sh [--no-kernel]
set -euo pipefail
. "$(dirname "$0")/common.sh"
kernel=1
for a in "$@"; do
  case $a in
    --no-kernel) kernel=0 ;;
    *) echo "usage: scripts/test.sh [--no-kernel]" >&2; exit 2 ;;
  esac
done
cd "$NFSGW_REPO"

say "setup: WebAssembly toolchain, NFS clients"
bash scripts/wasm-toolchain.sh
apt_install libnfs-utils
bash tests/s3/setup.sh
bash tests/hub/setup.sh
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt

say "plugin crates, natively: the Xet formats, and the hub plugin against the local Hub"
cargo test --release --manifest-path plugins/Cargo.toml -p nfsgw-plugin-sdk -p nfsgw-xet -p nfsgw-plugin-hub

say "format and lint"
cargo fmt --all --check
cargo fmt --manifest-path plugins/Cargo.toml --all --check
cargo fmt --manifest-path tests/plugins/Cargo.toml --all --check
cargo fmt --manifest-path bench/Cargo.toml --all --check
cargo clippy --release --all-targets -- -D warnings

say "build"
cargo build --release -p nfsgw

say "unit and end-to-end tests"
cargo test --release --workspace

say "Hub + Xet CAS test server, proven with the real huggingface_hub and hf_xet clients"
bash tests/hub/run.sh

say "Windows: nfsgw.exe cross-built and served under Wine"
bash scripts/windows-test.sh

if [ $kernel = 1 ]; then
  say "Linux kernel NFS client (QEMU)"
  bash tests/kernel/setup.sh
  bash tests/kernel/run.sh "$NFSGW_BIN" --pjdfstest
  say "Linux kernel NFS client on S3 and Hub mounts (QEMU)"
  bash tests/kernel/backends.sh "$NFSGW_BIN"
fi
say "all tests passed"
