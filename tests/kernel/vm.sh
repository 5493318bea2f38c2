#!/bin/bash
# tests/kernel/vm.sh: boot a throwaway QEMU guest (Debian kernel, built by setup.sh), mount
# the host's NFSv3 server with the Linux kernel client through slirp (guest 10.0.2.2 ->
# host 127.0.0.1) and run a shell command in /mnt. Prints the guest output and exits with
# the command's exit code; 124 on timeout, 125 on harness failure (boot, 9p or NFS mount).
set -uo pipefail
usage() { cat >&2 <<'U'
usage: vm.sh [--port P] [--mountport P] [--no-ports] [--export /] [--mount-opts a=b,c]
             [--no-mount] [--share DIR] [--hostroot] [--timeout SEC] [--mem MB] [--smp N] [-v]
             -- 'commands'
  --no-ports  mount without port=/mountport=: the kernel asks the portmapper on 10.0.2.2:111
              (the host's 127.0.0.1:111) for the NFS and MOUNT ports
  --hostroot  run the command with bash chrooted in the host's / (9p, read-only; the guest
              has its own tmpfs on /tmp /run /var/tmp /root), so host tools are usable
  --share DIR 9p-mount host DIR read-write at the same path in the guest
  -v          print boot/mount/command timings to stderr
  env: NFS_VM_CACHE (default /var/cache/nfsgw/nfs-vm), NFS_VM_ACCEL (auto|tcg|kvm)
U
exit 125; }
PORT=2049 MPORT= NOPORTS= EXPORT=/ XOPTS= MOUNT=1 SHARE= HOSTROOT= TIMEOUT=600 MEM=1024 SMP=1 VERBOSE=
while [ $# -gt 0 ]; do
  case $1 in
    --port) PORT=$2; shift 2;; --mountport) MPORT=$2; shift 2;; --no-ports) NOPORTS=1; shift;;
    --export) EXPORT=$2; shift 2;; --mount-opts) XOPTS=$2; shift 2;;
    --no-mount) MOUNT=; shift;; --share) SHARE=$(realpath "$2"); shift 2;;
    --hostroot) HOSTROOT=1; shift;; --timeout) TIMEOUT=$2; shift 2;;
    --mem) MEM=$2; shift 2;; --smp) SMP=$2; shift 2;; -v) VERBOSE=1; shift;;
    --) shift; break;; *) usage;;
  esac
done
[ $# -gt 0 ] || usage
CACHE=${NFS_VM_CACHE:-/var/cache/nfsgw/nfs-vm}
[ -s "$CACHE/base.img" ] || { echo "nfs-vm: $CACHE/base.img missing; run tests/kernel/setup.sh" >&2; exit 125; }
W=$(mktemp -d /tmp/nfs-vm.XXXXXX); trap 'rm -rf "$W"' EXIT
q() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
# Text mount options for busybox mount; the kernel does the MOUNT call itself. With ports
# given it asks no portmapper; with --no-ports it asks the one on 10.0.2.2:111.
ports="port=$PORT,mountport=${MPORT:-$PORT},"
[ -n "$NOPORTS" ] && ports=
opts="vers=3,proto=tcp,${ports}mountproto=tcp,nolock,addr=10.0.2.2,mountaddr=10.0.2.2${XOPTS:+,$XOPTS}"
mkdir "$W/x"
{ echo "NFS_OPTS=$(q "$opts")"; echo "NFS_EXPORT=$(q "$EXPORT")"; echo "MOUNT=$MOUNT"
  echo "SHARE=$(q "$SHARE")"; echo "HOSTROOT=$HOSTROOT"; echo "export NFS_VM_CACHE=$(q "$CACHE")"; } > "$W/x/run.conf"
printf '%s\n' "$*" > "$W/x/cmd.sh"
(cd "$W/x" && find . | cpio -o -H newc --quiet | gzip -1) > "$W/extra.img"
cat "$CACHE/base.img" "$W/extra.img" > "$W/initrd.img"
# KVM only with a hardware-backed kvm module: some hosts expose kvm_pvm, which cannot
# boot a stock kernel, so the default there is TCG.
ACCEL=${NFS_VM_ACCEL:-auto}
if [ "$ACCEL" = auto ]; then
  ACCEL=tcg; { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; } && [ -w /dev/kvm ] && ACCEL=kvm
fi
if [ "$ACCEL" = kvm ]; then accel=(-accel kvm -cpu host); else accel=(-accel tcg,thread=multi -cpu max); fi
args=("${accel[@]}" -m "$MEM" -smp "$SMP" -nodefaults -no-user-config -display none -no-reboot
  -chardev stdio,id=con,signal=off -serial chardev:con
  -kernel "$CACHE/vmlinux" -initrd "$W/initrd.img"
  -append "console=ttyS0 quiet loglevel=3 panic=-1 mitigations=off tsc=reliable no_timer_check"
  -netdev user,id=n0 -device virtio-net-pci,netdev=n0)
[ -n "$SHARE" ] && args+=(-virtfs "local,path=$SHARE,mount_tag=share,security_model=none,id=share")
[ -n "$HOSTROOT" ] && args+=(-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,id=hostroot")
T0=$(date +%s%N)
# Filter the console: @@NFSVM_EXIT=n@@ carries the exit code, @@NFSVM_T=...@@ the timings.
timeout -k 5 "$TIMEOUT" qemu-system-x86_64 "${args[@]}" </dev/null 2>"$W/qemu.err" |
while IFS= read -r line || [ -n "$line" ]; do
  line=${line%$'\r'}
  case $line in *@@NFSVM_*) pre=${line%%@@NFSVM_*}; [ -n "$pre" ] && printf '%s\n' "$pre"; line=${line#"$pre"};; esac
  case $line in
    *@@NFSVM_EXIT=*@@*) r=${line#*@@NFSVM_EXIT=}; echo "${r%%@@*}" > "$W/rc";;
    *@@NFSVM_T=*@@*) [ -n "$VERBOSE" ] && { r=${line#*@@NFSVM_T=}; echo "nfs-vm: t(${r%%@@*})s guest uptime" >&2; };;
    *"] reboot: Power down") ;;
    *) printf '%s\n' "$line";;
  esac
done
qrc=${PIPESTATUS[0]}
[ -n "$VERBOSE" ] && echo "nfs-vm: wall $(( ($(date +%s%N) - T0) / 1000000 )) ms" >&2
if [ -s "$W/rc" ]; then exit "$(cat "$W/rc")"; fi
{ [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; } && { echo "nfs-vm: timed out after ${TIMEOUT}s" >&2; exit 124; }
echo "nfs-vm: guest ended without a result (qemu rc $qrc)" >&2; cat "$W/qemu.err" >&2; exit 125
