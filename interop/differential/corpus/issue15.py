"""The five behaviours real clients tripped over (issue 15), each in its variants."""

from pamqp import commands as C

from . import scenario


@scenario("queue.unbind: the queue does not exist")
def _(s):
    s.open(1)
    s.call(1, C.Queue.Unbind(queue=s.n("missing"), exchange="amq.direct", routing_key="k"))
    s.call(1, C.Queue.Declare(queue=s.n("q"), passive=True))


@scenario("queue.unbind: the exchange does not exist")
def _(s):
    s.open(1)
    s.call(1, C.Queue.Declare(queue=s.n("q"), exclusive=True))
    s.call(1, C.Queue.Unbind(queue=s.n("q"), exchange=s.n("missing"), routing_key="k"))


@scenario("queue.unbind: neither exists")
def _(s):
    s.open(1)
    s.call(1, C.Queue.Unbind(queue=s.n("q"), exchange=s.n("x"), routing_key="k"))


@scenario("queue.unbind: no such binding")
def _(s):
    s.open(1)
    s.call(1, C.Queue.Declare(queue=s.n("q"), exclusive=True))
    s.call(1, C.Queue.Unbind(queue=s.n("q"), exchange="amq.direct", routing_key="never-bound"))


@scenario("queue.unbind: twice")
def _(s):
    s.open(1)
    s.call(1, C.Queue.Declare(queue=s.n("q"), exclusive=True))
    s.call(1, C.Queue.Bind(queue=s.n("q"), exchange="amq.direct", routing_key="k"))
    s.call(1, C.Queue.Unbind(queue=s.n("q"), exchange="amq.direct", routing_key="k"))
    s.call(1, C.Queue.Unbind(queue=s.n("q"), exchange="amq.direct", routing_key="k"))


@scenario("queue.unbind: after the queue was deleted (an RPC client's close)")
def _(s):
    s.open(1)
    s.call(1, C.Queue.Declare(queue=s.n("reply"), auto_delete=True))
    s.call(1, C.Queue.Bind(queue=s.n("reply"), exchange="amq.direct", routing_key=s.n("reply")))
    s.call(1, C.Queue.Delete(queue=s.n("reply")))
    s.call(1, C.Queue.Unbind(queue=s.n("reply"), exchange="amq.direct", routing_key=s.n("reply")))


@scenario("queue.unbind: from the default exchange")
def _(s):
    s.open(1)
    s.call(1, C.Queue.Declare(queue=s.n("q"), exclusive=True))
    s.call(1, C.Queue.Unbind(queue=s.n("q"), exchange="", routing_key=s.n("q")))


@scenario("queue.unbind: an exclusive queue of another connection")
def _(s):
    other = s.connect()
    s.open(1, conn=other)
    s.call(1, C.Queue.Declare(queue=s.n("q"), exclusive=True), conn=other)
    s.open(1)
    s.call(1, C.Queue.Unbind(queue=s.n("q"), exchange="amq.direct", routing_key="k"))


@scenario("exchange.unbind: the source does not exist")
def _(s):
    s.open(1)
    s.call(1, C.Exchange.Declare(exchange=s.n("dst"), exchange_type="fanout", auto_delete=False))
    s.call(1, C.Exchange.Unbind(destination=s.n("dst"), source=s.n("missing"), routing_key="k"))
    s.call(1, C.Exchange.Delete(exchange=s.n("dst")))


@scenario("exchange.unbind: the destination does not exist")
def _(s):
    s.open(1)
    s.call(1, C.Exchange.Unbind(destination=s.n("missing"), source="amq.direct", routing_key="k"))


@scenario("exchange.unbind: no such binding")
def _(s):
    s.open(1)
    s.call(1, C.Exchange.Declare(exchange=s.n("dst"), exchange_type="fanout"))
    s.call(1, C.Exchange.Unbind(destination=s.n("dst"), source="amq.direct", routing_key="k"))
    s.call(1, C.Exchange.Delete(exchange=s.n("dst")))


@scenario("connection.close with publishes still in flight behind it")
def _(s):
    s.open(1)
    s.close_after_writes(1, 200)


@scenario("connection.close with a half-sent publish behind it")
def _(s):
    s.open(1)
    s.publish(1, "", "nowhere", b"abcdef", body_size=100, settle=False)
    s.close_after_writes(1, 10)


@scenario("exclusive queue redeclared without exclusive by its owner")
def _(s):
    s.open(1)
    s.call(1, C.Queue.Declare(queue=s.n("q"), exclusive=True))
    s.call(1, C.Queue.Declare(queue=s.n("q"), exclusive=False))


@scenario("queue redeclared exclusive by the connection that declared it non-exclusive")
def _(s):
    s.open(1)
    s.call(1, C.Queue.Declare(queue=s.n("q"), auto_delete=True))
    s.call(1, C.Queue.Declare(queue=s.n("q"), exclusive=True, auto_delete=True))
    s.open(2)
    s.call(2, C.Queue.Delete(queue=s.n("q")))


@scenario("exclusive queue declared by another connection, same flags")
def _(s):
    other = s.connect()
    s.open(1, conn=other)
    s.call(1, C.Queue.Declare(queue=s.n("q"), exclusive=True), conn=other)
    s.open(1)
    s.call(1, C.Queue.Declare(queue=s.n("q"), exclusive=True))


@scenario("exclusive queue declared by another connection, not exclusive")
def _(s):
    other = s.connect()
    s.open(1, conn=other)
    s.call(1, C.Queue.Declare(queue=s.n("q"), exclusive=True), conn=other)
    s.open(1)
    s.call(1, C.Queue.Declare(queue=s.n("q")))


@scenario("exclusive queue of another connection, passive declare")
def _(s):
    other = s.connect()
    s.open(1, conn=other)
    s.call(1, C.Queue.Declare(queue=s.n("q"), exclusive=True), conn=other)
    s.open(1)
    s.call(1, C.Queue.Declare(queue=s.n("q"), passive=True))


for passive in (False, True):
    for kind in ("direct", "fanout", "topic", "headers", "nonsense"):
        def _default(s, passive=passive, kind=kind):
            s.open(1)
            s.call(1, C.Exchange.Declare(exchange="", exchange_type=kind, passive=passive))
        from . import add
        add(f"exchange.declare of the default exchange: {kind}, passive={passive}", _default)


@scenario("exchange.delete of the default exchange")
def _(s):
    s.open(1)
    s.call(1, C.Exchange.Delete(exchange=""))


for number in (2, 100, 2047, 2048, 4096, 65535):
    def _number(s, number=number):
        s.open(number)
        s.call(number, C.Queue.Declare(queue=s.n("q"), exclusive=True))
        s.call(number, C.Channel.Close(reply_code=200, reply_text="ok"))
    from . import add
    add(f"channel number {number} opened", _number)


@scenario("channel numbers above a negotiated channel_max of 4")
def _(s):
    c = s.connect(channel_max=4)
    s.open(1, conn=c)
    s.open(100, conn=c)
    s.open(65535, conn=c)
    s.call(65535, C.Basic.Qos(prefetch_count=5), conn=c)


@scenario("more channels open than a negotiated channel_max of 3")
def _(s):
    c = s.connect(channel_max=3)
    for number in (10, 20, 30, 40):
        s.open(number, conn=c)


@scenario("channel_max of 2: a closed channel frees its place")
def _(s):
    c = s.connect(channel_max=2)
    s.open(1, conn=c)
    s.open(2, conn=c)
    s.call(1, C.Channel.Close(reply_code=200, reply_text="ok"), conn=c)
    s.open(3, conn=c)
    s.call(3, C.Basic.Qos(prefetch_count=1), conn=c)


@scenario("queue.unbind: a bound exclusive queue of another connection")
def _(s):
    other = s.connect()
    s.open(1, conn=other)
    s.call(1, C.Queue.Declare(queue=s.n("q"), exclusive=True), conn=other)
    s.call(1, C.Queue.Bind(queue=s.n("q"), exchange="amq.direct", routing_key="k"), conn=other)
    s.open(1)
    s.call(1, C.Queue.Unbind(queue=s.n("q"), exchange="amq.direct", routing_key="k"))
    s.publish(1, "amq.direct", "k", b"still bound?", conn=other)
    s.call(1, C.Basic.Get(queue=s.n("q"), no_ack=True), conn=other)


@scenario("queue.unbind: empty queue name without a declared queue")
def _(s):
    s.open(1)
    s.call(1, C.Queue.Unbind(queue="", exchange="amq.direct", routing_key="k"))


@scenario("exchange.unbind: a binding that does not exist, from an unbound auto-delete exchange")
def _(s):
    s.open(1)
    s.call(1, C.Exchange.Declare(exchange=s.n("src"), exchange_type="direct", auto_delete=True))
    s.call(1, C.Exchange.Declare(exchange=s.n("dst"), exchange_type="fanout", auto_delete=False))
    s.call(1, C.Exchange.Unbind(destination=s.n("dst"), source=s.n("src"), routing_key="k"))
    s.call(1, C.Exchange.Declare(exchange=s.n("src"), exchange_type="direct", passive=True))


@scenario("queue.unbind: the last binding of an auto-delete exchange deletes it")
def _(s):
    s.open(1)
    s.call(1, C.Exchange.Declare(exchange=s.n("src"), exchange_type="direct", auto_delete=True))
    s.call(1, C.Queue.Declare(queue=s.n("q"), exclusive=True))
    s.call(1, C.Queue.Unbind(queue=s.n("q"), exchange=s.n("src"), routing_key="other"))
    s.call(1, C.Queue.Bind(queue=s.n("q"), exchange=s.n("src"), routing_key="k"))
    s.call(1, C.Queue.Unbind(queue=s.n("q"), exchange=s.n("src"), routing_key="k"))
    s.call(1, C.Exchange.Declare(exchange=s.n("src"), exchange_type="direct", passive=True))
