#!/usr/bin/env bash
# Builds the example plugins into OUT_DIR: python-memfs.wasm and javascript-memfs.wasm.
#
#   examples/build.sh OUT_DIR
#
# Sets up their tools first (scripts/wasm-toolchain.sh --python --js: componentize-py in a
# venv, componentize-js from npm, under $NFSGW_WASM_HOME; idempotent).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: examples/build.sh OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)

bash "$here/../scripts/wasm-toolchain.sh" --python --js
bash "$here/python-memfs/build.sh" "$out/python-memfs.wasm"
bash "$here/javascript-memfs/build.sh" "$out/javascript-memfs.wasm"
