#!/usr/bin/env bash
# Quickstart: on a fresh clone, build Sheaf in release mode, format and start a pseudo-distributed
# DFS (NameNode + 3 DataNodes on loopback), generate a sample corpus, put it in the DFS, run the
# wordcount plugin over it (DFS in, DFS out), print the 10 most frequent words, stop the cluster.
#   --keep          leave the cluster running afterwards
#   --size BYTES    corpus size (default 48m)
# Environment: SHEAF_RUN_DIR (default /tmp/sheaf-quickstart), SHEAF_DATANODES (default 3).
#
# The job runs with the local runner (all map and reduce tasks in this process, reading and
# writing the DFS); running it in containers on the resource manager is the next milestone.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KEEP=0
SIZE=48m
while (( $# )); do
    case "$1" in
        --keep) KEEP=1 ;;
        --size) SIZE="$2"; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "quickstart.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done

export SHEAF_RUN_DIR="${SHEAF_RUN_DIR:-/tmp/sheaf-quickstart}"
cd "$REPO"

echo "==> building (release; the first build takes a few minutes)"
cargo build --release --workspace
export SHEAF_BIN="$REPO/target/release/sheaf"
SHEAF="$SHEAF_BIN"

stop_cluster() { "$REPO/scripts/stop-dfs.sh" >/dev/null 2>&1 || true; }
if (( ! KEEP )); then
    trap stop_cluster EXIT
fi

echo "==> starting the pseudo-distributed DFS in $SHEAF_RUN_DIR"
"$REPO/scripts/start-dfs.sh"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"; (( KEEP )) || stop_cluster' EXIT
echo "==> generating a $SIZE sample corpus and putting it in the DFS"
"$SHEAF" bench corpus --size "$SIZE" --output "$WORK/corpus.txt"
RUN_ID="$(date +%Y%m%d-%H%M%S)"
"$SHEAF" dfs mkdir -p "/quickstart/$RUN_ID"
"$SHEAF" dfs put "$WORK/corpus.txt" "/quickstart/$RUN_ID/corpus.txt"
"$SHEAF" dfs ls -h "/quickstart/$RUN_ID"

echo "==> running wordcount: sheaf:///quickstart/$RUN_ID/corpus.txt -> sheaf:///quickstart/$RUN_ID/counts"
START=$(date +%s.%N)
"$SHEAF" job run --local --plugin "$REPO/target/release/libwordcount.so" \
    --input "sheaf:///quickstart/$RUN_ID/corpus.txt" --output "sheaf:///quickstart/$RUN_ID/counts" \
    --reducers 2 2>"$WORK/counters.txt" || { cat "$WORK/counters.txt" >&2; exit 1; }
END=$(date +%s.%N)
"$SHEAF" dfs test -e "/quickstart/$RUN_ID/counts/_SUCCESS"
grep -E "MAP_INPUT_RECORDS|REDUCE_OUTPUT_RECORDS" "$WORK/counters.txt" || true
printf 'job took %.1f s\n' "$(echo "$END - $START" | bc 2>/dev/null || python3 -c "print($END - $START)")"

echo "==> top 10 words"
# awk, not head: head would close the pipe early and pipefail would fail the script.
"$SHEAF" dfs cat "/quickstart/$RUN_ID/counts/part-r-*" | sort -t$'\t' -k2,2nr | awk 'NR <= 10'
