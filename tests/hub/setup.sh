#!/usr/bin/env bash
# tests/hub/setup.sh: make the Python venv for the Hub/Xet tests, only when missing.
#   venv: ${NFSGW_HUB_VENV:-$HOME/.cache/nfsgw/hub-venv}
#   contents: tests/hub/requirements.txt (real huggingface_hub + hf_xet clients, and
#   blake3 + lz4 for the fakehub server). A stamp of that file is kept in the venv:
#   while it matches, the venv is reused as is, with no network access.
# usage: setup.sh [--force]     (--force rebuilds the venv)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VENV=${NFSGW_HUB_VENV:-$HOME/.cache/nfsgw/hub-venv}
REQ="$HERE/requirements.txt"
FORCE=
for a in "$@"; do case $a in
  --force) FORCE=1 ;;
  *) echo "usage: setup.sh [--force]" >&2; exit 2 ;;
esac; done

want=$(md5sum < "$REQ" | cut -d' ' -f1)
if [ -z "$FORCE" ] && [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.nfsgw-req" 2>/dev/null)" = "$want" ] \
   && "$VENV/bin/python" -c 'import huggingface_hub, hf_xet, blake3, lz4.frame' 2>/dev/null; then
  echo "hub-tests: venv ready at $VENV"
  exit 0
fi

PY=${PYTHON:-python3}
if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
  echo "hub-tests: installing python3-venv"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
  PY=python3
fi
echo "hub-tests: creating $VENV"
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ"
"$VENV/bin/python" -c 'import huggingface_hub, hf_xet, blake3, lz4.frame'
echo "$want" > "$VENV/.nfsgw-req"
echo "hub-tests: venv ready at $VENV ($("$VENV/bin/python" -m pip freeze | grep -iE '^(huggingface.hub|hf.xet)==' | tr '\n' ' '))"
