#!/usr/bin/env bash
# Installs the S3 servers the tests run, each only when missing:
#   s3s-fs 0.14.1 (cargo install; checks SigV4 signatures; most S3 tests use it), and
#   moto[server] 5.2.5 in a venv at ${NFSGW_S3_VENV:-~/.cache/nfsgw/s3-venv} (full S3 semantics,
#   including directory-marker objects, which s3s-fs cannot list: the s3 plugin's conformance
#   run uses it).
set -euo pipefail
. "$(dirname "$0")/../../scripts/common.sh"

if ! command -v s3s-fs >/dev/null && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs" ]; then
  say "installing s3s-fs 0.14.1 (cargo install, a few minutes once)"
  # Its own target dir: the project's would be rebuilt with other features.
  CARGO_TARGET_DIR="$HOME/.cache/nfsgw/s3s-fs-build" \
    cargo install s3s-fs --version 0.14.1 --features binary --locked
fi

venv=${NFSGW_S3_VENV:-$HOME/.cache/nfsgw/s3-venv}
if [ ! -x "$venv/bin/moto_server" ]; then
  say "installing moto[server] 5.2.5 into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'moto[server]==5.2.5'
fi
