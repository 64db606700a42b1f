#!/usr/bin/env bash
# Start a Ray "cluster" on this machine: one head and N worker nodes, each a
# separate `ray start` with its own CPU, memory and object-store caps.
#
#   cluster/local/start.sh [--workers N] [--cpus C] [--memory GB] [--object-store GB]
#                          [--state DIR]
#
# Prints the Ray address (for `run --address`) and the dashboard / Jobs API
# address (for `submit --address`). Everything binds to 127.0.0.1. Stop it with
# cluster/local/stop.sh (same --state).
set -euo pipefail

WORKERS=2 CPUS=2 MEMORY_GB=4 STORE_GB=1 STATE=".ray-local"
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) WORKERS="$2"; shift 2 ;;
    --cpus) CPUS="$2"; shift 2 ;;
    --memory) MEMORY_GB="$2"; shift 2 ;;
    --object-store) STORE_GB="$2"; shift 2 ;;
    --state) STATE="$2"; shift 2 ;;
    -h|--help) sed -n 2,11p "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

RAY="${RAY:-ray}"
# Nodes run job entrypoints ("python -m ...") with this PATH: put the Python
# that has Ray (and this package's dependencies) first.
export PATH="$(dirname "$(command -v "$RAY")"):$PATH"
PYTHON="${PYTHON:-python3}"
mkdir -p "$STATE"
STATE="$(cd "$STATE" && pwd)"
if [ -f "$STATE/address" ]; then
  echo "a local cluster is already recorded in $STATE (stop it first: cluster/local/stop.sh --state $STATE)" >&2
  exit 1
fi

# Several raylets share this host: every port must be distinct.
free_ports() { "$PYTHON" - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}
bytes() { "$PYTHON" -c "print(int(float('$1') * 1024**3))"; }

# Token auth (Ray 2.60's default) is for clusters reachable from a network;
# this one listens on 127.0.0.1 only.
export RAY_AUTH_MODE=disabled
# Ray's socket paths must stay under 108 bytes: a short temp dir of its own.
TEMP="$(mktemp -d /tmp/ray-dds-XXXXXX)"
echo "$TEMP" >"$STATE/temp_dir"

node_ports() {
  read -r a b c d e f <<<"$(free_ports 6)"
  echo "--node-manager-port=$a --object-manager-port=$b --metrics-export-port=$c \
--dashboard-agent-listen-port=$d --dashboard-agent-grpc-port=$e --runtime-env-agent-port=$f"
}

read -r GCS DASH CLIENT <<<"$(free_ports 3)"
# shellcheck disable=SC2046
"$RAY" start --head --node-ip-address=127.0.0.1 --port="$GCS" \
  --include-dashboard=true --dashboard-host=127.0.0.1 --dashboard-port="$DASH" \
  --ray-client-server-port="$CLIENT" --temp-dir="$TEMP" \
  --num-cpus="$CPUS" --memory="$(bytes "$MEMORY_GB")" \
  --object-store-memory="$(bytes "$STORE_GB")" $(node_ports) --disable-usage-stats \
  --system-config='{"max_direct_call_object_size": 8192}' >"$STATE/head.log" 2>&1 \
  || { cat "$STATE/head.log" >&2; exit 1; }
echo "127.0.0.1:$GCS" >"$STATE/address"
echo "http://127.0.0.1:$DASH" >"$STATE/dashboard"

for i in $(seq 1 "$WORKERS"); do
  # shellcheck disable=SC2046
  "$RAY" start --address="127.0.0.1:$GCS" --node-ip-address=127.0.0.1 \
    --num-cpus="$CPUS" --memory="$(bytes "$MEMORY_GB")" \
    --object-store-memory="$(bytes "$STORE_GB")" $(node_ports) >"$STATE/worker-$i.log" 2>&1 \
    || { cat "$STATE/worker-$i.log" >&2; "$(dirname "$0")/stop.sh" --state "$STATE"; exit 1; }
done

# `ray start` returns before a worker has registered: wait until all have.
for _ in $(seq 1 120); do
  nodes="$("$RAY" status --address="127.0.0.1:$GCS" 2>/dev/null | grep -c ' node_' || true)"
  [ "$nodes" -ge $((WORKERS + 1)) ] && break
  sleep 0.5
done
if [ "$nodes" -lt $((WORKERS + 1)) ]; then
  echo "only $nodes of $((WORKERS + 1)) nodes registered; see $STATE/*.log" >&2
  "$(dirname "$0")/stop.sh" --state "$STATE"; exit 1
fi

echo "Ray address:       127.0.0.1:$GCS     (dedupe-at-scale run --address 127.0.0.1:$GCS ...)"
echo "Jobs API:          http://127.0.0.1:$DASH (dedupe-at-scale submit --address http://127.0.0.1:$DASH ...)"
echo "Logs:              $TEMP/session_latest/logs"
echo "Nodes:             1 head + $WORKERS workers, $CPUS CPUs / ${MEMORY_GB} GB / ${STORE_GB} GB object store each"
