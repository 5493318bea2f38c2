# tests/kernel/pjdfstest-report.sh: sourced by run.sh and backends.sh. Defines
#   pjdfstest_report OUTPUT [COUNTS_FILE]
# which reads pjdfstest's output file, prints the failing tests by group and each with its
# message, then "pjdfstest counts: passed=N failed=N skipped=N total=N"; with COUNTS_FILE it
# also writes those counts one per line, then "failing tests:" and their names. Returns 1 when
# OUTPUT has no summary line (pjdfstest did not finish).
pjdfstest_report() {
  local out sum failing counts
  out=$(sed 's/\x1b\[[0-9;]*m//g' "$1" 2>/dev/null)
  sum=$(grep '^Summary:' <<< "$out")
  if [ -z "$sum" ]; then
    tail -n 30 <<< "$out"
    return 1
  fi
  # "name   FAILED" lines, each followed by a tab-indented panic message
  failing=$(awk '/^[^\t ]/ && ($NF == "FAILED" || / PASSED UNEXPECTEDLY$/) {print $1}' <<< "$out" | sort)
  echo "pjdfstest failing tests by group:"
  [ -z "$failing" ] || awk -F:: '{print $1}' <<< "$failing" | sort | uniq -c | sed 's/^ */  /'
  echo "pjdfstest failing tests, with their failure message:"
  awk 'function flush() { if (n != "") print "  " n ": " substr(m, 1, 200); n = m = "" }
       /^ *(left|right):/ && n != "" {sub(/^ */, ""); m = m " | " $0; next}
       /^\t/ && n != "" && m == "" {sub(/^\t/, ""); m = $0; next}
       {flush()}
       /^[^\t ]/ && ($NF == "FAILED" || / PASSED UNEXPECTEDLY$/) {n = $1}
       END {flush()}' <<< "$out" | sort
  n() { sed -n "s/.* \([0-9]*\) $1.*/\1/p" <<< "$sum"; }
  counts="passed=$(n passed) failed=$(n failed) skipped=$(n skipped) total=$(sed -n 's/.* \([0-9]*\) total.*/\1/p' <<< "$sum")"
  echo "pjdfstest counts: $counts"
  if [ -n "${2:-}" ]; then
    { tr ' ' '\n' <<< "$counts"; echo "failing tests:"; [ -z "$failing" ] || echo "$failing"; } > "$2"
  fi
}
