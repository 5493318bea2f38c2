#!/bin/bash
# tests/kernel/setup.sh: prepare the Linux-kernel-NFS-client test VM. Idempotent.
#  - installs missing Debian packages (qemu, busybox-static, ...); `apt-get update` only then
#  - installs pjdfstest 0.2.2 (crates.io) into $NFS_VM_CACHE/tools/bin
#  - unpacks Debian's kernel .deb (never installed on the host) and builds the guest
#    kernel (vmlinux) + base initramfs (busybox, virtio/nfsv3/9p modules, guest-init.sh)
# Cache: $NFS_VM_CACHE, default /var/cache/nfsgw/nfs-vm. It must not be under /tmp,
# /root or /run: the --hostroot guest mounts its own tmpfs over those.
# usage: setup.sh [--force] [--no-pjdfstest]     (--force rebuilds kernel + initramfs)
set -euo pipefail
trap 'echo "kernel-tests: setup.sh failed at line $LINENO" >&2' ERR
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${NFS_VM_CACHE:-/var/cache/nfsgw/nfs-vm}
FORCE= PJD=1
for a in "$@"; do case $a in
  --force) FORCE=1;; --no-pjdfstest) PJD=;;
  *) echo "usage: setup.sh [--force] [--no-pjdfstest]" >&2; exit 2;;
esac; done
case $CACHE in /tmp/*|/root/*|/run/*|/var/tmp/*) echo "kernel-tests: NFS_VM_CACHE=$CACHE is hidden in the guest; use another path" >&2; exit 2;; esac
mkdir -p "$CACHE"

# Debian packages, installed only when missing.
UPDATED=
apt_update() { [ -n "$UPDATED" ] || { apt-get update -qq; UPDATED=1; }; }
pkgs="qemu-system-x86 busybox-static kmod cpio xz-utils gzip fio stress-ng"
missing=$(for p in $pkgs; do dpkg-query -W -f '${Status}\n' "$p" 2>/dev/null | grep -q ' installed$' || echo "$p"; done)
if [ -n "$missing" ]; then
  echo "kernel-tests: installing" $missing
  apt_update
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

[ -n "$FORCE" ] && rm -f "$CACHE/base.img" "$CACHE/base.sum"
# The base initramfs embeds guest-init.sh: rebuild it when that file changes.
sum=$(cat "$0" "$HERE/guest-init.sh" | md5sum | cut -d' ' -f1)
build_vm() {  # (body not indented: it is the original straight-line recipe)
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
kdep() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}'; }
kpkg=$(kdep); [ -n "$kpkg" ] || { apt_update; kpkg=$(kdep); }
[ -n "$kpkg" ] || { echo "kernel-tests: cannot resolve linux-image-amd64" >&2; exit 1; }
KV=${kpkg#linux-image-}
dl() { (cd "$W" && apt-get download -q "$kpkg" >/dev/null 2>&1); }
dl || { apt_update; dl; } || { echo "kernel-tests: cannot download $kpkg" >&2; exit 1; }
dpkg-deb -x "$W"/"$kpkg"_*.deb "$W/k"
/sbin/depmod -b "$W/k" "$KV"
M=$W/k/lib/modules/$KV

# Uncompressed ELF vmlinux: QEMU boots it via PVH, skipping BIOS + xz (saves ~3 s under TCG).
v=$W/k/boot/vmlinuz-$KV
off=$(LC_ALL=C grep -obUaP -m1 '\xfd7zXZ\x00' "$v" | cut -d: -f1); off=${off%%$'\n'*}
{ tail -c +$((off + 1)) "$v" || true; } | xz -dc --single-stream > "$CACHE/vmlinux.tmp"
mv "$CACHE/vmlinux.tmp" "$CACHE/vmlinux"

R=$W/root; mkdir -p "$R"/{bin,proc,sys,dev,mnt,tmp,host,lib/modules}
cp /bin/busybox "$R/bin/busybox"
# Modules in load order (dependencies first); the 9p group is loaded only with --share/--hostroot.
for group in "base:virtio_pci virtio_net nfsv3" "9p:9pnet_virtio 9p"; do
  list=$R/modules.${group%%:*}; : > "$list"
  for m in ${group#*:}; do
    line=$(grep -E "^kernel/[^:]*/$m\.ko:" "$M/modules.dep")
    for d in $(echo ${line#*:} | tr ' ' '\n' | tac) ${line%%:*}; do
      grep -qx "$d" "$R"/modules.* 2>/dev/null && continue
      echo "$d" >> "$list"; mkdir -p "$R/lib/modules/$(dirname "$d")"
      cp "$M/$d" "$R/lib/modules/$d"
    done
  done
done
cp "$HERE/guest-init.sh" "$R/init"; chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) > "$CACHE/base.img.tmp"
mv "$CACHE/base.img.tmp" "$CACHE/base.img"
echo "$KV" > "$CACHE/kernel-version"; echo "$sum" > "$CACHE/base.sum"
echo "kernel-tests: built kernel $KV + initramfs in $CACHE"
}
if [ -s "$CACHE/base.img" ] && [ -s "$CACHE/vmlinux" ] && [ "$(cat "$CACHE/base.sum" 2>/dev/null)" = "$sum" ]; then
  echo "kernel-tests: VM ready in $CACHE (kernel $(cat "$CACHE/kernel-version"))"
else
  build_vm
fi

# pjdfstest, for run.sh --pjdfstest (run in the guest via --hostroot).
if [ -n "$PJD" ] && [ ! -x "$CACHE/tools/bin/pjdfstest" ]; then
  if command -v cargo >/dev/null; then
    echo "kernel-tests: cargo install pjdfstest@0.2.2 (takes a few minutes)"
    env -u CARGO_TARGET_DIR cargo install -q pjdfstest@0.2.2 --locked --root "$CACHE/tools"
  else
    echo "kernel-tests: WARNING: cargo not found, pjdfstest not installed (run.sh --pjdfstest will fail)" >&2
  fi
fi
