#!/bin/bash
# tests/kernel/workload.sh: file-system workload run by run.sh INSIDE the test VM (bash,
# chrooted in the host's / via vm.sh --hostroot), with the nfsgw export NFS-mounted on
# /mnt. Every check prints "ok - ..." or "FAIL - ...". It writes into $RESULTS (a 9p share):
# guest.counts ("passed failed") and the checksums run.sh compares on the host.
# The final state of /mnt/w is what run.sh then checks in the served directory.
# env: RESULTS (dir), TOKEN (string written to /mnt/marker.txt). Exit 1 on any failure.
set -u
P=0 F=0
check() {  # check "description" command args...
  local d=$1; shift
  if "$@"; then P=$((P + 1)); echo "ok   - $d"; else F=$((F + 1)); echo "FAIL - $d"; fi
}
eq() { [ "$1" = "$2" ] || { echo "       expected [$2], got [$1]"; return 1; }; }
# Flush dirty pages and drop the page/dentry/inode caches, so that the next reads go to the server.
dc() { sync; echo 3 > /proc/sys/vm/drop_caches; }
cd /mnt || exit 1
L=/tmp/local; mkdir -p $L
mkdir w || { echo "FAIL - mkdir /mnt/w"; echo "0 1" > "$RESULTS/guest.counts"; exit 1; }

# 1. write a 4 MiB random file and read it back from the server
head -c 4194304 /dev/urandom > $L/big
check "write 4 MiB (cp)" cp $L/big w/big.bin
dc
check "read back 4 MiB, cmp" cmp $L/big w/big.bin
check "size of big.bin" eq "$(stat -c %s w/big.bin)" 4194304
md5sum < $L/big | cut -d' ' -f1 > "$RESULTS/big.md5"
# unaligned overwrite in the middle of a copy (read-modify-write of partial pages)
head -c 70001 /dev/urandom > $L/patch
cp $L/big $L/patched && dd if=$L/patch of=$L/patched bs=70001 seek=123457 oflag=seek_bytes conv=notrunc status=none
check "cp big.bin patched.bin" cp w/big.bin w/patched.bin
check "dd unaligned overwrite" dd if=$L/patch of=w/patched.bin bs=70001 seek=123457 oflag=seek_bytes conv=notrunc status=none
dc
check "read back patched file, cmp" cmp $L/patched w/patched.bin
md5sum < $L/patched | cut -d' ' -f1 > "$RESULTS/patched.md5"

# 2. append
printf 'line1\n' > w/app.txt
printf 'line2\n' >> w/app.txt
head -c 100000 /dev/urandom > $L/chunk
cat $L/chunk >> w/app.txt
{ printf 'line1\nline2\n'; cat $L/chunk; } > $L/app
dc
check "append: content" cmp $L/app w/app.txt
check "append: size" eq "$(stat -c %s w/app.txt)" 100012
md5sum < $L/app | cut -d' ' -f1 > "$RESULTS/app.md5"

# 3. directory with 2,000 files
mkdir w/many
(cd w/many && seq -f 'f%g' 1 2000 | xargs touch)
dc
check "ls of 2000 files: count" eq "$(ls w/many | wc -l)" 2000
check "ls of 2000 files: names" eq "$(ls w/many | sort | md5sum)" "$(seq -f 'f%g' 1 2000 | sort | md5sum)"
check "ls -l of 2000 files: count" eq "$(ls -l w/many | grep -c '^-')" 2000
check "find of 2000 files: count" eq "$(find w/many -type f | wc -l)" 2000
# run.sh made /mnt/huge on the host: 100,000 entries, each listed exactly once.
ls -f huge > $L/huge.ls
check "ls -f of 100000 entries: count" eq "$(grep -c '^n' $L/huge.ls)" 100000
check "ls -f of 100000 entries: no repeats" eq "$(grep '^n' $L/huge.ls | sort | uniq -d | wc -l)" 0

# 4. mkdir -p nested
check "mkdir -p a/b/c/d/e" mkdir -p w/a/b/c/d/e
echo deep > w/a/b/c/d/e/deep.txt
dc
check "nested dir exists" test -d w/a/b/c/d/e
check "file in nested dir" eq "$(cat w/a/b/c/d/e/deep.txt)" deep

# 5. mv of a file and of a directory with contents
check "mv file" mv w/app.txt w/app2.txt
mkdir -p w/srcdir/sub; echo x > w/srcdir/sub/f; echo y > w/srcdir/g
check "mv directory" mv w/srcdir w/a/dstdir
echo new > w/o1; echo old > w/o2
check "mv file over existing file" mv -f w/o1 w/o2
dc
check "mv file: old name gone" test ! -e w/app.txt
check "mv file: content kept" cmp $L/app w/app2.txt
check "mv dir: old name gone" test ! -e w/srcdir
check "mv dir: contents" eq "$(cat w/a/dstdir/sub/f w/a/dstdir/g)" "x
y"
check "mv over: content" eq "$(cat w/o2)" new
check "mv over: source gone" test ! -e w/o1

# 6. symlink
check "ln -s" ln -s ../big.bin w/a/link
dc
check "readlink" eq "$(readlink w/a/link)" ../big.bin
check "symlink is a link" test -L w/a/link
check "read through symlink" cmp $L/big w/a/link

# 7. truncate smaller and larger
head -c 10000 /dev/urandom > $L/t
cp $L/t w/t.bin
check "truncate -s 4000" truncate -s 4000 w/t.bin
dc
check "truncated size" eq "$(stat -c %s w/t.bin)" 4000
check "truncated content" cmp <(head -c 4000 $L/t) w/t.bin
check "truncate -s 20000" truncate -s 20000 w/t.bin
dc
check "extended size" eq "$(stat -c %s w/t.bin)" 20000
check "extended: old bytes kept" cmp <(head -c 4000 $L/t) <(head -c 4000 w/t.bin)
check "extended: zero fill" cmp <(head -c 16000 /dev/zero) <(tail -c 16000 w/t.bin)

# 8. chmod
check "chmod 640 file" chmod 640 w/t.bin
check "chmod 711 dir" chmod 711 w/a/b
dc
check "file mode" eq "$(stat -c %a w/t.bin)" 640
check "dir mode" eq "$(stat -c %a w/a/b)" 711

# 9. touch -d (mtime and atime)
check "touch -d" touch -d '2001-02-03 04:05:06 UTC' w/t.bin
check "touch -m -d" touch -m -d '2002-03-04 05:06:07.5 UTC' w/big.bin
dc
check "mtime after touch -d" eq "$(stat -c %Y w/t.bin)" 981173106
check "atime after touch -d" eq "$(stat -c %X w/t.bin)" 981173106
check "mtime after touch -m -d" eq "$(stat -c %Y w/big.bin)" 1015218367

# 10. rm and rmdir
check "rm file" rm w/o2
mkdir w/empty
check "rmdir empty dir" rmdir w/empty
check "rmdir non-empty dir fails" eval '! rmdir w/a 2>/dev/null'
echo z > w/a/b/c/zz
check "rm -r tree" rm -r w/a/b
dc
check "rm: file gone" test ! -e w/o2
check "rmdir: dir gone" test ! -e w/empty
check "rm -r: tree gone" test ! -e w/a/b
check "ls w" eq "$(ls w | tr '\n' ' ')" "a app2.txt big.bin many patched.bin t.bin "
check "ls w/a" eq "$(ls w/a | tr '\n' ' ')" "dstdir link "

# 11. marker for the host-side check
echo "$TOKEN" > marker.txt
check "marker written" eq "$(cat marker.txt)" "$TOKEN"

# 12. fio: 16 MiB of random 4 KiB writes, each block crc32c-verified when read back (from the
#     page cache), then verified again with --verify_only after drop_caches (from the server).
#     run.sh verifies the file a third time on the host.
mkdir fio
fio_check() {  # fio_check label [fio options]
  local l=$1 out rc; shift
  out=$(fio --directory=/mnt/fio "$@" "$RESULTS/verify.fio" 2>&1); rc=$?
  printf '%s\n' "$out" > "$RESULTS/fio-$l.txt"
  check "fio $l: exit 0" eq "$rc" 0
  check "fio $l: 16 MiB read back, no verify error" eq \
    "$(grep -cE 'READ: .*io=16.0MiB' <<< "$out") $(grep -ciE 'verify failed|bad (magic|header)|err= *[1-9]' <<< "$out")" "1 0"
}
fio_check write+verify
dc
fio_check verify_only --verify_only

# 13. stress-ng, file-system class, 1 s per stressor, one after the other, with --verify. The
#     excluded stressors (tests/kernel/README.md says why): no NFSv3 feature (fiemap, verity,
#     xattr, chattr, inode-flags, fallocate, fpunch), local to the client with nolock or not
#     about the server (locks, leases, *notify, binderfs, bind-mount, eventfd, dup, procfs,
#     ioprio, handle), writes at 2^62 bytes that the host fs refuses at writeback (fsize), and
#     slow under TCG (symlink: 11 s; covered by pjdfstest).
SNG_X=binderfs,bind-mount,fiemap,verity,xattr,chattr,inode-flags,fallocate,fpunch,fcntl,flock,locka,lockf,lockofd,lease,dnotify,inotify,fanotify,eventfd,dup,procfs,ioprio,handle,fsize,symlink
mkdir stress
t=$SECONDS
out=$(cd stress && stress-ng --class filesystem --seq 1 -t 1 -x "$SNG_X" --temp-path /mnt/stress \
  --verify --metrics-brief 2>&1); rc=$?
printf '%s\n' "$out" > "$RESULTS/stress-ng.txt"
grep -vE 'metrc:' <<< "$out"
echo "stress-ng: exit $rc after $((SECONDS - t)) s"
check "stress-ng filesystem class: exit 0" eq "$rc" 0
check "stress-ng: no fail/error/data error lines" eq \
  "$(grep -iE '^stress-ng: (fail|error):|data error|failed|unsuccessful' <<< "$out")" ""
check "stress-ng: successful run completed" eq "$(grep -c 'successful run completed' <<< "$out")" 1
check "stress-ng: temp dir cleaned up" eq "$(ls -A stress)" ""

# 14. rename while open: write, mv the file, write, mv its directory, write, close.
for i in 1 2 3 4; do head -c 300001 /dev/urandom > $L/p$i; done
mkdir -p rn/d1
exec 7> rn/d1/f.bin
check "rename-open: write 1" eval 'cat $L/p1 >&7'
check "rename-open: mv file" mv rn/d1/f.bin rn/d1/g.bin
check "rename-open: write 2" eval 'cat $L/p2 >&7'
check "rename-open: mv dir" mv rn/d1 rn/d2
check "rename-open: write 3" eval 'cat $L/p3 >&7'
check "rename-open: close" eval 'exec 7>&-'
dc
check "rename-open: content at the new path" cmp <(cat $L/p1 $L/p2 $L/p3) rn/d2/g.bin
check "rename-open: old names gone" eq "$(ls -A rn)" d2
cat $L/p1 $L/p2 $L/p3 | md5sum | cut -d' ' -f1 > "$RESULTS/rn.md5"

# 15. nfsgw restarts under the mount. run.sh restarts nfsgw (same port, config and state dir)
#     when asked: first with SIGINT (its clean shutdown), then with SIGKILL (a crash). Open descriptors, the cwd and cached
#     dentries keep their file handles across the restarts; no ESTALE, no lost write.
restart() {  # restart N SIGNAL
  echo "$2" > "$RESULTS/restart.$1.tmp" && mv "$RESULTS/restart.$1.tmp" "$RESULTS/restart.$1.request"
  local i t=$SECONDS
  for i in $(seq 600); do [ -e "$RESULTS/restart.$1.done" ] && break; sleep 0.1; done
  check "restart $1: host restarted nfsgw (kill -$2)" test -e "$RESULTS/restart.$1.done"
  echo "       restart $1 took $((SECONDS - t)) s"
}
head -c 524288 /dev/urandom > $L/old
mkdir -p r/d
cp $L/old r/old.bin
exec 3<> r/restart.bin 4< r/old.bin 5> r/d/f.bin
check "restart: write 1 (fd 3)" eval 'cat $L/p1 >&3'
check "restart: write 1 (fd 5)" eval 'cat $L/p1 >&5'
check "restart: read 1 (fd 4)" eval 'dd bs=100000 count=1 status=none <&4 > $L/o1'
sync
cd r
restart 1 INT
check "after INT: write 2 (fd 3)" eval 'cat $L/p2 >&3'
check "after INT: write 2 (fd 5)" eval 'cat $L/p2 >&5'
check "after INT: read 2 (fd 4)" eval 'dd bs=100000 count=1 status=none <&4 > $L/o2'
check "after INT: read old.bin by path" cmp $L/old old.bin
check "after INT: ls of the cwd" eq "$(ls | tr '\n' ' ')" "d old.bin restart.bin "
check "after INT: mv open file" mv d/f.bin d/g.bin
check "after INT: mv its dir" mv d e
check "after INT: write 3 (fd 5)" eval 'cat $L/p3 >&5'
check "after INT: create fresh.txt, keep it open (fd 6)" eval 'echo new > fresh.txt && exec 6>> fresh.txt'
# dirty pages in the client's cache while nfsgw is killed
check "after INT: write 3 (fd 3), not synced" eval 'cat $L/p3 >&3'
restart 2 KILL
check "after KILL: write 4 (fd 3)" eval 'cat $L/p4 >&3'
check "after KILL: write 4 (fd 5)" eval 'cat $L/p4 >&5'
check "after KILL: append (fd 6)" eval 'echo more >&6'
check "after KILL: ls of the cwd" eq "$(ls | tr '\n' ' ')" "e fresh.txt old.bin restart.bin "
dc
check "after KILL: read old.bin by path, caches dropped" cmp $L/old old.bin
check "after KILL: read 3 (fd 4)" eval 'cat <&4 > $L/o3'
check "after KILL: fd 4 read the whole file" cmp $L/old <(cat $L/o1 $L/o2 $L/o3)
check "after KILL: close fds" eval 'exec 3>&- 4<&- 5>&- 6>&-'
dc
check "after KILL: restart.bin content" cmp <(cat $L/p1 $L/p2 $L/p3 $L/p4) restart.bin
check "after KILL: e/g.bin content (renamed while open)" cmp <(cat $L/p1 $L/p2 $L/p3 $L/p4) e/g.bin
check "after KILL: fresh.txt content" eq "$(cat fresh.txt)" "new
more"
cat $L/p1 $L/p2 $L/p3 $L/p4 | md5sum | cut -d' ' -f1 | tee "$RESULTS/renamed.md5" > "$RESULTS/restart.md5"
dmesg | grep -iE 'nfs:|not responding|stale|rpc:.*(err|fail)' | sed 's/^/       dmesg: /'
cd /mnt

echo "$P $F" > "$RESULTS/guest.counts"
echo "guest workload: $P ok, $F failing"
[ "$F" = 0 ]
