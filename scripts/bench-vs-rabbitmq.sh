#!/usr/bin/env bash
# Side-by-side benchmark of Warren and RabbitMQ on this machine, in one run, with one tool.
#
#   scripts/bench-vs-rabbitmq.sh [ROUNDS]        (default 3 rounds; the whole run is bounded)
#
# - Installs rabbitmq-server from Debian if it is missing (needs root and apt).
# - Starts its own RabbitMQ node (its own name, ports, data directory, cookie) and a release
#   build of Warren (its own data directory, port 0); never touches another running broker.
# - Runs every scenario of the matrix against both, alternating (A B A B ...), ROUNDS times,
#   with `warren perf`, and records each run's rate and the broker's CPU time and RSS.
# - Writes the medians, the Warren/RabbitMQ ratios, the machine and the date into the generated
#   section at the top of BENCHMARKS.md (between the bench-vs-rabbitmq markers), keeping the
#   rest of the file, and the raw runs into target/bench/runs.jsonl.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

ROUNDS=${1:-3}
MAX_SECONDS=${BENCH_MAX_SECONDS:-840}
STARTED=$SECONDS
OUT=$ROOT/target/bench
mkdir -p "$OUT"
RUNS=$OUT/runs.jsonl
: >"$RUNS"

source "$ROOT/scripts/lib/brokers.sh"
bench_scratch bench

cargo build --release -p warren >/dev/null
WARREN=$ROOT/target/release/warren
# ---- the brokers ----------------------------------------------------------------------------
start_rabbitmq "$WORK"
start_warren "$WARREN" "$WORK"

# ---- the matrix -----------------------------------------------------------------------------
# name | rate reported (publish, e2e or rpc) | latency reported (confirm, e2e or -) | warren perf
# arguments | arguments of a publish-only run that fills the queue QUEUE first (consume-only runs)
# | Warren only: `contract` checks every publish to the default exchange against
# scripts/bench/order-schema.json during the run (RabbitMQ has no contracts: it routes plainly).
# A `--binding-filter` is an `x-filter` binding argument, which RabbitMQ ignores. `transform`
# creates the transform `bench-order` on Warren (a typical translation of the JSON order) for
# the run; RabbitMQ ignores `x-transform` and routes the order as published.
# | Warren only: its own `warren perf` arguments, when Warren does in the broker what
# RabbitMQ's client must do itself (the split: RabbitMQ's producer publishes the ten parts).
SCENARIOS=(
    "16 B transient, publish only|publish|-|--count 500000 --size 16 --consumers 0|"
    "16 B transient, consume only, manual acks|e2e|-|--producers 0 --count 300000 --queue QUEUE --ack-mode manual|--count 300000 --size 16 --consumers 0 --queue QUEUE"
    "16 B transient, consume only, auto-ack|e2e|-|--producers 0 --count 300000 --queue QUEUE --ack-mode auto|--count 300000 --size 16 --consumers 0 --queue QUEUE"
    "16 B transient, end-to-end|e2e|-|--count 500000 --size 16 --consumers 1|"
    "16 B transient, end-to-end, auto-ack|e2e|-|--count 500000 --size 16 --consumers 1 --ack-mode auto|"
    "16 B transient, end-to-end, prefetch 100, one ack per message (as clients run by default)|e2e|e2e|--count 500000 --size 16 --consumers 1 --prefetch 100 --ack-mode manual|"
    "16 B transient, confirms, end-to-end|e2e|confirm|--count 500000 --size 16 --consumers 1 --confirm 1000|"
    "16 B transient, fan-out to 10 queues (deliveries)|e2e|-|--count 100000 --size 16 --consumers 1 --fanout 10|"
    "16 B transient, end-to-end at 10k msg/s|e2e|e2e|--count 50000 --size 16 --consumers 1 --rate 10000|"
    "16 B persistent, confirms, publish only|publish|confirm|--count 200000 --size 16 --consumers 0 --persistent --confirm 1000|"
    "16 B persistent, confirms, end-to-end|e2e|confirm|--count 200000 --size 16 --consumers 1 --persistent --confirm 1000|"
    "1 KiB persistent, confirms, publish only|publish|confirm|--count 100000 --size 1024 --consumers 0 --persistent --confirm 1000|"
    "1 KiB persistent, confirms, end-to-end|e2e|confirm|--count 100000 --size 1024 --consumers 1 --persistent --confirm 1000|"
    "1 KiB JSON persistent, confirms, publish only|publish|confirm|--count 100000 --size 1024 --json-body --consumers 0 --persistent --confirm 1000|"
    "1 KiB JSON persistent, confirms, publish only, Warren checks a contract|publish|confirm|--count 100000 --size 1024 --json-body --consumers 0 --persistent --confirm 1000||contract"
    "1 KiB JSON transient, fan-out to 100 queues, Warren filters each binding on the body (deliveries)|e2e|-|--count 10000 --size 1024 --json-body --consumers 1 --fanout 100 --binding-filter body.order.total>10|"
    "1 KiB JSON transient, Warren translates on the binding (RabbitMQ routes as published)|e2e|-|--count 30000 --size 1024 --json-body --consumers 1 --fanout 1 --binding-arg x-transform=bench-order||transform"
    "1 KiB order of 10 lines as 10 parts: Warren splits it (x-split), RabbitMQ's client publishes the parts (parts delivered)|e2e|-|--count 300000 --size 32 --consumers 1 --fanout 1|||--count 30000 --size 1024 --json-body --json-items 10 --consumers 1 --fanout 1 --exchange-arg x-split=body.order.items --deliveries-per-message 10"
    "RPC round trips, reply queue|rpc|e2e|--rpc --count 20000 --size 16|"
    "RPC round trips, direct reply-to|rpc|e2e|--rpc --direct-reply-to --count 20000 --size 16|"
)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# Creates (PUT) or deletes (DELETE) the benchmark's contract on Warren: every JSON publish to
# the default exchange is checked against the order schema.
warren_contract() {
    local body=""
    if [[ "$1" == PUT ]]; then
        body=$(python3 -c 'import json,sys; print(json.dumps({"exchange": "", "content_type": "application/json",
            "schema": json.load(open(sys.argv[1]))}))' "$ROOT/scripts/bench/order-schema.json")
    fi
    curl -fsS -u guest:guest -X "$1" -H 'content-type: application/json' ${body:+-d "$body"} \
        "http://127.0.0.1:$WARREN_HTTP_PORT/api/contracts/%2F/bench-order" >/dev/null
}

# Creates (PUT) or deletes (DELETE) the benchmark's transform on Warren.
warren_transform() {
    local body=""
    if [[ "$1" == PUT ]]; then
        body='{"program": "{body: {order: .body.order.id, region: .body.order.region, total: .body.order.total, items: [.body.order.items[] | {sku, qty}]}, headers: (.headers + {warehouse: $lookup.wh[.body.order.region]})}", "lookup": {"wh": {"eu": "north", "us": "west"}}}'
    fi
    curl -fsS -u guest:guest -X "$1" -H 'content-type: application/json' ${body:+-d "$body"} \
        "http://127.0.0.1:$WARREN_HTTP_PORT/api/transforms/%2F/bench-order" >/dev/null
}

run_one() { # broker port pid scenario-index round
    local broker=$1 port=$2 pid=$3 i=$4 round=$5
    IFS='|' read -r name metric latency args prefill setup warren_args <<<"${SCENARIOS[$i]}"
    if [[ "$broker" == warren && -n "$warren_args" ]]; then
        args=$warren_args
    fi
    local queue="warren-bench-$broker-$i-$round"
    args=${args//QUEUE/$queue}
    prefill=${prefill//QUEUE/$queue}
    if [[ -n "$prefill" ]]; then
        # shellcheck disable=SC2086
        "$WARREN" perf --addr "127.0.0.1:$port" --timeout-s 120 $prefill >/dev/null 2>&1 || true
    fi
    if [[ "$broker" == warren && "$setup" == contract ]]; then
        warren_contract PUT
    fi
    if [[ "$broker" == warren && "$setup" == transform ]]; then
        warren_transform PUT
    fi
    local t0 c0 result c1 t1
    t0=$(date +%s.%N)
    c0=$(cpu_ticks "$pid")
    # shellcheck disable=SC2086
    result=$("$WARREN" perf --addr "127.0.0.1:$port" --timeout-s 120 $args 2>&1 | tail -n 1) || result='{}'
    c1=$(cpu_ticks "$pid")
    t1=$(date +%s.%N)
    if [[ "$broker" == warren && "$setup" == contract ]]; then
        warren_contract DELETE
    fi
    if [[ "$broker" == warren && "$setup" == transform ]]; then
        warren_transform DELETE
    fi
    python3 "$ROOT/scripts/bench_record.py" run "$broker" "$name" "$metric" "$latency" "$round" "$t0" "$t1" "$c0" "$c1" \
        "$(rss_kb "$pid")" "$result" >>"$RUNS"
    printf '  %-9s %-50s %s\n' "$broker" "$name" "$(tail -n 1 "$RUNS")"
}

memory_one() { # broker port pid round: RSS per idle connection and per queue with a consumer
    local broker=$1 port=$2 pid=$3 round=$4 result
    result=$("$WARREN" perf --addr "127.0.0.1:$port" --timeout-s 120 --memory --connections 1000 --queues 1000 \
        --broker-pid "$pid" 2>&1 | tail -n 1) || result='{}'
    python3 "$ROOT/scripts/bench_record.py" memory "$broker" "$round" "$result" >>"$MEMORY"
    printf '  %-9s %-50s %s\n' "$broker" "memory" "$(tail -n 1 "$MEMORY")"
}

MEMORY=$OUT/memory.jsonl
: >"$MEMORY"
IDLE_WARREN_RSS=$(rss_kb "$WARREN_PID")
IDLE_RMQ_RSS=$(rss_kb "$RMQ_PID")
# Memory first, on the fresh brokers: after the load runs an allocator hands new connections
# memory it already holds, and growth would read as nothing.
memory_one warren "$WARREN_PORT" "$WARREN_PID" 1
memory_one rabbitmq "$RMQ_PORT" "$RMQ_PID" 1
for round in $(seq 1 "$ROUNDS"); do
    echo "round $round"
    for i in "${!SCENARIOS[@]}"; do
        if ((SECONDS - STARTED > MAX_SECONDS)); then
            echo "bench: time bound of $MAX_SECONDS s reached; reporting what ran"
            break 2
        fi
        # Alternate which broker goes first, so neither always runs on a warmer machine.
        if (((round + i) % 2)); then
            run_one warren "$WARREN_PORT" "$WARREN_PID" "$i" "$round"
            run_one rabbitmq "$RMQ_PORT" "$RMQ_PID" "$i" "$round"
        else
            run_one rabbitmq "$RMQ_PORT" "$RMQ_PID" "$i" "$round"
            run_one warren "$WARREN_PORT" "$WARREN_PID" "$i" "$round"
        fi
    done
done

# ---- the report -----------------------------------------------------------------------------
python3 "$ROOT/scripts/bench_report.py" "$RUNS" "$MEMORY" "$ROOT/BENCHMARKS.md" "$RMQ_VERSION" "$IDLE_WARREN_RSS" "$IDLE_RMQ_RSS" \
    "$(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//')" "$(nproc)" \
    "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)" "$SECONDS"
