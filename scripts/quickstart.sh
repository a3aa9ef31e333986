#!/usr/bin/env bash
# Quickstart: on a fresh clone, build Sheaf in release mode, format and start the
# pseudo-distributed cluster (NameNode + 3 DataNodes, ResourceManager + 3 NodeManagers, all on
# loopback: scripts/start-all.sh), generate a sample corpus and put it in the DFS, run the
# wordcount plugin on the cluster (`sheaf job submit --wait`: a JobTracker and map/reduce task
# containers on the NodeManagers), print the 10 most frequent words, stop the cluster.
#   --keep          leave the cluster running afterwards (stop it with scripts/stop-all.sh)
#   --size BYTES    corpus size (default 48m)
# Environment: SHEAF_RUN_DIR (default /tmp/sheaf-quickstart), SHEAF_DATANODES (default 3),
# SHEAF_HOST_PREFIX (default 127.0.0: NameNode/ResourceManager on .1, workers on .2, .3, …),
# SHEAF_SKIP_BUILD=1 (no build: use SHEAF_BIN, default target/release/sheaf, and the
# libwordcount.so beside it or WORDCOUNT_PLUGIN).
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

if [[ "${SHEAF_SKIP_BUILD:-0}" != 1 ]]; then
    echo "==> building (release; the first build takes a few minutes)"
    cargo build --release --workspace
    export SHEAF_BIN="$REPO/target/release/sheaf"
fi
export SHEAF_BIN="${SHEAF_BIN:-$REPO/target/release/sheaf}"
SHEAF="$SHEAF_BIN"
PLUGIN="${WORDCOUNT_PLUGIN:-$(dirname "$SHEAF")/libwordcount.so}"
for f in "$SHEAF" "$PLUGIN"; do
    [[ -e "$f" ]] || { echo "quickstart.sh: $f is missing (run without SHEAF_SKIP_BUILD)" >&2; exit 1; }
done

WORK="$(mktemp -d)"
cleanup() {
    rm -rf "$WORK"
    if (( ! KEEP )); then
        echo "==> stopping the cluster"
        "$REPO/scripts/stop-all.sh" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

echo "==> starting the pseudo-distributed cluster (DFS + yarn) in $SHEAF_RUN_DIR"
"$REPO/scripts/start-all.sh"
export SHEAF_CONF="$SHEAF_RUN_DIR/sheaf.toml"

echo "==> generating a $SIZE sample corpus and putting it in the DFS"
"$SHEAF" bench corpus --size "$SIZE" --output "$WORK/corpus.txt"
RUN_ID="$(date +%Y%m%d-%H%M%S)"
IN="/quickstart/$RUN_ID/corpus.txt"
OUT="/quickstart/$RUN_ID/counts"
"$SHEAF" dfs mkdir -p "/quickstart/$RUN_ID"
"$SHEAF" dfs put "$WORK/corpus.txt" "$IN"
"$SHEAF" dfs ls -h "/quickstart/$RUN_ID"

echo "==> running wordcount on the cluster: $IN -> $OUT"
START=$(date +%s%N)
# 8 MB splits: several map tasks spread over the NodeManagers even though the corpus fits in
# one 128 MB DFS block.
"$SHEAF" job submit --plugin "$PLUGIN" --input "$IN" --output "$OUT" --reducers 2 \
    --split-size 8m --wait
END=$(date +%s%N)
"$SHEAF" dfs test -e "$OUT/_SUCCESS"
echo "job took $(( (END - START) / 1000000 )) ms from submission to _SUCCESS"

echo "==> top 10 words"
# awk, not head: head would close the pipe early and pipefail would fail the script.
"$SHEAF" dfs cat "$OUT/part-r-*" | sort -t$'\t' -k2,2nr | awk 'NR <= 10'

if (( KEEP )); then
    echo "==> the cluster keeps running (run dir $SHEAF_RUN_DIR); try:"
    echo "    SHEAF_RUN_DIR=$SHEAF_RUN_DIR $SHEAF job list --all"
    echo "    SHEAF_RUN_DIR=$SHEAF_RUN_DIR scripts/stop-all.sh"
fi
