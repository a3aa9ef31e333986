#!/usr/bin/env bash
# The cluster benchmarks of issue 5, each against a baseline measured in the same run, on a
# pseudo-distributed cluster this script starts (and stops) itself:
#   (a) small-job latency: `sheaf job submit --wait` of wordcount over 1 MB, submit to _SUCCESS;
#   (b) wordcount over --size (default 1g) on the cluster vs the local runner over the same DFS
#       file (throughput ratio, goal >= 0.7), outputs compared;
#   (c) terasort of --records (default 10M) on the cluster, teravalidated, with the shuffle rate
#       from the job's counters next to `sheaf bench shuffle` (QUIC vs plain TCP, same bytes).
# Options: --size BYTES, --records N, --runs N (latency repetitions, default 5), --skip-big,
#          --skip-terasort. Environment: SHEAF_RUN_DIR (default /tmp/sheaf-bench; wiped at start),
#          SHEAF_HOST_PREFIX.
# Uses the release build (builds it if missing).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SIZE=1g
RECORDS=10000000
RUNS=5
SKIP_BIG=0
SKIP_TERASORT=0
while (( $# )); do
    case "$1" in
        --size) SIZE="$2"; shift ;;
        --records) RECORDS="$2"; shift ;;
        --runs) RUNS="$2"; shift ;;
        --skip-big) SKIP_BIG=1 ;;
        --skip-terasort) SKIP_TERASORT=1 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "bench-cluster.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done

export SHEAF_RUN_DIR="${SHEAF_RUN_DIR:-/tmp/sheaf-bench}"
cd "$REPO"
if [[ ! -x target/release/sheaf || ! -f target/release/libwordcount.so || ! -f target/release/libterasort.so ]]; then
    echo "==> building (release)"
    cargo build --release --workspace
fi
export SHEAF_BIN="$REPO/target/release/sheaf"
SHEAF="$SHEAF_BIN"
export SHEAF_CONF="$SHEAF_RUN_DIR/sheaf.toml"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/sheaf-bench-cluster.XXXXXX")"
cleanup() {
    "$REPO/scripts/stop-all.sh" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }
# Seconds since $1, as a float.
elapsed() { python3 -c "import time; print(f'{time.time() - $1:.3f}')"; }
counter() { # JOB NAME -> value of the counter NAME (any group)
    "$SHEAF" job counters "$1" | awk -F= -v n="$2" '{ gsub(/^[ \t]+/, "", $1) } $1 == n { print $2; exit }'
}
submit() { # OUTPUT-FILE-FOR-JOB-ID ARGS... ; runs a job to completion, prints its id into the file
    local idfile="$1"; shift
    # --quiet: the job id alone on stdout, errors on stderr.
    "$SHEAF" job submit --wait --quiet "$@" >"$idfile" 2>"$WORK/submit.err" || { cat "$WORK/submit.err" >&2; return 1; }
}

echo "==> starting the pseudo-distributed cluster in $SHEAF_RUN_DIR"
"$REPO/scripts/stop-all.sh" >/dev/null 2>&1 || true
# A fresh cluster every run: the run dir is this script's own (its data is wiped).
rm -rf "$SHEAF_RUN_DIR"
"$REPO/scripts/start-all.sh" >"$WORK/start.log" 2>&1 || { cat "$WORK/start.log" >&2; exit 1; }
"$SHEAF" dfs mkdir -p /bench

echo
echo "== (a) small-job latency: wordcount over 1 MB, submit to _SUCCESS ($RUNS runs)"
"$SHEAF" bench corpus --size 1m --output "$WORK/small.txt"
"$SHEAF" dfs put "$WORK/small.txt" /bench/small.txt
LAT=()
for i in $(seq 1 "$RUNS"); do
    t0=$(now)
    submit "$WORK/id" --plugin target/release/libwordcount.so --input /bench/small.txt \
        --output "/bench/small-out-$i" --reducers 1
    "$SHEAF" dfs test -e "/bench/small-out-$i/_SUCCESS"
    t1=$(now)
    LAT+=("$(secs "$t0" "$t1")")
    echo "   run $i: ${LAT[-1]} s ($(cat "$WORK/id"))"
done
MEDIAN=$(printf '%s\n' "${LAT[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
echo "   median: $MEDIAN s (goal < 2 s)"

if (( ! SKIP_BIG )); then
    echo
    echo "== (b) wordcount over $SIZE: cluster vs the local runner on the same DFS file"
    "$SHEAF" bench corpus --size "$SIZE" --output "$WORK/big.txt"
    BYTES=$(stat -c %s "$WORK/big.txt")
    t0=$(now)
    "$SHEAF" dfs put "$WORK/big.txt" /bench/big.txt
    echo "   dfs put: $(secs "$t0" "$(now)") s"
    rm -f "$WORK/big.txt"
    t0=$(now)
    "$SHEAF" job run --local --plugin target/release/libwordcount.so --input sheaf:///bench/big.txt \
        --output sheaf:///bench/big-local --reducers 2 2>"$WORK/local.err" || { cat "$WORK/local.err" >&2; exit 1; }
    LOCAL_S=$(secs "$t0" "$(now)")
    t0=$(now)
    submit "$WORK/id" --plugin target/release/libwordcount.so --input /bench/big.txt \
        --output /bench/big-cluster --reducers 2
    CLUSTER_S=$(secs "$t0" "$(now)")
    JOB=$(cat "$WORK/id")
    "$SHEAF" dfs cat '/bench/big-local/part-*' | sort >"$WORK/local.out"
    "$SHEAF" dfs cat '/bench/big-cluster/part-*' | sort >"$WORK/cluster.out"
    cmp -s "$WORK/local.out" "$WORK/cluster.out" || { echo "   OUTPUTS DIFFER" >&2; exit 1; }
    python3 - "$BYTES" "$LOCAL_S" "$CLUSTER_S" "$(counter "$JOB" DATA_LOCAL_MAPS)" "$(counter "$JOB" TOTAL_LAUNCHED_MAPS)" <<'EOF'
import sys
size, local, cluster, data_local, maps = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
mb = size / 1e6
print(f"   local runner : {local:7.2f} s  {mb / local:7.1f} MB/s")
print(f"   cluster job  : {cluster:7.2f} s  {mb / cluster:7.1f} MB/s  ({data_local} of {maps} maps data-local)")
print(f"   cluster / local throughput: {local / cluster:.2f} (goal >= 0.70); outputs identical")
EOF
fi

if (( ! SKIP_TERASORT )); then
    echo
    echo "== (c) terasort of $RECORDS records on the cluster"
    "$SHEAF" bench teragen --records "$RECORDS" --output "$WORK/tera.in"
    "$SHEAF" dfs mkdir -p /bench/tera-in
    "$SHEAF" dfs put "$WORK/tera.in" /bench/tera-in/records
    t0=$(now)
    submit "$WORK/id" --plugin target/release/libterasort.so --input /bench/tera-in \
        --output /bench/tera-out --reducers 4
    SORT_S=$(secs "$t0" "$(now)")
    JOB=$(cat "$WORK/id")
    "$SHEAF" dfs get /bench/tera-out "$WORK/tera-out"
    "$SHEAF" bench teravalidate --input "$WORK/tera.in" --output "$WORK/tera-out"
    SHUFFLE_BYTES=$(counter "$JOB" REDUCE_SHUFFLE_BYTES)
    SHUFFLE_MS=$(counter "$JOB" FETCH_BUSY_MILLIS)
    REDUCES=$(counter "$JOB" TOTAL_LAUNCHED_REDUCES)
    python3 - "$RECORDS" "$SORT_S" "$SHUFFLE_BYTES" "${SHUFFLE_MS:-0}" "$REDUCES" <<'EOF'
import sys
records, secs, shuffle, ms, reduces = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
print(f"   terasort: {secs:.2f} s for {records * 100 / 1e6:.0f} MB ({records * 100 / 1e6 / secs:.1f} MB/s), submit to _SUCCESS")
if ms > 0:
    print(f"   shuffle: {shuffle / 1e6:.0f} MB fetched by {reduces} reducers in {ms / 1000:.2f} reducer-seconds:"
          f" {shuffle / 1e3 / ms:.1f} MB/s while a reducer was fetching")
EOF
    echo "   the same bytes through the QUIC shuffle vs a plain TCP copy (sheaf bench shuffle):"
    "$SHEAF" bench shuffle --bytes "$SHUFFLE_BYTES" 2>&1 | sed 's/^/   /'
fi
