"""Exchanges: declare and its equivalence rules, reserved names, delete, exchange-to-exchange
bindings, internal and auto-delete exchanges, alternate exchanges, and routing per type."""

from pamqp import commands as C

from . import add, scenario

KINDS = ("direct", "fanout", "topic", "headers")
FLAGS = {
    "plain": {},
    "durable": {"durable": True},
    "auto-delete": {"auto_delete": True},
    "internal": {"internal": True},
}


def declare(s, name, kind="direct", **kw):
    return s.call(1, C.Exchange.Declare(exchange=name, exchange_type=kind, **kw))


def queue(s, name, **kw):
    s.call(1, C.Queue.Declare(queue=name, exclusive=True, **kw))


def bind(s, q, x, key="", arguments=None):
    s.call(1, C.Queue.Bind(queue=q, exchange=x, routing_key=key, arguments=arguments or {}))


def get(s, q, no_ack=True):
    return s.call(1, C.Basic.Get(queue=q, no_ack=no_ack))


for kind in KINDS:
    for flag, kw in FLAGS.items():
        def _declare(s, kind=kind, kw=kw):
            s.open(1)
            x = s.n("x")
            declare(s, x, kind, **kw)
            declare(s, x, kind, **kw)
            declare(s, x, kind, passive=True)
            s.call(1, C.Exchange.Delete(exchange=x))
            declare(s, x, kind, passive=True)
        add(f"exchange.declare {kind} {flag}: redeclare, passive, delete", _declare)

MISMATCHES = {
    "type": ({"exchange_type": "direct"}, {"exchange_type": "fanout"}),
    "durable": ({"durable": True}, {"durable": False}),
    "auto_delete": ({"auto_delete": False}, {"auto_delete": True}),
    "internal": ({"internal": False}, {"internal": True}),
    "arguments added": ({}, {"arguments": {"alternate-exchange": "amq.fanout"}}),
    "arguments removed": ({"arguments": {"alternate-exchange": "amq.fanout"}}, {}),
    "arguments changed": ({"arguments": {"alternate-exchange": "amq.fanout"}},
                          {"arguments": {"alternate-exchange": "amq.topic"}}),
    "unknown argument added": ({}, {"arguments": {"x-whatever": 1}}),
}
for what, (first, second) in MISMATCHES.items():
    def _mismatch(s, first=first, second=second):
        s.open(1)
        x = s.n("x")
        s.call(1, C.Exchange.Declare(exchange=x, **{"exchange_type": "direct", **first}))
        s.call(1, C.Exchange.Declare(exchange=x, **{"exchange_type": "direct", **second}))
        s.open(2)
        s.call(2, C.Exchange.Delete(exchange=x))
    add(f"exchange.declare redeclared with another {what}", _mismatch)

for name in ("amq.direct", "amq.fanout", "amq.topic", "amq.headers", "amq.match", "amq.rabbitmq.trace"):
    def _builtin(s, name=name):
        s.open(1)
        declare(s, name, "direct", passive=True)
    add(f"exchange.declare passive of {name}", _builtin)

for name, kind in (("amq.direct", "direct"), ("amq.fanout", "fanout"), ("amq.topic", "topic"),
                   ("amq.new", "direct"), ("amq.", "direct"), ("AMQ.upper", "direct")):
    def _reserved(s, name=name, kind=kind):
        s.open(1)
        declare(s, name if name != "AMQ.upper" else s.n(name), kind, durable=True)
    add(f"exchange.declare of the reserved name {name!r}", _reserved)


@scenario("exchange.declare passive of a missing amq. exchange")
def _(s):
    s.open(1)
    declare(s, "amq.missing-" + s.suffix, "direct", passive=True)


@scenario("exchange.declare passive of a missing exchange")
def _(s):
    s.open(1)
    declare(s, s.n("missing"), "direct", passive=True)


@scenario("exchange.declare passive with another type and flags than the exchange has")
def _(s):
    s.open(1)
    declare(s, s.n("x"), "topic", durable=True)
    declare(s, s.n("x"), "fanout", passive=True, durable=False, auto_delete=True)
    s.call(1, C.Exchange.Delete(exchange=s.n("x")))


for label, name in (("255 characters", "x" * 240), ("spaces", "with spaces"), ("unicode", "ünïcödé"),
                    ("slash and dots", "a/b.c"), ("only a dot", ".")):
    def _names(s, name=name):
        s.open(1)
        x = s.n(name) if len(name) < 240 else name + s.suffix.rjust(15, "0")
        declare(s, x, "fanout")
        declare(s, x, "fanout", passive=True)
        s.call(1, C.Exchange.Delete(exchange=x))
    add(f"exchange.declare name with {label}", _names)

for kind in ("x-delayed-message", "x-consistent-hash", "x-random", "DIRECT", ""):
    def _unknown(s, kind=kind):
        s.open(1)
        declare(s, s.n("x"), kind)
    add(f"exchange.declare of type {kind!r}", _unknown)


@scenario("exchange.declare nowait, then used")
def _(s):
    s.open(1)
    declare(s, s.n("x"), "fanout", nowait=True)
    queue(s, s.n("q"))
    bind(s, s.n("q"), s.n("x"))
    s.publish(1, s.n("x"), "any", b"via nowait")
    get(s, s.n("q"))
    s.call(1, C.Exchange.Delete(exchange=s.n("x")))


@scenario("exchange.delete of a missing exchange")
def _(s):
    s.open(1)
    s.call(1, C.Exchange.Delete(exchange=s.n("missing")))
    s.call(1, C.Exchange.Delete(exchange=s.n("missing"), if_unused=True))


for name in ("amq.direct", "amq.fanout", "amq.topic", "amq.headers", "amq.match"):
    def _delete_builtin(s, name=name):
        s.open(1)
        s.call(1, C.Exchange.Delete(exchange=name))
    add(f"exchange.delete of {name}", _delete_builtin)


@scenario("exchange.delete if-unused with a queue bound")
def _(s):
    s.open(1)
    declare(s, s.n("x"), "direct")
    queue(s, s.n("q"))
    bind(s, s.n("q"), s.n("x"), "k")
    s.call(1, C.Exchange.Delete(exchange=s.n("x"), if_unused=True))
    s.open(2)
    s.call(2, C.Exchange.Delete(exchange=s.n("x")))
    s.call(2, C.Exchange.Declare(exchange=s.n("x"), passive=True))


@scenario("exchange.delete if-unused as the source of an exchange binding")
def _(s):
    s.open(1)
    declare(s, s.n("src"), "direct")
    declare(s, s.n("dst"), "fanout")
    s.call(1, C.Exchange.Bind(destination=s.n("dst"), source=s.n("src"), routing_key="k"))
    s.call(1, C.Exchange.Delete(exchange=s.n("src"), if_unused=True))
    s.open(2)
    s.call(2, C.Exchange.Delete(exchange=s.n("dst"), if_unused=True))
    s.call(2, C.Exchange.Delete(exchange=s.n("src")))
    s.call(2, C.Exchange.Delete(exchange=s.n("dst")))


@scenario("exchange.delete removes the bindings of its queues")
def _(s):
    s.open(1)
    declare(s, s.n("x"), "fanout")
    queue(s, s.n("q"))
    bind(s, s.n("q"), s.n("x"))
    s.call(1, C.Exchange.Delete(exchange=s.n("x")))
    declare(s, s.n("x"), "fanout")
    s.publish(1, s.n("x"), "", b"not bound any more")
    get(s, s.n("q"))
    s.call(1, C.Exchange.Delete(exchange=s.n("x")))


@scenario("exchange.bind routes through to the destination exchange")
def _(s):
    s.open(1)
    declare(s, s.n("src"), "topic")
    declare(s, s.n("dst"), "fanout")
    queue(s, s.n("q"))
    bind(s, s.n("q"), s.n("dst"))
    s.call(1, C.Exchange.Bind(destination=s.n("dst"), source=s.n("src"), routing_key="a.*"))
    s.call(1, C.Exchange.Bind(destination=s.n("dst"), source=s.n("src"), routing_key="a.*"))
    s.publish(1, s.n("src"), "a.b", b"routed")
    s.publish(1, s.n("src"), "b.b", b"not routed")
    get(s, s.n("q"))
    get(s, s.n("q"))
    s.call(1, C.Exchange.Unbind(destination=s.n("dst"), source=s.n("src"), routing_key="a.*"))
    s.publish(1, s.n("src"), "a.b", b"unbound")
    get(s, s.n("q"))
    s.call(1, C.Exchange.Delete(exchange=s.n("src")))
    s.call(1, C.Exchange.Delete(exchange=s.n("dst")))


@scenario("exchange.bind: a cycle of exchanges delivers once")
def _(s):
    s.open(1)
    declare(s, s.n("a"), "fanout")
    declare(s, s.n("b"), "fanout")
    queue(s, s.n("q"))
    bind(s, s.n("q"), s.n("b"))
    s.call(1, C.Exchange.Bind(destination=s.n("b"), source=s.n("a")))
    s.call(1, C.Exchange.Bind(destination=s.n("a"), source=s.n("b")))
    s.publish(1, s.n("a"), "", b"once")
    get(s, s.n("q"))
    get(s, s.n("q"))
    s.call(1, C.Exchange.Delete(exchange=s.n("a")))
    s.call(1, C.Exchange.Delete(exchange=s.n("b")))


for label, src, dst in (("missing source", "missing", "amq.fanout"), ("missing destination", "amq.direct", "missing"),
                        ("default exchange as source", "", "amq.fanout"),
                        ("default exchange as destination", "amq.direct", "")):
    def _bind_bad(s, src=src, dst=dst):
        s.open(1)
        name = lambda n: s.n(n) if n == "missing" else n  # noqa: E731
        s.call(1, C.Exchange.Bind(destination=name(dst), source=name(src), routing_key="k"))
    add(f"exchange.bind with a {label}", _bind_bad)
    def _unbind_bad(s, src=src, dst=dst):
        s.open(1)
        name = lambda n: s.n(n) if n == "missing" else n  # noqa: E731
        s.call(1, C.Exchange.Unbind(destination=name(dst), source=name(src), routing_key="k"))
    add(f"exchange.unbind with a {label}", _unbind_bad)


for label, q, x in (("missing queue", "missing", "amq.direct"), ("missing exchange", "q", "missing"),
                    ("default exchange", "q", "")):
    def _qbind_bad(s, q=q, x=x):
        s.open(1)
        queue(s, s.n("q"))
        s.call(1, C.Queue.Bind(queue=s.n(q), exchange=s.n(x) if x == "missing" else x, routing_key="k"))
    add(f"queue.bind with a {label}", _qbind_bad)


@scenario("publish to an internal exchange")
def _(s):
    s.open(1)
    declare(s, s.n("x"), "fanout", internal=True)
    s.publish(1, s.n("x"), "", b"refused")
    s.open(2)
    s.call(2, C.Exchange.Delete(exchange=s.n("x")))


@scenario("an internal exchange is reached through an exchange binding")
def _(s):
    s.open(1)
    declare(s, s.n("inner"), "fanout", internal=True)
    queue(s, s.n("q"))
    bind(s, s.n("q"), s.n("inner"))
    s.call(1, C.Exchange.Bind(destination=s.n("inner"), source="amq.fanout"))
    s.publish(1, "amq.fanout", "", b"through")
    get(s, s.n("q"))
    s.call(1, C.Exchange.Delete(exchange=s.n("inner")))


@scenario("auto-delete exchange goes with its last queue binding")
def _(s):
    s.open(1)
    declare(s, s.n("x"), "direct", auto_delete=True)
    queue(s, s.n("q"))
    bind(s, s.n("q"), s.n("x"), "a")
    bind(s, s.n("q"), s.n("x"), "b")
    s.call(1, C.Queue.Unbind(queue=s.n("q"), exchange=s.n("x"), routing_key="a"))
    declare(s, s.n("x"), "direct", passive=True)
    s.call(1, C.Queue.Unbind(queue=s.n("q"), exchange=s.n("x"), routing_key="b"))
    declare(s, s.n("x"), "direct", passive=True)


@scenario("auto-delete exchange goes when its bound queue is deleted")
def _(s):
    s.open(1)
    declare(s, s.n("x"), "fanout", auto_delete=True)
    queue(s, s.n("q"))
    bind(s, s.n("q"), s.n("x"))
    s.call(1, C.Queue.Delete(queue=s.n("q")))
    declare(s, s.n("x"), "fanout", passive=True)


@scenario("auto-delete exchange without bindings stays")
def _(s):
    s.open(1)
    declare(s, s.n("x"), "fanout", auto_delete=True)
    declare(s, s.n("x"), "fanout", passive=True)
    s.call(1, C.Exchange.Delete(exchange=s.n("x")))


@scenario("auto-delete exchange goes when its exchange binding is removed")
def _(s):
    s.open(1)
    declare(s, s.n("x"), "fanout", auto_delete=True)
    s.call(1, C.Exchange.Bind(destination="amq.fanout", source=s.n("x")))
    s.call(1, C.Exchange.Unbind(destination="amq.fanout", source=s.n("x")))
    declare(s, s.n("x"), "fanout", passive=True)


@scenario("alternate exchange takes what the exchange cannot route")
def _(s):
    s.open(1)
    declare(s, s.n("ae"), "fanout")
    declare(s, s.n("x"), "direct", arguments={"alternate-exchange": s.n("ae")})
    queue(s, s.n("main"))
    queue(s, s.n("spill"))
    bind(s, s.n("main"), s.n("x"), "k")
    bind(s, s.n("spill"), s.n("ae"))
    s.publish(1, s.n("x"), "k", b"routed")
    s.publish(1, s.n("x"), "other", b"alternate", mandatory=True)
    get(s, s.n("main"))
    get(s, s.n("spill"))
    get(s, s.n("spill"))
    s.call(1, C.Exchange.Delete(exchange=s.n("x")))
    s.call(1, C.Exchange.Delete(exchange=s.n("ae")))


@scenario("alternate exchange that does not exist: mandatory returns")
def _(s):
    s.open(1)
    declare(s, s.n("x"), "direct", arguments={"alternate-exchange": s.n("missing")})
    s.publish(1, s.n("x"), "k", b"nowhere", mandatory=True)
    s.call(1, C.Exchange.Delete(exchange=s.n("x")))


TOPIC = [
    ("#", ["", "a", "a.b", "a.b.c"]),
    ("*", ["", "a", "a.b"]),
    ("a.*", ["a", "a.b", "a.b.c", "b.a"]),
    ("a.#", ["a", "a.b", "a.b.c", "ab"]),
    ("#.c", ["c", "a.c", "a.b.c", "c.a"]),
    ("a.#.c", ["a.c", "a.b.c", "a.b.b.c", "a.b"]),
    ("*.*", ["a", "a.b", "a.b.c"]),
    ("a.*.#", ["a", "a.b", "a.b.c"]),
    ("#.#", ["", "a", "a.b"]),
    ("", ["", "a"]),
    ("a..b", ["a..b", "a.b", "a.x.b"]),
    ("*.b.*", ["a.b.c", "b.c", "a.b"]),
    ("#.*", ["", "a", "a.b"]),
    ("a.b", ["a.b", "A.B", "a.b."]),
]
for pattern, keys in TOPIC:
    def _topic(s, pattern=pattern, keys=keys):
        s.open(1)
        queue(s, s.n("q"))
        bind(s, s.n("q"), "amq.topic", pattern)
        for key in keys:
            s.publish(1, "amq.topic", key, f"key={key}".encode())
        s.call(1, C.Queue.Declare(queue=s.n("q"), passive=True))
        for _ in keys:
            get(s, s.n("q"))
    add(f"topic routing of pattern {pattern!r}", _topic)

HEADERS = [
    ("all, both match", {"x-match": "all", "a": 1, "b": "two"}, {"a": 1, "b": "two", "c": 3}),
    ("all, one missing", {"x-match": "all", "a": 1, "b": "two"}, {"a": 1}),
    ("any, one matches", {"x-match": "any", "a": 1, "b": "two"}, {"b": "two"}),
    ("any, none matches", {"x-match": "any", "a": 1}, {"a": 2}),
    ("default is all", {"a": 1, "b": 2}, {"a": 1}),
    ("no arguments match everything", {}, {"z": 1}),
    ("x- headers are ignored by all", {"x-match": "all", "x-own": 1, "a": 1}, {"a": 1}),
    ("any-with-x matches x- headers", {"x-match": "any-with-x", "x-own": 1}, {"x-own": 1}),
    ("all-with-x", {"x-match": "all-with-x", "x-own": 1, "a": 1}, {"x-own": 1, "a": 1}),
    ("types must agree", {"x-match": "all", "a": 1}, {"a": "1"}),
    ("void matches presence", {"x-match": "all", "a": None}, {"a": 5}),
    ("message without headers", {"x-match": "any", "a": 1}, None),
]
for label, binding, headers in HEADERS:
    def _headers(s, binding=binding, headers=headers):
        s.open(1)
        queue(s, s.n("q"))
        bind(s, s.n("q"), "amq.headers", "", binding)
        props = {"headers": headers} if headers is not None else {}
        s.publish(1, "amq.headers", "ignored", b"headers", **props)
        get(s, s.n("q"))
    add(f"headers routing: {label}", _headers)


@scenario("headers binding with an invalid x-match")
def _(s):
    s.open(1)
    queue(s, s.n("q"))
    bind(s, s.n("q"), "amq.headers", "", {"x-match": "some"})


@scenario("direct routing: empty key, and keys that differ in case")
def _(s):
    s.open(1)
    queue(s, s.n("q"))
    bind(s, s.n("q"), "amq.direct", "")
    bind(s, s.n("q"), "amq.direct", "Key")
    for key in ("", "Key", "key", "KEY"):
        s.publish(1, "amq.direct", key, key.encode())
    for _ in range(4):
        get(s, s.n("q"))


@scenario("fanout routing ignores the key, and a queue bound twice gets one copy")
def _(s):
    s.open(1)
    declare(s, s.n("x"), "fanout")
    queue(s, s.n("q"))
    bind(s, s.n("q"), s.n("x"), "a")
    bind(s, s.n("q"), s.n("x"), "b")
    s.publish(1, s.n("x"), "zzz", b"one copy")
    get(s, s.n("q"))
    get(s, s.n("q"))
    s.call(1, C.Exchange.Delete(exchange=s.n("x")))


@scenario("default exchange routes to a queue by its name only")
def _(s):
    s.open(1)
    queue(s, s.n("q"))
    s.publish(1, "", s.n("q"), b"by name")
    s.publish(1, "", s.n("q").upper(), b"wrong case")
    get(s, s.n("q"))
    get(s, s.n("q"))
