# Shared by the scripts: the persistent cargo target dir and small helpers. Source it.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/nfsgw/target}
NFSGW_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NFSGW_BIN=$CARGO_TARGET_DIR/release/nfsgw

say() { printf '\n==> %s\n' "$*" >&2; }

# apt_install PKG...: installs the Debian packages that are missing (apt-get update once).
apt_install() {
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "apt-get install ${missing[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
