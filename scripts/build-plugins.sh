#!/usr/bin/env bash
# Builds a workspace of plugins (default plugins/, the bundled ones) to WebAssembly components
# and copies them to OUT_DIR as <name>.wasm (the crate name without the "nfsgw-plugin-" prefix).
# Each component is a directory of the workspace whose crate builds a cdylib.
#
#   scripts/build-plugins.sh OUT_DIR [WORKSPACE_DIR]
#
# Uses rustup's wasm32-wasip2 target, or the fallback set up by scripts/wasm-toolchain.sh.
# Runs with a clean environment, so it behaves the same from a shell and from build.rs.
set -euo pipefail
out=${1:?usage: build-plugins.sh OUT_DIR [WORKSPACE_DIR]}
repo=$(cd "$(dirname "$0")/.." && pwd)
workspace=$(cd "${2:-$repo/plugins}" && pwd)
NFSGW_WASM_HOME=${NFSGW_WASM_HOME:-$HOME/.cache/nfsgw/wasm}
target_dir=${NFSGW_PLUGIN_TARGET_DIR:-${CARGO_TARGET_DIR:-$repo/target}/wasm-plugins}
mkdir -p "$out"

# Only what a plain cargo build needs; nothing of an enclosing cargo run leaks in.
clean_env=(env -i "PATH=$PATH" "HOME=$HOME")
for v in CARGO_HOME RUSTUP_HOME RUSTUP_TOOLCHAIN; do
  [ -n "${!v:-}" ] && clean_env+=("$v=${!v}")
done
# The components: crates that build a cdylib (not libraries such as the plugin SDK).
crates=$(cd "$workspace" && grep -l cdylib -- */Cargo.toml | cut -d/ -f1 || true)

if rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  "${clean_env[@]}" cargo build --quiet --release --target wasm32-wasip2 \
    --manifest-path "$workspace/Cargo.toml" --target-dir "$target_dir"
  for c in $crates; do
    cp "$target_dir/wasm32-wasip2/release/nfsgw_plugin_$c.wasm" "$out/$c.wasm"
  done
elif [ -f "$NFSGW_WASM_HOME/fallback.env" ]; then
  # shellcheck disable=SC1091
  . "$NFSGW_WASM_HOME/fallback.env"
  "${clean_env[@]}" RUSTC="$RUSTC" RUSTC_BOOTSTRAP=1 \
    CARGO_TARGET_WASM32_WASIP1_LINKER="$CARGO_TARGET_WASM32_WASIP1_LINKER" \
    CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="$CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS" \
    "$CARGO" build --quiet --release --target wasm32-wasip1 -Zbuild-std=std,panic_abort \
    --manifest-path "$workspace/Cargo.toml" --target-dir "$target_dir"
  for c in $crates; do
    "$WASM_TOOLS" component new "$target_dir/wasm32-wasip1/release/nfsgw_plugin_$c.wasm" \
      --adapt "$WASI_P1_ADAPTER" -o "$out/$c.wasm"
  done
else
  echo "build-plugins: no WebAssembly toolchain; run scripts/wasm-toolchain.sh first" >&2
  exit 1
fi
