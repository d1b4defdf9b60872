#!/usr/bin/env bash
# CI's wall time on this machine: clone the repository's HEAD into a temporary directory and run `.ci/run` there
# (a fresh virtualenv, `pip install`, ruff, the tests) under /usr/bin/time -v; the load average before and after.
# Run it with nothing else running. usage: benchmarks/ci_time/run.sh OUT.txt
set -euo pipefail
OUT=$(realpath "$1")
REPO=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
git clone -q "$REPO" "$WORK/repo"
{
  echo "commit $(git -C "$WORK/repo" rev-parse HEAD)  started $(date -u +%FT%TZ)  loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "nproc $(nproc)  $(grep -m1 'model name' /proc/cpuinfo)"
} > "$OUT"
cd "$WORK/repo"
set +e
/usr/bin/time -v -o "$WORK/time.txt" bash .ci/run > "$WORK/ci.log" 2>&1
RC=$?
set -e
{
  echo "exit status $RC  ended $(date -u +%FT%TZ)  loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "--- the tests' summary line"
  grep -E "passed|failed|error" "$WORK/ci.log" | tail -1
  echo "--- /usr/bin/time -v"
  cat "$WORK/time.txt"
} >> "$OUT"
rm -rf "$WORK"
exit $RC
