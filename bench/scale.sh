#!/usr/bin/env bash
# The scale benchmark (issue #25): nfsgw and NFS-Ganesha 4.3 (FSAL_VFS) serving the same
# directories on loopback, measured one after the other by bench/src/bin/nfsscale:
#   P7a  READDIRPLUS listings of 10k, 100k and 1M entries, cost per entry;
#   P7b  memory per file after listing and LOOKUP-ing the 1M files;
#   P7c  churn creating and removing names, with memory and nfsgw's inode journal sampled;
#   P9   64 connections running CREATE, WRITE 4 KiB, COMMIT, GETATTR, READ, REMOVE cycles.
# Prints a table and writes it into docs/BENCHMARKS.md (between the bench/scale.sh markers).
#   bench/scale.sh
# Environment: NFSGW_BENCH_DIR (data and logs, default /var/tmp/nfsgw-bench; the directories
# are made once and kept), NFSGW_SCALE_DIRS (default 10000,100000,1000000), NFSGW_SCALE_CHURN
# (names made and removed in P7c, default 1000000; the issue's 10000000 takes about ten times
# as long), NFSGW_SCALE_SECONDS (P9's length, default 20), NFSGW_SCALE_CONNECTIONS (default
# 64), NFSGW_SCALE_INFLIGHT (P7c's calls in flight, default 16; with 1, each call waits for
# the reply to the one before), NFSGW_SCALE_CASES (default p7a,p7b,p7c,p9), NFSGW_BENCH_BEFORE=/path/to/older/nfsgw
# (also measure that binary, as the peer "before", named in the docs by its --version),
# NFSGW_BENCH_NO_DOCS=1 (print the table but leave docs/BENCHMARKS.md as it is: for a partial
# run, or one with the same binary in both nfsgw columns). Installs nfs-ganesha, nfs-ganesha-vfs and rpcbind if missing. Port 111 must be free or
# held by rpcbind (Ganesha registers with it; nfsgw's own portmapper is off here).
set -euo pipefail
. "$(dirname "$0")/../scripts/common.sh"
. "$(dirname "$0")/lib.sh"
base=${NFSGW_BENCH_DIR:-/var/tmp/nfsgw-bench}
dirs=${NFSGW_SCALE_DIRS:-10000,100000,1000000}
churn=${NFSGW_SCALE_CHURN:-1000000}
seconds=${NFSGW_SCALE_SECONDS:-20}
connections=${NFSGW_SCALE_CONNECTIONS:-64}
inflight=${NFSGW_SCALE_INFLIGHT:-16}
cases=${NFSGW_SCALE_CASES:-p7a,p7b,p7c,p9}
nfsgw_port=20720 before_port=20722 ganesha_port=20620 ganesha_mnt=20621

apt_install nfs-ganesha nfs-ganesha-vfs rpcbind
cd "$NFSGW_REPO"
say "building nfsgw and the benchmark (release)"
cargo build --release -q -p nfsgw
cargo build --release -q --manifest-path bench/Cargo.toml
bench_bin=$CARGO_TARGET_DIR/release

# ---- the data, made once: directories d<N> of N empty files f<number>
ro=$base/scale/ro
mkdir -p "$ro"
for n in ${dirs//,/ }; do
  if [ ! -e "$ro/d$n.done" ]; then
    say "writing $n files into $ro/d$n"
    rm -rf "$ro/d$n"; mkdir -p "$ro/d$n"
    (cd "$ro/d$n" && seq -f 'f%07g' 0 $((n - 1)) | xargs touch)
    : > "$ro/d$n.done"
  fi
done

run=$(mktemp -d "$base/scale-run.XXXXXX")
mkdir -p "$run/rw-nfsgw" "$run/rw-before" "$run/rw-ganesha"
cleanup() {
  stop_servers
  rm -rf "$run/rw-nfsgw" "$run/rw-before" "$run/rw-ganesha"
}
trap cleanup EXIT

# nfsgw_config PORT STATE RW: two local mounts, the data read-only and a scratch directory.
# P9's 64 connections come from one address, as many as the default per-client limit: an
# earlier case's connection still winding down would make nfsgw close one of them, and
# nfsscale, unlike a kernel client, does not reconnect and send its call again.
nfsgw_config() {
  cat <<CONF
[server]
listen = "127.0.0.1:$1"
portmap = "off"
max_connections_per_client = 256
state_dir = "$2"
[[mount]]
name = "ro"
plugin = "local"
read_only = true
secure = false
[mount.config]
root = "$ro"
[[mount]]
name = "rw"
plugin = "local"
secure = false
root_squash = false
[mount.config]
root = "$3"
CONF
}

say "starting nfsgw and NFS-Ganesha"
nfsgw_config "$nfsgw_port" "$run/state" "$run/rw-nfsgw" > "$run/nfsgw.toml"
"$NFSGW_BIN" --config "$run/nfsgw.toml" > "$run/nfsgw.log" 2>&1 &
nfsgw_pid=$!; pids+=("$nfsgw_pid")
wait_for "$run/nfsgw.log" '^nfsgw: serving' "$nfsgw_pid" nfsgw
peers=(--peer "nfsgw,127.0.0.1:$nfsgw_port,$nfsgw_port,/ro,/rw,$nfsgw_pid,$run/state/rw.inodes")

if [ -n "${NFSGW_BENCH_BEFORE:-}" ]; then
  nfsgw_config "$before_port" "$run/state-before" "$run/rw-before" > "$run/before.toml"
  "$NFSGW_BENCH_BEFORE" --config "$run/before.toml" > "$run/before.log" 2>&1 &
  before_pid=$!; pids+=("$before_pid")
  wait_for "$run/before.log" '^nfsgw: serving' "$before_pid" "nfsgw (before)"
  peers+=(--peer "before,127.0.0.1:$before_port,$before_port,/ro,/rw,$before_pid,$run/state-before/rw.inodes")
fi

start_ganesha "$run" "$ganesha_port" "$ganesha_mnt" 20622 "$ro:RO" "$run/rw-ganesha:RW"
peers+=(--peer "ganesha,127.0.0.1:$ganesha_port,$ganesha_mnt,$ro,$run/rw-ganesha,$ganesha_pid")

say "measuring ($cases; churn of $churn names, $inflight in flight, P9 for $seconds s on $connections connections)"
"$bench_bin/nfsscale" --dirs "$dirs" --churn "$churn" --seconds "$seconds" \
  --connections "$connections" --inflight "$inflight" --cases "$cases" --out "$run/table.md" \
  "${peers[@]}"

before_note=
if [ -n "${NFSGW_BENCH_BEFORE:-}" ]; then
  before_note=" \"before\" is $("$NFSGW_BENCH_BEFORE" --version)."
fi
write_docs_section bench/scale.sh "$run" \
  "directories $dirs, churn of $churn names, P9 for $seconds s.$before_note"
