#!/usr/bin/env bash
# Starts the whole pseudo-distributed cluster: the DFS (scripts/start-dfs.sh), then the resource
# layer (scripts/start-yarn.sh) with one NodeManager beside each DataNode. Same environment
# variables as those two scripts.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$HERE/start-dfs.sh"
"$HERE/start-yarn.sh"
