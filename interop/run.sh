#!/usr/bin/env bash
# Runs the client-interop suites (pika, amqplib) against a freshly started Warren.
#
#   bash interop/run.sh [path/to/warren]        (default: target/release/warren)
#
# Starts `warren server --amqp-port 0 --http-port 0 --data-dir <tmp>`, waits
# (at most WARREN_READY_TIMEOUT s, default 30) for its single "ready" log line
# carrying `amqp_addr=HOST:PORT`, exports WARREN_AMQP_PORT (and WARREN_BIN, for suites that
# start and kill brokers of their own), runs
#   python3 -m pytest -q interop/python
#   node --test interop/node/test_*.mjs
#   st run <the broker's /api/openapi.json>   (schemathesis: the HTTP API against its
#                                             OpenAPI document, docs/openapi.json)
# and stops the broker on exit. Prints the broker log tail if anything failed and
# exits non-zero if any suite failed. Installs nothing: pika, pytest, schemathesis and
# the interop/node dependencies (npm install) must already be present.
#
# To run the suites against an already running AMQP broker instead (e.g. a
# RabbitMQ, to check the suites themselves), set WARREN_INTEROP_EXTERNAL_PORT.

set -uo pipefail

BIN=${1:-target/release/warren}
READY_TIMEOUT=${WARREN_READY_TIMEOUT:-30}
PY_SUITE_TIMEOUT=${WARREN_PY_SUITE_TIMEOUT:-900}
NODE_SUITE_TIMEOUT=${WARREN_NODE_SUITE_TIMEOUT:-600}
OPENAPI_SUITE_TIMEOUT=${WARREN_OPENAPI_SUITE_TIMEOUT:-300}

# Resolve the binary against the caller's directory, then work from the repo root.
if [[ "$BIN" != /* ]]; then
    BIN="$PWD/$BIN"
fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2

if [[ -z "${WARREN_INTEROP_EXTERNAL_PORT:-}" && ! -x "$BIN" ]]; then
    echo "interop: broker binary $BIN not found or not executable (build it: cargo build --release -p warren)" >&2
    exit 2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/warren-interop.XXXXXX")
LOG="$WORK/broker.log"
BROKER_PID=""

log_tail() {
    if [[ -s "$LOG" ]]; then
        echo "----- broker log (last 200 lines of $LOG) -----"
        tail -n 200 "$LOG"
        echo "----- end of broker log -----"
    elif [[ -n "$BROKER_PID" ]]; then
        echo "(the broker log is empty)"
    fi
}

stop_broker() {
    [[ -n "$BROKER_PID" ]] || return 0
    if kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -TERM "$BROKER_PID" 2>/dev/null
        for _ in $(seq 1 100); do
            kill -0 "$BROKER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$BROKER_PID" 2>/dev/null; then
            echo "broker did not stop within 10 s of SIGTERM; sending SIGKILL" >&2
            kill -KILL "$BROKER_PID" 2>/dev/null
        fi
    fi
    wait "$BROKER_PID" 2>/dev/null
    BROKER_PID=""
}

on_exit() {
    local rc=$?
    stop_broker
    if [[ $rc -eq 0 ]]; then
        rm -rf "$WORK"
    else
        echo "interop: keeping $WORK for inspection" >&2
    fi
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -n "${WARREN_INTEROP_EXTERNAL_PORT:-}" ]]; then
    WARREN_AMQP_PORT=$WARREN_INTEROP_EXTERNAL_PORT
    echo "interop: using the already running broker on 127.0.0.1:$WARREN_AMQP_PORT"
else
    echo "interop: starting $BIN (log: $LOG)"
    # Short long polls (schemathesis waits 10 s per request), callbacks and push subscriptions
    # only to a closed local port, and a vhost secret so that they need none of their own.
    cat >"$WORK/warren.toml" <<'TOML'
[http]
max_wait_s = 2
callback_allow = ["http://127.0.0.1:9/"]
callback_secrets = { "/" = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }
TOML
    "$BIN" server -c "$WORK/warren.toml" --amqp-port 0 --http-port 0 --data-dir "$WORK/data" >"$LOG" 2>&1 </dev/null &
    BROKER_PID=$!

    # Wait for the ready line: `... amqp_addr=127.0.0.1:40123 http_addr=...`
    # (tolerating ANSI colour codes and a quoted value, just in case).
    addr=""
    deadline=$((SECONDS + READY_TIMEOUT))
    while [[ -z "$addr" ]]; do
        addr=$(sed -e 's/\x1b\[[0-9;]*m//g' "$LOG" 2>/dev/null |
            grep -oE 'amqp_addr="?[^" ]+' | head -n 1 | sed -e 's/^amqp_addr="\{0,1\}//')
        [[ -n "$addr" ]] && break
        if ! kill -0 "$BROKER_PID" 2>/dev/null; then
            wait "$BROKER_PID"
            echo "interop: the broker exited (status $?) before becoming ready" >&2
            BROKER_PID=""
            log_tail
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            echo "interop: no 'amqp_addr=' ready line in the broker log after ${READY_TIMEOUT}s" >&2
            log_tail
            exit 1
        fi
        sleep 0.2
    done
    WARREN_AMQP_PORT=${addr##*:}
    if ! [[ "$WARREN_AMQP_PORT" =~ ^[0-9]+$ ]] || ((WARREN_AMQP_PORT == 0)); then
        echo "interop: could not extract a port from amqp_addr=$addr" >&2
        log_tail
        exit 1
    fi
    http_addr=$(sed -e 's/\x1b\[[0-9;]*m//g' "$LOG" | grep -oE 'http_addr="?[^" ]+' | head -n 1 |
        sed -e 's/^http_addr="\{0,1\}//')
    if [[ -n "$http_addr" ]]; then
        export WARREN_HTTP_PORT=${http_addr##*:}
    fi
    echo "interop: broker ready (pid $BROKER_PID) on amqp_addr=$addr${http_addr:+ http_addr=$http_addr}"
fi
export WARREN_AMQP_PORT
# Suites that start (and kill -9) brokers of their own, e.g. the order pipeline's.
if [[ -z "${WARREN_INTEROP_EXTERNAL_PORT:-}" ]]; then
    export WARREN_BIN="$BIN"
fi

failed=()

echo
echo "===== interop: pika (python3 -m pytest -q interop/python) ====="
timeout --kill-after=30 "$PY_SUITE_TIMEOUT" \
    python3 -m pytest -q -p no:cacheprovider interop/python
rc=$?
if [[ $rc -ne 0 ]]; then
    [[ $rc -eq 124 ]] && echo "interop: the pika suite timed out after ${PY_SUITE_TIMEOUT}s" >&2
    failed+=("pika (exit $rc)")
fi

echo
echo "===== interop: amqplib (node --test interop/node/test_*.mjs) ====="
# Node 20's `node --test <dir>` only matches *.test.mjs / test-*.mjs style names,
# so the files are named explicitly.
shopt -s nullglob
node_tests=(interop/node/test_*.mjs)
shopt -u nullglob
if [[ ${#node_tests[@]} -eq 0 ]]; then
    echo "interop: no node test files found" >&2
    failed+=("amqplib (no test files)")
elif [[ ! -d interop/node/node_modules/amqplib ]]; then
    echo "interop: amqplib is not installed; run (cd interop/node && npm install)" >&2
    failed+=("amqplib (not installed)")
else
    node_flags=(--test)
    # Don't let a socket the broker never closes keep the runner alive (Node >= 20.14).
    if node --help 2>/dev/null | grep -q -- '--test-force-exit'; then
        node_flags+=(--test-force-exit)
    fi
    timeout --kill-after=30 "$NODE_SUITE_TIMEOUT" node "${node_flags[@]}" "${node_tests[@]}"
    rc=$?
    if [[ $rc -ne 0 ]]; then
        [[ $rc -eq 124 ]] && echo "interop: the amqplib suite timed out after ${NODE_SUITE_TIMEOUT}s" >&2
        failed+=("amqplib (exit $rc)")
    fi
fi

echo
echo "===== interop: schemathesis (the HTTP API against docs/openapi.json) ====="
if [[ -z "${WARREN_HTTP_PORT:-}" ]]; then
    echo "interop: no HTTP port known (an external broker?); skipping schemathesis"
elif ! command -v st >/dev/null; then
    echo "interop: schemathesis is not installed (python3 -m pip install schemathesis)" >&2
    failed+=("schemathesis (not installed)")
else
    # The queue the document's examples name, so that its operations reach real data.
    python3 - <<'PY'
import os, pika
conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", int(os.environ["WARREN_AMQP_PORT"])))
conn.channel().queue_declare("openapi-check", durable=True)
conn.close()
PY
    base="http://127.0.0.1:$WARREN_HTTP_PORT"
    # Every phase, with a fixed seed and example count: the same cases on every run, bounded
    # in time. One worker: with two, schemathesis's coverage phase trips over CPython 3.11's
    # parser ("AST constructor recursion depth mismatch") in its own code.
    timeout --kill-after=30 "$OPENAPI_SUITE_TIMEOUT" \
        st --config-file interop/schemathesis.toml run "$base/api/openapi.json" --url "$base" \
        --auth guest:guest --max-examples 50 --seed 1 --workers 1
    rc=$?
    if [[ $rc -ne 0 ]]; then
        [[ $rc -eq 124 ]] && echo "interop: schemathesis timed out after ${OPENAPI_SUITE_TIMEOUT}s" >&2
        failed+=("schemathesis (exit $rc)")
    fi
fi

if [[ -n "$BROKER_PID" ]] && ! kill -0 "$BROKER_PID" 2>/dev/null; then
    echo "interop: the broker is no longer running" >&2
    failed+=("broker died during the run")
fi

echo
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "interop: FAILED: ${failed[*]}" >&2
    log_tail
    exit 1
fi
echo "interop: all suites passed"
exit 0
