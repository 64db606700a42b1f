#!/usr/bin/env bash
# Stop the local cluster started by cluster/local/start.sh (same --state).
#
#   cluster/local/stop.sh [--state DIR] [--grace SECONDS]
#
# Stops every node of that cluster (and only Ray processes using its temp
# directory), then forgets the recorded address. Nodes get SIGTERM and
# --grace seconds (default 5) to exit, then SIGKILL: a GCS or raylet told to
# stop while its peers stop too can wait on them for longer than that
# (`ray stop` waits 16 s by default for the same reason).
set -euo pipefail

STATE=".ray-local" GRACE=5
while [ $# -gt 0 ]; do
  case "$1" in
    --state) STATE="$2"; shift 2 ;;
    --grace) GRACE="$2"; shift 2 ;;
    -h|--help) sed -n 2,10p "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ -d "$STATE" ] || { echo "no local cluster recorded in $STATE" >&2; exit 0; }
STATE="$(cd "$STATE" && pwd)"

[ -f "$STATE/temp_dir" ] || { echo "no local cluster recorded in $STATE" >&2; exit 0; }
TEMP="$(cat "$STATE/temp_dir")"
# `ray stop` would stop every Ray on the machine; signal only this cluster's
# processes, found by the temp directory they were started with: named on
# their command line, or (the Ray client server, the dashboard and runtime-env
# agents, whose command lines do not name it) holding its log files open.
pids() {
  {
    pgrep -f -- "$TEMP/" || true
    for fds in /proc/[0-9]*/fd; do
      if ls -l "$fds" 2>/dev/null | grep -q -- "$TEMP/"; then
        pid="${fds#/proc/}"
        echo "${pid%/fd}"
      fi
    done
  } | { grep -vx "$$" || true; } | sort -un
}
# Scanning /proc is slow on a busy machine: scan once, then wait on those pids.
alive() { for pid in "$@"; do if kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi; done; }
found="$(pids)"
for signal in TERM KILL; do
  [ -z "$found" ] && break
  kill "-$signal" $found 2>/dev/null || true
  for _ in $(seq 1 "$((GRACE * 10))"); do
    found="$(alive $found)"
    [ -z "$found" ] && break
    sleep 0.1
  done
done
# Anything started while the others stopped (a worker a raylet was spawning),
# until none is left: on a busy machine a killed process can take longer than
# half a second to go (CI once saw one outlive a single 0.5 s wait).
for _ in $(seq 1 "$((GRACE * 10))"); do
  late="$(pids)"
  [ -z "$late" ] && break
  kill -KILL $late 2>/dev/null || true
  sleep 0.1
done
rm -f "$STATE/address" "$STATE/dashboard" "$STATE/temp_dir"
if [ -n "$(pids)" ]; then echo "some Ray processes did not stop: $(pids | tr '\n' ' ')" >&2; exit 1; fi
echo "local cluster in $STATE stopped (its logs stay in $TEMP)"
