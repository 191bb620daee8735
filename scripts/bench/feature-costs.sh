#!/usr/bin/env bash
# What each feature of the publish pipeline costs, in one run against one Warren: 1 KiB JSON
# orders, transient, one producer and one consumer (`warren perf --json-body --size 1024`),
# each scenario ROUNDS times in turn, medians, and each one's rate next to its plain routing.
#
#   scripts/bench/feature-costs.sh [ROUNDS]        (default 3)
#
# - plain, default exchange                   the reference for the next three
# - as a non-administrator user               permissions checked (configure, write, read)
# - with a contract on the default exchange   every publish validated against a JSON Schema
# - with a contract and a transform defined elsewhere: nothing of them applies to this path,
#   so it must cost nothing
# - plain, through a fanout exchange           the reference for the next two
# - a content filter on the binding           `x-filter: body.order.total>10` (admits all)
# - a transform on the binding                the order translated by the transform workers
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
ROUNDS=${1:-3}
RUNS=$ROOT/target/bench/feature-costs.jsonl
mkdir -p "$(dirname "$RUNS")"
: >"$RUNS"
source "$ROOT/scripts/lib/brokers.sh"
bench_scratch costs

cargo build --release -p warren >/dev/null
WARREN=$ROOT/target/release/warren
start_warren "$WARREN" "$WORK"
API=http://127.0.0.1:$WARREN_HTTP_PORT

api() { # METHOD PATH [JSON]
    curl -fsS -u guest:guest -X "$1" -H 'content-type: application/json' ${3:+-d "$3"} "$API$2" >/dev/null
}
contract_on() { # exchange name
    local body
    body=$(python3 -c 'import json,sys; print(json.dumps({"exchange": sys.argv[2], "content_type": "application/json",
        "schema": json.load(open(sys.argv[1]))}))' "$ROOT/scripts/bench/order-schema.json" "$1")
    api PUT "/api/contracts/%2F/$2" "$body"
}
# The transform of scripts/bench-vs-rabbitmq.sh: a typical translation of the order.
transform_on() { # name
    api PUT "/api/transforms/%2F/$1" '{"program": "{body: {order: .body.order.id, region: .body.order.region, total: .body.order.total, items: [.body.order.items[] | {sku, qty}]}, headers: (.headers + {warehouse: $lookup.wh[.body.order.region]})}", "lookup": {"wh": {"eu": "north", "us": "west"}}}'
}

api PUT /api/users/bench '{"password": "bench", "tags": ""}'
api PUT /api/permissions/%2F/bench '{"configure": "^warren-perf-.*", "write": "^(warren-perf-.*|amq\\.default)?$", "read": "^warren-perf-.*"}'
api PUT /api/exchanges/%2F/elsewhere '{"type": "direct"}'

COMMON="--json-body --size 1024 --consumers 1 --timeout-s 120"
# name | reference | warren perf arguments | setup | teardown
SCENARIOS=(
    "plain, default exchange|-|--count 150000|-|-"
    "as a non-administrator user (permissions)|plain, default exchange|--count 150000 --uri amqp://bench:bench@127.0.0.1:$WARREN_PORT/%2F|-|-"
    "a contract on the default exchange|plain, default exchange|--count 150000|contract_on '' costs|api DELETE /api/contracts/%2F/costs"
    "a contract and a transform defined elsewhere|plain, default exchange|--count 150000|contract_on elsewhere costs-elsewhere; transform_on costs-unused|api DELETE /api/contracts/%2F/costs-elsewhere; api DELETE /api/transforms/%2F/costs-unused"
    "plain, through a fanout exchange|-|--count 150000 --fanout 1|-|-"
    "a content filter on the binding|plain, through a fanout exchange|--count 150000 --fanout 1 --binding-filter body.order.total>10|-|-"
    "a transform on the binding|plain, through a fanout exchange|--count 30000 --fanout 1 --binding-arg x-transform=costs|transform_on costs|api DELETE /api/transforms/%2F/costs"
)

for round in $(seq 1 "$ROUNDS"); do
    for s in "${SCENARIOS[@]}"; do
        IFS='|' read -r name _ args setup teardown <<<"$s"
        [[ $setup == - ]] || eval "$setup"
        # shellcheck disable=SC2086
        result=$("$WARREN" perf --addr "127.0.0.1:$WARREN_PORT" $COMMON $args 2>/dev/null | tail -n 1) || result='{}'
        [[ $teardown == - ]] || eval "$teardown"
        python3 -c 'import json,sys; r=json.loads(sys.argv[3] or "{}"); print(json.dumps({"name": sys.argv[1], "round": int(sys.argv[2]), "msgs_per_s": r.get("end_to_end_msgs_per_s"), "tool_cpu_percent": r.get("tool_cpu_percent")}))' \
            "$name" "$round" "$result" >>"$RUNS"
        printf '  round %s  %-48s %s\n' "$round" "$name" "$(tail -n 1 "$RUNS")"
    done
done

python3 - "$RUNS" "${SCENARIOS[@]}" <<'EOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"\n{len(set(r['round'] for r in runs))} rounds, medians; 1 KiB JSON orders, transient, end to end.\n")
print("| scenario | msg/s | against its plain routing |")
print("|---|---:|---:|")
medians = {}
for s in sys.argv[2:]:
    name, reference = s.split("|")[:2]
    rates = [r["msgs_per_s"] for r in runs if r["name"] == name and r["msgs_per_s"]]
    medians[name] = statistics.median(rates) if rates else None
    against = ""
    if reference != "-" and medians.get(reference) and medians[name]:
        against = f"{medians[name] / medians[reference]:.2f}"
    print(f"| {name} | {medians[name]:,.0f} | {against} |" if medians[name] else f"| {name} | no result | |")
EOF
