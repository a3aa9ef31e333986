#!/usr/bin/env bash
# Stops the resource layer started by start-yarn.sh: SIGTERM to every NodeManager (each kills its
# containers) and then the ResourceManager, SIGKILL to those still alive after SHEAF_STOP_TIMEOUT
# seconds (default 10), then removes the pid files. State and logs stay in SHEAF_RUN_DIR.
set -euo pipefail

RUN_DIR="${SHEAF_RUN_DIR:-/tmp/sheaf}"
STOP_TIMEOUT="${SHEAF_STOP_TIMEOUT:-10}"

stop() {
    local pidfile="$1" name pid
    name="$(basename "$pidfile" .pid)"
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    if [[ -z "$pid" ]] || ! kill -0 "$pid" 2>/dev/null; then
        echo "no $name to stop"
        rm -f "$pidfile"
        return
    fi
    echo "Stopping $name (process $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null; do
        if (( SECONDS >= deadline )); then
            echo "$name did not stop within ${STOP_TIMEOUT}s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.2
    done
    rm -f "$pidfile"
}

shopt -s nullglob
found=0
for p in "$RUN_DIR"/nodemanager*.pid; do
    stop "$p"
    found=1
done
if [[ -f "$RUN_DIR/resourcemanager.pid" ]]; then
    stop "$RUN_DIR/resourcemanager.pid"
    found=1
fi
if (( found == 0 )); then
    echo "no yarn daemons to stop in $RUN_DIR"
fi
