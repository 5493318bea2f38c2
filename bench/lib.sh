# Sourced by the benchmark scripts: the servers they start and stop, and their tables in the
# docs.
#   pids            every process started, killed by stop_servers (trap stop_servers EXIT)
#   wait_for FILE PATTERN PID WHAT
#                   until FILE holds PATTERN, while PID lives (60 s at most)
#   start_ganesha RUN NFS_PORT MOUNT_PORT NLM_PORT EXPORT...
#                   NFS-Ganesha (FSAL_VFS, NFSv3 over TCP, root not squashed) on 127.0.0.1 with
#                   each EXPORT "PATH:RO" or "PATH:RW", its config and log in RUN; starts
#                   rpcbind first when none answers (Ganesha registers with it); sets ganesha_pid
#   write_docs_section SCRIPT RUN DETAILS
#                   puts RUN/table.md, under a line saying where and how it was measured (with
#                   DETAILS), between the SCRIPT markers of docs/BENCHMARKS.md; with
#                   NFSGW_BENCH_NO_DOCS=1 (a partial or trial run) leaves the docs as they are

pids=()
stop_servers() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}

wait_for() {
  local i
  for i in $(seq 600); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || { echo "$4 exited; its log:" >&2; cat "$1" >&2; exit 1; }
    sleep 0.1
  done
  echo "$4 did not start within 60 s; its log:" >&2; cat "$1" >&2; exit 1
}

start_ganesha() {
  local run=$1 nfs_port=$2 mnt_port=$3 nlm_port=$4 id=0 spec path access
  shift 4
  if ! rpcinfo -p 127.0.0.1 >/dev/null 2>&1; then
    rpcbind -f -w &
    pids+=("$!")
    sleep 0.5
  fi
  {
    cat <<CONF
NFS_CORE_PARAM {
  Protocols = 3; NFS_Port = $nfs_port; MNT_Port = $mnt_port; NLM_Port = $nlm_port;
  Enable_NLM = false; Enable_RQUOTA = false; Bind_addr = 127.0.0.1;
}
NFSV4 { Graceless = true; }
CONF
    for spec in "$@"; do
      id=$((id + 1)) path=${spec%:*} access=${spec##*:}
      cat <<CONF
EXPORT {
  Export_Id = $id; Path = $path; Pseudo = /export$id;
  Access_Type = $access; Squash = No_Root_Squash; SecType = sys;
  Protocols = 3; Transports = TCP;
  FSAL { Name = VFS; }
}
CONF
    done
  } > "$run/ganesha.conf"
  ganesha.nfsd -F -f "$run/ganesha.conf" -L "$run/ganesha.log" -p "$run/ganesha.pid" &
  ganesha_pid=$!; pids+=("$ganesha_pid")
  wait_for "$run/ganesha.log" 'NFS SERVER INITIALIZED' "$ganesha_pid" ganesha.nfsd
}

write_docs_section() {
  local script=$1 run=$2 details=$3 doc=docs/BENCHMARKS.md cpu
  cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
  {
    echo "Measured by \`$script\` on $(date -u +%Y-%m-%d) ($(git rev-parse --short HEAD)$(git diff --quiet HEAD -- host || echo ', host changes uncommitted')),"
    echo "$(nproc) cores ($cpu), Linux $(uname -r); $details"
    echo
    cat "$run/table.md"
  } > "$run/section.md"
  if [ -n "${NFSGW_BENCH_NO_DOCS:-}" ]; then
    say "NFSGW_BENCH_NO_DOCS is set: $doc left as it is (the table is in $run/section.md)"
    return 0
  fi
  awk -v section="$run/section.md" -v begin="<!-- ${script%% *}: begin -->" -v end="<!-- ${script%% *}: end -->" '
    $0 == begin { print; while ((getline line < section) > 0) print line; skip = 1; next }
    $0 == end { skip = 0 }
    !skip { print }
  ' "$doc" > "$run/doc.md"
  cp "$run/doc.md" "$doc"
  say "wrote the table into $doc (logs in $run)"
}
