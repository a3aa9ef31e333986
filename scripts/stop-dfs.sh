#!/usr/bin/env bash
# Stops the pseudo-distributed DFS started by start-dfs.sh: SIGTERM to every DataNode and the
# NameNode, SIGKILL to those still alive after SHEAF_STOP_TIMEOUT seconds (default 10), then
# removes the pid files. Data and logs stay in SHEAF_RUN_DIR.
set -euo pipefail

RUN_DIR="${SHEAF_RUN_DIR:-/tmp/sheaf}"
STOP_TIMEOUT="${SHEAF_STOP_TIMEOUT:-10}"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/daemon-control.sh
source "$REPO/scripts/daemon-control.sh"

shopt -s nullglob
found=0
for p in "$RUN_DIR"/*datanode*.pid; do
    stop_daemon "$p"
    found=1
done
if [[ -f "$RUN_DIR/namenode.pid" ]]; then
    stop_daemon "$RUN_DIR/namenode.pid"
    found=1
fi
if (( found == 0 )); then
    echo "no DFS daemons to stop in $RUN_DIR"
fi
