#!/usr/bin/env bash
# Differential conformance check: plays the scenario corpus against a RabbitMQ started from
# Debian's rabbitmq-server package and against Warren, and fails on any difference not listed
# in interop/differential/deliberate.toml.
#
#   bash interop/differential/run.sh [path/to/warren]      (default: target/release/warren)
#
# Installs rabbitmq-server with apt if it is missing (needs root), starts a private RabbitMQ
# node and a Warren on free ports with data in a temporary directory, and stops both on exit.
# Needs python3 with pamqp (python3 -m pip install pamqp). The whole run is bounded:
# WARREN_DIFFERENTIAL_TIMEOUT seconds (default 600) for the scenarios.
set -uo pipefail

BIN=${1:-target/release/warren}
[[ "$BIN" == /* ]] || BIN="$PWD/$BIN"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 2
[[ -x "$BIN" ]] || { echo "differential: $BIN not found (cargo build --release -p warren)" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/warren-differential.XXXXXX")
source scripts/lib/brokers.sh
on_exit() {
    local rc=$?
    stop_brokers
    if [[ $rc -eq 0 ]]; then rm -rf "$WORK"; else echo "differential: logs kept in $WORK" >&2; fi
    exit "$rc"
}
trap on_exit EXIT

started=$SECONDS
start_rabbitmq "$WORK" || exit 1
echo "differential: RabbitMQ $RMQ_VERSION ready on 127.0.0.1:$RMQ_PORT after $((SECONDS - started)) s"
start_warren "$BIN" "$WORK" || exit 1
echo "differential: Warren ready on 127.0.0.1:$WARREN_PORT"

timeout --kill-after=10 "${WARREN_DIFFERENTIAL_TIMEOUT:-600}" \
    python3 interop/differential/differential.py \
    --reference "127.0.0.1:$RMQ_PORT" --candidate "127.0.0.1:$WARREN_PORT"
rc=$?
[[ $rc -eq 0 ]] || exit "$rc"

# Definitions both ways: RabbitMQ's export (the test fixture) into Warren, Warren's export back
# into RabbitMQ, whose import runs asynchronously: wait (bounded) for its last object.
python3 interop/differential/definitions.py --warren-http "$WARREN_HTTP_PORT" \
    --fixture crates/warren/tests/fixtures/rabbitmq-3.10.8-definitions.json --export "$WORK/warren-export.json" || exit 1
rabbitmqctl import_definitions "$WORK/warren-export.json" >/dev/null || exit 1
listed=$WORK/listed
mkdir -p "$listed"
for _ in $(seq 1 60); do
    rabbitmqctl list_bindings -p shop source_name destination_name routing_key --formatter json -q >"$listed/bindings.json" 2>/dev/null
    grep -q '"source_name":"shop' "$listed/bindings.json" && break
    sleep 0.5
done
rabbitmqctl list_users --formatter json -q >"$listed/users.json"
rabbitmqctl list_policies -p shop --formatter json -q >"$listed/policies.json"
rabbitmqctl list_operator_policies -p shop --formatter json -q >"$listed/operator_policies.json"
rabbitmqctl list_queues -p shop name --formatter json -q >"$listed/queues.json"
rabbitmqctl list_exchanges -p shop name --formatter json -q >"$listed/exchanges.json"
python3 interop/differential/definitions.py --check "$WORK/warren-export.json" --listed "$listed"
