"""Connections and channels: channel numbers, frames on channels that are not open, methods in
the wrong place, malformed frames, and the close handshakes."""

import struct

from pamqp import commands as C
from pamqp import heartbeat as pheartbeat

from . import add, scenario
from engine import marshal


def frame(kind: int, channel: int, payload: bytes, end: int = 0xCE) -> bytes:
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + bytes([end])


@scenario("method on a channel that was never opened")
def _(s):
    s.call(5, C.Queue.Declare(queue=s.n("q"), exclusive=True))


@scenario("exchange method on channel 0")
def _(s):
    s.call(0, C.Exchange.Declare(exchange=s.n("x"), exchange_type="direct"))


@scenario("channel.open on channel 0")
def _(s):
    s.call(0, C.Channel.Open())


@scenario("channel.open twice on one channel")
def _(s):
    s.open(1)
    s.raw(marshal(C.Channel.Open(), 1), "second channel.open on ch1", 1)


@scenario("channel.close of a channel that is not open")
def _(s):
    # No channel is open, so no barrier: RabbitMQ answers from another process than the channel's.
    s.raw(marshal(C.Channel.Close(reply_code=200, reply_text="", class_id=0, method_id=0), 7),
          "channel.close on ch7", 7)


@scenario("channel.close-ok nobody asked for")
def _(s):
    s.open(1)
    s.raw(marshal(C.Channel.CloseOk(), 1), "channel.close-ok on ch1", 1)


@scenario("a channel number is reusable after close")
def _(s):
    for _ in range(3):
        s.open(1)
        s.call(1, C.Queue.Declare(queue=s.n("q"), exclusive=True))
        s.call(1, C.Channel.Close(reply_code=200, reply_text="ok"))


@scenario("a channel number is reusable after a channel error")
def _(s):
    s.open(1)
    s.call(1, C.Queue.Declare(queue=s.n("missing"), passive=True))
    s.open(1)
    s.call(1, C.Queue.Declare(queue=s.n("q"), exclusive=True))


@scenario("a channel error leaves the other channels alone")
def _(s):
    s.open(1)
    s.open(2)
    s.call(1, C.Queue.Declare(queue=s.n("q"), exclusive=True))
    s.call(2, C.Queue.Declare(queue=s.n("missing"), passive=True))
    s.publish(1, "", s.n("q"), b"still works")
    s.call(1, C.Basic.Get(queue=s.n("q"), no_ack=True))


for active in (True, False):
    def _flow(s, active=active):
        s.open(1)
        s.call(1, C.Channel.Flow(active=active))
        s.call(1, C.Basic.Qos(prefetch_count=1))
    add(f"channel.flow active={active}", _flow)


@scenario("many channels open at once, then closed")
def _(s):
    for number in range(1, 21):
        s.open(number)
    for number in range(1, 21):
        s.call(number, C.Channel.Close(reply_code=200, reply_text="ok"))


@scenario("connection.close with an error code from the client")
def _(s):
    s.open(1)
    s.call(0, C.Connection.Close(reply_code=541, reply_text="client failed", class_id=60, method_id=40))


@scenario("a second connection.open after the handshake")
def _(s):
    s.call(0, C.Connection.Open(virtual_host="/"))


@scenario("connection.tune-ok after the handshake")
def _(s):
    s.call(0, C.Connection.TuneOk(channel_max=10, frame_max=131072, heartbeat=0))


@scenario("heartbeat frames from the client are accepted")
def _(s):
    s.open(1)
    s.raw(marshal(pheartbeat.Heartbeat(), 0) * 3, "three heartbeats", 1)


@scenario("heartbeat frame on a channel other than 0")
def _(s):
    s.open(1)
    s.raw(frame(8, 1, b""), "heartbeat on ch1", 1)


@scenario("frame of an unknown type")
def _(s):
    s.open(1)
    s.raw(frame(9, 1, b"\x00\x00"), "frame type 9", 1)


@scenario("frame with a wrong end byte")
def _(s):
    s.open(1)
    s.raw(frame(1, 1, struct.pack(">HH", 60, 80) + b"\x00" * 9, end=0x00), "end byte 0x00", 1)


@scenario("method of an unknown class")
def _(s):
    s.open(1)
    s.raw(frame(1, 1, struct.pack(">HH", 99, 10)), "class 99 method 10", 1)


@scenario("unknown method of a known class")
def _(s):
    s.open(1)
    s.raw(frame(1, 1, struct.pack(">HH", 60, 99)), "basic method 99", 1)


@scenario("method frame with its arguments cut short")
def _(s):
    s.open(1)
    s.raw(frame(1, 1, struct.pack(">HH", 50, 10) + b"\x00"), "queue.declare with one byte of arguments", 1)


@scenario("frame larger than frame_max")
def _(s):
    s.open(1)
    body = b"z" * 200000
    s.raw(marshal(C.Basic.Publish(exchange="", routing_key="x"), 1)
          + frame(2, 1, struct.pack(">HHQH", 60, 0, len(body), 0))
          + frame(3, 1, body), "a 200 kB body frame", 1)


@scenario("access.request is answered")
def _(s):
    s.open(1)
    s.raw(frame(1, 1, struct.pack(">HH", 30, 10) + b"\x01/" + b"\x00"), "access.request realm /", 1)


@scenario("a connection that only says the protocol header of another version")
def _(s):
    c = s.connect(handshake=False)
    s.raw(b"AMQP\x01\x01\x00\x09", "protocol header AMQP 0-9 (old style)", conn=c)


@scenario("a connection that speaks HTTP")
def _(s):
    c = s.connect(handshake=False)
    s.raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "an HTTP request", conn=c)


@scenario("a connection that sends the protocol header twice")
def _(s):
    c = s.connect(handshake=False)
    s.raw(b"AMQP\x00\x00\x09\x01AMQP\x00\x00\x09\x01", "the header twice", conn=c)


@scenario("a channel closed by both sides at once")
def _(s):
    s.open(1)
    s.publish(1, s.n("missing"), "k", b"x", settle=False)
    s.raw(marshal(C.Channel.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0), 1),
          "channel.close from the client right behind it", 1)
    s.open(2)
    s.call(2, C.Exchange.Declare(exchange="amq.direct", passive=True))
    s.open(1)


@scenario("channel.open on the highest channel number")
def _(s):
    # channel_max bounds how many channels are open at once, not their numbers.
    s.open(65535)
    s.call(65535, C.Queue.Declare(queue=s.n("q"), exclusive=True))


@scenario("a method on a channel the broker closed")
def _(s):
    s.open(1)
    s.raw(marshal(C.Queue.Declare(queue=s.n("missing"), passive=True), 1), "passive declare of a missing queue", 1)
    # The channel is closed (the engine answered the broker's channel.close): a connection error.
    s.raw(marshal(C.Queue.Declare(queue=s.n("q"), exclusive=True), 1), "queue.declare on the closed channel", 1)


@scenario("a field table longer than its frame")
def _(s):
    s.open(1)
    name = s.n("q").encode()
    args = struct.pack(">HB", 0, len(name)) + name + b"\x00" + struct.pack(">I", 1000) + b"\x01x"
    s.raw(frame(1, 1, struct.pack(">HH", 50, 10) + args), "queue.declare whose table claims 1000 bytes", 1)


@scenario("a field table holding a value of an unknown type")
def _(s):
    s.open(1)
    name = s.n("q").encode()
    table = b"\x01kZ"  # key "k", type 'Z' (no such type)
    args = struct.pack(">HB", 0, len(name)) + name + b"\x00" + struct.pack(">I", len(table)) + table
    s.raw(frame(1, 1, struct.pack(">HH", 50, 10) + args), "queue.declare with a value of type 'Z'", 1)


@scenario("a content header on channel 0")
def _(s):
    s.raw(frame(2, 0, struct.pack(">HHQH", 60, 0, 1, 0)), "content header on ch0", 0)


@scenario("a body frame on channel 0")
def _(s):
    s.raw(frame(3, 0, b"x"), "body frame on ch0", 0)

