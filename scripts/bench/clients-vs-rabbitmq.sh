#!/usr/bin/env bash
# Warren and RabbitMQ side by side with real client libraries at the settings applications use:
# one publisher and one consumer in one process (two connections), prefetch 100, one basic.ack
# per message, each publish and ack awaited (crates/warren/examples/client_load.rs), with lapin
# and with amqprs; and `warren perf` in the same mode (--prefetch 100 --ack-mode manual).
#
#   scripts/bench/clients-vs-rabbitmq.sh [ROUNDS] [SECONDS]     (default 3 rounds of 10 s runs)
#
# Starts its own RabbitMQ node and release Warren (scripts/lib/brokers.sh), alternates which
# goes first, and prints each run and the medians; raw runs go to target/bench/clients.jsonl.
# WARREN_BIN overrides the Warren binary (e.g. an older build, for a before/after) and
# WARREN_ARGS adds server arguments (e.g. `--config no-flow.toml`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
ROUNDS=${1:-3}
SECS=${2:-10}
OUT=$ROOT/target/bench
mkdir -p "$OUT"
RUNS=$OUT/clients.jsonl
: >"$RUNS"
source "$ROOT/scripts/lib/brokers.sh"
bench_scratch clients

cargo build --release -p warren --bin warren --example client_load >/dev/null
WARREN=${WARREN_BIN:-$ROOT/target/release/warren}
LOAD=$ROOT/target/release/examples/client_load
start_rabbitmq "$WORK"
# shellcheck disable=SC2086
start_warren "$WARREN" "$WORK" ${WARREN_ARGS:-}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() { # broker port pid client round
    local broker=$1 port=$2 pid=$3 client=$4 round=$5 line
    if [[ $client == perf ]]; then
        # The same mode with Warren's own load tool: as many messages as the others get in SECS.
        local c0 t0 c1 t1
        c0=$(cpu_ticks "$pid")
        t0=$(date +%s.%N)
        line=$("$WARREN" perf --addr "127.0.0.1:$port" --count $((40000 * SECS)) --size 16 --prefetch 100 \
            --ack-mode manual --timeout-s $((SECS * 12)) 2>/dev/null | tail -n 1) || line='{}'
        c1=$(cpu_ticks "$pid")
        t1=$(date +%s.%N)
        line=$(python3 -c 'import json,sys
r = json.loads(sys.argv[1] or "{}"); c0, c1, t0, t1 = map(float, sys.argv[2:6])
rate = r.get("end_to_end_msgs_per_s") or 0
cpu = (c1 - c0) / 100
print(json.dumps({"client": "warren perf", "receive_msgs_per_s": rate, "publish_msgs_per_s": r.get("publish_msgs_per_s"),
    "latency_us": {"p99": (r.get("latency") or {}).get("p99_us")}, "broker_cpu_percent": round(100 * cpu / (t1 - t0)),
    "broker_cpu_us_per_msg": round(cpu * 1e6 / max(r.get("consumed") or 1, 1), 2), "tool_cpu_percent": r.get("tool_cpu_percent")}))' \
            "$line" "$c0" "$c1" "$t0" "$t1")
    else
        line=$("$LOAD" --client "$client" --port "$port" --seconds "$SECS" --broker-pid "$pid" 2>/dev/null | tail -n 1) ||
            line='{}'
    fi
    python3 -c 'import json,sys; r=json.loads(sys.argv[3] or "{}"); r["broker"]=sys.argv[1]; r["round"]=int(sys.argv[2]); print(json.dumps(r))' \
        "$broker" "$round" "$line" >>"$RUNS"
    printf '  %-9s %-12s %s\n' "$broker" "$client" "$(tail -n 1 "$RUNS")"
}

for round in $(seq 1 "$ROUNDS"); do
    echo "round $round"
    for client in lapin amqprs perf; do
        if ((round % 2)); then
            run warren "$WARREN_PORT" "$WARREN_PID" "$client" "$round"
            run rabbitmq "$RMQ_PORT" "$RMQ_PID" "$client" "$round"
        else
            run rabbitmq "$RMQ_PORT" "$RMQ_PID" "$client" "$round"
            run warren "$WARREN_PORT" "$WARREN_PID" "$client" "$round"
        fi
    done
done

python3 - "$RUNS" <<'EOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(rows, key, sub=None):
    vals = [(r.get(key) or {}).get(sub) if sub else r.get(key) for r in rows]
    vals = [v for v in vals if isinstance(v, (int, float))]
    return statistics.median(vals) if vals else None
def fmt(v, unit=""):
    return "" if v is None else (f"{v:,.0f}{unit}" if abs(v) >= 10 else f"{v:.2f}{unit}")
print("| client | broker | received msg/s | published msg/s | backlog growth msg/s | p99 latency | broker CPU | broker CPU µs/msg | tool CPU |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for client in ["lapin", "amqprs", "warren perf"]:
    for broker in ["warren", "rabbitmq"]:
        rows = [r for r in runs if r.get("client") == client and r["broker"] == broker]
        if not rows:
            continue
        p99 = med(rows, "latency_us", "p99")
        print(f"| {client} | {broker} | {fmt(med(rows, 'receive_msgs_per_s'))} | {fmt(med(rows, 'publish_msgs_per_s'))} | "
              f"{fmt(med(rows, 'backlog_growth_msgs_per_s'))} | {fmt(p99 / 1000 if p99 else None, ' ms')} | "
              f"{fmt(med(rows, 'broker_cpu_percent'), '%')} | {fmt(med(rows, 'broker_cpu_us_per_msg'))} | {fmt(med(rows, 'tool_cpu_percent'), '%')} |")
EOF
