#!/usr/bin/env bash
# Issue 21, target 6: how costs grow with scale, Warren and RabbitMQ side by side. Rate, broker
# CPU per message and peak RSS with 1, 100, 1,000 and 10,000 queues (one producer and one
# consumer each, over at most 100 connections of each kind), with 0, 1,000 and 10,000 idle
# connections open, and through a topic exchange with 1, 1,000 and 100,000 bindings
# (scripts/bench/scale_run.py), then the medians as BENCHMARKS-scale.json and the curves as
# BENCHMARKS-scale.png (scripts/bench/plot_scale.py).
#
#   scripts/bench/scale.sh [ROUNDS]      (default 3; about 5 minutes a round)
#
# WARREN_BIN overrides the Warren binary. Raw runs go to target/bench/scale.jsonl.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
ROUNDS=${1:-3}
OUT=$ROOT/target/bench
mkdir -p "$OUT"
RUNS=$OUT/scale.jsonl
: >"$RUNS"
source "$ROOT/scripts/lib/brokers.sh"
bench_scratch scale
# Both brokers and the load tool hold 10,000 connections each.
ulimit -n "$(ulimit -Hn)"
# Every connection of a load test comes from one address, and 10,000 idle ones plus the load's
# reach Warren's default connection limit: both guards are lifted for this run (RabbitMQ has
# neither by default).
cat >"$WORK/scale.toml" <<'TOML'
[limits]
connection_rate_per_address = 0
max_connections = 20000
TOML

cargo build --release -p warren --bin warren >/dev/null
PERF=$ROOT/target/release/warren
WARREN=${WARREN_BIN:-$PERF}

# Each kind of run gets a freshly started broker, so that what one left in the allocator (the
# backlog of 10,000 queues) does not show in the next one's memory.
run_kind() { # broker kind round
    local broker=$1 kind=$2 round=$3 port pid total
    if [[ $broker == warren ]]; then
        start_warren "$WARREN" "$WORK" --config "$WORK/scale.toml"
        port=$WARREN_PORT pid=$WARREN_PID total=3000000
    else
        start_rabbitmq "$WORK"
        port=$RMQ_PORT pid=$RMQ_PID total=500000
    fi
    # Messages per run: a few seconds of each broker's rate.
    python3 scripts/bench/scale_run.py --broker "$broker" --port "$port" --pid "$pid" --perf "$PERF" \
        --round "$round" --out "$RUNS" --total "$total" --kind "$kind"
    stop_brokers
}

for round in $(seq 1 "$ROUNDS"); do
    echo "round $round"
    order=(warren rabbitmq)
    ((round % 2)) || order=(rabbitmq warren)
    for broker in "${order[@]}"; do
        for kind in queues idle_connections topic_bindings; do
            run_kind "$broker" "$kind" "$round"
        done
    done
done

python3 scripts/bench/plot_scale.py "$RUNS" --json BENCHMARKS-scale.json --png BENCHMARKS-scale.png \
    --rabbitmq-version "${RMQ_VERSION:-unknown}"
