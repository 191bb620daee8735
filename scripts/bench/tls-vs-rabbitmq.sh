#!/usr/bin/env bash
# Warren and RabbitMQ over TLS, side by side: publish-only (16 B, 1 KiB), end to end (16 B) and
# connection set-ups (4 clients), each run ROUNDS times with `warren perf`; prints every run's
# figures and the medians.
#
#   bash scripts/bench/tls-vs-rabbitmq.sh [path/to/warren] [ROUNDS]   (defaults: target/release/warren, 3)
#
# Both brokers get the same certificate: an ECDSA P-256 one for localhost, made by openssl in a
# temporary directory. RabbitMQ is a private node started by scripts/lib/brokers.sh with its TLS
# listener configured on the command line (verify_none: no client certificates, as Warren's).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BIN=${1:-target/release/warren}
ROUNDS=${2:-3}
[[ -x $BIN ]] || { echo "tls-vs-rabbitmq: $BIN not found (cargo build --release -p warren)" >&2; exit 2; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/warren-tls-bench.XXXXXX")
source scripts/lib/brokers.sh
WARREN_PID=
trap 'stop_brokers; [[ -n $WARREN_PID ]] && kill "$WARREN_PID" 2>/dev/null; rm -rf "$WORK"' EXIT

certs=$WORK/certs
mkdir -p "$certs"
(
    cd "$certs" || exit 1
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key
    openssl req -x509 -new -key ca.key -subj "/CN=bench-ca" -days 2 -out ca.pem
    openssl ecparam -name prime256v1 -genkey -noout -out server.ec.key
    openssl pkcs8 -topk8 -nocrypt -in server.ec.key -out server.key
    openssl req -new -key server.key -subj "/CN=localhost" -out server.csr
    printf "subjectAltName=DNS:localhost,IP:127.0.0.1\n" >ext.cnf
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out server.pem
    chmod 644 ./*
) >/dev/null 2>&1 || { echo "tls-vs-rabbitmq: openssl failed" >&2; exit 1; }

RMQ_TLS_PORT=$(free_port)
ssl_options="[{cacertfile,\"$certs/ca.pem\"},{certfile,\"$certs/server.pem\"},{keyfile,\"$certs/server.key\"},{verify,verify_none},{fail_if_no_peer_cert,false}]"
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-rabbit ssl_listeners [$RMQ_TLS_PORT] -rabbit ssl_options $ssl_options"
start_rabbitmq "$WORK" >/dev/null || exit 1

cat >"$WORK/warren.toml" <<TOML
[limits]
connection_rate_per_address = 0
[tls]
cert_file = "$certs/server.pem"
key_file = "$certs/server.key"
amqps_port = 0
TOML
"$BIN" server -c "$WORK/warren.toml" --bind 127.0.0.1 --amqp-port 0 --http-port 0 --data-dir "$WORK/data" >"$WORK/warren.log" 2>&1 &
WARREN_PID=$!
for _ in $(seq 1 100); do grep -q amqps_addr "$WORK/warren.log" && break; sleep 0.1; done
WARREN_TLS_PORT=$(sed -e 's/\x1b\[[0-9;]*m//g' "$WORK/warren.log" | grep -oE 'amqps_addr="?[^" ]+' | head -1 | sed 's/.*://')
echo "RabbitMQ $RMQ_VERSION on TLS port $RMQ_TLS_PORT; Warren on TLS port $WARREN_TLS_PORT"

# One run: the figure `field` of `warren perf`'s JSON line, or "failed" with the tool's words.
run() {
    local port=$1 field=$2
    shift 2
    local out
    out=$("$BIN" perf --addr "127.0.0.1:$port" --tls-ca "$certs/ca.pem" --tls-server-name localhost --timeout-s 120 "$@" 2>&1 | tail -1)
    python3 -c 'import json,sys
try: print(int(json.loads(sys.argv[1])[sys.argv[2]]))
except Exception: print("failed: " + sys.argv[1][:200])' "$out" "$field"
}

declare -A results
scenarios=("publish-16B" "publish-1KiB" "end-to-end-16B" "handshakes")
for round in $(seq 1 "$ROUNDS"); do
    for broker in warren rabbitmq; do
        port=$WARREN_TLS_PORT
        [[ $broker == rabbitmq ]] && port=$RMQ_TLS_PORT
        for scenario in "${scenarios[@]}"; do
            case $scenario in
                publish-16B) figure=$(run "$port" publish_msgs_per_s --count 300000 --consumers 0) ;;
                publish-1KiB) figure=$(run "$port" publish_msgs_per_s --count 200000 --size 1024 --consumers 0) ;;
                end-to-end-16B) figure=$(run "$port" end_to_end_msgs_per_s --count 300000) ;;
                handshakes) figure=$(run "$port" connections_per_s --handshakes --count 2000 --producers 4) ;;
            esac
            echo "round $round $broker $scenario: $figure"
            [[ $figure =~ ^[0-9]+$ ]] && results[$broker/$scenario]+="$figure "
        done
    done
done

echo
echo "medians (msg/s; connections/s for handshakes):"
for scenario in "${scenarios[@]}"; do
    for broker in warren rabbitmq; do
        python3 -c 'import statistics,sys; v=[int(x) for x in sys.argv[3].split()]; print(f"{sys.argv[1]:>15} {sys.argv[2]:>8}: " + (f"{int(statistics.median(v)):>10,} ({len(v)} runs)" if v else "no run succeeded"))' \
            "$scenario" "$broker" "${results[$broker/$scenario]:-}"
    done
done
