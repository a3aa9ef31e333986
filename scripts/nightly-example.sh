#!/usr/bin/env bash
# A realistic nightly batch on a running Sheaf cluster: counts the words of the day's input
# (the wordcount plugin), then picks the N most frequent words with a second job (streaming,
# one reducer: `sort -k2,2nr | head`). Each job is checked (exit code and _SUCCESS) and retried
# once after deleting its partial output; a step whose output already has _SUCCESS is skipped, so
# a failed night can simply be run again.
#
#   /nightly/DATE/input       the day's text (must exist, or use --load)
#   /nightly/DATE/wordcount   word<TAB>count, one part per reducer
#   /nightly/DATE/top<N>      the N most frequent words, part-r-00000
#
# Usage: nightly-example.sh [--date YYYY-MM-DD] [--top N] [--load LOCAL_FILE_OR_DIR]
#   --load  put LOCAL_FILE_OR_DIR into the day's input dir first (demo / tests)
# Environment:
#   NIGHTLY_DATE      the date (default: today; --date wins)
#   TOP_N             N (default 10; --top wins)
#   LOG_DIR           where nightly-DATE.log goes (default $SHEAF_RUN_DIR/logs, else /tmp/sheaf-nightly)
#   SHEAF_RUN_DIR / SHEAF_CONF   which cluster (as for every sheaf command; default /tmp/sheaf)
#   SHEAF_BIN         the sheaf binary (default target/release/sheaf, else target/debug/sheaf)
#   WORDCOUNT_PLUGIN  the wordcount plugin (default: libwordcount.so beside the sheaf binary)
#   TOPN_MAPPER       map command of the top-N job (default: cat)
#   SHEAF_JOB_OPTS    extra arguments for every `sheaf job` (e.g. "--queue nightly -D k=v")
# Exit status: 0 when both jobs succeeded, 1 when a job failed twice or a check failed, 2 on
# bad usage.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATE="${NIGHTLY_DATE:-$(date +%F)}"
TOP="${TOP_N:-10}"
LOAD=""
while (( $# )); do
    case "$1" in
        --date) DATE="${2:?--date needs a value}"; shift ;;
        --top) TOP="${2:?--top needs a value}"; shift ;;
        --load) LOAD="${2:?--load needs a path}"; shift ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
        *) echo "nightly-example.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done
if ! [[ "$DATE" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]]; then
    echo "nightly-example.sh: date '$DATE' is not YYYY-MM-DD" >&2
    exit 2
fi
if ! [[ "$TOP" =~ ^[1-9][0-9]*$ ]]; then
    echo "nightly-example.sh: top '$TOP' is not a positive number" >&2
    exit 2
fi

# shellcheck source=scripts/daemon-control.sh
source "$REPO/scripts/daemon-control.sh"
find_sheaf_bin nightly-example.sh
PLUGIN="${WORDCOUNT_PLUGIN:-$(dirname "$SHEAF")/libwordcount.so}"
MAPPER="${TOPN_MAPPER:-cat}"
read -r -a JOB_OPTS <<<"${SHEAF_JOB_OPTS:-}"

if [[ -n "${LOG_DIR:-}" ]]; then
    :
elif [[ -n "${SHEAF_RUN_DIR:-}" ]]; then
    LOG_DIR="$SHEAF_RUN_DIR/logs"
else
    LOG_DIR=/tmp/sheaf-nightly
fi
mkdir -p "$LOG_DIR"
LOG="$LOG_DIR/nightly-$DATE.log"

BASE="/nightly/$DATE"
INPUT="$BASE/input"
COUNTS="$BASE/wordcount"
TOPDIR="$BASE/top$TOP"

log() {
    local line
    line="$(date '+%F %T') nightly[$DATE]: $*"
    echo "$line"
    echo "$line" >>"$LOG"
}

fail() {
    log "FAILED: $*"
    echo "nightly-example.sh: $* (log: $LOG)" >&2
    exit 1
}

# run_job NAME OUTPUT_DIR COMMAND...: runs a job that writes OUTPUT_DIR, at most twice. Success
# means exit status 0 and OUTPUT_DIR/_SUCCESS; before each attempt a partial OUTPUT_DIR (left by
# a failed attempt or an earlier failed night) is deleted. Returns 0 on success, 1 otherwise.
run_job() {
    local name="$1" out="$2" attempt rc
    shift 2
    if "$SHEAF" dfs test -e "$out/_SUCCESS"; then
        log "$name: $out already complete, skipping"
        return 0
    fi
    for attempt in 1 2; do
        if "$SHEAF" dfs test -e "$out"; then
            log "$name: removing partial output $out"
            "$SHEAF" dfs rm -r "$out" >>"$LOG" 2>&1 || { log "$name: cannot remove $out"; return 1; }
        fi
        log "$name: attempt $attempt: $(printf "%q " "$@")"
        rc=0
        "$@" >>"$LOG" 2>&1 || rc=$?
        if (( rc == 0 )) && "$SHEAF" dfs test -e "$out/_SUCCESS"; then
            log "$name: succeeded (attempt $attempt)"
            return 0
        elif (( rc == 0 )); then
            log "$name: attempt $attempt exited 0 but $out/_SUCCESS is missing"
        else
            log "$name: attempt $attempt failed with exit status $rc"
        fi
    done
    return 1
}

log "starting (log: $LOG, binary: $SHEAF)"
[[ -f "$PLUGIN" ]] || fail "wordcount plugin $PLUGIN not found (build it: cargo build --release -p wordcount, or set WORDCOUNT_PLUGIN)"
if ! "$SHEAF" dfs test -d / 2>>"$LOG"; then
    fail "no running cluster answers (start one with scripts/start-all.sh; set SHEAF_RUN_DIR or SHEAF_CONF)"
fi

if [[ -n "$LOAD" ]]; then
    [[ -e "$LOAD" ]] || fail "--load $LOAD: no such file or directory"
    if ! "$SHEAF" dfs test -d "$INPUT"; then
        log "loading $LOAD into $INPUT"
        "$SHEAF" dfs mkdir -p "$INPUT" >>"$LOG" 2>&1 || fail "cannot create $INPUT"
        "$SHEAF" dfs put "$LOAD" "$INPUT/" >>"$LOG" 2>&1 || fail "cannot put $LOAD into $INPUT"
    else
        log "$INPUT exists, not loading $LOAD again"
    fi
fi
"$SHEAF" dfs test -d "$INPUT" || fail "input $INPUT does not exist (load the day's data first, or use --load)"

run_job wordcount "$COUNTS" \
    "$SHEAF" job submit --plugin "$PLUGIN" --input "$INPUT" --output "$COUNTS" --reducers 2 \
    --wait "${JOB_OPTS[@]}" \
    || fail "wordcount failed twice"

# One reducer sees every word: it sorts by count (descending, ties by word) and keeps the top N.
run_job "top$TOP" "$TOPDIR" \
    "$SHEAF" job streaming --input "$COUNTS" --output "$TOPDIR" --reducers 1 \
    --mapper "$MAPPER" --reducer "sort -k2,2nr -k1,1 | head -n $TOP" \
    -D "mapreduce.job.name=nightly-top$TOP-$DATE" --wait "${JOB_OPTS[@]}" \
    || fail "top$TOP failed twice"

RESULT="$TOPDIR/part-r-00000"
"$SHEAF" dfs test -e "$RESULT" || fail "$RESULT is missing although the job succeeded"
lines="$("$SHEAF" dfs cat "$RESULT" | wc -l)"
log "done: $lines words in $RESULT"
echo "result: sheaf://$RESULT"
"$SHEAF" dfs cat "$RESULT"
