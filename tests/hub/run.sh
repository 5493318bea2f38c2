#!/usr/bin/env bash
# tests/hub/run.sh: set up the venv if needed, then prove fakehub with the real clients.
# usage: run.sh [--keep]     (--keep leaves the server data and request logs behind)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VENV=${NFSGW_HUB_VENV:-$HOME/.cache/nfsgw/hub-venv}
bash "$HERE/setup.sh"
exec "$VENV/bin/python" "$HERE/real_client_test.py" "$@"
