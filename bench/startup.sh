#!/usr/bin/env bash
# Start-up benchmark: how long nfsgw takes from launch to serving a mount backed by a large
# plugin (the Python and JavaScript examples, 12–18 MB components), the first time (it
# compiles the component) and the second time (from the on-disk cache of compiled plugins).
# Prints a Markdown table and writes it to docs/BENCHMARKS-startup.md.
#   bench/startup.sh [RUNS]        (default 3 warm runs each)
set -euo pipefail
. "$(dirname "$0")/../scripts/common.sh"
runs=${1:-3}
apt_install bc
cd "$NFSGW_REPO"
cargo build --release -q -p nfsgw
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash examples/build.sh "$work/plugins" >/dev/null

# Seconds from launch to the "serving" line, with the compiled-plugin cache in $2.
time_to_serve() {
  local wasm=$1 cache=$2 cfg=$work/bench.toml out=$work/out.txt
  printf '[server]\nlisten = "127.0.0.1:0"\nportmap = "off"\nstate_dir = "%s"\n[[mount]]\nname = "m"\nplugin = "%s"\n' \
    "$work/state" "$wasm" > "$cfg"
  local t0 pid
  t0=$(date +%s%N)
  XDG_CACHE_HOME=$cache "$NFSGW_BIN" --config "$cfg" > "$out" 2>/dev/null &
  pid=$!
  until grep -q '^nfsgw: serving' "$out" 2>/dev/null; do
    kill -0 $pid 2>/dev/null || { echo "nfsgw exited" >&2; exit 1; }
    sleep 0.01
  done
  printf '%.2f' "$(echo "scale=3; ($(date +%s%N) - $t0) / 1000000000" | bc)"
  kill $pid; wait $pid 2>/dev/null || true
}

table="| plugin | size | first start (compiles) | later starts (cached), best of $runs |
|---|---|---|---|"
for name in python-memfs javascript-memfs; do
  wasm=$work/plugins/$name.wasm
  cache=$work/cache-$name
  cold=$(time_to_serve "$wasm" "$cache")
  best=
  for _ in $(seq "$runs"); do
    t=$(time_to_serve "$wasm" "$cache")
    if [ -z "$best" ] || [ "$(echo "$t < $best" | bc)" = 1 ]; then best=$t; fi
  done
  size=$(( $(stat -c %s "$wasm") / 1048576 ))
  table+=$'\n'"| $name | $size MiB | ${cold} s | ${best} s |"
done
printf '%s\n' "$table"
{
  echo "# Start-up with large plugins"
  echo
  echo "Measured by \`bench/startup.sh\` on $(date -u +%Y-%m-%d), $(nproc) cores: the time from launching"
  echo "nfsgw to its \"serving\" line, for one mount backed by each example plugin."
  echo
  printf '%s\n' "$table"
} > docs/BENCHMARKS-startup.md
