#!/bin/bash
# tests/kernel/backends.sh: the Linux kernel NFS client on nfsgw's S3 and Hub mounts.
# Starts moto (S3, from tests/s3/setup.sh's venv) and the local Hub (tests/hub/fakehub, with the
# real huggingface_hub client from tests/hub/setup.sh's venv), and one nfsgw serving three
# mounts of them: `s3` (a bucket), `bucket` (a Hub bucket) and `model` (a Hub model repo the real
# client uploaded). One VM boot per mount runs checks through the kernel client: the writable
# mounts write, read back, rename and remove, then run pjdfstest; the repo mount reads what the
# real client uploaded and refuses writes. After SIGTERM (which uploads what is staged) the
# host checks the objects in moto and the files the real client downloads from the bucket.
# pjdfstest's counts per mount are printed (and written to $PJDFSTEST_OUT.<mount> if set);
# a test failing that tests/kernel/pjdfstest-object-stores.txt does not list fails the run.
# usage: tests/kernel/backends.sh <path-to-nfsgw-binary>
# Needs tests/kernel/setup.sh, tests/s3/setup.sh and tests/hub/setup.sh once. Exit: 0 all
# checks passed, 1 a check failed, 2 harness failure.
# env: NFS_VM_CACHE, KEEP_TMP=1, PJDFSTEST_OUT, PJDFSTEST_TIMEOUT (1800 s per mount),
#      NFSGW_BACKENDS_PJDFSTEST=0 (only the checks).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
. "$HERE/pjdfstest-report.sh"
die() { echo "kernel-backends: $*" >&2; [ -n "${T:-}" ] && KEEP_TMP=1; exit 2; }
[ $# = 1 ] || die "usage: backends.sh <path-to-nfsgw-binary>"
NFSGW=$(realpath "$1")
[ -x "$NFSGW" ] || die "$NFSGW is not an executable"
export NFS_VM_CACHE=${NFS_VM_CACHE:-/var/cache/nfsgw/nfs-vm}
[ -s "$NFS_VM_CACHE/base.img" ] || die "no VM in $NFS_VM_CACHE; run tests/kernel/setup.sh"
PJDBIN=$NFS_VM_CACHE/tools/bin/pjdfstest
S3VENV=${NFSGW_S3_VENV:-$HOME/.cache/nfsgw/s3-venv}
HUBVENV=${NFSGW_HUB_VENV:-$HOME/.cache/nfsgw/hub-venv}
[ -x "$S3VENV/bin/moto_server" ] || die "no moto in $S3VENV; run tests/s3/setup.sh"
[ -x "$HUBVENV/bin/python" ] || die "no venv in $HUBVENV; run tests/hub/setup.sh"
PJD=${NFSGW_BACKENDS_PJDFSTEST:-1}
[ "$PJD" = 0 ] || [ -x "$PJDBIN" ] || die "$PJDBIN missing; run tests/kernel/setup.sh"

T=$(mktemp -d "${TMPDIR:-/tmp}/nfsgw-backends.XXXXXX")
R=$T/results
mkdir -p "$R"; chmod 755 "$T"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  if [ -n "${KEEP_TMP:-}" ]; then echo "kernel-backends: kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  die "no free port"
}
wait_for() {  # wait_for WHAT SECONDS COMMAND...
  local what=$1 limit=$2 t0=$SECONDS; shift 2
  until "$@" 2>/dev/null; do
    [ $((SECONDS - t0)) -lt "$limit" ] || die "$what not ready after $limit s"
    sleep 0.2
  done
}
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1"); }

# ---- the backends ----
S3PORT=$(free_port)
"$S3VENV/bin/moto_server" -H 127.0.0.1 -p "$S3PORT" > "$T/moto.log" 2>&1 &
PIDS+=($!)
wait_for "moto on $S3PORT" 60 listening "$S3PORT"
s3() {  # s3 create-bucket | s3 get KEY FILE: a signed request with boto3 (moto's own client)
  "$S3VENV/bin/python" - "$S3PORT" "$@" <<'PY'
import sys, boto3, botocore.exceptions
port, op = sys.argv[1:3]
c = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                 aws_access_key_id="kernel", aws_secret_access_key="kernel-secret")
if op == "create-bucket":
    c.create_bucket(Bucket="kbkt")
else:
    try:
        body = c.get_object(Bucket="kbkt", Key=sys.argv[3])["Body"].read()
    except botocore.exceptions.ClientError as e:
        sys.exit(f"GET {sys.argv[3]}: {e}")
    open(sys.argv[4], "wb").write(body)
PY
}
s3 create-bucket || die "CreateBucket on moto failed"

TOKEN="hf_kernel_$RANDOM$RANDOM"
HUBDATA=$T/fakehub
(cd "$REPO/tests/hub" && exec "$HUBVENV/bin/python" -m fakehub --token "$TOKEN" --data "$HUBDATA" \
  --ready-file "$T/fakehub.json") > "$T/fakehub.log" 2>&1 &
PIDS+=($!)
wait_for "fakehub" 30 test -s "$T/fakehub.json"
read -r HUBPORT CDNPORT < <("$HUBVENV/bin/python" -c \
  'import json,sys; d=json.load(open(sys.argv[1])); print(d["port"], d["cdn_port"])' "$T/fakehub.json")
hf() {
  HF_ENDPOINT="http://127.0.0.1:$HUBPORT" HF_TOKEN=$TOKEN HF_HOME="$T/hf-home" HF_HUB_DISABLE_TELEMETRY=1 \
    "$HUBVENV/bin/python" "$REPO/tests/hub/client.py" "$@"
}
hf create-bucket tester/kernel > /dev/null || die "create-bucket failed"
mkdir -p "$T/upload/sub"
echo "model card $TOKEN" > "$T/upload/README.md"
head -c 3145728 /dev/urandom > "$T/upload/sub/weights.bin"
hf upload-folder model tester/kmodel "$T/upload" > /dev/null || die "upload-folder failed"
(cd "$T/upload" && md5sum README.md sub/weights.bin) > "$R/model.md5"
echo "kernel-backends: moto on $S3PORT, fakehub on $HUBPORT (CDN $CDNPORT)"

# ---- nfsgw: the three mounts ----
PORT=$(free_port)
echo -n "$TOKEN" > "$T/token"
cat > "$T/nfsgw.toml" <<EOF
[server]
listen = "127.0.0.1:$PORT"
portmap = "off"
state_dir = "$T/state"

[[mount]]
name = "s3"
plugin = "s3"
root_squash = false
# QEMU's user networking connects from an unprivileged host port.
secure = false
flush_after_ms = 200
[mount.s3]
bucket = "kbkt"
endpoint = "http://127.0.0.1:$S3PORT"
path_style = true
allow_http = true
access_key_id_env = "NFSGW_KERNEL_S3_KEY"
secret_access_key_env = "NFSGW_KERNEL_S3_SECRET"

[[mount]]
name = "bucket"
plugin = "hub"
root_squash = false
secure = false
flush_after_ms = 200
allow_hosts = ["127.0.0.1:$HUBPORT", "127.0.0.1:$CDNPORT"]
[mount.secrets]
token = { file = "$T/token", hosts = ["127.0.0.1:$HUBPORT"] }
[mount.config]
endpoint = "http://127.0.0.1:$HUBPORT"
bucket = "tester/kernel"

[[mount]]
name = "model"
plugin = "hub"
secure = false
allow_hosts = ["127.0.0.1:$HUBPORT", "127.0.0.1:$CDNPORT"]
[mount.secrets]
token = { file = "$T/token", hosts = ["127.0.0.1:$HUBPORT"] }
[mount.config]
endpoint = "http://127.0.0.1:$HUBPORT"
repo = "tester/kmodel"
EOF
NFSGW_KERNEL_S3_KEY=kernel NFSGW_KERNEL_S3_SECRET=kernel-secret \
  "$NFSGW" --config "$T/nfsgw.toml" > "$T/nfsgw.log" 2>&1 &
NPID=$!
PIDS+=("$NPID")
log_tail() { echo "---- nfsgw log (last 40 lines) ----"; tail -n 40 "$T/nfsgw.log"; echo "----"; }
t0=$SECONDS
until grep -q '^nfsgw: serving NFSv3' "$T/nfsgw.log" 2>/dev/null; do
  kill -0 "$NPID" 2>/dev/null || { log_tail; die "nfsgw exited before serving"; }
  [ $((SECONDS - t0)) -lt 60 ] || { log_tail; die "nfsgw not serving on $PORT after 60 s"; }
  sleep 0.2
done
echo "kernel-backends: nfsgw serving /s3, /bucket, /model on 127.0.0.1:$PORT"

# ---- one VM boot per mount ----
cp "$HERE/pjdfstest.toml" "$R/"
# ok/FAIL lines and their counts, for the guest scripts (NAME: the mount) and the host checks.
cat > "$R/checks.sh" <<'EOF'
P=0 F=0
check() {
  local d=$1; shift
  if "$@"; then P=$((P + 1)); echo "ok   - $NAME: $d"; else F=$((F + 1)); echo "FAIL - $NAME: $d"; fi
}
eq() { [ "$1" = "$2" ] || { echo "       expected [$2], got [$1]"; return 1; }; }
EOF
# The writable mounts: what the guest checks (ok/FAIL lines, counts in $R/<mount>.counts), then
# pjdfstest into $R/<mount>.pjdfstest.txt.
cat > "$R/writable.sh" <<'EOF'
# sourced in the guest, in /mnt, with NAME (the mount) and R (the results share) set
. "$R/checks.sh"
head -c 9437184 /dev/urandom > /tmp/big
md5sum < /tmp/big | cut -d' ' -f1 > "$R/$NAME.big.md5"
check "cp of 9 MiB" cp /tmp/big big.bin
check "fsync of it" sync big.bin
echo 3 > /proc/sys/vm/drop_caches
check "9 MiB read back after drop_caches" eq "$(md5sum < big.bin | cut -d' ' -f1)" "$(cat "$R/$NAME.big.md5")"
check "size in stat" eq "$(stat -c %s big.bin)" 9437184
check "mkdir -p d/e" mkdir -p d/e
check "write d/e/f.txt" sh -c 'echo hello > d/e/f.txt'
check "mv d/e/f.txt d/g.txt" mv d/e/f.txt d/g.txt
check "read d/g.txt" eq "$(cat d/g.txt 2>&1)" hello
check "ls d" eq "$(ls d | tr '\n' ' ')" "e g.txt "
check "append to d/g.txt" sh -c 'echo again >> d/g.txt'
check "read d/g.txt again" eq "$(cat d/g.txt 2>&1 | tr '\n' ' ')" "hello again "
check "rm d/g.txt" rm d/g.txt
check "rmdir d/e d" rmdir d/e d
check "d is gone" test ! -e d
check "chmod refused" eq "$(chmod 600 big.bin 2>&1 | grep -c 'Operation not permitted')" 1
check "symlink refused" eq "$(ln -s big.bin lnk 2>&1 | grep -c 'Operation not permitted')" 1
echo "$TOKEN" > marker.txt
check "marker.txt written" eq "$(cat marker.txt)" "$TOKEN"
echo "$P $F" > "$R/$NAME.counts"
if [ "$PJD" != 0 ]; then
  mkdir -p /mnt/pjdfstest
  NO_COLOR=1 CLICOLOR=0 "$PJDBIN" -c "$R/pjdfstest.toml" -p /mnt/pjdfstest > "$R/$NAME.pjdfstest.txt" 2>&1
  echo "pjdfstest exit $?"
  rm -rf /mnt/pjdfstest
fi
EOF
cat > "$R/readonly.sh" <<'EOF'
# sourced in the guest, in /mnt: the model repo
. "$R/checks.sh"
check "md5 of README.md and sub/weights.bin" eq "$(md5sum README.md sub/weights.bin 2>&1)" "$(cat "$R/model.md5")"
check "sizes" eq "$(stat -c '%n %s' README.md sub/weights.bin | tr '\n' ' ')" \
  "README.md $(($(printf 'model card %s\n' "$TOKEN" | wc -c))) sub/weights.bin 3145728 "
check "tail of weights.bin" eq "$(tail -c 100 sub/weights.bin | md5sum)" "$(tail -c 100 "$R/weights.tail" | md5sum)"
check "write refused: read-only file system" eq "$(touch new 2>&1 | grep -c 'Read-only file system')" 1
check "mkdir refused: read-only file system" eq "$(mkdir nd 2>&1 | grep -c 'Read-only file system')" 1
echo "$P $F" > "$R/$NAME.counts"
EOF
tail -c 100 "$T/upload/sub/weights.bin" > "$R/weights.tail"

GP=0 GF=0
for NAME in s3 bucket model; do
  script=writable.sh
  [ $NAME = model ] && script=readonly.sh
  t0=$SECONDS
  "$HERE/vm.sh" -v --port "$PORT" --export "/$NAME" --mount-opts soft,timeo=100,retrans=3 \
    --hostroot --share "$R" --timeout "${PJDFSTEST_TIMEOUT:-1800}" -- \
    "NAME=$NAME R='$R' TOKEN='$TOKEN' PJD='$PJD' PJDBIN='$PJDBIN'; . '$R/$script'" 2>&1 | tee "$T/$NAME.vm.out"
  vrc=${PIPESTATUS[0]}
  echo "kernel-backends: $NAME VM exit $vrc after $((SECONDS - t0)) s"
  [ -s "$R/$NAME.counts" ] || { log_tail; die "$NAME: the VM ran no checks (exit $vrc)"; }
  read -r p f < "$R/$NAME.counts"
  GP=$((GP + p)) GF=$((GF + f))
done

# ---- pjdfstest: the counts, and failures not expected by design ----
NAME=host
. "$R/checks.sh"
if [ "$PJD" != 0 ]; then
  for mount in s3 bucket; do
    echo "---- pjdfstest on /$mount ----"
    counts=$T/$mount.pjdfstest.counts
    pjdfstest_report "$R/$mount.pjdfstest.txt" "$counts" || { log_tail; die "pjdfstest on /$mount did not finish"; }
    [ -z "${PJDFSTEST_OUT:-}" ] || cp "$counts" "$PJDFSTEST_OUT.$mount"
    expected=$HERE/pjdfstest-object-stores.txt
    unexpected=$(sed '1,/^failing tests:$/d' "$counts" | grep -vxF -f <(grep -v '^#' "$expected") || true)
    check "pjdfstest on /$mount: every failure is one pjdfstest-object-stores.txt lists" eq "$unexpected" ""
  done
fi

# ---- SIGTERM uploads what is staged; then the backends hold what the guest wrote ----
kill -TERM "$NPID"; wait "$NPID"; nrc=$?
check "nfsgw exited 0 on SIGTERM" eq "$nrc" 0
md5() { md5sum < "$1" | cut -d' ' -f1; }
check "s3: big.bin in the bucket" s3 get big.bin "$T/s3-big.bin"
check "s3: big.bin md5 in the bucket" eq "$(md5 "$T/s3-big.bin")" "$(cat "$R/s3.big.md5")"
check "s3: marker.txt in the bucket" eq "$(s3 get marker.txt /dev/stdout 2>&1)" "$TOKEN"
hf bucket-get tester/kernel big.bin "$T/hub-big.bin" > /dev/null 2>&1
check "bucket: big.bin downloaded by the real client, md5" eq "$(md5 "$T/hub-big.bin" 2>&1)" "$(cat "$R/bucket.big.md5")"
check "bucket: listing has big.bin and marker.txt only" eq \
  "$(hf bucket-list tester/kernel | grep -v '^pjdfstest/' | LC_ALL=C sort | tr '\n' ' ')" "big.bin marker.txt "

TP=$((GP + P)) TF=$((GF + F))
[ "$TF" = 0 ] || { log_tail; KEEP_TMP=1; }
echo "kernel-backends: $TP passed, $TF failed"
[ "$TF" = 0 ]
