"""Warren's own features through pika, unchanged: content filters on bindings (`x-filter`).
RabbitMQ has no such thing (it ignores the argument), so unlike test_pika.py this file does not
pass against a stock RabbitMQ. Needs WARREN_AMQP_PORT (interop/run.sh sets it).
"""

from __future__ import annotations

import json
import os
import uuid

import pika
import pytest

_PORT = os.environ.get("WARREN_AMQP_PORT")
if not _PORT:
    pytest.skip("WARREN_AMQP_PORT is not set (run via interop/run.sh)", allow_module_level=True)
PORT = int(_PORT)


@pytest.fixture
def channel():
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", PORT, blocked_connection_timeout=30))
    try:
        yield conn.channel()
    finally:
        if conn.is_open:
            conn.close()


def drain(ch, queue: str) -> list[bytes]:
    bodies = []
    while True:
        method, _, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return bodies
        bodies.append(body)


def test_a_filtered_binding_takes_only_what_its_expression_admits(channel):
    suffix = uuid.uuid4().hex[:8]
    exchange, big, rest = f"orders-{suffix}", f"big-{suffix}", f"all-{suffix}"
    channel.exchange_declare(exchange, "topic", auto_delete=True)
    for q in (big, rest):
        channel.queue_declare(q, exclusive=True)
    channel.queue_bind(big, exchange, "orders.#",
                       arguments={"x-filter": "body.total > 100 AND region IN ('eu', 'uk')"})
    channel.queue_bind(rest, exchange, "orders.#")
    channel.confirm_delivery()
    for total, region in [(250, "eu"), (20, "eu"), (300, "us")]:
        channel.basic_publish(exchange, "orders.new", json.dumps({"total": total}).encode(),
                              pika.BasicProperties(headers={"region": region}))
    channel.basic_publish(exchange, "orders.new", b"not json", pika.BasicProperties(headers={"region": "eu"}))
    assert drain(channel, big) == [b'{"total": 250}']
    assert len(drain(channel, rest)) == 4


def test_a_bad_filter_closes_the_channel_with_406(channel):
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
        channel.queue_bind(channel.queue_declare("", exclusive=True).method.queue, "amq.direct", "k",
                           arguments={"x-filter": "total >"})
    assert closed.value.reply_code == 406
    assert "byte 7" in closed.value.reply_text


def test_a_message_breaking_its_contract_is_nacked_and_returned(channel):
    """A contract (created over the management API) refuses a publish: a confirm-mode pika
    channel gets a nack, and with mandatory the message comes back with the violation."""
    import base64
    import urllib.request

    http_port = os.environ.get("WARREN_HTTP_PORT")
    if not http_port:
        pytest.skip("WARREN_HTTP_PORT is not set")
    suffix = uuid.uuid4().hex[:8]
    exchange, queue = f"contracted-{suffix}", f"contracted-q-{suffix}"
    spec = {"exchange": exchange, "content_type": "application/json",
            "schema": {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}}
    req = urllib.request.Request(f"http://127.0.0.1:{http_port}/api/contracts/%2F/order-{suffix}",
                                 data=json.dumps(spec).encode(), method="PUT")
    req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    req.add_header("Content-Type", "application/json")
    try:
        assert urllib.request.urlopen(req, timeout=10).status == 201
        channel.exchange_declare(exchange, "fanout", auto_delete=True)
        channel.queue_declare(queue, exclusive=True)
        channel.queue_bind(queue, exchange)
        channel.confirm_delivery()
        props = pika.BasicProperties(content_type="application/json")
        channel.basic_publish(exchange, "", b'{"id": 1}', props)
        with pytest.raises(pika.exceptions.NackError):
            channel.basic_publish(exchange, "", b'{"id": "one"}', props)
        with pytest.raises(pika.exceptions.NackError) as returned:
            channel.basic_publish(exchange, "", b'{}', props, mandatory=True)
        message = returned.value.messages[0]  # returned with the nack
        assert message.method.reply_text.startswith("CONTRACT_VIOLATION")
        assert drain(channel, queue) == [b'{"id": 1}']
    finally:
        delete = urllib.request.Request(f"http://127.0.0.1:{http_port}/api/contracts/%2F/order-{suffix}", method="DELETE")
        delete.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
        try:
            urllib.request.urlopen(delete, timeout=10)
        except Exception:  # noqa: BLE001 - cleanup only
            pass
