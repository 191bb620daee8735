"""Client-interop tests for Warren using pika (the reference Python AMQP 0-9-1 client).

The broker under test listens on 127.0.0.1:$WARREN_AMQP_PORT (user guest/guest,
vhost "/").  Every expectation here is AMQP 0-9-1 behaviour as documented by
RabbitMQ, so the suite also passes against a stock RabbitMQ, which is how the
suite itself is validated.

Conventions:
  * each test uses its own uniquely named queues/exchanges (``res`` fixture) and
    deletes them afterwards, even when the test fails;
  * nothing sleeps to synchronise: waiting is done with
    ``connection.process_data_events(time_limit=...)`` loops bounded by a
    deadline (``wait_until``), and "nothing else arrives" checks use a bounded
    ``quiet_period`` that keeps processing I/O;
  * a SIGALRM watchdog fails any single test that exceeds TEST_TIMEOUT seconds,
    so a broker that never answers an RPC cannot hang the whole run.

Run:  WARREN_AMQP_PORT=5672 python3 -m pytest -q interop/python
"""

from __future__ import annotations

import os
import re
import signal
import time
import uuid
from datetime import datetime, timezone
from decimal import Decimal

import pika
import pytest
from pika.exceptions import (
    AuthenticationError,
    ChannelClosedByBroker,
    ProbableAuthenticationError,
    UnroutableError,
)

_PORT = os.environ.get("WARREN_AMQP_PORT")
if not _PORT:
    pytest.skip("WARREN_AMQP_PORT is not set (run via interop/run.sh)", allow_module_level=True)

HOST = os.environ.get("WARREN_AMQP_HOST", "127.0.0.1")
PORT = int(_PORT)
# Upper bound for any single wait on the broker (seconds).
TIMEOUT = float(os.environ.get("WARREN_INTEROP_TIMEOUT", "15"))
# Upper bound for a whole test, including fixture teardown (seconds).
TEST_TIMEOUT = int(os.environ.get("WARREN_INTEROP_TEST_TIMEOUT", "90"))

NOT_FOUND = 404
RESOURCE_LOCKED = 405
PRECONDITION_FAILED = 406
NO_ROUTE = 312

REQUIRED_CAPABILITIES = (
    "publisher_confirms",
    "exchange_exchange_bindings",
    "basic.nack",
    "consumer_cancel_notify",
    "connection.blocked",
    "authentication_failure_close",
    "per_consumer_qos",
    "direct_reply_to",
)

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


# --------------------------------------------------------------------------- helpers


def conn_params(username: str = "guest", password: str = "guest") -> pika.ConnectionParameters:
    return pika.ConnectionParameters(
        host=HOST,
        port=PORT,
        virtual_host="/",
        credentials=pika.PlainCredentials(username, password),
        connection_attempts=1,
        retry_delay=0,
        socket_timeout=TIMEOUT,
        stack_timeout=TIMEOUT,
        blocked_connection_timeout=TIMEOUT * 4,
        client_properties={"connection_name": "warren-interop-pika"},
    )


def connect(username: str = "guest", password: str = "guest") -> pika.BlockingConnection:
    return pika.BlockingConnection(conn_params(username, password))


def wait_until(conns, predicate, what: str, timeout: float = TIMEOUT) -> None:
    """Process I/O on `conns` until predicate() holds; fail after `timeout` seconds."""
    if not isinstance(conns, (list, tuple)):
        conns = [conns]
    deadline = time.monotonic() + timeout
    while not predicate():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        for conn in conns:
            # Returns as soon as events were dispatched, or after time_limit.
            conn.process_data_events(time_limit=min(0.1, max(remaining, 0.01)))


def quiet_period(conns, seconds: float) -> None:
    """Keep processing I/O for `seconds` (used to check that nothing *more* arrives)."""
    if not isinstance(conns, (list, tuple)):
        conns = [conns]
    deadline = time.monotonic() + seconds
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        for conn in conns:
            conn.process_data_events(time_limit=min(0.05, remaining))


def drain(ch, queue: str) -> list[bytes]:
    """basic.get (auto-ack) until the queue is empty; returns the bodies in order."""
    bodies = []
    for _ in range(10_000):
        method, _props, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return bodies
        bodies.append(body)
    raise AssertionError(f"queue {queue} did not drain")


def ready_count(ch, queue: str) -> int:
    return ch.queue_declare(queue, passive=True).method.message_count


class Resources:
    """Unique names + connections for one test; everything is removed at teardown."""

    def __init__(self, test_name: str):
        slug = re.sub(r"[^A-Za-z0-9]+", "-", test_name).strip("-")[:40]
        self.prefix = f"interop.py.{slug}.{uuid.uuid4().hex[:8]}"
        self.queues: list[str] = []
        self.exchanges: list[str] = []
        self.connections: list[pika.BlockingConnection] = []

    def name(self, suffix: str) -> str:
        return f"{self.prefix}.{suffix}"

    def queue(self, suffix: str = "q") -> str:
        name = self.name(suffix)
        self.queues.append(name)
        return name

    def exchange(self, suffix: str = "x") -> str:
        name = self.name(suffix)
        self.exchanges.append(name)
        return name

    def connect(self, **kwargs) -> pika.BlockingConnection:
        conn = connect(**kwargs)
        self.connections.append(conn)
        return conn

    def cleanup(self) -> None:
        if _watchdog_fired:
            # The broker stopped answering: closing (which waits for close-ok) or
            # deleting would hang again. Drop the sockets and leave the names.
            for conn in self.connections:
                try:
                    conn._impl._transport.abort()  # noqa: SLF001 - best effort
                except Exception:  # noqa: BLE001
                    pass
            return
        for conn in self.connections:
            try:
                if conn.is_open:
                    conn.close()
            except Exception:  # noqa: BLE001 - best effort
                pass
        if not (self.queues or self.exchanges):
            return
        try:
            conn = connect()
        except Exception:  # noqa: BLE001 - broker gone; the test already failed
            return
        try:
            ch = conn.channel()
            for kind, names in (("queue", self.queues), ("exchange", self.exchanges)):
                for name in names:
                    try:
                        if kind == "queue":
                            ch.queue_delete(name)
                        else:
                            ch.exchange_delete(name)
                    except ChannelClosedByBroker:
                        ch = conn.channel()
        finally:
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass


_watchdog_fired = False


@pytest.fixture(autouse=True)
def _watchdog(request):
    global _watchdog_fired
    _watchdog_fired = False

    def on_alarm(_signum, _frame):
        global _watchdog_fired
        _watchdog_fired = True
        raise TimeoutError(f"{request.node.name} exceeded {TEST_TIMEOUT}s (broker not answering?)")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def res(request):
    r = Resources(request.node.name)
    try:
        yield r
    finally:
        r.cleanup()


def collector(sink: list, ack: bool = False):
    """A basic_consume callback appending (method, properties, body) to `sink`."""

    def on_message(ch, method, properties, body):
        sink.append((method, properties, body))
        if ack:
            ch.basic_ack(method.delivery_tag)

    return on_message


# --------------------------------------------------------------------------- connection


def test_connect_close_and_server_capabilities():
    conn = connect()
    try:
        assert conn.is_open
        caps = conn._impl.server_capabilities
        assert isinstance(caps, dict), f"server_properties has no capabilities table: {conn._impl.server_properties!r}"
        missing = [c for c in REQUIRED_CAPABILITIES if caps.get(c) is not True]
        assert not missing, f"capabilities not advertised as true: {missing}; got {caps!r}"
        # pika derives these from the same table
        assert conn.publisher_confirms_supported
        assert conn.basic_nack_supported
        assert conn.consumer_cancel_notify_supported
        assert conn.exchange_exchange_bindings_supported

        ch = conn.channel()
        assert ch.is_open
        ch.close()
        assert ch.is_closed
        assert conn.is_open
    finally:
        conn.close()
    assert conn.is_closed


def test_bad_password_is_refused():
    with pytest.raises((ProbableAuthenticationError, AuthenticationError)) as excinfo:
        connect(password="definitely-not-the-password")
    # pika advertises authentication_failure_close, so the broker must answer with
    # connection.close 403 ACCESS_REFUSED (which pika wraps) rather than just hanging up.
    assert "403" in str(excinfo.value) or "ACCESS_REFUSED" in str(excinfo.value), repr(excinfo.value)
    # the broker is still healthy for good credentials
    ok = connect()
    assert ok.is_open
    ok.close()


# --------------------------------------------------------------------------- queues & basic.get


def test_server_named_queue_publish_get_ack(res):
    conn = res.connect()
    ch = conn.channel()
    declare_ok = ch.queue_declare(queue="", exclusive=True)
    q = declare_ok.method.queue
    assert q.startswith("amq.gen-"), q
    assert declare_ok.method.message_count == 0
    assert declare_ok.method.consumer_count == 0

    ch.confirm_delivery()
    ch.basic_publish("", q, b"hello", pika.BasicProperties(content_type="text/plain"))

    method, props, body = ch.basic_get(q, auto_ack=False)
    assert method is not None, "basic.get returned get-empty for a published message"
    assert body == b"hello"
    assert props.content_type == "text/plain"
    assert method.redelivered is False
    assert method.exchange == ""
    assert method.routing_key == q
    assert method.message_count == 0  # messages remaining after this one
    ch.basic_ack(method.delivery_tag)

    assert ch.basic_get(q, auto_ack=False) == (None, None, None)
    assert ready_count(ch, q) == 0


def test_declare_ok_reports_message_count(res):
    q = res.queue()
    conn = res.connect()
    ch = conn.channel()
    assert ch.queue_declare(q).method.message_count == 0
    ch.confirm_delivery()  # every publish below is settled before the next call
    for i in range(3):
        ch.basic_publish("", q, f"m{i}".encode())

    assert ch.queue_declare(q, passive=True).method.message_count == 3
    assert ch.queue_declare(q).method.message_count == 3  # idempotent redeclare reports it too

    method, _props, body = ch.basic_get(q, auto_ack=False)
    assert body == b"m0"
    assert method.message_count == 2
    # message_count counts ready messages only, not ones awaiting acknowledgement
    assert ready_count(ch, q) == 2
    ch.basic_ack(method.delivery_tag)
    assert drain(ch, q) == [b"m1", b"m2"]


# --------------------------------------------------------------------------- exchange routing


def test_direct_exchange_routing(res):
    ex = res.exchange()
    qa, qb, qab = res.queue("a"), res.queue("b"), res.queue("ab")
    ch = res.connect().channel()
    ch.exchange_declare(ex, exchange_type="direct")
    for q in (qa, qb, qab):
        ch.queue_declare(q)
    ch.queue_bind(qa, ex, routing_key="a")
    ch.queue_bind(qb, ex, routing_key="b")
    ch.queue_bind(qab, ex, routing_key="a")
    ch.queue_bind(qab, ex, routing_key="b")

    ch.confirm_delivery()
    for key in ("a", "b", "c"):
        ch.basic_publish(ex, key, key.encode())

    assert drain(ch, qa) == [b"a"]
    assert drain(ch, qb) == [b"b"]
    assert drain(ch, qab) == [b"a", b"b"]


def test_fanout_exchange_routing(res):
    ex = res.exchange()
    queues = [res.queue(f"f{i}") for i in range(3)]
    ch = res.connect().channel()
    ch.exchange_declare(ex, exchange_type="fanout")
    for q in queues:
        ch.queue_declare(q)
        ch.queue_bind(q, ex, routing_key="ignored")

    ch.confirm_delivery()
    ch.basic_publish(ex, "", b"one")
    ch.basic_publish(ex, "some.other.key", b"two")

    for q in queues:
        assert drain(ch, q) == [b"one", b"two"], q


def test_topic_exchange_routing(res):
    ex = res.exchange()
    ch = res.connect().channel()
    ch.exchange_declare(ex, exchange_type="topic")
    bindings = {
        "nyse": ["stock.*.nyse"],
        "stock": ["stock.#", "stock.ibm.*"],  # overlapping patterns: still one copy
        "all": ["#"],
        "orange": ["*.orange.*"],
        "lazy": ["lazy.#.end"],
        "oneword": ["*"],
    }
    queues = {}
    for label, patterns in bindings.items():
        q = res.queue(label)
        queues[label] = q
        ch.queue_declare(q)
        for pattern in patterns:
            ch.queue_bind(q, ex, routing_key=pattern)

    keys = [
        "stock.ibm.nyse",
        "stock.ibm.nasdaq",
        "stock",
        "stock.ibm.nyse.extra",
        "quick.orange.rabbit",
        "orange",
        "quick.orange.big.rabbit",
        "lazy.end",
        "lazy.a.b.end",
        "lazy.a.b.endx",
        "word",
    ]
    ch.confirm_delivery()
    for key in keys:
        ch.basic_publish(ex, key, key.encode())

    expected = {
        "nyse": ["stock.ibm.nyse"],
        "stock": ["stock.ibm.nyse", "stock.ibm.nasdaq", "stock", "stock.ibm.nyse.extra"],
        "all": keys,
        "orange": ["quick.orange.rabbit"],
        "lazy": ["lazy.end", "lazy.a.b.end"],
        "oneword": ["stock", "orange", "word"],
    }
    for label, q in queues.items():
        got = [b.decode() for b in drain(ch, q)]
        assert got == expected[label], f"binding {bindings[label]}"


def test_headers_exchange_routing(res):
    ex = res.exchange()
    q_all, q_any, q_default = res.queue("all"), res.queue("any"), res.queue("default")
    ch = res.connect().channel()
    ch.exchange_declare(ex, exchange_type="headers")
    match = {"format": "pdf", "type": "report"}
    for q, args in (
        (q_all, {"x-match": "all", **match}),
        (q_any, {"x-match": "any", **match}),
        (q_default, dict(match)),  # x-match defaults to "all"
    ):
        ch.queue_declare(q)
        ch.queue_bind(q, ex, routing_key="", arguments=args)

    messages = [
        ("both", {"format": "pdf", "type": "report"}),
        ("format-only", {"format": "pdf", "type": "log"}),
        ("neither", {"format": "zip"}),
        ("superset", {"format": "pdf", "type": "report", "extra": 1}),
        ("no-headers", None),
        ("type-only", {"type": "report"}),
    ]
    ch.confirm_delivery()
    for body, headers in messages:
        # the routing key is irrelevant for a headers exchange
        ch.basic_publish(ex, "rk-" + body, body.encode(), pika.BasicProperties(headers=headers))

    assert [b.decode() for b in drain(ch, q_all)] == ["both", "superset"]
    assert [b.decode() for b in drain(ch, q_default)] == ["both", "superset"]
    assert [b.decode() for b in drain(ch, q_any)] == ["both", "format-only", "superset", "type-only"]


def test_exchange_to_exchange_binding(res):
    src, dst = res.exchange("src"), res.exchange("dst")
    q = res.queue()
    ch = res.connect().channel()
    ch.exchange_declare(src, exchange_type="topic")
    ch.exchange_declare(dst, exchange_type="fanout")
    ch.queue_declare(q)
    ch.queue_bind(q, dst)
    ch.exchange_bind(destination=dst, source=src, routing_key="orders.*")

    ch.confirm_delivery()
    ch.basic_publish(src, "orders.new", b"via-source")
    ch.basic_publish(src, "invoices.new", b"not-matching")
    ch.basic_publish(dst, "anything", b"direct-to-destination")
    assert drain(ch, q) == [b"via-source", b"direct-to-destination"]

    ch.exchange_unbind(destination=dst, source=src, routing_key="orders.*")
    ch.basic_publish(src, "orders.new", b"after-unbind")
    assert drain(ch, q) == []


# --------------------------------------------------------------------------- consumers


def test_competing_consumers_round_robin(res):
    q = res.queue()
    n = 100
    pub_conn, cons_conn = res.connect(), res.connect()
    pub = pub_conn.channel()
    pub.queue_declare(q)

    received = {1: [], 2: []}
    for idx in (1, 2):
        c = cons_conn.channel()
        c.basic_consume(q, collector(received[idx], ack=True), auto_ack=False)

    pub.confirm_delivery()
    for i in range(n):
        pub.basic_publish("", q, str(i).encode())

    total = lambda: len(received[1]) + len(received[2])  # noqa: E731
    wait_until(cons_conn, lambda: total() >= n, f"{n} deliveries")
    quiet_period(cons_conn, 0.2)  # nothing is delivered twice

    bodies = [int(b) for r in received.values() for (_m, _p, b) in r]
    assert sorted(bodies) == list(range(n)), "each message delivered exactly once"
    assert not any(m.redelivered for r in received.values() for (m, _p, _b) in r)
    counts = (len(received[1]), len(received[2]))
    # round robin between two equally available consumers: an even-ish split
    assert min(counts) >= n // 4, f"deliveries not shared between consumers: {counts}"
    assert ready_count(pub, q) == 0


def test_nack_requeue_redelivers_and_reject_discards(res):
    q = res.queue()
    conn = res.connect()
    pub = conn.channel()
    pub.queue_declare(q)
    pub.confirm_delivery()

    ch = conn.channel()
    got = []
    tag = ch.basic_consume(q, collector(got), auto_ack=False)

    pub.basic_publish("", q, b"first")
    wait_until(conn, lambda: len(got) >= 1, "first delivery")
    m1, _p, body = got[0]
    assert body == b"first" and m1.redelivered is False

    ch.basic_nack(m1.delivery_tag, multiple=False, requeue=True)
    wait_until(conn, lambda: len(got) >= 2, "redelivery after nack(requeue=True)")
    m2, _p, body = got[1]
    assert body == b"first"
    assert m2.redelivered is True
    assert m2.delivery_tag != m1.delivery_tag
    ch.basic_ack(m2.delivery_tag)

    pub.basic_publish("", q, b"second")
    wait_until(conn, lambda: len(got) >= 3, "second delivery")
    m3, _p, body = got[2]
    assert body == b"second" and m3.redelivered is False
    ch.basic_reject(m3.delivery_tag, requeue=False)

    ch.basic_cancel(tag)
    # Closing the channel would requeue anything still unacknowledged; the
    # rejected message must not come back.
    ch.close()
    pub.basic_publish("", q, b"marker")
    after = []
    ch2 = conn.channel()
    ch2.basic_consume(q, collector(after, ack=True), auto_ack=False)
    wait_until(conn, lambda: any(b == b"marker" for (_m, _p, b) in after), "marker")
    quiet_period(conn, 0.2)
    assert [b for (_m, _p, b) in after] == [b"marker"]
    assert len(got) == 3


def test_prefetch_limits_unacked_deliveries(res):
    q = res.queue()
    pub_conn, cons_conn = res.connect(), res.connect()
    pub = pub_conn.channel()
    pub.queue_declare(q)
    pub.confirm_delivery()
    for i in range(5):
        pub.basic_publish("", q, f"p{i}".encode())

    ch = cons_conn.channel()
    ch.basic_qos(prefetch_count=2)
    got = []
    ch.basic_consume(q, collector(got), auto_ack=False)

    wait_until(cons_conn, lambda: len(got) >= 2, "first two deliveries")
    quiet_period(cons_conn, 0.5)
    assert len(got) == 2, "prefetch_count=2 exceeded before any ack"
    assert ready_count(pub, q) == 3

    ch.basic_ack(got[0][0].delivery_tag)
    wait_until(cons_conn, lambda: len(got) >= 3, "third delivery after one ack")
    quiet_period(cons_conn, 0.3)
    assert len(got) == 3

    # ack tags 2 and 3 in one go -> two more credits
    ch.basic_ack(got[2][0].delivery_tag, multiple=True)
    wait_until(cons_conn, lambda: len(got) >= 5, "remaining deliveries")
    ch.basic_ack(got[4][0].delivery_tag, multiple=True)
    assert [b for (_m, _p, b) in got] == [f"p{i}".encode() for i in range(5)]
    assert ready_count(ch, q) == 0


def test_consumer_cancel_notification_on_queue_delete(res):
    q = res.queue()
    conn = res.connect()
    ch = conn.channel()
    ch.queue_declare(q)
    cancelled = []
    ch.add_on_cancel_callback(cancelled.append)
    tag = ch.basic_consume(q, collector([]), auto_ack=False)

    other = conn.channel()
    other.queue_delete(q)
    wait_until(conn, lambda: cancelled, "basic.cancel from the broker")
    assert cancelled[0].method.consumer_tag == tag
    assert ch.is_open


def test_unacked_messages_requeued_when_connection_closes(res):
    q = res.queue()
    pub_conn = res.connect()
    pub = pub_conn.channel()
    pub.queue_declare(q)

    cons_conn = connect()  # closed explicitly below
    try:
        ch = cons_conn.channel()
        got = []
        ch.basic_consume(q, collector(got), auto_ack=False)
        pub.confirm_delivery()
        for i in range(3):
            pub.basic_publish("", q, f"u{i}".encode())
        wait_until(cons_conn, lambda: len(got) >= 3, "3 deliveries")
        assert not any(m.redelivered for (m, _p, _b) in got)
    finally:
        cons_conn.close()

    again = []
    ch2 = pub_conn.channel()
    ch2.basic_consume(q, collector(again, ack=True), auto_ack=False)
    wait_until(pub_conn, lambda: len(again) >= 3, "requeued messages")
    assert sorted(b for (_m, _p, b) in again) == [b"u0", b"u1", b"u2"]
    assert all(m.redelivered for (m, _p, _b) in again)


# --------------------------------------------------------------------------- publishing


def test_publisher_confirms_and_mandatory_unroutable(res):
    q = res.queue()
    ch = res.connect().channel()
    ch.queue_declare(q)
    ch.confirm_delivery()
    # In confirm mode BlockingChannel.basic_publish waits for the ack and raises
    # NackError / UnroutableError otherwise, so reaching the end means all confirmed.
    for i in range(100):
        ch.basic_publish("", q, f"c{i}".encode(), mandatory=True)
    assert ready_count(ch, q) == 100

    nowhere = res.name("no-such-queue")
    with pytest.raises(UnroutableError) as excinfo:
        ch.basic_publish("", nowhere, b"lost", mandatory=True)
    returned = excinfo.value.messages
    assert len(returned) == 1
    assert returned[0].method.reply_code == NO_ROUTE
    assert returned[0].method.routing_key == nowhere
    assert returned[0].body == b"lost"

    # the channel survives; a non-mandatory unroutable publish is simply confirmed
    assert ch.is_open
    ch.basic_publish("", nowhere, b"dropped", mandatory=False)
    assert ready_count(ch, q) == 100


def test_transactions_commit_and_rollback(res):
    q = res.queue()
    conn = res.connect()
    ch = conn.channel()
    observer = conn.channel()
    ch.queue_declare(q)
    ch.tx_select()

    ch.basic_publish("", q, b"rolled-back")
    ch.tx_rollback()
    assert ready_count(ch, q) == 0

    ch.basic_publish("", q, b"committed")
    assert ready_count(observer, q) == 0, "transactional publish visible before commit"
    ch.tx_commit()
    assert ready_count(observer, q) == 1
    assert drain(observer, q) == [b"committed"]


def test_large_and_boundary_sized_bodies_round_trip(res):
    q = res.queue()
    ch = res.connect().channel()
    ch.queue_declare(q)
    ch.confirm_delivery()
    # 0 = no body frame; sizes around common frame_max values exercise body-frame splitting
    sizes = [0, 1, 4087, 4088, 4089, 131063, 131064, 131065, 131072, 1024 * 1024]
    payloads = [os.urandom(size) for size in sizes]
    for payload in payloads:
        ch.basic_publish("", q, payload)
    for size, payload in zip(sizes, payloads):
        method, _props, body = ch.basic_get(q, auto_ack=True)
        assert method is not None, f"missing message of {size} bytes"
        assert len(body) == size
        assert body == payload, f"body of {size} bytes corrupted"


def test_properties_and_headers_round_trip(res):
    q = res.queue()
    ch = res.connect().channel()
    ch.queue_declare(q)
    headers = {
        "str": "héllo wörld",
        "int": 42,
        "neg": -7,
        "big": 2**40,
        "true": True,
        "false": False,
        "bytes": b"\x00\x01\xfe\xff",
        "void": None,
        "array": [1, "two", True, {"inner": "x"}],
        "table": {"k": "v", "n": 1, "deep": {"x": [1, 2]}},
        "decimal": Decimal("3.14"),
        "timestamp": datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
    }
    props = pika.BasicProperties(
        content_type="application/json",
        content_encoding="utf-8",
        headers=headers,
        delivery_mode=2,
        priority=5,
        correlation_id="corr-1",
        reply_to="some-reply-queue",
        expiration="600000",
        message_id="msg-1",
        timestamp=1_700_000_000,
        type="example.type",
        user_id="guest",  # must match the authenticated user
        app_id="interop",
    )
    ch.confirm_delivery()
    ch.basic_publish("", q, b"{}", props)
    method, got, body = ch.basic_get(q, auto_ack=True)
    assert method is not None and body == b"{}"
    for field in (
        "content_type",
        "content_encoding",
        "delivery_mode",
        "priority",
        "correlation_id",
        "reply_to",
        "expiration",
        "message_id",
        "timestamp",
        "type",
        "user_id",
        "app_id",
    ):
        assert getattr(got, field) == getattr(props, field), field
    assert got.headers == headers


# --------------------------------------------------------------------------- errors


def test_passive_declare_of_missing_queue_is_404(res):
    conn = res.connect()
    ch = conn.channel()
    with pytest.raises(ChannelClosedByBroker) as excinfo:
        ch.queue_declare(res.name("missing"), passive=True)
    assert excinfo.value.reply_code == NOT_FOUND
    assert "NOT_FOUND" in excinfo.value.reply_text
    assert ch.is_closed
    # a channel error leaves the connection usable
    assert conn.is_open
    assert conn.channel().queue_declare("", exclusive=True).method.queue


def test_redeclare_with_different_arguments_is_406(res):
    q, ex = res.queue(), res.exchange()
    conn = res.connect()
    ch = conn.channel()
    ch.queue_declare(q, arguments={"x-max-length": 10})
    ch.queue_declare(q, arguments={"x-max-length": 10})  # equivalent: fine
    with pytest.raises(ChannelClosedByBroker) as excinfo:
        ch.queue_declare(q, arguments={"x-max-length": 20})
    assert excinfo.value.reply_code == PRECONDITION_FAILED
    assert "PRECONDITION_FAILED" in excinfo.value.reply_text

    ch = conn.channel()
    ch.exchange_declare(ex, exchange_type="direct")
    with pytest.raises(ChannelClosedByBroker) as excinfo:
        ch.exchange_declare(ex, exchange_type="fanout")
    assert excinfo.value.reply_code == PRECONDITION_FAILED

    # the original queue is untouched
    assert conn.channel().queue_declare(q, passive=True).method.message_count == 0


def test_consume_from_missing_queue_is_404(res):
    conn = res.connect()
    ch = conn.channel()
    with pytest.raises(ChannelClosedByBroker) as excinfo:
        ch.basic_consume(res.name("missing"), collector([]))
    assert excinfo.value.reply_code == NOT_FOUND
    assert conn.is_open


def test_queue_purge_and_delete(res):
    q = res.queue()
    conn = res.connect()
    ch = conn.channel()
    ch.queue_declare(q)
    ch.confirm_delivery()
    for i in range(5):
        ch.basic_publish("", q, f"x{i}".encode())
    assert ch.queue_purge(q).method.message_count == 5
    assert ready_count(ch, q) == 0

    # delete if_unused while a consumer exists -> 406, queue survives
    consumer_ch = conn.channel()
    tag = consumer_ch.basic_consume(q, collector([]), auto_ack=False)
    deleter = conn.channel()
    with pytest.raises(ChannelClosedByBroker) as excinfo:
        deleter.queue_delete(q, if_unused=True)
    assert excinfo.value.reply_code == PRECONDITION_FAILED
    assert ch.queue_declare(q, passive=True).method.consumer_count == 1
    consumer_ch.basic_cancel(tag)

    for i in range(3):
        ch.basic_publish("", q, f"y{i}".encode())
    # delete if_empty with messages -> 406
    deleter = conn.channel()
    with pytest.raises(ChannelClosedByBroker) as excinfo:
        deleter.queue_delete(q, if_empty=True)
    assert excinfo.value.reply_code == PRECONDITION_FAILED

    assert ch.queue_delete(q).method.message_count == 3
    with pytest.raises(ChannelClosedByBroker) as excinfo:
        ch.queue_declare(q, passive=True)
    assert excinfo.value.reply_code == NOT_FOUND


def test_exclusive_queue_is_locked_to_its_connection(res):
    q = res.queue()
    owner = connect()
    try:
        owner.channel().queue_declare(q, exclusive=True)
        other = res.connect()
        with pytest.raises(ChannelClosedByBroker) as excinfo:
            other.channel().queue_declare(q)
        assert excinfo.value.reply_code == RESOURCE_LOCKED
        with pytest.raises(ChannelClosedByBroker) as excinfo:
            other.channel().basic_consume(q, collector([]))
        assert excinfo.value.reply_code == RESOURCE_LOCKED
    finally:
        owner.close()

    # the exclusive queue goes away with its owning connection
    deadline = time.monotonic() + TIMEOUT
    while True:
        with pytest.raises(ChannelClosedByBroker) as excinfo:
            other.channel().queue_declare(q, passive=True)
        if excinfo.value.reply_code == NOT_FOUND:
            break
        assert excinfo.value.reply_code == RESOURCE_LOCKED
        assert time.monotonic() < deadline, "exclusive queue outlived its connection"
        other.process_data_events(time_limit=0.05)


# --------------------------------------------------------------------------- RPC


def test_direct_reply_to_rpc(res):
    server_q = res.queue("rpc")
    client_conn, server_conn = res.connect(), res.connect()

    server_ch = server_conn.channel()
    server_ch.queue_declare(server_q)
    requests = []
    server_ch.basic_consume(server_q, collector(requests, ack=True), auto_ack=False)

    client_ch = client_conn.channel()
    replies = []
    client_ch.basic_consume(DIRECT_REPLY_TO, collector(replies), auto_ack=True)
    corr = uuid.uuid4().hex
    client_ch.basic_publish(
        "",
        server_q,
        b"ping",
        pika.BasicProperties(reply_to=DIRECT_REPLY_TO, correlation_id=corr),
    )

    wait_until(server_conn, lambda: requests, "the RPC request")
    _m, req_props, req_body = requests[0]
    assert req_body == b"ping"
    assert req_props.correlation_id == corr
    # the broker rewrites the pseudo-queue name into a routable per-channel address
    assert req_props.reply_to.startswith(DIRECT_REPLY_TO + "."), req_props.reply_to
    server_ch.basic_publish(
        "", req_props.reply_to, b"pong", pika.BasicProperties(correlation_id=req_props.correlation_id)
    )

    wait_until(client_conn, lambda: replies, "the RPC reply")
    method, props, body = replies[0]
    assert body == b"pong"
    assert props.correlation_id == corr
    assert method.routing_key == req_props.reply_to


def test_direct_reply_to_requires_consumer(res):
    q = res.queue()
    conn = res.connect()
    ch = conn.channel()
    ch.queue_declare(q)
    # publishing with reply_to=amq.rabbitmq.reply-to without consuming from it first
    # is a channel error (PRECONDITION_FAILED)
    ch.basic_publish("", q, b"x", pika.BasicProperties(reply_to=DIRECT_REPLY_TO))
    with pytest.raises(ChannelClosedByBroker) as excinfo:
        ch.queue_declare(q, passive=True)  # any synchronous call surfaces the close
    assert excinfo.value.reply_code == PRECONDITION_FAILED


def test_dead_lettering_with_x_death_and_overflow_nacks(res):
    work, dlq, dlx = res.queue("work"), res.queue("dlq"), res.exchange("dlx")
    conn = res.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    ch.exchange_declare(dlx, exchange_type="fanout")
    ch.queue_declare(dlq)
    ch.queue_bind(dlq, dlx)
    ch.queue_declare(
        work,
        arguments={"x-dead-letter-exchange": dlx, "x-max-length": 1, "x-overflow": "reject-publish"},
    )
    ch.basic_publish("", work, b"poison", pika.BasicProperties(headers={"app": "kept"}))
    # The queue is full: a confirm-mode publish is nacked.
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", work, b"overflow")

    method, _props, body = ch.basic_get(work, auto_ack=False)
    assert body == b"poison"
    ch.basic_reject(method.delivery_tag, requeue=False)
    wait_until(conn, lambda: ready_count(ch, dlq) == 1, "dead letter")
    method, props, body = ch.basic_get(dlq, auto_ack=True)
    assert body == b"poison"
    assert method.exchange == dlx and method.routing_key == work
    headers = props.headers
    assert headers["app"] == "kept"
    (death,) = headers["x-death"]
    assert death["count"] == 1
    assert death["reason"] == "rejected"
    assert death["queue"] == work
    assert death["exchange"] == ""
    assert death["routing-keys"] == [work]
    assert isinstance(death["time"], datetime)
    assert headers["x-first-death-reason"] == "rejected"
    assert headers["x-first-death-queue"] == work


def test_priority_queue_delivers_higher_priorities_first(res):
    q = res.queue()
    conn = res.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(q, arguments={"x-max-priority": 9})
    for body, priority in [(b"low", 1), (b"high", 9), (b"none", None), (b"mid", 5)]:
        ch.basic_publish("", q, body, pika.BasicProperties(priority=priority))
    assert drain(ch, q) == [b"high", b"mid", b"low", b"none"]


# --------------------------------------------------------------------------- compatibility (issue 15)


def test_unbind_after_the_queue_is_gone_is_not_an_error(res):
    """aio-pika's RPC object unbinds its reply queue on close, when the queue may be gone."""
    conn = res.connect()
    ch = conn.channel()
    q = ch.queue_declare(queue="", exclusive=True).method.queue
    ch.queue_bind(q, "amq.direct", routing_key=q)
    ch.queue_delete(q)
    ch.queue_unbind(q, "amq.direct", routing_key=q)
    ch.queue_unbind(q, res.exchange("never-declared"), routing_key=q)
    ch.exchange_unbind(destination=res.exchange("gone"), source="amq.direct", routing_key="k")
    assert ch.is_open


def test_exclusive_flag_mismatch_on_redeclare_is_resource_locked(res):
    conn = res.connect()
    ch = conn.channel()
    q = res.queue()
    ch.queue_declare(q, exclusive=True)
    with pytest.raises(ChannelClosedByBroker) as excinfo:
        ch.queue_declare(q, exclusive=False)
    assert excinfo.value.reply_code == RESOURCE_LOCKED


def test_declaring_the_default_exchange_is_access_refused(res):
    conn = res.connect()
    for passive in (True, False):
        ch = conn.channel()
        with pytest.raises(ChannelClosedByBroker) as excinfo:
            ch.exchange_declare("", passive=passive)
        assert excinfo.value.reply_code == 403


def test_channel_numbers_above_channel_max_open(res):
    conn = res.connect()
    assert conn._impl.params.channel_max >= 2  # noqa: SLF001
    ch = conn.channel(channel_number=65535)
    q = ch.queue_declare(queue="", exclusive=True).method.queue
    ch.basic_publish("", q, b"high channel")
    assert drain(ch, q) == [b"high channel"]
