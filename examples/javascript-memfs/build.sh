#!/usr/bin/env bash
# Builds the javascript-memfs plugin into a WebAssembly component.
#
#   examples/javascript-memfs/build.sh OUT.wasm
#
# Sets up componentize-js first (scripts/wasm-toolchain.sh --js; idempotent, offline once
# installed). componentize-js bundles the StarlingMonkey engine, so the component is about 12 MB.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:?usage: build.sh OUT.wasm}
case "$out" in /*) ;; *) out=$PWD/$out ;; esac
mkdir -p "$(dirname "$out")"
NFSGW_WASM_HOME=${NFSGW_WASM_HOME:-$HOME/.cache/nfsgw/wasm}
export NFSGW_WASM_HOME

bash "$repo/scripts/wasm-toolchain.sh" --js
node "$here/build.mjs" "$here/memfs.js" "$repo/wit" "$out"
