#!/usr/bin/env bash
# Runs every test of the workspace: unit tests, and end-to-end tests that start real
# multi-process clusters on loopback addresses. This is exactly what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "test.sh: cargo-nextest not found; installing it from crates.io" >&2
    cargo install cargo-nextest --locked
fi

# Build every member first (the cdylib plugins the tests load included), then run.
cargo build --workspace --all-targets
exec cargo nextest run --workspace --no-fail-fast "$@"
