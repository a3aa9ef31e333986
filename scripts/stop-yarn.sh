#!/usr/bin/env bash
# Stops the resource layer started by start-yarn.sh: SIGTERM to every NodeManager (each kills its
# containers) and then the ResourceManager, SIGKILL to those still alive after SHEAF_STOP_TIMEOUT
# seconds (default 10), then removes the pid files. State and logs stay in SHEAF_RUN_DIR.
set -euo pipefail

RUN_DIR="${SHEAF_RUN_DIR:-/tmp/sheaf}"
STOP_TIMEOUT="${SHEAF_STOP_TIMEOUT:-10}"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/daemon-control.sh
source "$REPO/scripts/daemon-control.sh"

shopt -s nullglob
found=0
for p in "$RUN_DIR"/nodemanager*.pid; do
    stop_daemon "$p"
    found=1
done
if [[ -f "$RUN_DIR/resourcemanager.pid" ]]; then
    stop_daemon "$RUN_DIR/resourcemanager.pid"
    found=1
fi
if (( found == 0 )); then
    echo "no yarn daemons to stop in $RUN_DIR"
fi
