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

echo "$P $F" > "$RESULTS/guest.counts"
echo "guest workload: $P ok, $F failing"
[ "$F" = 0 ]
