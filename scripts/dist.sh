#!/usr/bin/env bash
# Builds the release binaries of nfsgw with the `dist` profile (stripped, LTO, one codegen
# unit: see Cargo.toml) for Linux x86_64, Linux aarch64 and Windows x86_64, into dist/, with
# their SHA-256 sums in dist/SHA256SUMS. Installs the cross linkers (Debian's
# gcc-aarch64-linux-gnu, gcc-mingw-w64-x86-64) and the rustup targets that are missing.
#   scripts/dist.sh [TARGET...]     (default: all three)
set -euo pipefail
. "$(dirname "$0")/common.sh"
cd "$NFSGW_REPO"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu x86_64-pc-windows-gnu)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

bash scripts/wasm-toolchain.sh # build.rs builds the bundled plugins, whatever the host target
for target in "${targets[@]}"; do
  case $target in
    x86_64-unknown-linux-gnu) ;;
    aarch64-unknown-linux-gnu) apt_install gcc-aarch64-linux-gnu libc6-dev-arm64-cross ;;
    x86_64-pc-windows-gnu) apt_install gcc-mingw-w64-x86-64 ;;
    *) echo "scripts/dist.sh: unknown target $target" >&2; exit 2 ;;
  esac
  rustup target list --installed | grep -qx "$target" || rustup target add "$target"
done

mkdir -p dist
for target in "${targets[@]}"; do
  say "building nfsgw $version for $target (profile dist)"
  cargo build --profile dist --target "$target" -p nfsgw
  exe=nfsgw; [[ $target == *windows* ]] && exe=nfsgw.exe
  name=nfsgw-$version-$target; [[ $target == *windows* ]] && name=$name.exe
  cp "$CARGO_TARGET_DIR/$target/dist/$exe" "dist/$name"
done

cd dist
sha256sum nfsgw-"$version"-* > SHA256SUMS
say "dist/"
for f in nfsgw-"$version"-*; do
  awk -v f="$f" -v b="$(stat -c %s "$f")" 'BEGIN { printf "%-48s %6.1f MB\n", f, b / 1e6 }'
done
cat SHA256SUMS
