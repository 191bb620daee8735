#!/usr/bin/env bash
# Crash soak: runs the kill -9 crash test (crates/warren/tests/crash.rs) for many rounds, each
# killing the real `warren` binary at a random point while three producers publish persistent
# messages with confirms and a consumer acks, then restarting it on the same data directory and
# checking that no confirmed message was lost and no durably acked one came back.
#
#   scripts/crash-soak.sh [ROUNDS] [MAX_SECONDS]     (defaults: 100 rounds, 1200 s)
#   CRASH_SEED=N scripts/crash-soak.sh               replays the kill points of an earlier run
#
# Bounded in count (ROUNDS) and in time (MAX_SECONDS, after which it fails).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

rounds=${1:-100}
max_seconds=${2:-1200}
cargo build --release -p warren --test crash >/dev/null 2>&1
started=$SECONDS
CRASH_ROUNDS=$rounds timeout "$max_seconds" \
    cargo test --release -p warren --test crash -- --nocapture 2>&1 | grep -E "crash (test|round)|panicked|test result"
echo "crash soak: $rounds rounds passed in $((SECONDS - started)) s"
