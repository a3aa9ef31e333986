#!/usr/bin/env bash
# Stops the whole pseudo-distributed cluster: the resource layer first (so containers stop before
# the DFS they may write to), then the DFS.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
status=0
"$HERE/stop-yarn.sh" || status=$?
"$HERE/stop-dfs.sh" || status=$?
exit "$status"
