"""Resource alarms through pika, unchanged: with the memory high watermark lowered at run time
(PUT /api/alarms), a publishing connection gets connection.blocked with RabbitMQ's reason, a
consumer on another connection still gets its messages, and once the limit is raised again the
publisher gets connection.unblocked and goes on. A broker of its own (WARREN_BIN): the alarm
blocks every publisher of the broker it is raised on.
"""

from __future__ import annotations

import os
import time

import pika
import pytest

from warren_process import own_broker

if not os.environ.get("WARREN_BIN"):
    pytest.skip("WARREN_BIN is not set (run via interop/run.sh)", allow_module_level=True)


@pytest.fixture
def broker():
    with own_broker("warren-alarms-") as b:
        yield b


def pump_until(conn, done, what: str, deadline_s: float = 10):
    deadline = time.monotonic() + deadline_s
    while not done():
        conn.process_data_events(time_limit=0.05)
        assert time.monotonic() < deadline, f"never {what}"


def test_a_publisher_is_blocked_and_unblocked_while_consumers_drain(broker):
    publisher = broker.connect()
    events = []
    publisher.add_on_connection_blocked_callback(lambda _c, frame: events.append(("blocked", frame.method.reason)))
    publisher.add_on_connection_unblocked_callback(lambda _c, _frame: events.append(("unblocked", None)))
    pch = publisher.channel()
    pch.queue_declare("alarmed")
    pch.basic_publish("", "alarmed", b"before")

    status, alarms = broker.api("PUT", "/api/alarms", {"memory_high_watermark_bytes": 1})
    assert status == 200 and alarms["raised"] == ["memory"], alarms
    pump_until(publisher, lambda: ("blocked", "low on memory") in events, "blocked")

    consumer = broker.connect()
    method, _, body = consumer.channel().basic_get("alarmed", auto_ack=True)
    assert method is not None and body == b"before", "a consumer still gets its messages"

    status, alarms = broker.api("PUT", "/api/alarms", {"memory_high_watermark_bytes": 10**15})
    assert status == 200 and alarms["raised"] == [], alarms
    pump_until(publisher, lambda: ("unblocked", None) in events, "unblocked")
    pch.basic_publish("", "alarmed", b"after")
    deadline = time.monotonic() + 10
    while True:
        method, _, body = consumer.channel().basic_get("alarmed", auto_ack=True)
        if method is not None:
            assert body == b"after"
            break
        assert time.monotonic() < deadline, "the publisher's message after the alarm never came"
        time.sleep(0.01)
    consumer.close()
    publisher.close()
