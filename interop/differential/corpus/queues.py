"""Queues: declare (names, passive, server-named, equivalence of flags and arguments), argument
validation, exclusive and auto-delete interplay, purge, delete, and the empty-name shortcut."""

from pamqp import commands as C

from . import add, scenario


def declare(s, name, ch=1, **kw):
    return s.call(ch, C.Queue.Declare(queue=name, **kw))


def get(s, q, no_ack=True, ch=1):
    return s.call(ch, C.Basic.Get(queue=q, no_ack=no_ack))


@scenario("queue.declare server-named, then passive, publish and get by the generated name")
def _(s):
    s.open(1)
    replies = declare(s, "", exclusive=True)
    name = replies[0].method.queue if replies and hasattr(replies[0].method, "queue") else "?"
    declare(s, name, passive=True)
    s.publish(1, "", name, b"to the generated name")
    get(s, name)


@scenario("queue.declare server-named, not exclusive")
def _(s):
    s.open(1)
    replies = declare(s, "", auto_delete=True)
    name = replies[0].method.queue if replies and hasattr(replies[0].method, "queue") else "?"
    s.call(1, C.Queue.Delete(queue=name))


@scenario("queue.declare passive with an empty name and no queue declared before")
def _(s):
    s.open(1)
    declare(s, "", passive=True)


@scenario("queue.declare passive of a missing queue")
def _(s):
    s.open(1)
    declare(s, s.n("missing"), passive=True)


@scenario("queue.declare passive reports messages and consumers")
def _(s):
    s.open(1)
    declare(s, s.n("q"), exclusive=True)
    for i in range(3):
        s.publish(1, "", s.n("q"), b"m%d" % i)
    s.call(1, C.Basic.Consume(queue=s.n("q"), consumer_tag="c1"))
    s.wait_deliveries(1, 3)
    declare(s, s.n("q"), passive=True)
    declare(s, s.n("q"), exclusive=True)


@scenario("queue.declare passive with other flags than the queue has")
def _(s):
    s.open(1)
    declare(s, s.n("q"), durable=True)
    declare(s, s.n("q"), passive=True, durable=False, auto_delete=True, arguments={"x-max-length": 1})
    s.call(1, C.Queue.Delete(queue=s.n("q")))


for label, name in (("amq. prefix", "amq.q"), ("amq.gen- prefix", "amq.gen-mine"), ("AMQ. in capitals", "AMQ.q"),
                    ("255 characters", "q" * 240), ("spaces", "with spaces"), ("unicode", "ünïcödé"),
                    ("only a dot", ".")):
    def _names(s, name=name):
        s.open(1)
        q = name + s.suffix.rjust(15, "0") if len(name) >= 240 else s.n(name)
        declare(s, q, exclusive=True)
        declare(s, q, passive=True)
        s.publish(1, "", q, b"named")
        get(s, q)
    add(f"queue.declare name with {label}", _names)

for label, name in (("amq. prefix", "amq.q"), ("amq.gen- prefix", "amq.gen-x")):
    def _passive_reserved(s, name=name):
        s.open(1)
        declare(s, s.n(name), passive=True)
    add(f"queue.declare passive of a missing queue with {label}", _passive_reserved)

FLAG_MISMATCHES = {
    "durable": ({"durable": True}, {"durable": False}),
    "auto_delete": ({"auto_delete": False}, {"auto_delete": True}),
    "durable and exclusive": ({"durable": True}, {"durable": False, "exclusive": True}),
}
for what, (first, second) in FLAG_MISMATCHES.items():
    def _flags(s, first=first, second=second):
        s.open(1)
        declare(s, s.n("q"), **first)
        declare(s, s.n("q"), **second)
        s.open(2)
        s.call(2, C.Queue.Delete(queue=s.n("q")))
    add(f"queue.declare redeclared with another {what}", _flags)

ARGUMENTS = {
    "x-message-ttl": (1000, 2000),
    "x-expires": (60000, 120000),
    "x-max-length": (10, 20),
    "x-max-length-bytes": (1000, 2000),
    "x-dead-letter-exchange": ("dlx", "other"),
    "x-dead-letter-routing-key": ("dead", "other"),
    "x-max-priority": (5, 10),
    "x-overflow": ("drop-head", "reject-publish"),
    "x-queue-mode": ("default", "lazy"),
    "x-single-active-consumer": (True, False),
    "x-queue-type": ("classic", "quorum"),
    "x-custom-argument": ("a", "b"),
}
for arg, (a, b) in ARGUMENTS.items():
    def _same(s, arg=arg, a=a):
        s.open(1)
        declare(s, s.n("q"), durable=True, arguments={arg: a})
        declare(s, s.n("q"), durable=True, arguments={arg: a})
        s.call(1, C.Queue.Delete(queue=s.n("q")))
    add(f"queue argument {arg}: redeclared the same", _same)

    def _changed(s, arg=arg, a=a, b=b):
        s.open(1)
        declare(s, s.n("q"), durable=True, arguments={arg: a})
        declare(s, s.n("q"), durable=True, arguments={arg: b})
        s.open(2)
        s.call(2, C.Queue.Delete(queue=s.n("q")))
    add(f"queue argument {arg}: redeclared with another value", _changed)

    def _dropped(s, arg=arg, a=a):
        s.open(1)
        declare(s, s.n("q"), durable=True, arguments={arg: a})
        declare(s, s.n("q"), durable=True)
        s.open(2)
        s.call(2, C.Queue.Delete(queue=s.n("q")))
    add(f"queue argument {arg}: redeclared without it", _dropped)

    def _added(s, arg=arg, a=a):
        s.open(1)
        declare(s, s.n("q"), durable=True)
        declare(s, s.n("q"), durable=True, arguments={arg: a})
        s.open(2)
        s.call(2, C.Queue.Delete(queue=s.n("q")))
    add(f"queue argument {arg}: added on redeclare", _added)

INVALID = [
    ("x-message-ttl", -1), ("x-message-ttl", "1000"), ("x-message-ttl", 1.5),
    ("x-expires", 0), ("x-expires", -5), ("x-expires", "soon"),
    ("x-max-length", -1), ("x-max-length", "10"),
    ("x-max-length-bytes", -1),
    ("x-max-priority", -1), ("x-max-priority", 256), ("x-max-priority", 300), ("x-max-priority", "5"),
    ("x-overflow", "drop-tail"), ("x-overflow", 1),
    ("x-dead-letter-exchange", 5),
    ("x-dead-letter-routing-key", "k"),
    ("x-queue-mode", "eager"),
    ("x-queue-type", "unknown"), ("x-queue-type", "stream"),
    ("x-single-active-consumer", "yes"),
    ("x-message-ttl", 4294967296),
]
for arg, value in INVALID:
    def _invalid(s, arg=arg, value=value):
        s.open(1)
        declare(s, s.n("q"), arguments={arg: value})
    add(f"queue argument {arg} = {value!r}", _invalid)


@scenario("queue.declare of a quorum queue that is not durable")
def _(s):
    s.open(1)
    declare(s, s.n("q"), arguments={"x-queue-type": "quorum"})


@scenario("queue.declare of an exclusive quorum queue")
def _(s):
    s.open(1)
    declare(s, s.n("q"), durable=True, exclusive=True, arguments={"x-queue-type": "quorum"})


@scenario("exclusive queue: other connection may not purge, bind, get or delete it")
def _(s):
    s.open(1)
    declare(s, s.n("q"), exclusive=True)
    other = s.connect()
    for i, method in enumerate((C.Queue.Purge(queue=s.n("q")),
                                C.Queue.Bind(queue=s.n("q"), exchange="amq.direct", routing_key="k"),
                                C.Basic.Get(queue=s.n("q")),
                                C.Basic.Consume(queue=s.n("q")),
                                C.Queue.Delete(queue=s.n("q")))):
        s.open(i + 1, conn=other)
        s.call(i + 1, method, conn=other)


@scenario("exclusive queue goes with its connection")
def _(s):
    owner = s.connect()
    s.open(1, conn=owner)
    declare(s, s.n("q"), exclusive=True, **{}) if False else s.call(1, C.Queue.Declare(queue=s.n("q"), exclusive=True), conn=owner)
    s.call(0, C.Connection.Close(reply_code=200, reply_text="bye"), conn=owner)
    s.open(1)
    declare(s, s.n("q"), passive=True)


@scenario("exclusive queue goes when its channel closes? no: it stays while the connection lives")
def _(s):
    s.open(1)
    declare(s, s.n("q"), exclusive=True)
    s.call(1, C.Channel.Close(reply_code=200, reply_text="ok"))
    s.open(2)
    declare(s, s.n("q"), passive=True, ch=2)


@scenario("auto-delete queue that never had a consumer stays")
def _(s):
    s.open(1)
    declare(s, s.n("q"), auto_delete=True)
    declare(s, s.n("q"), passive=True)
    s.call(1, C.Queue.Delete(queue=s.n("q")))


@scenario("auto-delete queue goes when its last consumer cancels")
def _(s):
    s.open(1)
    declare(s, s.n("q"), auto_delete=True)
    s.call(1, C.Basic.Consume(queue=s.n("q"), consumer_tag="a"))
    s.call(1, C.Basic.Consume(queue=s.n("q"), consumer_tag="b"))
    s.call(1, C.Basic.Cancel(consumer_tag="a"))
    declare(s, s.n("q"), passive=True)
    s.call(1, C.Basic.Cancel(consumer_tag="b"))
    declare(s, s.n("q"), passive=True)


@scenario("auto-delete queue goes when its consumer's channel closes")
def _(s):
    s.open(1)
    declare(s, s.n("q"), auto_delete=True)
    s.open(2)
    s.call(2, C.Basic.Consume(queue=s.n("q"), consumer_tag="a"))
    s.call(2, C.Channel.Close(reply_code=200, reply_text="ok"))
    declare(s, s.n("q"), passive=True)


@scenario("queue.purge counts what it removed, not unacked")
def _(s):
    s.open(1)
    declare(s, s.n("q"), exclusive=True)
    for i in range(4):
        s.publish(1, "", s.n("q"), b"m%d" % i)
    get(s, s.n("q"), no_ack=False)
    s.call(1, C.Queue.Purge(queue=s.n("q")))
    s.call(1, C.Queue.Purge(queue=s.n("q")))
    s.call(1, C.Basic.Reject(delivery_tag=1, requeue=True))
    declare(s, s.n("q"), passive=True)


@scenario("queue.purge of a missing queue")
def _(s):
    s.open(1)
    s.call(1, C.Queue.Purge(queue=s.n("missing")))


@scenario("queue.delete of a missing queue")
def _(s):
    s.open(1)
    s.call(1, C.Queue.Delete(queue=s.n("missing")))
    s.call(1, C.Queue.Delete(queue=s.n("missing"), if_empty=True, if_unused=True))


@scenario("queue.delete if-empty with messages, then without")
def _(s):
    s.open(1)
    declare(s, s.n("q"))
    s.publish(1, "", s.n("q"), b"one")
    s.call(1, C.Queue.Delete(queue=s.n("q"), if_empty=True))
    s.open(2)
    s.call(2, C.Queue.Purge(queue=s.n("q")))
    s.call(2, C.Queue.Delete(queue=s.n("q"), if_empty=True))


@scenario("queue.delete if-unused with a consumer, then without")
def _(s):
    s.open(1)
    declare(s, s.n("q"))
    s.open(2)
    s.call(2, C.Basic.Consume(queue=s.n("q"), consumer_tag="c"))
    s.call(1, C.Queue.Delete(queue=s.n("q"), if_unused=True))
    s.call(2, C.Basic.Cancel(consumer_tag="c"))
    s.open(3)
    s.call(3, C.Queue.Delete(queue=s.n("q"), if_unused=True))


@scenario("queue.delete counts ready messages and cancels consumers")
def _(s):
    s.open(1)
    declare(s, s.n("q"))
    for i in range(3):
        s.publish(1, "", s.n("q"), b"m%d" % i)
    s.open(2)
    s.call(2, C.Basic.Qos(prefetch_count=1))
    s.call(2, C.Basic.Consume(queue=s.n("q"), consumer_tag="c"))
    s.wait_deliveries(2, 1)
    s.call(1, C.Queue.Delete(queue=s.n("q")))
    s.call(1, C.Basic.Get(queue=s.n("q")))


for method in ("bind", "purge", "delete", "get", "consume", "unbind"):
    def _shortcut(s, method=method):
        s.open(1)
        declare(s, s.n("q"), exclusive=True)
        s.publish(1, "", s.n("q"), b"shortcut")
        m = {
            "bind": C.Queue.Bind(queue="", exchange="amq.fanout"),
            "unbind": C.Queue.Unbind(queue="", exchange="amq.fanout"),
            "purge": C.Queue.Purge(queue=""),
            "delete": C.Queue.Delete(queue=""),
            "get": C.Basic.Get(queue="", no_ack=True),
            "consume": C.Basic.Consume(queue="", consumer_tag="c"),
        }[method]
        s.call(1, m)
        s.open(2)
        s.call(2, m)
    add(f"empty queue name in {method} means the last declared queue (and only on that channel)", _shortcut)


@scenario("empty queue name after the last declared queue was deleted")
def _(s):
    s.open(1)
    declare(s, s.n("q"))
    s.call(1, C.Queue.Delete(queue=s.n("q")))
    s.call(1, C.Queue.Purge(queue=""))


@scenario("queue.bind twice, and with arguments that differ")
def _(s):
    s.open(1)
    declare(s, s.n("q"), exclusive=True)
    for args in ({}, {}, {"a": 1}):
        s.call(1, C.Queue.Bind(queue=s.n("q"), exchange="amq.direct", routing_key="k", arguments=args))
    s.publish(1, "amq.direct", "k", b"copies")
    get(s, s.n("q"))
    get(s, s.n("q"))


@scenario("queue.declare nowait, then used")
def _(s):
    s.open(1)
    declare(s, s.n("q"), exclusive=True, nowait=True)
    s.publish(1, "", s.n("q"), b"after nowait")
    get(s, s.n("q"))


@scenario("x-max-length with drop-head keeps the newest")
def _(s):
    s.open(1)
    declare(s, s.n("q"), exclusive=True, arguments={"x-max-length": 2})
    for i in range(4):
        s.publish(1, "", s.n("q"), b"m%d" % i)
    for _ in range(3):
        get(s, s.n("q"))


@scenario("x-max-length-bytes drops from the head")
def _(s):
    s.open(1)
    declare(s, s.n("q"), exclusive=True, arguments={"x-max-length-bytes": 10})
    for body in (b"12345", b"67890", b"abcde"):
        s.publish(1, "", s.n("q"), body)
    for _ in range(3):
        get(s, s.n("q"))


@scenario("x-max-length 0 keeps nothing")
def _(s):
    s.open(1)
    declare(s, s.n("q"), exclusive=True, arguments={"x-max-length": 0})
    s.publish(1, "", s.n("q"), b"gone")
    get(s, s.n("q"))


@scenario("x-overflow reject-publish refuses the newest, with confirms")
def _(s):
    s.open(1)
    s.call(1, C.Confirm.Select())
    declare(s, s.n("q"), exclusive=True, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    s.publish(1, "", s.n("q"), b"kept")
    s.publish(1, "", s.n("q"), b"refused")
    s.wait_confirms(1, 2)
    get(s, s.n("q"))
    get(s, s.n("q"))


@scenario("x-message-ttl 0 drops what no consumer takes at once")
def _(s):
    s.open(1)
    declare(s, s.n("q"), exclusive=True, arguments={"x-message-ttl": 0})
    s.publish(1, "", s.n("q"), b"expired")
    get(s, s.n("q"))


@scenario("x-max-priority orders by priority, then by arrival")
def _(s):
    s.open(1)
    declare(s, s.n("q"), exclusive=True, arguments={"x-max-priority": 5})
    for prio, body in ((1, b"low"), (5, b"high"), (9, b"above max"), (0, b"none"), (5, b"high 2")):
        s.publish(1, "", s.n("q"), body, priority=prio)
    s.publish(1, "", s.n("q"), b"no priority")
    for _ in range(7):
        get(s, s.n("q"))


@scenario("x-single-active-consumer: only the first consumer receives")
def _(s):
    s.open(1)
    declare(s, s.n("q"), exclusive=True, arguments={"x-single-active-consumer": True})
    s.call(1, C.Basic.Consume(queue=s.n("q"), consumer_tag="first", no_ack=True))
    s.call(1, C.Basic.Consume(queue=s.n("q"), consumer_tag="second", no_ack=True))
    for i in range(3):
        s.publish(1, "", s.n("q"), b"m%d" % i)
    s.wait_deliveries(1, 3)
    s.call(1, C.Basic.Cancel(consumer_tag="first"))
    s.publish(1, "", s.n("q"), b"after cancel")
    s.wait_deliveries(1, 4)
