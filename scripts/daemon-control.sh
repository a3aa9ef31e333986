# Sourced by the start/stop scripts: what they share about finding the binary and stopping daemons.
# Expects REPO (the repository root) to be set by the caller.

# Sets SHEAF to the sheaf binary: $SHEAF_BIN, else target/release, else target/debug; fails with a
# one-line hint naming the calling script ($1) when there is none.
find_sheaf_bin() {
    if [[ -n "${SHEAF_BIN:-}" ]]; then
        SHEAF="$SHEAF_BIN"
    elif [[ -x "$REPO/target/release/sheaf" ]]; then
        SHEAF="$REPO/target/release/sheaf"
    elif [[ -x "$REPO/target/debug/sheaf" ]]; then
        SHEAF="$REPO/target/debug/sheaf"
    else
        echo "$1: no sheaf binary (build it: cargo build --release, or set SHEAF_BIN)" >&2
        exit 1
    fi
}

# Stops the daemon of pid file $1: SIGTERM, then SIGKILL after STOP_TIMEOUT seconds; removes the
# pid file either way.
stop_daemon() {
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
