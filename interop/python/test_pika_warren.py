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
