"""basic.*: publish (missing exchanges, mandatory, immediate, content framing and properties),
get, consume and cancel, acknowledgements in right and wrong states, recover, qos, confirms
and transactions."""

from pamqp import body as pbody
from pamqp import commands as C
from pamqp import header as pheader
from datetime import datetime, timezone
from decimal import Decimal

from . import add, scenario
from engine import marshal


def queue(s, name, ch=1, **kw):
    s.call(ch, C.Queue.Declare(queue=name, exclusive=True, **kw))


def get(s, q, no_ack=True, ch=1):
    return s.call(ch, C.Basic.Get(queue=q, no_ack=no_ack))


@scenario("publish to a missing exchange")
def _(s):
    s.open(1)
    s.publish(1, s.n("missing"), "k", b"lost")
    s.open(2)
    s.call(2, C.Basic.Qos(prefetch_count=1))


@scenario("publish to a missing exchange with confirms")
def _(s):
    s.open(1)
    s.call(1, C.Confirm.Select())
    s.publish(1, s.n("missing"), "k", b"lost")


@scenario("publish to the default exchange with no such queue, mandatory and not")
def _(s):
    s.open(1)
    s.publish(1, "", s.n("nobody"), b"dropped")
    s.publish(1, "", s.n("nobody"), b"returned", mandatory=True, message_id="m1", headers={"h": 1})


@scenario("mandatory publish with confirms: basic.return before basic.ack")
def _(s):
    s.open(1)
    s.call(1, C.Confirm.Select())
    s.publish(1, "amq.direct", "unbound", b"returned", mandatory=True)
    s.wait_confirms(1, 1)


@scenario("immediate publish")
def _(s):
    s.open(1)
    queue(s, s.n("q"))
    s.publish(1, "", s.n("q"), b"immediate", immediate=True)


@scenario("publish to amq.default by name")
def _(s):
    s.open(1)
    queue(s, s.n("q"))
    s.publish(1, "amq.default", s.n("q"), b"named default")
    get(s, s.n("q"))


BODIES = {
    "empty": b"",
    "one byte": b"x",
    "binary with NUL and 0xCE": bytes([0, 0xCE, 0xFF, 1]),
    "exactly one frame": b"f" * (131072 - 8),
    "one byte over one frame": b"g" * (131072 - 7),
    "1 MiB": bytes(range(256)) * 4096,
}
for label, body in BODIES.items():
    def _body(s, body=body):
        s.open(1)
        queue(s, s.n("q"))
        s.publish(1, "", s.n("q"), body)
        get(s, s.n("q"))
    add(f"publish and get a body: {label}", _body)


@scenario("a body split into many small frames")
def _(s):
    s.open(1)
    queue(s, s.n("q"))
    s.publish(1, "", s.n("q"), b"0123456789" * 100, frame_size=7)
    get(s, s.n("q"))


PROPERTIES = {
    "content_type": "application/json",
    "content_encoding": "gzip",
    "delivery_mode": 2,
    "priority": 7,
    "correlation_id": "corr-1",
    "reply_to": "replies",
    "expiration": "60000",
    "message_id": "id-1",
    "timestamp": datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
    "message_type": "order.created",
    "user_id": "guest",
    "app_id": "differential",
    "cluster_id": "cluster",
}
for prop, value in PROPERTIES.items():
    def _prop(s, prop=prop, value=value):
        s.open(1)
        queue(s, s.n("q"))
        s.publish(1, "", s.n("q"), b"props", **{prop: value})
        get(s, s.n("q"))
    add(f"property {prop} round trip", _prop)


@scenario("every property at once round trip")
def _(s):
    s.open(1)
    queue(s, s.n("q"))
    s.publish(1, "", s.n("q"), b"all", headers={"k": "v"}, **PROPERTIES)
    get(s, s.n("q"))


HEADER_VALUES = {
    "strings": {"s": "text", "empty": ""},
    "integers": {"small": 1, "negative": -5, "big": 2 ** 40, "zero": 0},
    "booleans": {"t": True, "f": False},
    "float": {"pi": 3.5},
    "decimal": {"d": Decimal("1.25")},
    "timestamp": {"when": datetime(2020, 5, 6, 7, 8, 9, tzinfo=timezone.utc)},
    "nested table": {"outer": {"inner": {"deep": 1}}},
    "array": {"list": [1, "two", True, [3]]},
    "void": {"nothing": None},
    "bytes": {"raw": bytearray(b"\x00\x01")},
    "many keys": {f"k{i}": i for i in range(50)},
}
for label, headers in HEADER_VALUES.items():
    def _headers(s, headers=headers):
        s.open(1)
        queue(s, s.n("q"))
        s.publish(1, "", s.n("q"), b"headers", headers=headers)
        get(s, s.n("q"))
    add(f"headers round trip: {label}", _headers)


@scenario("user_id that is not the connection's user")
def _(s):
    s.open(1)
    queue(s, s.n("q"))
    s.publish(1, "", s.n("q"), b"spoofed", user_id="someone-else")


for value in ("abc", "-1", "1.5", "", "0"):
    def _expiration(s, value=value):
        s.open(1)
        queue(s, s.n("q"))
        s.publish(1, "", s.n("q"), b"expiring", expiration=value)
        get(s, s.n("q"))
    add(f"expiration property {value!r}", _expiration)


for mode in (0, 3, 255):
    def _mode(s, mode=mode):
        s.open(1)
        queue(s, s.n("q"))
        s.publish(1, "", s.n("q"), b"odd mode", delivery_mode=mode)
        get(s, s.n("q"))
    add(f"delivery_mode {mode}", _mode)


@scenario("content header announcing more than the body then a new method")
def _(s):
    s.open(1)
    queue(s, s.n("q"))
    s.publish(1, "", s.n("q"), b"short", body_size=10, settle=False)
    s.call(1, C.Basic.Qos(prefetch_count=1))


@scenario("body frames longer than announced")
def _(s):
    s.open(1)
    queue(s, s.n("q"))
    s.publish(1, "", s.n("q"), b"much longer than announced", body_size=4)


@scenario("content header without a publish")
def _(s):
    s.open(1)
    s.raw(marshal(pheader.ContentHeader(0, 3, C.Basic.Properties()), 1), "header alone on ch1", 1)


@scenario("body frame without a publish")
def _(s):
    s.open(1)
    s.raw(marshal(pbody.ContentBody(b"abc"), 1), "body alone on ch1", 1)


@scenario("content header of another class")
def _(s):
    s.open(1)
    data = marshal(C.Basic.Publish(exchange="", routing_key="x"), 1)
    head = bytearray(marshal(pheader.ContentHeader(0, 0, C.Basic.Properties()), 1))
    head[7:9] = (50).to_bytes(2, "big")
    s.raw(data + bytes(head), "publish with a class-50 content header", 1)


@scenario("basic.get from a missing queue")
def _(s):
    s.open(1)
    get(s, s.n("missing"))


@scenario("basic.get counts the messages left, and get-empty")
def _(s):
    s.open(1)
    queue(s, s.n("q"))
    for i in range(3):
        s.publish(1, "", s.n("q"), b"m%d" % i)
    for _ in range(4):
        get(s, s.n("q"))


for label, steps in {
    "ack of an unknown tag": [("ack", 5, False)],
    "ack twice": [("get",), ("ack", 1, False), ("ack", 1, False)],
    "ack multiple of tag 0 acks everything": [("get",), ("get",), ("ack", 0, True), ("recover",)],
    "ack tag 0 without multiple": [("get",), ("ack", 0, False)],
    "ack multiple up to a tag": [("get",), ("get",), ("get",), ("ack", 2, True), ("recover",)],
    "ack multiple beyond the last tag": [("get",), ("ack", 9, True)],
    "nack requeue redelivers": [("get",), ("nack", 1, False, True), ("get",)],
    "nack without requeue drops": [("get",), ("nack", 1, False, False), ("get",)],
    "nack multiple": [("get",), ("get",), ("nack", 2, True, True), ("get",), ("get",)],
    "nack of an unknown tag": [("nack", 3, False, True)],
    "reject requeue redelivers": [("get",), ("reject", 1, True), ("get",)],
    "reject without requeue drops": [("get",), ("reject", 1, False), ("get",)],
    "reject of an unknown tag": [("reject", 3, True)],
    "reject tag 0": [("get",), ("reject", 0, True)],
    "ack of a no-ack get": [("get-noack",), ("ack", 1, False)],
    "recover requeue redelivers unacked": [("get",), ("recover",), ("get",)],
    "recover without requeue": [("get",), ("recover-norequeue",)],
    "recover-async": [("get",), ("recover-async",), ("get",)],
}.items():
    def _acks(s, steps=steps):
        s.open(1)
        queue(s, s.n("q"))
        for i in range(3):
            s.publish(1, "", s.n("q"), b"m%d" % i)
        for step in steps:
            kind = step[0]
            if kind == "get":
                get(s, s.n("q"), no_ack=False)
            elif kind == "get-noack":
                get(s, s.n("q"), no_ack=True)
            elif kind == "ack":
                s.call(1, C.Basic.Ack(delivery_tag=step[1], multiple=step[2]))
            elif kind == "nack":
                s.call(1, C.Basic.Nack(delivery_tag=step[1], multiple=step[2], requeue=step[3]))
            elif kind == "reject":
                s.call(1, C.Basic.Reject(delivery_tag=step[1], requeue=step[2]))
            elif kind == "recover":
                s.call(1, C.Basic.Recover(requeue=True))
            elif kind == "recover-norequeue":
                s.call(1, C.Basic.Recover(requeue=False))
            elif kind == "recover-async":
                s.call(1, C.Basic.RecoverAsync(requeue=True))
        s.call(1, C.Queue.Declare(queue=s.n("q"), passive=True))
    add(f"acknowledgement: {label}", _acks)


@scenario("an ack on another channel than the delivery's")
def _(s):
    s.open(1)
    s.open(2)
    queue(s, s.n("q"))
    s.publish(1, "", s.n("q"), b"m")
    get(s, s.n("q"), no_ack=False)
    s.call(2, C.Basic.Ack(delivery_tag=1))


for label, qos in {"prefetch_count 0": {"prefetch_count": 0}, "prefetch_count 65535": {"prefetch_count": 65535},
                   "global": {"prefetch_count": 5, "global_": True},
                   "prefetch_size": {"prefetch_size": 1000, "prefetch_count": 1}}.items():
    def _qos(s, qos=qos):
        s.open(1)
        s.call(1, C.Basic.Qos(**qos))
    add(f"basic.qos with {label}", _qos)


@scenario("prefetch 2 limits deliveries until acked")
def _(s):
    s.open(1)
    queue(s, s.n("q"))
    for i in range(5):
        s.publish(1, "", s.n("q"), b"m%d" % i)
    s.call(1, C.Basic.Qos(prefetch_count=2))
    s.call(1, C.Basic.Consume(queue=s.n("q"), consumer_tag="c"))
    s.wait_deliveries(1, 2)
    s.call(1, C.Queue.Declare(queue=s.n("q"), passive=True))
    s.call(1, C.Basic.Ack(delivery_tag=2, multiple=True))
    s.wait_deliveries(1, 4)
    s.call(1, C.Queue.Declare(queue=s.n("q"), passive=True))


@scenario("basic.consume from a missing queue")
def _(s):
    s.open(1)
    s.call(1, C.Basic.Consume(queue=s.n("missing")))


@scenario("basic.consume with a tag already used on the channel")
def _(s):
    s.open(1)
    queue(s, s.n("q"))
    s.call(1, C.Basic.Consume(queue=s.n("q"), consumer_tag="same"))
    s.call(1, C.Basic.Consume(queue=s.n("q"), consumer_tag="same"))


@scenario("basic.consume with the same tag on two channels")
def _(s):
    s.open(1)
    s.open(2)
    queue(s, s.n("q"))
    s.call(1, C.Basic.Consume(queue=s.n("q"), consumer_tag="same"))
    s.call(2, C.Basic.Consume(queue=s.n("q"), consumer_tag="same"))


@scenario("basic.consume exclusive when the queue has a consumer")
def _(s):
    s.open(1)
    queue(s, s.n("q"))
    s.call(1, C.Basic.Consume(queue=s.n("q"), consumer_tag="first"))
    s.call(1, C.Basic.Consume(queue=s.n("q"), consumer_tag="greedy", exclusive=True))


@scenario("basic.consume when the queue has an exclusive consumer")
def _(s):
    s.open(1)
    queue(s, s.n("q"))
    s.call(1, C.Basic.Consume(queue=s.n("q"), consumer_tag="greedy", exclusive=True))
    s.call(1, C.Basic.Consume(queue=s.n("q"), consumer_tag="second"))


@scenario("basic.consume with a generated tag, nowait, no-local")
def _(s):
    s.open(1)
    queue(s, s.n("q"))
    s.call(1, C.Basic.Consume(queue=s.n("q")))
    s.call(1, C.Basic.Consume(queue=s.n("q"), consumer_tag="nw", nowait=True))
    s.call(1, C.Basic.Consume(queue=s.n("q"), consumer_tag="nl", no_local=True))
    s.call(1, C.Basic.Cancel(consumer_tag="nw"))


@scenario("basic.cancel of an unknown tag, and nowait")
def _(s):
    s.open(1)
    s.call(1, C.Basic.Cancel(consumer_tag="unknown"))
    s.call(1, C.Basic.Cancel(consumer_tag="unknown", nowait=True))


@scenario("deliveries carry the exchange, key and redelivered flag")
def _(s):
    s.open(1)
    queue(s, s.n("q"))
    s.call(1, C.Queue.Bind(queue=s.n("q"), exchange="amq.topic", routing_key="a.#"))
    s.publish(1, "amq.topic", "a.b", b"one", content_type="text/plain")
    s.publish(1, "", s.n("q"), b"two")
    s.call(1, C.Basic.Consume(queue=s.n("q"), consumer_tag="c"))
    s.wait_deliveries(1, 2)
    s.call(1, C.Basic.Cancel(consumer_tag="c"))
    s.call(1, C.Basic.Recover(requeue=True))
    s.call(1, C.Basic.Consume(queue=s.n("q"), consumer_tag="d", no_ack=True))
    s.wait_deliveries(1, 4)


@scenario("cancelled consumer's unacked messages return when the channel closes")
def _(s):
    s.open(1)
    queue(s, s.n("q"))
    s.publish(1, "", s.n("q"), b"held")
    s.open(2)
    s.call(2, C.Basic.Consume(queue=s.n("q"), consumer_tag="c"))
    s.wait_deliveries(2, 1)
    s.call(2, C.Basic.Cancel(consumer_tag="c"))
    s.call(1, C.Queue.Declare(queue=s.n("q"), passive=True))
    s.call(2, C.Channel.Close(reply_code=200, reply_text="ok"))
    get(s, s.n("q"))


@scenario("deleting a queue cancels its consumers on other channels")
def _(s):
    s.open(1)
    s.open(2)
    queue(s, s.n("q"))
    s.call(2, C.Basic.Consume(queue=s.n("q"), consumer_tag="c"))
    s.call(1, C.Queue.Delete(queue=s.n("q")))
    s.call(2, C.Basic.Qos(prefetch_count=1))


@scenario("competing consumers share the messages round robin")
def _(s):
    s.open(1)
    queue(s, s.n("q"))
    s.call(1, C.Basic.Consume(queue=s.n("q"), consumer_tag="a", no_ack=True))
    s.call(1, C.Basic.Consume(queue=s.n("q"), consumer_tag="b", no_ack=True))
    for i in range(6):
        s.publish(1, "", s.n("q"), b"m%d" % i)
    s.wait_deliveries(1, 6)


@scenario("dead-lettering on reject carries x-death")
def _(s):
    s.open(1)
    queue(s, s.n("dlq"))
    queue(s, s.n("q"), arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": s.n("dlq")})
    s.publish(1, "", s.n("q"), b"rejected", message_id="m1")
    get(s, s.n("q"), no_ack=False)
    s.call(1, C.Basic.Reject(delivery_tag=1, requeue=False))
    s.call(1, C.Basic.Consume(queue=s.n("dlq"), consumer_tag="dead", no_ack=True))
    s.wait_deliveries(1, 1)


@scenario("dead-lettering on expiry and on overflow")
def _(s):
    s.open(1)
    queue(s, s.n("dlq"))
    queue(s, s.n("q"), arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": s.n("dlq"),
                                  "x-max-length": 1})
    s.publish(1, "", s.n("q"), b"pushed out")
    s.publish(1, "", s.n("q"), b"expired", expiration="0")
    s.publish(1, "", s.n("q"), b"stays")
    s.call(1, C.Basic.Consume(queue=s.n("dlq"), consumer_tag="dead", no_ack=True))
    s.wait_deliveries(1, 2)
    get(s, s.n("q"))


@scenario("confirm.select twice, and with nowait")
def _(s):
    s.open(1)
    s.call(1, C.Confirm.Select())
    s.call(1, C.Confirm.Select())
    s.open(2)
    s.call(2, C.Confirm.Select(nowait=True))
    s.publish(2, "", s.n("nobody"), b"x")
    s.wait_confirms(2, 1)


@scenario("confirm.select on a transactional channel")
def _(s):
    s.open(1)
    s.call(1, C.Tx.Select())
    s.call(1, C.Confirm.Select())


@scenario("tx.select on a confirm channel")
def _(s):
    s.open(1)
    s.call(1, C.Confirm.Select())
    s.call(1, C.Tx.Select())


@scenario("confirms number publishes in order, routed or not")
def _(s):
    s.open(1)
    queue(s, s.n("q"))
    s.call(1, C.Confirm.Select())
    for i in range(5):
        s.publish(1, "", s.n("q") if i % 2 else s.n("nobody"), b"m%d" % i, delivery_mode=2)
    s.wait_confirms(1, 5)


for method in ("commit", "rollback"):
    def _tx_without(s, method=method):
        s.open(1)
        s.call(1, C.Tx.Commit() if method == "commit" else C.Tx.Rollback())
    add(f"tx.{method} without tx.select", _tx_without)


@scenario("tx: publishes wait for commit, rollback drops them")
def _(s):
    s.open(1)
    queue(s, s.n("q"))
    s.call(1, C.Tx.Select())
    s.call(1, C.Tx.Select())
    s.publish(1, "", s.n("q"), b"rolled back")
    get(s, s.n("q"))
    s.call(1, C.Tx.Rollback())
    s.publish(1, "", s.n("q"), b"committed")
    s.call(1, C.Tx.Commit())
    get(s, s.n("q"))
    s.call(1, C.Tx.Commit())


@scenario("tx: acks wait for commit")
def _(s):
    s.open(1)
    queue(s, s.n("q"))
    s.publish(1, "", s.n("q"), b"m")
    s.call(1, C.Tx.Select())
    get(s, s.n("q"), no_ack=False)
    s.call(1, C.Basic.Ack(delivery_tag=1))
    s.call(1, C.Tx.Rollback())
    s.call(1, C.Queue.Declare(queue=s.n("q"), passive=True))
    s.call(1, C.Basic.Ack(delivery_tag=1))
    s.call(1, C.Tx.Commit())
    s.call(1, C.Basic.Recover(requeue=True))
    get(s, s.n("q"))


@scenario("tx: a publish to a missing exchange fails at once")
def _(s):
    s.open(1)
    s.call(1, C.Tx.Select())
    s.publish(1, s.n("missing"), "k", b"x")


@scenario("tx: mandatory unroutable returns at commit")
def _(s):
    s.open(1)
    s.call(1, C.Tx.Select())
    s.publish(1, "amq.direct", "nobody", b"x", mandatory=True)
    s.call(1, C.Tx.Commit())
