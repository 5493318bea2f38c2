#!/usr/bin/env bash
# The server benchmark (issue #7): nfsgw against a native nfsserve server (bench/src/bin/nfsbase.rs)
# and NFS-Ganesha 4.3 (FSAL_VFS), all three serving the same directory on loopback, measured by
# one load client (bench/src/bin/nfsbench) that keeps the same number of calls in flight for each.
# Prints a table of medians and ratios and writes it into docs/BENCHMARKS.md.
#   bench/run.sh [RUNS]          (default 5 runs of each case per server)
# Environment: NFSGW_BENCH_DIR (data and logs, default /var/tmp/nfsgw-bench; the data is made
# once and kept), NFSGW_BENCH_INFLIGHT (default 16), NFSGW_BENCH_COLD=1 (drop the page cache
# before each P1 run; needs root), NFSGW_BENCH_BEFORE=/path/to/older/nfsgw (also measure that
# binary on the same config, as the peer "before": how before/after numbers of an
# optimisation are taken; the docs are then left alone), NFSGW_BENCH_NO_DOCS=1 (print the table,
# leave the docs alone). Installs nfs-ganesha, nfs-ganesha-vfs and rpcbind if missing.
# The S3 cases (P3, P4) run against s3s-fs (tests/s3/setup.sh installs it when missing), started
# here on loopback with its root under NFSGW_BENCH_DIR/s3 (the 1 GiB object is uploaded once): a
# second nfsgw serves its bucket with the s3 plugin, and the load client also reads and writes
# the bucket directly with object_store. NFSGW_BENCH_S3=0 leaves them out; NFSGW_BENCH_CASES
# (e.g. "none": only the S3 cases) is passed to nfsbench --cases, NFSGW_BENCH_S3_CASES (read,
# readone, readranges, write) to --s3-cases.
# Port 111 must be free or held by rpcbind (Ganesha registers with it; nfsgw's own portmapper
# is off here). NFSGW_BENCH_FLOOD=N also runs the connection flood (nfsflood) with N connections.
set -euo pipefail
. "$(dirname "$0")/../scripts/common.sh"
. "$(dirname "$0")/lib.sh"
runs=${1:-5}
base=${NFSGW_BENCH_DIR:-/var/tmp/nfsgw-bench}
inflight=${NFSGW_BENCH_INFLIGHT:-16}
nfsgw_port=20690 before_port=20692 base_port=20700 ganesha_port=20600 ganesha_mnt=20601
s3_port=20710 s3gw_port=20694 s3before_port=20696 s3admin_port=20698 s3before_admin=20699

apt_install nfs-ganesha nfs-ganesha-vfs rpcbind
cd "$NFSGW_REPO"
say "building nfsgw and the benchmark (release)"
cargo build --release -q -p nfsgw
cargo build --release -q --manifest-path bench/Cargo.toml
bench_bin=$CARGO_TARGET_DIR/release

# ---- the data, made once: a 1 GiB file, a directory of 10,000 small files, a third directory
data=$base/data
mkdir -p "$data/many" "$data/third"
if [ "$(stat -c %s "$data/big.bin" 2>/dev/null || echo 0)" != 1073741824 ]; then
  say "writing $data/big.bin (1 GiB)"
  head -c 1073741824 /dev/urandom > "$data/big.bin"
fi
if [ ! -e "$data/many/.done" ]; then
  say "writing 10,000 files into $data/many"
  for i in $(seq -w 0 9999); do printf 'file %s\n' "$i" > "$data/many/f$i"; done
  : > "$data/many/.done"   # a dot file: listed, so the directory holds 10,001 entries
fi
echo "a third mount" > "$data/third/readme.txt"

run=$(mktemp -d "$base/run.XXXXXX")
trap stop_servers EXIT

# ---- nfsgw: three mounts (P6 idle), its portmapper off (port 111 is rpcbind's, for Ganesha)
cat > "$run/nfsgw.toml" <<EOF
[server]
listen = "127.0.0.1:$nfsgw_port"
portmap = "off"
state_dir = "$run/state"
[[mount]]
name = "data"
plugin = "local"
read_only = true
secure = false
[mount.config]
root = "$data"
[[mount]]
name = "many"
plugin = "local"
read_only = true
secure = false
[mount.config]
root = "$data/many"
[[mount]]
name = "third"
plugin = "local"
read_only = true
secure = false
[mount.config]
root = "$data/third"
EOF
say "starting nfsgw, nfsbase and NFS-Ganesha"
"$NFSGW_BIN" --config "$run/nfsgw.toml" > "$run/nfsgw.log" 2>&1 &
nfsgw_pid=$!; pids+=("$nfsgw_pid")
wait_for "$run/nfsgw.log" '^nfsgw: serving' "$nfsgw_pid" nfsgw

before=()
if [ -n "${NFSGW_BENCH_BEFORE:-}" ]; then
  sed -e "s/:$nfsgw_port\"/:$before_port\"/" -e "s|$run/state|$run/state-before|" "$run/nfsgw.toml" > "$run/before.toml"
  "$NFSGW_BENCH_BEFORE" --config "$run/before.toml" > "$run/before.log" 2>&1 &
  before_pid=$!; pids+=("$before_pid")
  wait_for "$run/before.log" '^nfsgw: serving' "$before_pid" "nfsgw (before)"
  before=(--peer "before,127.0.0.1:$before_port,$before_port,/data,$before_pid")
fi

# ---- the native baseline
"$bench_bin/nfsbase" "$data" "127.0.0.1:$base_port" > "$run/nfsbase.log" 2>&1 &
base_pid=$!; pids+=("$base_pid")
wait_for "$run/nfsbase.log" '^nfsbase: serving' "$base_pid" nfsbase

# ---- NFS-Ganesha (it needs rpcbind on port 111)
start_ganesha "$run" "$ganesha_port" "$ganesha_mnt" 20602 "$data:RO"

# ---- S3: s3s-fs with the bucket "bench" (a directory of its root), and an nfsgw serving it
s3=()
if [ "${NFSGW_BENCH_S3:-1}" = 1 ]; then
  bash tests/s3/setup.sh
  s3s_fs=${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs
  [ -x "$s3s_fs" ] || s3s_fs=$(command -v s3s-fs)
  mkdir -p "$base/s3/bench"
  export NFSGW_BENCH_S3_KEY_ID=AKNFSGWBENCH NFSGW_BENCH_S3_SECRET=nfsgw-bench-secret-key
  "$s3s_fs" --host 127.0.0.1 --port "$s3_port" --access-key "$NFSGW_BENCH_S3_KEY_ID" \
    --secret-key "$NFSGW_BENCH_S3_SECRET" "$base/s3" > "$run/s3s-fs.log" 2>&1 &
  s3s_pid=$!; pids+=("$s3s_pid")
  for i in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$s3_port") 2>/dev/null && break
    kill -0 "$s3s_pid" || { cat "$run/s3s-fs.log" >&2; exit 1; }
    sleep 0.1
  done
  # The client sends AUTH_UNIX root, hence root_squash off; uploads 200 ms after the last write.
  cat > "$run/nfsgw-s3.toml" <<EOF
[server]
listen = "127.0.0.1:$s3gw_port"
portmap = "off"
admin = "127.0.0.1:$s3admin_port"
state_dir = "$run/state-s3"
[[mount]]
name = "s3"
plugin = "s3"
root_squash = false
secure = false
flush_after_ms = 200
[mount.s3]
bucket = "bench"
endpoint = "http://127.0.0.1:$s3_port"
path_style = true
allow_http = true
access_key_id_env = "NFSGW_BENCH_S3_KEY_ID"
secret_access_key_env = "NFSGW_BENCH_S3_SECRET"
EOF
  "$NFSGW_BIN" --config "$run/nfsgw-s3.toml" > "$run/nfsgw-s3.log" 2>&1 &
  s3gw_pid=$!; pids+=("$s3gw_pid")
  wait_for "$run/nfsgw-s3.log" '^nfsgw: serving' "$s3gw_pid" "nfsgw (s3)"
  s3=(--s3 "http://127.0.0.1:$s3_port,bench,$NFSGW_BENCH_S3_KEY_ID,$NFSGW_BENCH_S3_SECRET,$s3s_pid"
      --s3-source "$data/big.bin"
      --s3-peer "nfsgw,127.0.0.1:$s3gw_port,$s3gw_port,/s3,$s3gw_pid,127.0.0.1:$s3admin_port")
  if [ -n "${NFSGW_BENCH_BEFORE:-}" ]; then
    sed -e "s/:$s3gw_port\"/:$s3before_port\"/" -e "s/:$s3admin_port\"/:$s3before_admin\"/" \
      -e "s|$run/state-s3|$run/state-s3-before|" \
      "$run/nfsgw-s3.toml" > "$run/before-s3.toml"
    "$NFSGW_BENCH_BEFORE" --config "$run/before-s3.toml" > "$run/before-s3.log" 2>&1 &
    s3before_pid=$!; pids+=("$s3before_pid")
    wait_for "$run/before-s3.log" '^nfsgw: serving' "$s3before_pid" "nfsgw (s3, before)"
    s3+=(--s3-peer "before,127.0.0.1:$s3before_port,$s3before_port,/s3,$s3before_pid,127.0.0.1:$s3before_admin")
  fi
fi

# ---- the measurement
say "measuring ($runs runs per case and server, $inflight calls in flight)"
cold=(); [ "${NFSGW_BENCH_COLD:-0}" = 1 ] && cold=(--cold)
only=(); [ -n "${NFSGW_BENCH_CASES:-}" ] && only=(--cases "$NFSGW_BENCH_CASES")
[ -n "${NFSGW_BENCH_S3_CASES:-}" ] && only+=(--s3-cases "$NFSGW_BENCH_S3_CASES")
"$bench_bin/nfsbench" --runs "$runs" --inflight "$inflight" "${cold[@]}" "${only[@]}" --out "$run/table.md" \
  --idle-exports /data,/many,/third \
  --peer "nfsgw,127.0.0.1:$nfsgw_port,$nfsgw_port,/data,$nfsgw_pid" "${before[@]}" \
  --peer "baseline,127.0.0.1:$base_port,$base_port,/,$base_pid" \
  --peer "ganesha,127.0.0.1:$ganesha_port,$ganesha_mnt,$data,$ganesha_pid" "${s3[@]}"

# ---- the connection flood (issue #28): NFSGW_BENCH_FLOOD=N holds N idle connections against
# nfsgw, then NFS-Ganesha, timing NULL on new connections before, during and after
# (bench/src/bin/nfsflood.rs); its table goes to $run/flood.md, not into the docs.
if [ "${NFSGW_BENCH_FLOOD:-0}" -gt 0 ]; then
  say "flooding each server with $NFSGW_BENCH_FLOOD connections"
  "$bench_bin/nfsflood" --connections "$NFSGW_BENCH_FLOOD" \
    --peer "nfsgw,127.0.0.1:$nfsgw_port,$nfsgw_pid" \
    --peer "ganesha,127.0.0.1:$ganesha_port,$ganesha_pid" | tee "$run/flood.md"
fi

if [ ${#before[@]} -gt 0 ]; then
  say "compared with $NFSGW_BENCH_BEFORE; docs/BENCHMARKS.md left alone (table in $run/table.md)"
  exit 0
fi

# ---- docs/BENCHMARKS.md: the generated part sits between the two marker lines
write_docs_section "bench/run.sh $runs" "$run" \
  "reads page-cache-warm$( [ ${#cold[@]} -gt 0 ] && echo ' except P1, which dropped the cache before each run')."
