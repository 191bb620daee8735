"""The differential runner's engine: a raw AMQP 0-9-1 client that records what a broker answers.

A scenario drives one or more `Conn`s through a `Session`. Every step sends frames and then waits
on a barrier (a passive declare of `amq.direct` on the same channel, whose reply the broker must
send after the step's own replies), so what the broker said in answer to the step is known exactly,
without sleeping. What brokers send on their own time (deliveries, confirms, consumer
cancellations) is collected per channel and compared as a whole, in a normal form.

Frames are built and parsed with pamqp, an implementation independent of Warren's codec, with its
argument checks switched off so that scenarios can send what a broken client would.
"""

from __future__ import annotations

import errno
import re
import socket
import time
from dataclasses import dataclass, field

from pamqp import body as pbody
from pamqp import commands as C
from pamqp import encode as pencode
from pamqp import frame as pframe
from pamqp import header as pheader
from pamqp import heartbeat as pheartbeat

# Encode integers in tables as RabbitMQ's clients do (I / l), not by the smallest type.
pencode.support_deprecated_rabbitmq(True)


def _no_validation() -> None:
    for cls_name in ("Basic", "Channel", "Confirm", "Connection", "Exchange", "Queue", "Tx"):
        cls = getattr(C, cls_name)
        for attr in dir(cls):
            member = getattr(cls, attr)
            if isinstance(member, type) and hasattr(member, "validate"):
                member.validate = lambda self: None


_no_validation()

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
STEP_TIMEOUT_S = 3.0
CLIENT_PROPERTIES = {
    "product": "warren-differential",
    "capabilities": {
        "publisher_confirms": True,
        "consumer_cancel_notify": True,
        "basic.nack": True,
        "connection.blocked": True,
        "exchange_exchange_bindings": True,
        "authentication_failure_close": True,
        "per_consumer_qos": True,
    },
}
# Methods whose answer is waited for instead of a barrier: RabbitMQ sends consume-ok and
# cancel-ok from the queue's process (out of order with the channel's other replies), and refuses
# any method that arrives while it commits a transaction.
ANSWERED_OUT_OF_ORDER = {"Basic.Consume": "Basic.ConsumeOk", "Basic.Cancel": "Basic.CancelOk",
                         "Tx.Commit": "Tx.CommitOk"}
# Message headers left out of the comparison (deliberate.toml lists them, with the reason).
IGNORED_HEADERS: set[str] = set()
CONTENT_METHODS = ("Basic.Deliver", "Basic.GetOk", "Basic.Return")
ASYNC_METHODS = ("Basic.Deliver", "Basic.Ack", "Basic.Nack", "Basic.Cancel")
GENERATED = [
    (re.compile(r"^amq\.gen-[A-Za-z0-9_\-]+$"), "amq.gen-*"),
    (re.compile(r"^amq\.ctag-[A-Za-z0-9_\-]+$"), "amq.ctag-*"),
]


class Closed(Exception):
    """The connection is gone; the step cannot be sent."""


def normal_value(value):
    """A value in a form both brokers' answers can be compared in."""
    if isinstance(value, str):
        for pattern, replacement in GENERATED:
            if pattern.match(value):
                return replacement
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return {k: ("<time>" if k == "time" else normal_value(v)) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [normal_value(v) for v in value]
    if hasattr(value, "isoformat"):
        return "<timestamp>"
    return value


_EMPTY = {"shortstr": "", "longstr": "", "table": {}, "bit": False}


def filled(method):
    """The method with unset arguments at their empty value, as a client library sends them."""
    if hasattr(method, "amqp_type"):
        for slot in method.__slots__:
            if getattr(method, slot, None) is None:
                setattr(method, slot, _EMPTY.get(method.amqp_type(slot), 0))
    return method


def marshal(value, channel: int) -> bytes:
    return pframe.marshal(filled(value), channel)


def method_fields(method) -> dict:
    return {slot: getattr(method, slot, None) for slot in method.__slots__}


@dataclass
class Event:
    """One method the broker sent, with its content if it carries one."""

    channel: int
    method: object
    properties: dict | None = None
    body: bytes | None = None

    @property
    def name(self) -> str:
        return self.method.name

    def normal(self) -> dict:
        # Reply texts, and who the server says it is, are not behaviour.
        fields = {k: v for k, v in method_fields(self.method).items() if k not in ("reply_text", "server_properties")}
        # The ticket, server properties and the like are not behaviour.
        for key in ("ticket", "reserved_1", "channel_id", "known_hosts"):
            fields.pop(key, None)
        out = {"ch": self.channel, "method": self.name, **normal_value(fields)}
        if self.properties is not None:
            properties = dict(self.properties)
            if isinstance(properties.get("headers"), dict):
                properties["headers"] = {k: v for k, v in properties["headers"].items() if k not in IGNORED_HEADERS}
            out["properties"] = normal_value(properties)
            out["body"] = body_summary(self.body)
        return out

    def display(self) -> str:
        fields = method_fields(self.method)
        text = fields.get("reply_text")
        shown = {k: v for k, v in self.normal().items() if k not in ("ch", "method")}
        return f"ch{self.channel} {self.name} {shown}" + (f" text={text!r}" if text else "")


def body_summary(body: bytes | None):
    if body is None:
        return None
    if len(body) <= 64:
        return body.decode("utf-8", "backslashreplace")
    import hashlib

    return f"<{len(body)} bytes sha256:{hashlib.sha256(body).hexdigest()[:16]}>"


def properties_dict(props) -> dict:
    if props is None:
        return {}
    return {slot: getattr(props, slot) for slot in props.__slots__ if getattr(props, slot, None) is not None}


@dataclass
class ChannelAsync:
    """What a broker sent on one channel on its own time."""

    deliveries: list = field(default_factory=list)
    confirms: dict = field(default_factory=dict)  # delivery tag -> "ack" | "nack"
    cancels: list = field(default_factory=list)

    def record(self, event: Event) -> None:
        m = event.method
        if event.name == "Basic.Deliver":
            self.deliveries.append(event)
        elif event.name in ("Basic.Ack", "Basic.Nack"):
            kind = "ack" if event.name == "Basic.Ack" else "nack"
            tags = range(1, m.delivery_tag + 1) if m.multiple else [m.delivery_tag]
            for tag in tags:
                self.confirms.setdefault(tag, kind)
        elif event.name == "Basic.Cancel":
            self.cancels.append(normal_value(m.consumer_tag))

    def normal(self) -> dict:
        by_consumer: dict = {}
        for d in self.deliveries:
            n = d.normal()
            n.pop("delivery_tag", None)
            n.pop("ch", None)
            by_consumer.setdefault(n.pop("consumer_tag"), []).append(n)
        return {
            "deliveries": by_consumer,
            "confirms": dict(sorted(self.confirms.items())),
            "cancels": sorted(self.cancels),
        }


class Conn:
    """One raw AMQP connection to a broker."""

    def __init__(self, session: "Session", label: str, handshake: bool = True, **tune):
        self.session = session
        self.label = label
        self.sock = socket.create_connection(session.addr, timeout=STEP_TIMEOUT_S)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.closed = False
        self.open_channels: set[int] = set()
        self.asyncs: dict[int, ChannelAsync] = {}
        self.pending_content: dict[int, list] = {}
        self.frame_max = 131072
        self.channel_max = 0
        # A connection left mid-handshake by its scenario is not closed with connection.close.
        self.handshaken = handshake
        if handshake:
            self.handshake(**tune)

    # ---- wire ---------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.closed:
            raise Closed()
        try:
            self.sock.sendall(data)
        except OSError as e:
            self.closed = True
            raise Closed() from e

    def send_frame(self, channel: int, value) -> None:
        self.write(marshal(value, channel))

    def read_frame(self, deadline: float):
        """The next (channel, frame); None at end of stream or when the deadline passes."""
        while True:
            if self.buf[:4] == b"AMQP" and len(self.buf) >= 8:
                # A broker that refuses our protocol version answers with the one it speaks.
                data, self.buf = self.buf[:8], self.buf[8:]
                return 0, ("protocol-header", data)
            if len(self.buf) >= 7 and self.buf[:4] != b"AMQP":
                total = 8 + int.from_bytes(self.buf[3:7], "big")
                if len(self.buf) >= total:
                    data, self.buf = self.buf[:total], self.buf[total:]
                    try:
                        _, channel, value = pframe.unmarshal(data)
                    except Exception:  # noqa: BLE001 - a method pamqp does not know (access.request-ok)
                        channel = int.from_bytes(data[1:3], "big")
                        ids = (int.from_bytes(data[7:9], "big"), int.from_bytes(data[9:11], "big"))
                        return channel, ("undecoded", f"frame type {data[0]} class.method {ids[0]}.{ids[1]}".encode())
                    return channel, value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout"
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return "timeout"
            except OSError:
                chunk = b""
            if not chunk:
                self.closed = True
                return None
            self.buf += chunk

    def next_event(self, deadline: float):
        """The next method the broker sent, with its content assembled; "timeout" or None."""
        while True:
            got = self.read_frame(deadline)
            if got is None or got == "timeout":
                return got
            channel, value = got
            if isinstance(value, pheartbeat.Heartbeat):
                continue
            if isinstance(value, tuple):
                return Event(channel, _Raw(value[0], value[1]))
            if isinstance(value, pheader.ContentHeader):
                pending = self.pending_content.get(channel)
                if pending is None:
                    return Event(channel, _Raw("unexpected content header", b""))
                pending[0].properties = properties_dict(value.properties)
                pending[1] = value.body_size
                if value.body_size == 0:
                    return self._content_done(channel)
                continue
            if isinstance(value, pbody.ContentBody):
                pending = self.pending_content.get(channel)
                if pending is None:
                    return Event(channel, _Raw("unexpected content body", b""))
                pending[2].append(value.value)
                if sum(len(p) for p in pending[2]) >= pending[1]:
                    return self._content_done(channel)
                continue
            event = Event(channel, value)
            if event.name in CONTENT_METHODS:
                self.pending_content[channel] = [event, 0, []]
                continue
            self._track(event)
            return event

    def _content_done(self, channel: int) -> Event:
        event, _, parts = self.pending_content.pop(channel)
        event.body = b"".join(parts)
        if event.properties is None:
            event.properties = {}
        return event

    def _track(self, event: Event) -> None:
        """Answers what a client library answers by itself: the broker's closes."""
        if event.name == "Channel.Close":
            self.open_channels.discard(event.channel)
            try:
                self.send_frame(event.channel, C.Channel.CloseOk())
            except Closed:
                pass
        elif event.name == "Channel.CloseOk":
            self.open_channels.discard(event.channel)
        elif event.name == "Channel.OpenOk":
            self.open_channels.add(event.channel)
        elif event.name == "Connection.Close":
            try:
                self.send_frame(0, C.Connection.CloseOk())
            except Closed:
                pass
            self.closed = True
            self.open_channels.clear()

    # ---- handshake ----------------------------------------------------------------------

    def handshake(self, channel_max: int = 0, frame_max: int = 131072, heartbeat: int = 0,
                  vhost: str = "/", user: str = "guest", password: str = "guest") -> None:
        deadline = time.monotonic() + STEP_TIMEOUT_S
        self.write(PROTOCOL_HEADER)
        start = self.next_event(deadline)
        if not isinstance(start, Event) or start.name != "Connection.Start":
            raise RuntimeError(f"{self.label}: no connection.start ({start})")
        response = f"\0{user}\0{password}"
        self.send_frame(0, C.Connection.StartOk(client_properties=CLIENT_PROPERTIES, mechanism="PLAIN",
                                                response=response, locale="en_US"))
        tune = self.next_event(deadline)
        if not isinstance(tune, Event) or tune.name != "Connection.Tune":
            raise RuntimeError(f"{self.label}: no connection.tune ({tune and tune.display()})")
        self.channel_max = channel_max or tune.method.channel_max
        self.frame_max = min(frame_max, tune.method.frame_max or frame_max)
        self.send_frame(0, C.Connection.TuneOk(channel_max=self.channel_max, frame_max=self.frame_max,
                                               heartbeat=heartbeat))
        self.send_frame(0, C.Connection.Open(virtual_host=vhost))
        ok = self.next_event(deadline)
        if not isinstance(ok, Event) or ok.name != "Connection.OpenOk":
            raise RuntimeError(f"{self.label}: no connection.open-ok ({ok and ok.display()})")

    def async_of(self, channel: int) -> ChannelAsync:
        return self.asyncs.setdefault(channel, ChannelAsync())


class _Raw:
    """Something on the wire that is not a method (shown in transcripts as it is)."""

    __slots__ = ("name", "data")

    def __init__(self, name: str, data: bytes):
        self.name = name
        self.data = data


def _method_label(method) -> str:
    fields = {k: v for k, v in method_fields(method).items()
              if v not in (None, "", 0, False, {}) and k not in ("ticket", "reserved_1")}
    return f"{method.name} {fields}" if fields else method.name


class Session:
    """What one scenario does against one broker, and the transcript of what came back."""

    def __init__(self, addr: tuple[str, int], suffix: str):
        self.addr = addr
        self.suffix = suffix
        self.steps: list[dict] = []
        self.conns: list[Conn] = []
        self.conn = self.connect()

    def n(self, name: str) -> str:
        """A name private to this scenario (both brokers get the same one)."""
        return f"{name}-{self.suffix}"

    def connect(self, **tune) -> Conn:
        conn = Conn(self, f"c{len(self.conns)}", **tune)
        self.conns.append(conn)
        return conn

    # ---- steps --------------------------------------------------------------------------

    def _record(self, label: str, conn: Conn, events: list, note: str | None = None) -> list:
        prefix = "" if conn is self.conns[0] else f"[{conn.label}] "
        self.steps.append({
            "step": prefix + label,
            "got": [e.normal() if isinstance(e, Event) else e for e in events] + ([note] if note else []),
            "shown": [e.display() if isinstance(e, Event) else str(e) for e in events] + ([note] if note else []),
        })
        return events

    def _collect(self, conn: Conn, until, timeout_s: float = STEP_TIMEOUT_S) -> tuple[list, str | None]:
        """Sync events until `until(event)` holds (that event included); async ones go aside."""
        events: list = []
        deadline = time.monotonic() + timeout_s
        while True:
            if conn.closed and not conn.buf:
                return events, "connection closed"
            got = conn.next_event(deadline)
            if got is None:
                return events, "socket closed by the broker"
            if got == "timeout":
                return events, "no answer"
            if got.name in ASYNC_METHODS:
                conn.async_of(got.channel).record(got)
                if until(got):
                    return events, None
                continue
            if isinstance(got.method, _Raw):
                events.append(f"{got.method.name} {got.method.data!r}")
                continue
            if until(got):
                if not getattr(got, "_barrier", False):
                    events.append(got)
                return events, None
            events.append(got)
            if got.name == "Connection.Close":
                # We answered close-ok; like a client library, we are done with the socket.
                return events, None

    def _barrier(self, conn: Conn, channel: int, sent: str | None):
        """Sends a barrier and returns the predicate that recognises its answer. The barrier
        changes nothing and answers with a method the step itself cannot answer with: a
        passive declare of `amq.direct`, or after an exchange.declare, the unbind of a binding
        that does not exist."""
        if conn.closed or channel not in conn.open_channels:
            return None
        if sent == "Exchange.Declare":
            conn.send_frame(channel, filled(C.Exchange.Unbind(destination="amq.fanout", source="amq.direct",
                                                              routing_key="differential-barrier")))
            answer = "Exchange.UnbindOk"
        else:
            conn.send_frame(channel, filled(C.Exchange.Declare(exchange="amq.direct", passive=True)))
            answer = "Exchange.DeclareOk"

        def until(event: Event) -> bool:
            if event.channel == channel and event.name == answer:
                event._barrier = True
                return True
            return event.channel == channel and event.name == "Channel.Close"

        return until

    def _settle(self, conn: Conn, label: str, channel: int, sent: str | None = None,
                quiet_s: float = 0.3) -> list:
        """Records a step's answers: up to the barrier, or (without an open channel to put one
        on) whatever comes within `quiet_s`, or until the connection closes."""
        try:
            until = self._barrier(conn, channel, sent)
        except Closed:
            until = None
        if until is None:
            events, note = self._collect(conn, lambda e: False, timeout_s=quiet_s)
            if note == "no answer":
                note = None
        else:
            events, note = self._collect(conn, until)
        return self._record(label, conn, events, note)

    def call(self, channel: int, method, conn: Conn | None = None) -> list:
        """Sends one method and records every answer to it."""
        conn = conn or self.conn
        label = f"ch{channel} {_method_label(method)}"
        try:
            conn.send_frame(channel, method)
        except Closed:
            return self._record(label, conn, [], "not sent: connection closed")
        if method.name == "Channel.Open":
            return self._record(label, conn, *self._wait_open(conn, channel))
        if method.name in ("Channel.Close",):
            events, note = self._collect(conn, lambda e: e.channel == channel and e.name == "Channel.CloseOk",
                                         timeout_s=STEP_TIMEOUT_S)
            conn.open_channels.discard(channel)
            return self._record(label, conn, events, note)
        answer = ANSWERED_OUT_OF_ORDER.get(method.name)
        if answer and not getattr(method, "nowait", False) and channel in conn.open_channels:
            # RabbitMQ's queue process sends these answers, out of order with the channel's
            # other replies: so wait for the answer (or the close) instead of a barrier.
            events, note = self._collect(
                conn, lambda e: e.channel == channel and e.name in (answer, "Channel.Close"))
            return self._record(label, conn, events, note)
        if method.name == "Connection.Close":
            events, note = self._collect(conn, lambda e: e.channel == 0 and e.name == "Connection.CloseOk")
            conn.closed = True
            return self._record(label, conn, events, note)
        return self._settle(conn, label, channel, method.name)

    def _wait_open(self, conn: Conn, channel: int):
        def until(e: Event) -> bool:
            return (e.channel == channel and e.name in ("Channel.OpenOk", "Channel.Close")) or \
                e.name == "Connection.Close"
        events, note = self._collect(conn, until)
        if events and events[-1].name == "Channel.OpenOk":
            conn.open_channels.add(channel)
        return events, note

    def open(self, channel: int = 1, conn: Conn | None = None) -> list:
        return self.call(channel, C.Channel.Open(), conn)

    def publish(self, channel: int, exchange: str = "", routing_key: str = "", body: bytes = b"",
                mandatory: bool = False, immediate: bool = False, conn: Conn | None = None,
                frame_size: int | None = None, body_size: int | None = None, settle: bool = True,
                **properties) -> list:
        """basic.publish with its content: the body in frames of `frame_size` (default: as large
        as frame_max allows); `body_size` announces another size than the body's."""
        conn = conn or self.conn
        props = C.Basic.Properties(**properties)
        method = C.Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=mandatory,
                                 immediate=immediate)
        label = f"ch{channel} publish {exchange!r} {routing_key!r} {body_summary(body)!r}"
        extra = {k: v for k, v in properties.items()}
        if extra:
            label += f" {extra}"
        if mandatory:
            label += " mandatory"
        try:
            data = marshal(method, channel)
            data += pframe.marshal(pheader.ContentHeader(0, len(body) if body_size is None else body_size, props),
                                   channel)
            chunk = frame_size or (conn.frame_max - 8)
            for i in range(0, len(body), chunk):
                data += pframe.marshal(pbody.ContentBody(body[i:i + chunk]), channel)
            conn.write(data)
        except Closed:
            return self._record(label, conn, [], "not sent: connection closed")
        if not settle:
            return []
        return self._settle(conn, label, channel)

    def raw(self, data: bytes, label: str, channel: int = 0, conn: Conn | None = None) -> list:
        """Sends bytes as they are (a malformed frame, a frame on an odd channel)."""
        conn = conn or self.conn
        try:
            conn.write(data)
        except Closed:
            return self._record(label, conn, [], "not sent: connection closed")
        return self._settle(conn, label, channel)

    def wait_deliveries(self, channel: int, count: int, conn: Conn | None = None, timeout_s: float = 3.0) -> list:
        """Waits until `count` deliveries arrived on the channel in all (deadline: `timeout_s`)."""
        conn = conn or self.conn
        asyncs = conn.async_of(channel)
        label = f"ch{channel} wait for {count} deliveries"
        if len(asyncs.deliveries) >= count:
            return self._record(label, conn, [])
        events, note = self._collect(conn, lambda e: len(asyncs.deliveries) >= count, timeout_s)
        if note:
            note = f"{note} ({len(asyncs.deliveries)} delivered)"
        return self._record(label, conn, events, note)

    def wait_confirms(self, channel: int, count: int, conn: Conn | None = None) -> list:
        """Waits until the first `count` publishes of the channel are confirmed (ack or nack)."""
        conn = conn or self.conn
        asyncs = conn.async_of(channel)
        label = f"ch{channel} wait for {count} confirms"

        def done(_e=None) -> bool:
            return all(t in asyncs.confirms for t in range(1, count + 1))

        if done():
            return self._record(label, conn, [])
        events, note = self._collect(conn, done)
        return self._record(label, conn, events, note)

    def close_after_writes(self, channel: int, publishes: int, conn: Conn | None = None) -> list:
        """connection.close with publishes of `channel` written right behind it, then more writes
        after close-ok: what a client with frames in flight does."""
        conn = conn or self.conn
        label = f"connection.close with {publishes} publishes behind it"
        publish = marshal(C.Basic.Publish(exchange="", routing_key="nowhere"), channel)
        publish += pframe.marshal(pheader.ContentHeader(0, 3, C.Basic.Properties()), channel)
        publish += pframe.marshal(pbody.ContentBody(b"abc"), channel)
        try:
            conn.write(marshal(C.Connection.Close(reply_code=200, reply_text="bye"), 0) + publish * publishes)
        except Closed:
            return self._record(label, conn, [], "not sent: connection closed")
        events, note = self._collect(conn, lambda e: e.channel == 0 and e.name == "Connection.CloseOk")
        outcome = "writes after close-ok accepted"
        try:
            for _ in range(5):
                conn.sock.sendall(publish * 50)
                time.sleep(0.02)
        except OSError as e:
            outcome = f"write after close-ok failed: {errno.errorcode.get(e.errno, e)}"
        conn.closed = True
        return self._record(label, conn, events, note or outcome)

    def finish(self) -> dict:
        """Closes what is still open and returns the transcript."""
        for conn in self.conns:
            if not conn.closed and conn.handshaken:
                self.call(0, C.Connection.Close(reply_code=200, reply_text="done"), conn)
        asyncs = {}
        for conn in self.conns:
            for channel, a in sorted(conn.asyncs.items()):
                normal = a.normal()
                if any(normal.values()):
                    asyncs[f"{conn.label} ch{channel}"] = normal
            try:
                conn.sock.close()
            except OSError:
                pass
        return {"steps": self.steps, "async": asyncs}
