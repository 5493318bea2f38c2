#!/usr/bin/env bash
# Builds nfsgw.exe for Windows (x86_64-pc-windows-gnu, linked by Debian's mingw-w64) and shows
# that it serves: it runs under Wine with a mount whose root is a Windows path (C:\nfsgw-data)
# and is driven from Linux with libnfs's command-line client.
#
#   scripts/windows-test.sh
#   NFSGW_WINE_PORTMAP=free scripts/windows-test.sh   portmapper on a free port even as root
#
# Installs what is missing (Wine, mingw-w64, libnfs-utils, the rustup target). Exits 0 with a
# SKIP line only when Wine or the Windows target cannot be installed. Ends with the line
# "windows-wine: N passed, M failed" and exits 1 if a check failed.
set -euo pipefail
. "$(dirname "$0")/common.sh"
cd "$NFSGW_REPO"
TARGET=x86_64-pc-windows-gnu
EXE=$CARGO_TARGET_DIR/$TARGET/release/nfsgw.exe
WINE_HOME=$HOME/.cache/nfsgw/wine

skip() {
  echo "windows-wine: SKIP: $*"
  exit 0
}

say "setup: Wine, mingw-w64, libnfs-utils, the $TARGET target"
apt_install libnfs-utils
apt_install gcc-mingw-w64-x86-64 || skip "cannot install gcc-mingw-w64-x86-64 (the linker for $TARGET)"
apt_install wine64 wine || skip "cannot install Wine (Debian packages wine64, wine)"
command -v wine >/dev/null || skip "Wine is installed but there is no wine command"
if ! rustup target list --installed 2>/dev/null | grep -qx $TARGET; then
  timeout "${RUSTUP_TIMEOUT:-300}" rustup target add $TARGET ||
    skip "rustup cannot install the $TARGET target"
fi
bash scripts/wasm-toolchain.sh # build.rs builds the bundled plugins, whatever the host target

say "build nfsgw.exe"
t0=$(date +%s)
cargo build --release --target $TARGET -p nfsgw
build_s=$(($(date +%s) - t0))
echo "cross build: ${build_s}s, $(du -m "$EXE" | cut -f1) MB $EXE"

# A throwaway Wine prefix, removed at exit with everything nfsgw wrote into it.
mkdir -p "$WINE_HOME"
export WINEPREFIX WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=" # no Mono/Gecko prompts
WINEPREFIX=$(mktemp -d "$WINE_HOME/prefix.XXXXXX")
work=$(mktemp -d)
server_pid=
cleanup() {
  set +e
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  wineserver -k 2>/dev/null
  wineserver -w 2>/dev/null
  rm -rf "$WINEPREFIX" "$work"
}
trap cleanup EXIT

say "Wine prefix $WINEPREFIX"
t0=$(date +%s)
wine_t0=$t0
wineboot --init >"$work/wineboot.log" 2>&1 || { cat "$work/wineboot.log" >&2; exit 1; }
wineserver -w
sys32=$WINEPREFIX/drive_c/windows/system32
# Rust's std (1.78+) imports ProcessPrng from bcryptprimitives.dll, which Wine before 9 lacks:
# the exe then exits at once with status 53. A stand-in DLL that forwards to RtlGenRandom
# (advapi32's SystemFunction036) lets it start. It goes into this test prefix only.
if [ ! -e "$sys32/bcryptprimitives.dll" ]; then
  cat >"$work/prng.c" <<'EOF'
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk)) return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
EOF
  x86_64-w64-mingw32-gcc -O2 -shared -o "$sys32/bcryptprimitives.dll" "$work/prng.c" -ladvapi32
  echo "installed a ProcessPrng stand-in as C:\\windows\\system32\\bcryptprimitives.dll (Wine $(wine --version) lacks it)"
fi
echo "Wine prefix ready: $(($(date +%s) - t0))s"

# The served directory and the config, both inside the prefix and named by Windows paths.
data=$WINEPREFIX/drive_c/nfsgw-data
conf=$WINEPREFIX/drive_c/nfsgw
mkdir -p "$data" "$conf"
printf 'hello from the Windows side\r\n' >"$data/hello.txt"
head -c 3000000 /dev/urandom >"$work/in.bin"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port_free() { python3 -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1',$1))" 2>/dev/null &&
  python3 -c "import socket,sys; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('127.0.0.1',$1))" 2>/dev/null; }
port=$(free_port)
if [ "${NFSGW_WINE_PORTMAP:-}" != free ] && [ "$(id -u)" = 0 ] && port_free 111; then
  pmap_port=111
else
  pmap_port=$(free_port)
fi
cat >"$conf/mounts.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
portmap = "127.0.0.1:$pmap_port"
state_dir = 'C:\\nfsgw\\state'

[[mount]]
name = "data"
plugin = "local"
# libnfs runs as root here, from an unprivileged port.
root_squash = false
secure = false
[mount.config]
root = 'C:\\nfsgw-data'
attr_ttl_ms = "0"
EOF

say "run nfsgw.exe under Wine"
t0=$(date +%s)
NO_COLOR=1 wine "$EXE" --config 'C:\nfsgw\mounts.toml' >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do
  grep -q "serving NFSv3" "$work/server.log" && break
  kill -0 $server_pid 2>/dev/null || break
  sleep 0.2
done
if ! grep -q "serving NFSv3" "$work/server.log"; then
  cat "$work/server.log" >&2
  echo "nfsgw.exe did not start under Wine"
  echo "windows-wine: 0 passed, 1 failed"
  exit 1
fi
echo "nfsgw.exe serving under Wine after $(($(date +%s) - t0))s:"
sed 's/^/  | /' "$work/server.log"
if [ "$pmap_port" = 111 ]; then
  echo "portmapper: port 111 (bound by Wine as root); the checks below ask it for the ports"
  q=""
else
  echo "portmapper: port $pmap_port (not 111: not root, 111 taken, or NFSGW_WINE_PORTMAP=free); the checks give libnfs the ports"
  q="?nfsport=$port&mountport=$port"
fi
url="nfs://127.0.0.1/data"

passed=0
failed=0
check() { # check NAME COMMAND...: runs a check, counts and reports it
  local name=$1
  shift
  if "$@" >"$work/check.log" 2>&1; then
    passed=$((passed + 1))
    echo "ok   $name"
  else
    failed=$((failed + 1))
    echo "FAIL $name"
    sed 's/^/     /' "$work/check.log"
  fi
}

listing_has() { # listing_has NAME [SIZE]: nfs-ls of the export lists NAME (of SIZE bytes)
  nfs-ls "$url$q" >"$work/ls.txt"
  cat "$work/ls.txt"
  awk -v n="$1" -v s="${2:-}" '$NF == n && (s == "" || $5 == s) { found = 1 } END { exit !found }' "$work/ls.txt"
}
listing_lacks() { nfs-ls "$url$q" >"$work/ls.txt" && ! awk -v n="$1" '$NF == n { f = 1 } END { exit !f }' "$work/ls.txt"; }
copy_out() { nfs-cp "$url/$1$q" "$2" && cmp "$2" "$3"; }
copy_in() { nfs-cp "$1" "$url/$2$q" && cmp "$1" "$data/$2"; }
# libnfs has no rename command; its library does (nfs_rename), called here through ctypes.
nfs_rename() {
  python3 - "$url$q" "$1" "$2" <<'EOF'
import ctypes, sys
url, old, new = (a.encode() for a in sys.argv[1:])
class NfsUrl(ctypes.Structure):
    _fields_ = [("server", ctypes.c_char_p), ("path", ctypes.c_char_p), ("file", ctypes.c_char_p)]
lib = ctypes.CDLL("libnfs.so.13")
lib.nfs_init_context.restype = ctypes.c_void_p
lib.nfs_parse_url_dir.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
lib.nfs_parse_url_dir.restype = ctypes.POINTER(NfsUrl)
for f in ("nfs_mount", "nfs_rename"):
    getattr(lib, f).argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
lib.nfs_get_error.argtypes = [ctypes.c_void_p]
lib.nfs_get_error.restype = ctypes.c_char_p
nfs = lib.nfs_init_context()
u = lib.nfs_parse_url_dir(nfs, url)  # also takes the ports from ?nfsport=&mountport=
if not u or lib.nfs_mount(nfs, u.contents.server, u.contents.path) or lib.nfs_rename(nfs, old, new):
    sys.exit("nfs_rename: " + (lib.nfs_get_error(nfs) or b"?").decode())
EOF
}
renamed_on_windows() { [ ! -e "$data/in.bin" ] && cmp "$work/in.bin" "$data/renamed.bin"; }
seen_by_wine() { # the Windows side (cmd.exe in the prefix) sees the renamed file, not the old one
  wine cmd /c 'dir /b C:\nfsgw-data' | tr -d '\r' >"$work/dir.txt"
  cat "$work/dir.txt"
  grep -qx renamed.bin "$work/dir.txt" && ! grep -qx in.bin "$work/dir.txt"
}

say "checks from Linux (libnfs) against nfsgw.exe"
check "nfs-ls lists the file made on the Windows side" listing_has hello.txt
check "nfs-cp out: bytes equal the Windows file" copy_out hello.txt "$work/hello.out" "$data/hello.txt"
check "nfs-cp in: 3 MB land byte-equal in C:\\nfsgw-data" copy_in "$work/in.bin" in.bin
check "nfs-ls shows the new file with its size" listing_has in.bin 3000000
check "nfs-cp out of the new file: bytes equal" copy_out in.bin "$work/in.out" "$work/in.bin"
check "rename over NFS (libnfs nfs_rename)" nfs_rename /in.bin /renamed.bin
check "the rename shows in C:\\nfsgw-data" renamed_on_windows
check "Windows (wine cmd dir) sees the new name only" seen_by_wine
check "nfs-ls shows the new name, not the old" listing_has renamed.bin 3000000
check "nfs-ls no longer lists the old name" listing_lacks in.bin
check "nfs-cp out after the rename: bytes equal" copy_out renamed.bin "$work/renamed.out" "$work/in.bin"
check "the inode journal is kept in C:\nfsgw\state" find "$conf/state" -type f -size +0
if [ "$pmap_port" != 111 ]; then
  echo "(the portmapper itself was not asked: libnfs asks only port 111)"
fi

if ! kill -0 $server_pid 2>/dev/null; then
  failed=$((failed + 1))
  echo "FAIL nfsgw.exe is still running after the checks"
  sed 's/^/  | /' "$work/server.log"
fi
echo "cross build ${build_s}s; Wine: $(($(date +%s) - wine_t0))s in all (prefix, start, checks)"
echo "windows-wine: $passed passed, $failed failed"
[ $failed = 0 ]
