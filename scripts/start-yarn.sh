#!/usr/bin/env bash
# Starts the resource layer of the pseudo-distributed cluster: one ResourceManager on
# PREFIX.1:8032 and one NodeManager per DataNode host (NodeManager i on PREFIX.(i+1), the same
# address and therefore the same host identity and rack as DataNode i). Pid files and logs go to
# the same run dir as the DFS daemons (SHEAF_RUN_DIR, default /tmp/sheaf). Run scripts/start-dfs.sh
# first (it formats the cluster and writes the configuration); scripts/start-all.sh does both.
# Waits until every NodeManager is registered. Afterwards `sheaf yarn …` needs no flags.
#   SHEAF_NODEMANAGERS   NodeManagers to start (default: one per DataNode pid file, else 3)
#   SHEAF_NM_MEMORY_MB   memory each NodeManager offers (default 4096)
#   SHEAF_NM_VCORES      vcores each NodeManager offers (default: this machine's cores shared out
#                        among the NodeManagers, at least 1: the simulated hosts share one CPU, and
#                        more containers than cores only makes every task slower)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="${SHEAF_RUN_DIR:-/tmp/sheaf}"
START_TIMEOUT="${SHEAF_START_TIMEOUT:-60}"
PREFIX="${SHEAF_HOST_PREFIX:-127.0.0}"
NM_MEMORY="${SHEAF_NM_MEMORY_MB:-4096}"

# shellcheck source=scripts/daemon-control.sh
source "$REPO/scripts/daemon-control.sh"
find_sheaf_bin start-yarn.sh

CONF="$RUN_DIR/sheaf.toml"
if [[ ! -f "$CONF" || ! -f "$RUN_DIR/tls/ca.pem" ]]; then
    echo "start-yarn.sh: no formatted cluster in $RUN_DIR (run scripts/start-dfs.sh or scripts/start-all.sh first)" >&2
    exit 1
fi
RUN_DIR="$(cd "$RUN_DIR" && pwd)"
export SHEAF_CONF="$CONF"
export SHEAF_RUN_DIR="$RUN_DIR"
export RUST_LOG="${RUST_LOG:-info}"
mkdir -p "$RUN_DIR/logs"

shopt -s nullglob
dn_pids=("$RUN_DIR"/datanode*.pid)
NODEMANAGERS="${SHEAF_NODEMANAGERS:-${#dn_pids[@]}}"
if [[ "$NODEMANAGERS" == 0 ]]; then
    NODEMANAGERS=3
fi
if ! [[ "$NODEMANAGERS" =~ ^[0-9]+$ ]] || (( NODEMANAGERS < 1 || NODEMANAGERS > 200 )); then
    echo "start-yarn.sh: SHEAF_NODEMANAGERS must be a number from 1 to 200 (got '$NODEMANAGERS')" >&2
    exit 1
fi
CORES="$(nproc 2>/dev/null || echo 2)"
NM_VCORES="${SHEAF_NM_VCORES:-$(( (CORES + NODEMANAGERS - 1) / NODEMANAGERS ))}"
if ! [[ "$NM_VCORES" =~ ^[0-9]+$ ]] || (( NM_VCORES < 1 )); then
    echo "start-yarn.sh: SHEAF_NM_VCORES must be a whole number of at least 1 (got '$NM_VCORES')" >&2
    exit 1
fi

# Pseudo-distributed values for the yarn sections of the run dir's configuration (commented
# defaults are replaced; values set by an earlier start are updated).
awk -v run="$RUN_DIR" -v prefix="$PREFIX" -v mem="$NM_MEMORY" -v vcores="$NM_VCORES" '
BEGIN {
    v["resourcemanager.address"] = "\"" prefix ".1:8032\""
    v["resourcemanager.state-dir"] = "\"" run "/resourcemanager\""
    v["resourcemanager.node-timeout-ms"] = "10000"
    v["nodemanager.memory-mb"] = mem
    v["nodemanager.vcores"] = vcores
    v["nodemanager.heartbeat-interval-ms"] = "1000"
}
/^\[[a-z]+\]/ { section = substr($0, 2, index($0, "]") - 2) }
/^(# )?[a-z-]+ = / {
    line = $0
    sub(/^# /, "", line)
    split(line, parts, " ")
    key = parts[1]
    if ((section "." key) in v) { print key " = " v[section "." key]; next }
}
{ print }
' "$CONF" > "$CONF.tmp"
mv "$CONF.tmp" "$CONF"

alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

if alive "$RUN_DIR/resourcemanager.pid"; then
    echo "resourcemanager running as process $(cat "$RUN_DIR/resourcemanager.pid"). Stop it first."
else
    echo "Starting resourcemanager on $PREFIX.1:8032, logging to $RUN_DIR/logs/resourcemanager.log"
    nohup "$SHEAF" --conf "$CONF" resourcemanager >>"$RUN_DIR/logs/resourcemanager.log" 2>&1 </dev/null &
    echo $! >"$RUN_DIR/resourcemanager.pid"
fi

for i in $(seq 1 "$NODEMANAGERS"); do
    host="$PREFIX.$((i + 1))"
    pid="$RUN_DIR/nodemanager$i.pid"
    if alive "$pid"; then
        echo "nodemanager$i running as process $(cat "$pid"). Stop it first."
        continue
    fi
    echo "Starting nodemanager$i on $host, logging to $RUN_DIR/logs/nodemanager$i.log"
    SHEAF_NODEMANAGER_HOST="$host" \
        SHEAF_NODEMANAGER_LOCAL_DIR="$RUN_DIR/nodemanager$i/local" \
        SHEAF_NODEMANAGER_LOG_DIR="$RUN_DIR/nodemanager$i/logs" \
        nohup "$SHEAF" --conf "$CONF" nodemanager >>"$RUN_DIR/logs/nodemanager$i.log" 2>&1 </dev/null &
    echo $! >"$pid"
done

deadline=$((SECONDS + START_TIMEOUT))
while :; do
    live=$("$SHEAF" --conf "$CONF" yarn node list 2>/dev/null | grep -c ' RUNNING ' || true)
    if [[ "${live:-0}" -ge "$NODEMANAGERS" ]]; then
        break
    fi
    for p in "$RUN_DIR"/resourcemanager.pid "$RUN_DIR"/nodemanager*.pid; do
        if [[ -f "$p" ]] && ! alive "$p"; then
            name="$(basename "$p" .pid)"
            echo "start-yarn.sh: $name exited; last lines of $RUN_DIR/logs/$name.log:" >&2
            tail -n 20 "$RUN_DIR/logs/$name.log" >&2 || true
            exit 1
        fi
    done
    if (( SECONDS >= deadline )); then
        echo "start-yarn.sh: only ${live:-0} of $NODEMANAGERS NodeManagers registered after ${START_TIMEOUT}s; last lines of $RUN_DIR/logs/resourcemanager.log:" >&2
        tail -n 20 "$RUN_DIR/logs/resourcemanager.log" >&2 || true
        exit 1
    fi
    sleep 0.3
done
echo "yarn is up: ResourceManager $PREFIX.1:8032, $NODEMANAGERS NodeManager(s), run dir $RUN_DIR (try: $SHEAF yarn run --containers 3 -- hostname)"
