#!/usr/bin/env bash
# Makes this machine able to build nfsgw's plugins (WebAssembly components). Idempotent.
#
# Primary path: rustup's wasm32-wasip2 target (rustc links a component directly).
# Fallback, when rustup cannot fetch the target: Debian's rustc-web with -Zbuild-std for
# wasm32-wasip1, wrapped into a component with the WASI preview1 adapter by wasm-tools.
# The fallback writes $NFSGW_WASM_HOME/fallback.env, which scripts/build-plugins.sh reads.
#
#   scripts/wasm-toolchain.sh            set up (primary, else fallback)
#   NFSGW_WASM_FALLBACK=1 scripts/...    force the fallback
#   scripts/wasm-toolchain.sh --python   only componentize-py, in a venv under $NFSGW_WASM_HOME/venv
#   scripts/wasm-toolchain.sh --js       only componentize-js (npm), under $NFSGW_WASM_HOME/js
#
# --python and --js (either or both) set up the tools for plugins in Python and JavaScript
# (examples/), and skip the Rust setup; without options the script sets up Rust as before.
set -euo pipefail
. "$(dirname "$0")/common.sh"

NFSGW_WASM_HOME=${NFSGW_WASM_HOME:-$HOME/.cache/nfsgw/wasm}
RUST_TARGET=wasm32-wasip2
RUSTUP_TIMEOUT=${RUSTUP_TIMEOUT:-300}
WASM_TOOLS_VERSION=1.263.0
ADAPTER_PROVIDER_VERSION=48.0.8 # matches the host's wasmtime
COMPONENTIZE_PY_VERSION=0.25.1
COMPONENTIZE_JS_VERSION=0.23.0

log() { printf '[wasm-toolchain] %s\n' "$*" >&2; }


setup_fallback() {
  apt_install rustc-web cargo-web rust-web-src wasi-libc lld-22
  mkdir -p "$NFSGW_WASM_HOME/adapter"
  if ! "$NFSGW_WASM_HOME/bin/wasm-tools" --version 2>/dev/null | grep -q "$WASM_TOOLS_VERSION"; then
    log "cargo install wasm-tools@$WASM_TOOLS_VERSION (several minutes on 2 cores)"
    cargo install --locked --quiet --root "$NFSGW_WASM_HOME" "wasm-tools@$WASM_TOOLS_VERSION"
  fi
  if [ ! -f "$NFSGW_WASM_HOME/adapter/wasi_snapshot_preview1.reactor.wasm" ]; then
    # The adapter ships inside a crates.io crate: fetch it through a throwaway manifest.
    local d="$NFSGW_WASM_HOME/adapter-fetch"
    mkdir -p "$d/src"
    printf '[package]\nname="adapter-fetch"\nversion="0.0.0"\nedition="2021"\n[dependencies]\nwasi-preview1-component-adapter-provider="=%s"\n' \
      "$ADAPTER_PROVIDER_VERSION" >"$d/Cargo.toml"
    : >"$d/src/lib.rs"
    (cd "$d" && cargo fetch --quiet)
    cp "$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/wasi-preview1-component-adapter-provider-"$ADAPTER_PROVIDER_VERSION"/artefacts | head -1)"/*.wasm \
      "$NFSGW_WASM_HOME/adapter/"
  fi
  cat >"$NFSGW_WASM_HOME/fallback.env" <<ENV
export CARGO=/usr/bin/cargo RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
export CARGO_TARGET_WASM32_WASIP1_LINKER=/usr/lib/llvm-22/bin/wasm-ld
export CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="-C link-self-contained=no -L native=/usr/lib/wasm32-wasi"
export WASM_TOOLS=$NFSGW_WASM_HOME/bin/wasm-tools
export WASI_P1_ADAPTER=$NFSGW_WASM_HOME/adapter/wasi_snapshot_preview1.reactor.wasm
ENV
  log "fallback toolchain ready ($NFSGW_WASM_HOME/fallback.env)"
}

# componentize-py in its own venv: $NFSGW_WASM_HOME/venv/bin/componentize-py.
setup_python() {
  local venv=$NFSGW_WASM_HOME/venv
  if "$venv/bin/componentize-py" --version 2>/dev/null | grep -q " $COMPONENTIZE_PY_VERSION\b"; then
    log "componentize-py $COMPONENTIZE_PY_VERSION is installed ($venv)"
    return 0
  fi
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" 2>/dev/null || {
      apt_install python3-venv
      rm -rf "$venv"
      python3 -m venv "$venv"
    }
  fi
  log "pip install componentize-py==$COMPONENTIZE_PY_VERSION (a 46 MB wheel)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "componentize-py==$COMPONENTIZE_PY_VERSION"
}

# componentize-js as a local npm package: $NFSGW_WASM_HOME/js/node_modules/@bytecodealliance/...
setup_js() {
  local dir=$NFSGW_WASM_HOME/js
  local pkg=$dir/node_modules/@bytecodealliance/componentize-js/package.json
  if [ -f "$pkg" ] && grep -q "\"version\": *\"$COMPONENTIZE_JS_VERSION\"" "$pkg"; then
    log "componentize-js $COMPONENTIZE_JS_VERSION is installed ($dir)"
    return 0
  fi
  command -v npm >/dev/null || apt_install nodejs npm
  mkdir -p "$dir"
  [ -f "$dir/package.json" ] ||
    printf '{ "name": "nfsgw-wasm-js-tools", "private": true, "type": "module" }\n' >"$dir/package.json"
  log "npm install @bytecodealliance/componentize-js@$COMPONENTIZE_JS_VERSION"
  (cd "$dir" && npm install --no-audit --no-fund --loglevel=error --save-exact \
    "@bytecodealliance/componentize-js@$COMPONENTIZE_JS_VERSION" >&2)
}

want_python=0 want_js=0
for arg in "$@"; do
  case "$arg" in
    --python) want_python=1 ;;
    --js) want_js=1 ;;
    *) log "unknown option $arg (known: --python, --js)"; exit 2 ;;
  esac
done

mkdir -p "$NFSGW_WASM_HOME"
if [ $want_python = 1 ] || [ $want_js = 1 ]; then
  [ $want_python = 1 ] && setup_python
  [ $want_js = 1 ] && setup_js
  exit 0
fi
if [ "${NFSGW_WASM_FALLBACK:-0}" = 1 ]; then
  setup_fallback
elif rustup target list --installed 2>/dev/null | grep -qx "$RUST_TARGET"; then
  rm -f "$NFSGW_WASM_HOME/fallback.env"
  log "$RUST_TARGET is installed for $(rustc -V)"
elif timeout "$RUSTUP_TIMEOUT" rustup target add "$RUST_TARGET" >&2; then
  rm -f "$NFSGW_WASM_HOME/fallback.env"
else
  log "rustup could not add $RUST_TARGET; setting up the Debian build-std fallback"
  setup_fallback
fi
