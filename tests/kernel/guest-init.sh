#!/bin/busybox sh
# tests/kernel/guest-init.sh: PID 1 of the test VM (copied into the base initramfs by
# setup.sh as /init). /run.conf and /cmd.sh come from the small per-run cpio that vm.sh
# appends. Loads the modules, brings up slirp networking, optionally 9p-mounts the host's
# / (--hostroot) and a shared dir (--share), NFS-mounts the server on /mnt, runs the
# command there and reports its exit code as an @@NFSVM_EXIT=n@@ console line.
/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root TERM=dumb
mount -t proc proc /proc; mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev; mount -t tmpfs tmp /tmp
# /dev/fd & co. (for bash process substitution); devtmpfs is one instance, so /host/dev has them too
ln -s /proc/self/fd /dev/fd; ln -s fd/0 /dev/stdin; ln -s fd/1 /dev/stdout; ln -s fd/2 /dev/stderr
. /run.conf
t() { echo "@@NFSVM_T=$1 $(cut -d' ' -f1 /proc/uptime)@@"; }
finish() { [ -n "$2" ] && echo "nfs-vm: $2"; echo "@@NFSVM_EXIT=$1@@"; poweroff -f; sleep 5; }
load() { while read m; do insmod /lib/modules/$m || echo "nfs-vm: insmod $m failed"; done < $1; }
load /modules.base
[ -n "$SHARE$HOSTROOT" ] && load /modules.9p
ip link set lo up; ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0; ip route add default via 10.0.2.2
t net
R=
p9="trans=virtio,version=9p2000.L,msize=512000"
if [ -n "$HOSTROOT" ]; then
  R=/host
  mount -t 9p -o $p9,ro hostroot /host || finish 125 "9p mount of host / failed"
  mount -t proc proc /host/proc; mount -t sysfs sysfs /host/sys
  mount -t devtmpfs dev /host/dev; mount -t tmpfs tmp /host/tmp
  for d in /host/run /host/var/tmp /host/root; do [ -d $d ] && mount -t tmpfs tmp $d; done
fi
if [ -n "$SHARE" ]; then
  mkdir -p "$R$SHARE" 2>/dev/null
  mount -t 9p -o $p9 share "$R$SHARE" || finish 125 "9p mount of $SHARE failed"
fi
if [ -n "$MOUNT" ]; then
  mount -t nfs -o "$NFS_OPTS" "10.0.2.2:$NFS_EXPORT" $R/mnt || finish 125 "NFS mount of $NFS_EXPORT failed (opts $NFS_OPTS)"
  t mount
fi
cp /cmd.sh $R/tmp/.nfsvm-cmd.sh
if [ -n "$HOSTROOT" ]; then
  chroot /host /bin/sh -c 'cd /mnt && exec bash /tmp/.nfsvm-cmd.sh' </dev/null; rc=$?
else
  (cd /mnt && exec sh /tmp/.nfsvm-cmd.sh) </dev/null; rc=$?
fi
t cmd
cd /
if [ -n "$MOUNT" ]; then umount $R/mnt || { echo "nfs-vm: umount failed"; umount -f $R/mnt; }; fi
t umount
finish $rc
