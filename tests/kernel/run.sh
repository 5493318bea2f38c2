#!/bin/bash
# tests/kernel/run.sh: Linux-kernel-NFS-client test of an nfsgw binary.
# Serves a fresh temp dir with the "local" plugin on a free 127.0.0.1 port, boots the test
# VM (vm.sh --hostroot) which mounts the export /data with the kernel's NFSv3 client and
# runs workload.sh in it (including fio, stress-ng, rename-while-open, and two nfsgw restarts
# under the mount, which this script performs on the guest's request: same port, config and
# state_dir), then checks the served dir on the host. When nfsgw can take
# 127.0.0.1:111 for its portmapper (root, no rpcbind running), another VM boot mounts with no
# port=/mountport= options, so the kernel asks that portmapper (skipped, saying so, otherwise).
# With --pjdfstest, a further VM boot runs pjdfstest on the mount; its counts are reported (and
# written to $PJDFSTEST_OUT if set), and a failing test fails this script.
# usage: tests/kernel/run.sh <path-to-nfsgw-binary> [--pjdfstest]
# Needs tests/kernel/setup.sh once. Exit: 0 all workload checks passed, 1 a workload or host
# check failed, 2 harness failure (usage, setup, nfsgw not starting, VM/mount failure).
# env: NFS_VM_CACHE, PJDFSTEST_OUT, KEEP_TMP=1 (keep the temp dir), NFSGW_ARGS (extra args),
#      WORKLOAD_TIMEOUT (900 s), PJDFSTEST_TIMEOUT (1800 s), NFSGW_PORTMAP=off (no portmapper,
#      and no mount without port options).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/pjdfstest-report.sh"
die() { echo "kernel-tests: $*" >&2; [ -n "${T:-}" ] && KEEP_TMP=1; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: run.sh <path-to-nfsgw-binary> [--pjdfstest]"
NFSGW=$(realpath "$1") PJD=
[ $# = 2 ] && { [ "$2" = --pjdfstest ] || die "unknown option $2"; PJD=1; }
[ -x "$NFSGW" ] || die "$NFSGW is not an executable"
export NFS_VM_CACHE=${NFS_VM_CACHE:-/var/cache/nfsgw/nfs-vm}
[ -s "$NFS_VM_CACHE/base.img" ] || die "no VM in $NFS_VM_CACHE; run tests/kernel/setup.sh"
PJDBIN=$NFS_VM_CACHE/tools/bin/pjdfstest
[ -z "$PJD" ] || [ -x "$PJDBIN" ] || die "$PJDBIN missing; run tests/kernel/setup.sh"

T=$(mktemp -d "${TMPDIR:-/tmp}/nfsgw-kernel.XXXXXX")
S=$T/served R=$T/results
mkdir -p "$S" "$R"; chmod 755 "$T" "$S"
NPID= VMJ=
cleanup() {
  [ -n "$VMJ" ] && { kill "$VMJ" 2>/dev/null; wait "$VMJ" 2>/dev/null; }
  [ -n "$NPID" ] && { kill "$NPID" 2>/dev/null; wait "$NPID" 2>/dev/null; }
  if [ -n "${KEEP_TMP:-}" ]; then echo "kernel-tests: kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
log_tail() { echo "---- nfsgw log (last 40 lines) ----"; tail -n 40 "$T/nfsgw.log"; echo "----"; }

# Free port: nothing accepts TCP connections on it.
for _ in $(seq 50); do
  PORT=$((20000 + RANDOM % 40000))
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || break
done
# The guest's kernel asks for the portmapper on port 111 only: it is there, or off.
PMAP=127.0.0.1:111
[ "${NFSGW_PORTMAP:-}" = off ] && PMAP=off
# Starts nfsgw; fails if it exits before printing its ready line.
start_nfsgw() {
  cat > "$T/nfsgw.toml" <<EOF
[server]
listen = "127.0.0.1:$PORT"
portmap = "$PMAP"
state_dir = "$T/state"
[[mount]]
name = "data"
plugin = "local"
# pjdfstest and the workloads run as root in the guest and need root's powers.
root_squash = false
# QEMU's user networking connects to nfsgw from an ephemeral (unprivileged) host port,
# whatever port the guest's client used.
secure = false
allow_devices = true
[mount.config]
root = "$S"
EOF
  # shellcheck disable=SC2086 # NFSGW_ARGS: extra arguments, e.g. "--log-level debug"
  "$NFSGW" --config "$T/nfsgw.toml" ${NFSGW_ARGS:-} > "$T/nfsgw.log" 2>&1 &
  NPID=$!
  t0=$SECONDS
  until grep -q '^nfsgw: serving NFSv3' "$T/nfsgw.log" 2>/dev/null; do
    kill -0 "$NPID" 2>/dev/null || { wait "$NPID"; NPID=; return 1; }
    [ $((SECONDS - t0)) -lt 60 ] || { log_tail; die "nfsgw not serving on $PORT after 60 s"; }
    sleep 0.2
  done
}
if ! start_nfsgw; then
  if [ "$PMAP" != off ] && grep -q 'server.portmap' "$T/nfsgw.log"; then
    echo "kernel-tests: $(grep -o 'server.portmap.*' "$T/nfsgw.log" | head -n 1)"
    echo "kernel-tests: SKIP the mount without port options (no portmapper on 111)"
    PMAP=off
    start_nfsgw || { log_tail; die "nfsgw exited before serving on $PORT"; }
  else
    log_tail; die "nfsgw exited before serving on $PORT"
  fi
fi
(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || { log_tail; die "nothing listens on $PORT"; }
echo "kernel-tests: nfsgw listening on 127.0.0.1:$PORT (portmapper: $PMAP) after $((SECONDS - t0)) s, serving $S"

VM=("$HERE/vm.sh" -v --port "$PORT" --export /data --mount-opts soft,timeo=100,retrans=3 --hostroot --share "$R")
cp "$HERE/workload.sh" "$HERE/pjdfstest.toml" "$R/"
# The fio job of workload.sh (16 MiB of random 4 KiB writes, crc32c-verified); run.sh verifies
# the written file again on the host with --verify_only.
cat > "$R/verify.fio" <<'EOF'
[verify]
size=16m
bs=4k
rw=randwrite
verify=crc32c
verify_fatal=1
direct=0
ioengine=psync
verify_state_save=0
EOF
# A directory too big to list in one reply (checked by workload.sh).
mkdir "$S/huge" && (cd "$S/huge" && seq -f 'n%06g' 1 100000 | xargs touch)
TOKEN="nfsgw-kernel-$$-$RANDOM"

# Restarts nfsgw on the same port with the same config and state dir: kill -SIG, wait for
# the exit, start again. The log of each earlier run is kept as nfsgw.log.N.
NRESTART=0
restart_nfsgw() {  # restart_nfsgw SIGNAL
  local r0 r1 r2
  r0=$(date +%s%N)
  kill -"$1" "$NPID" && wait "$NPID" 2>/dev/null; NPID=
  r1=$(date +%s%N)
  NRESTART=$((NRESTART + 1)); mv "$T/nfsgw.log" "$T/nfsgw.log.$NRESTART"
  start_nfsgw || { log_tail; die "nfsgw did not start again after kill -$1"; }
  r2=$(date +%s%N)
  echo "kernel-tests: nfsgw restarted after kill -$1: exited in $(( (r1 - r0) / 1000000 )) ms," \
    "serving again $(( (r2 - r1) / 1000000 )) ms later (pid $NPID)"
}

# ---- workload in the guest ----
# The VM runs in the background; this shell serves its restart requests: workload.sh
# writes $R/restart.N.request (holding a signal name) and waits for $R/restart.N.done.
tw=$SECONDS
{ "${VM[@]}" --timeout "${WORKLOAD_TIMEOUT:-900}" -- \
    "RESULTS='$R' TOKEN='$TOKEN' bash '$R/workload.sh'" 2>&1; echo $? > "$T/workload.rc"; } |
  tee "$T/workload.out" &
VMJ=$!
while kill -0 "$VMJ" 2>/dev/null; do
  for req in "$R"/restart.*.request; do
    [ -e "$req" ] || continue
    n=${req#"$R"/restart.}; n=${n%.request}
    sig=$(cat "$req"); rm -f "$req"
    case $sig in TERM|KILL|INT) ;; *) sig=TERM;; esac
    restart_nfsgw "$sig" && echo "$sig" > "$R/restart.$n.done"
  done
  sleep 0.2
done
wait "$VMJ"; VMJ=
vrc=$(cat "$T/workload.rc" 2>/dev/null || echo 125)
echo "kernel-tests: workload VM exit $vrc after $((SECONDS - tw)) s"
if [ "$vrc" -ge 124 ] || [ ! -s "$R/guest.counts" ]; then
  log_tail; die "workload VM failed (exit $vrc: 124 timeout, 125 boot/mount failure)"
fi
read -r GP GF < "$R/guest.counts"

# ---- host-side checks of the served directory ----
P=0 F=0
check() {
  local d=$1; shift
  if "$@"; then P=$((P + 1)); echo "ok   - host: $d"; else F=$((F + 1)); echo "FAIL - host: $d"; fi
}
eq() { [ "$1" = "$2" ] || { echo "       expected [$2], got [$1]"; return 1; }; }
md5() { md5sum < "$1" | cut -d' ' -f1; }
check "marker.txt content" eq "$(cat "$S/marker.txt" 2>&1)" "$TOKEN"
check "w/big.bin md5" eq "$(md5 "$S/w/big.bin" 2>&1)" "$(cat "$R/big.md5")"
check "w/patched.bin md5" eq "$(md5 "$S/w/patched.bin" 2>&1)" "$(cat "$R/patched.md5")"
check "w/app2.txt md5" eq "$(md5 "$S/w/app2.txt" 2>&1)" "$(cat "$R/app.md5")"
check "w/many has 2000 files" eq "$(find "$S/w/many" -type f | wc -l)" 2000
check "w/a/dstdir contents" eq "$(cat "$S/w/a/dstdir/sub/f" "$S/w/a/dstdir/g" 2>&1)" "x
y"
check "w/a/link is a symlink to ../big.bin" eq "$(readlink "$S/w/a/link")" ../big.bin
check "w/t.bin size, mode, mtime" eq "$(stat -c '%s %a %Y' "$S/w/t.bin" 2>&1)" "20000 640 981173106"
check "w/big.bin mtime" eq "$(stat -c %Y "$S/w/big.bin" 2>&1)" 1015218367
check "removed entries are gone" eq "$(ls -d "$S"/w/{o1,o2,empty,srcdir,app.txt} "$S/w/a/b" 2>/dev/null)" ""
check "w listing" eq "$(cd "$S/w" && LC_ALL=C ls -A | tr '\n' ' ')" "a app2.txt big.bin many patched.bin t.bin "
# fio: the file the guest wrote and verified, verified again in the served dir.
out=$(cd "$T" && fio --directory="$S/fio" --verify_only "$R/verify.fio" 2>&1); frc=$?
check "fio --verify_only of fio/ in the served dir: exit 0" eq "$frc" 0
check "fio --verify_only on the host: 16 MiB read, no verify error" eq \
  "$(grep -cE 'READ: .*io=16.0MiB' <<< "$out") $(grep -ciE 'verify failed|bad (magic|header)|err= *[1-9]' <<< "$out")" "1 0"
# rename while open
check "rn/d2/g.bin md5 (written while renamed)" eq "$(md5 "$S/rn/d2/g.bin" 2>&1)" "$(cat "$R/rn.md5")"
check "rn/d1 is gone" test ! -e "$S/rn/d1"
# restarts under the mount
check "nfsgw restarted twice on request (INT, KILL)" eq "$NRESTART" 2
check "r/restart.bin md5 (written through one fd across restarts)" eq "$(md5 "$S/r/restart.bin" 2>&1)" "$(cat "$R/restart.md5")"
check "r/e/g.bin md5 (renamed while open, across restarts)" eq "$(md5 "$S/r/e/g.bin" 2>&1)" "$(cat "$R/renamed.md5")"
check "r/fresh.txt content (created just before kill -KILL)" eq "$(cat "$S/r/fresh.txt" 2>&1)" "new
more"
check "r listing" eq "$(cd "$S/r" && LC_ALL=C ls -A | tr '\n' ' ')" "e fresh.txt old.bin restart.bin "

# ---- mounts with no port options: the kernel, and mount.nfs, ask nfsgw's portmapper ----
if [ "$PMAP" != off ]; then
  # The kernel mounts /mnt itself (vm.sh --no-ports); then, when the host has nfs-utils'
  # mount.nfs, it mounts the export again with only vers=3,nolock.
  cmd='cat marker.txt; echo via-portmapper > portmapper.txt; grep " /mnt " /proc/mounts
    if [ -x /sbin/mount.nfs ]; then
      mkdir -p /tmp/m && /sbin/mount.nfs 10.0.2.2:/data /tmp/m -o vers=3,nolock &&
        echo "mount.nfs read: $(cat /tmp/m/marker.txt)" && umount /tmp/m
    fi'
  t0=$SECONDS
  out=$("$HERE/vm.sh" -v --no-ports --export /data --mount-opts soft,timeo=100,retrans=3 \
    --hostroot --timeout 300 -- "$cmd" 2>&1)
  vrc=$?
  sed 's/^/    /' <<< "$out"
  echo "kernel-tests: no-ports VM exit $vrc after $((SECONDS - t0)) s"
  check "mount without port options: VM exit 0" eq "$vrc" 0
  check "mount without port options: marker.txt read" eq "$(grep -x "$TOKEN" <<< "$out")" "$TOKEN"
  check "mount without port options: portmapper.txt written" eq "$(cat "$S/portmapper.txt" 2>&1)" via-portmapper
  # The ports came from the portmapper: the guest's mount shows none given.
  line=$(grep " /mnt nfs " <<< "$out")
  check "mount without port options: /proc/mounts shows the mount, with no port=/mountport=" eq \
    "${line:+mounted}$(grep -oE '[ ,](mount)?port=[0-9]+' <<< "$line")" mounted
  if [ -x /sbin/mount.nfs ]; then
    check "mount.nfs -o vers=3,nolock (no ports) reads marker.txt" eq \
      "$(grep -x "mount.nfs read: $TOKEN" <<< "$out")" "mount.nfs read: $TOKEN"
  else
    echo "kernel-tests: SKIP mount.nfs without ports (no /sbin/mount.nfs on the host: nfs-common)"
  fi
  rm -f "$S/portmapper.txt"
fi

# ---- pjdfstest: every test passes or is skipped ----
if [ -n "$PJD" ]; then
  t0=$SECONDS
  "${VM[@]}" --timeout "${PJDFSTEST_TIMEOUT:-1800}" -- "mkdir -p /mnt/pjdfstest
    NO_COLOR=1 CLICOLOR=0 '$PJDBIN' -c '$R/pjdfstest.toml' -p /mnt/pjdfstest > '$R/pjdfstest.txt' 2>&1
    echo \"pjdfstest exit \$?\"" 2>&1 | tee "$T/pjdfstest-vm.out"
  vrc=${PIPESTATUS[0]}
  echo "kernel-tests: pjdfstest VM exit $vrc after $((SECONDS - t0)) s"
  if ! pjdfstest_report "$R/pjdfstest.txt" "$T/pjdfstest.counts"; then
    log_tail; die "pjdfstest did not finish (VM exit $vrc)"
  fi
  [ -z "${PJDFSTEST_OUT:-}" ] || cp "$T/pjdfstest.counts" "$PJDFSTEST_OUT"
  check "pjdfstest: no test fails" eq "$(sed '1,/^failing tests:$/d' "$T/pjdfstest.counts" | tr '\n' ' ')" ""
fi

# ---- summary ----
TP=$((GP + P)) TF=$((GF + F))
[ "$TF" = 0 ] || { log_tail; KEEP_TMP=1; }
echo "kernel-workload: $TP passed, $TF failed"
[ "$TF" = 0 ]
