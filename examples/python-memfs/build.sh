#!/usr/bin/env bash
# Builds the python-memfs plugin into a WebAssembly component.
#
#   examples/python-memfs/build.sh OUT.wasm
#
# Sets up componentize-py first (scripts/wasm-toolchain.sh --python; idempotent, offline once
# installed). componentize-py bundles CPython, so the component is about 18 MB.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:?usage: build.sh OUT.wasm}
case "$out" in /*) ;; *) out=$PWD/$out ;; esac
mkdir -p "$(dirname "$out")"
NFSGW_WASM_HOME=${NFSGW_WASM_HOME:-$HOME/.cache/nfsgw/wasm}
export NFSGW_WASM_HOME

bash "$repo/scripts/wasm-toolchain.sh" --python
# Work in a scratch directory, so no __pycache__ lands in the source tree.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here/app.py" "$work/"
(cd "$work" && "$NFSGW_WASM_HOME/venv/bin/componentize-py" -d "$repo/wit" -w plugin \
  componentize app -o "$out" >/dev/null)
echo "python-memfs: wrote $out ($(stat -c %s "$out") bytes)"
