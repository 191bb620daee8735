# Shared by the scripts that run Warren and RabbitMQ side by side (sourced, not run):
#   source scripts/lib/brokers.sh
#   start_rabbitmq WORK_DIR    sets RMQ_BIN RMQ_PORT RMQ_PID RMQ_VERSION RABBITMQ_NODENAME
#   start_warren BIN WORK_DIR  sets WARREN_PID WARREN_PORT WARREN_HTTP_PORT
#   stop_brokers               stops whichever of the two was started
#   bench_scratch NAME         sets WORK to a fresh scratch directory; on exit the brokers stop
#                              and it is removed
# Each node is private to the caller: its own name, ports, data directory and Erlang cookie,
# so another broker running on the machine is never touched.

bench_scratch() {
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/warren-$1.XXXXXX")
    trap 'stop_brokers; rm -rf "$WORK"' EXIT
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

RMQ_STARTED=""
WARREN_PID=""

# Installs rabbitmq-server from Debian when it is missing (needs root and apt).
ensure_rabbitmq_installed() {
    if ! command -v rabbitmq-server >/dev/null && [[ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]]; then
        echo "installing rabbitmq-server from Debian"
        DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q rabbitmq-server >"$1/apt.log" 2>&1 || {
            # The package lists may be missing on a fresh machine.
            timeout 300 apt-get update -q >>"$1/apt.log" 2>&1
            DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q rabbitmq-server >>"$1/apt.log" 2>&1
        } || { echo "cannot install rabbitmq-server:"; tail -n 20 "$1/apt.log"; return 1; }
    fi
    RMQ_BIN=/usr/lib/rabbitmq/bin
    [[ -x $RMQ_BIN/rabbitmq-server ]] || RMQ_BIN=$(dirname "$(command -v rabbitmq-server)")
}

# rabbitmqctl for the node start_rabbitmq started.
rabbitmqctl() { HOME=$RMQ_HOME "$RMQ_BIN/rabbitmqctl" -n "$RABBITMQ_NODENAME" "$@"; }

start_rabbitmq() {
    local work=$1
    ensure_rabbitmq_installed "$work" || return 1
    RMQ_PORT=$(free_port)
    export RABBITMQ_NODENAME=warren$$@localhost
    export RABBITMQ_NODE_PORT=$RMQ_PORT
    export RABBITMQ_DIST_PORT=$(free_port)
    export RABBITMQ_MNESIA_BASE=$work/rabbitmq/mnesia
    export RABBITMQ_LOG_BASE=$work/rabbitmq/log
    export RABBITMQ_ENABLED_PLUGINS_FILE=$work/rabbitmq/enabled_plugins
    export RABBITMQ_CONFIG_FILE=$work/rabbitmq/rabbitmq
    RMQ_HOME=$work/rabbitmq # its own Erlang cookie, passed to the node and rabbitmqctl only
    mkdir -p "$work/rabbitmq"
    echo "[]." >"$RABBITMQ_ENABLED_PLUGINS_FILE"
    echo "loopback_users.guest = false" >"$work/rabbitmq/rabbitmq.conf"
    HOME=$RMQ_HOME "$RMQ_BIN/rabbitmq-server" >"$work/rabbitmq.out" 2>&1 &
    RMQ_STARTED=1
    # await_startup needs the node registered first: retry it for at most a minute.
    local attempt
    for attempt in $(seq 1 60); do
        rabbitmqctl await_startup >/dev/null 2>&1 && break
        ((attempt < 60)) || { echo "rabbitmq did not start"; tail -n 20 "$work/rabbitmq.out"; return 1; }
        sleep 1
    done
    RMQ_PID=$(rabbitmqctl eval 'os:getpid().' | tr -dc '0-9')
    RMQ_VERSION=$(rabbitmqctl version 2>/dev/null || echo unknown)
}

start_warren() {
    local bin=$1 work=$2
    shift 2
    "$bin" server --bind 127.0.0.1 --amqp-port 0 --http-port 0 --data-dir "$work/warren-data" --log info "$@" \
        2>"$work/warren.log" &
    WARREN_PID=$!
    local _
    for _ in $(seq 1 100); do
        grep -q "warren ready" "$work/warren.log" && break
        sleep 0.1
    done
    WARREN_PORT=$(grep -o 'amqp_addr=[^ ]*' "$work/warren.log" | head -n 1 | sed 's/.*://')
    WARREN_HTTP_PORT=$(grep -o 'http_addr=[^ ]*' "$work/warren.log" | head -n 1 | sed 's/.*://')
    [[ -n "$WARREN_PORT" ]] || { echo "warren did not start"; cat "$work/warren.log"; return 1; }
}

stop_brokers() {
    if [[ -n "$WARREN_PID" ]]; then
        kill "$WARREN_PID" 2>/dev/null || true
        wait "$WARREN_PID" 2>/dev/null || true
        WARREN_PID=""
    fi
    if [[ -n "$RMQ_STARTED" ]]; then
        rabbitmqctl stop >/dev/null 2>&1 || true
        RMQ_STARTED=""
    fi
}
