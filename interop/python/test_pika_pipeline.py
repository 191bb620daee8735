"""The order pipeline of README's "Splitting and aggregating", through pika, unchanged: an
"order placed" event is split per line by its exchange, each line translated into a warehouse's
pick (a transform) and routed by content to that warehouse's queue; the warehouses' pick
confirmations are aggregated back into one "order ready" message; a malformed line ends in the
dead-letter queue with its reason. Then the same pipeline through a kill -9 in the middle:
nothing lost, nothing aggregated twice.

Each test starts its own broker (WARREN_BIN, which interop/run.sh sets) on a fresh data
directory, so that it can kill it.
"""

from __future__ import annotations

import json
import os
import time

import pika
import pytest

from warren_process import Broker, own_broker

if not os.environ.get("WARREN_BIN"):
    pytest.skip("WARREN_BIN is not set (run via interop/run.sh)", allow_module_level=True)

TO_PICK = """{body: {order: .headers["x-split-id"], line: .headers["x-split-index"],
                     sku: (.body.sku // error("line without sku")), qty: .body.qty,
                     warehouse: .body.warehouse}}"""


@pytest.fixture
def broker():
    with own_broker("warren-pipeline-") as b:
        yield b


def set_up(broker: Broker, timeout_ms: int = 30000):
    """The pipeline: transform, exchanges, queues, bindings and the aggregator, all durable."""
    status, body = broker.api("PUT", "/api/transforms/%2F/to-pick", {"program": TO_PICK})
    assert status == 201, body
    conn = broker.connect()
    ch = conn.channel()
    ch.exchange_declare("order-failures", "fanout", durable=True)
    ch.queue_declare("failed-lines", durable=True)
    ch.queue_bind("failed-lines", "order-failures")
    ch.exchange_declare("orders", "topic", durable=True, arguments={
        "x-split": "body.lines", "x-transform": "to-pick", "x-dead-letter-exchange": "order-failures",
        "x-message-deduplication": True, "x-cache-size": 100000})
    for warehouse in ("north", "south"):
        ch.queue_declare(f"wh-{warehouse}", durable=True)
        ch.queue_bind(f"wh-{warehouse}", "orders", "order.#",
                      arguments={"x-filter": f"body.warehouse = '{warehouse}'"})
    ch.queue_declare("stale-picks", durable=True)
    ch.queue_declare("picked", durable=True, arguments={
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "stale-picks"})
    ch.exchange_declare("order-events", "topic", durable=True,
                        arguments={"x-message-deduplication": True, "x-cache-size": 100000})
    ch.queue_declare("ready", durable=True)
    ch.queue_bind("ready", "order-events", "order.ready")
    conn.close()
    status, body = broker.api("PUT", "/api/aggregators/%2F/order-ready", {
        "queue": "picked", "exchange": "order-events", "routing_key": "order.ready", "timeout_ms": timeout_ms})
    assert status == 201, body


def order(n: int, lines) -> tuple[str, bytes]:
    order_id = f"order-{n}"
    return order_id, json.dumps({"id": order_id, "lines": lines}).encode()


def publish_orders(ch, orders):
    for order_id, body in orders:
        ch.basic_publish("orders", "order.placed", body,
                         pika.BasicProperties(delivery_mode=2, message_id=order_id, content_type="application/json"))


def pick_one(ch, ack: bool = True) -> bool:
    """The warehouses' side: takes one pick, publishes its confirmation (with the pick's split
    headers, so the aggregator can put the order back together), then acks the pick."""
    for queue in ("wh-north", "wh-south"):
        method, props, body = ch.basic_get(queue, auto_ack=False)
        if method is None:
            continue
        pick = json.loads(body)
        split = {k: v for k, v in (props.headers or {}).items() if k.startswith("x-split-")}
        done = {"order": pick["order"], "sku": pick["sku"], "picked": pick["qty"], "by": queue}
        ch.basic_publish("", "picked", json.dumps(done).encode(),
                         pika.BasicProperties(delivery_mode=2, headers=split, content_type="application/json"))
        if ack:
            ch.basic_ack(method.delivery_tag)
        return True
    return False


def count(ch, queue: str) -> int:
    return ch.queue_declare(queue, durable=True, passive=True).method.message_count


def drain(ch, queue: str):
    out = []
    while True:
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append((props, body))


def work_until(ch, done, deadline_s: float, what: str):
    deadline = time.monotonic() + deadline_s
    while not done():
        if not pick_one(ch):
            time.sleep(0.01)
        assert time.monotonic() < deadline, f"timed out waiting for {what}"


def test_an_order_is_split_translated_routed_and_aggregated_and_a_bad_line_dead_lettered(broker):
    set_up(broker)
    conn = broker.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    good = order(1, [{"sku": "A-1", "qty": 2, "warehouse": "north"}, {"sku": "B-7", "qty": 1, "warehouse": "south"},
                     {"sku": "C-3", "qty": 5, "warehouse": "north"}])
    bad = order(2, [{"sku": "D-4", "qty": 1, "warehouse": "south"}, {"qty": 9, "warehouse": "north"}])
    publish_orders(ch, [good, bad])
    assert count(ch, "wh-north") == 2 and count(ch, "wh-south") == 2, "each line at its warehouse"
    work_until(ch, lambda: count(ch, "ready") == 1 and count(ch, "wh-north") + count(ch, "wh-south") == 0, 30,
               "order-1 ready and every pick done")

    (props, body), = drain(ch, "ready")
    assert props.headers["x-aggregate-key"] == "order-1"
    assert props.message_id == "order-ready/order-1"
    assert [(p["sku"], p["by"]) for p in json.loads(body)] == [("A-1", "wh-north"), ("B-7", "wh-south"),
                                                               ("C-3", "wh-north")]
    (props, body), = drain(ch, "failed-lines")
    death = props.headers["x-death"][0]
    assert death["reason"] == "transform_failed"
    assert "line without sku" in props.headers["x-transform-error"]
    assert json.loads(body) == {"qty": 9, "warehouse": "north"}
    assert props.headers["x-split-id"] == "order-2" and props.headers["x-split-index"] == 1
    # order-2 waits for the line that failed: its group stays open until its deadline.
    deadline = time.monotonic() + 10
    while True:
        status, shown = broker.api("GET", "/api/aggregators/%2F/order-ready")
        assert status == 200, shown
        if shown["figures"]["groups_open"] == 1:
            break
        assert time.monotonic() < deadline, shown
        time.sleep(0.01)
    assert shown["figures"]["aggregated"] == 1 and shown["figures"]["parts_held"] == 1
    conn.close()


def test_the_pipeline_loses_nothing_and_aggregates_nothing_twice_across_kill_9s(broker):
    set_up(broker)
    warehouses = ("north", "south")
    orders = [order(n, [{"sku": f"S-{n}-{i}", "qty": i + 1, "warehouse": warehouses[(n + i) % 2]} for i in range(3)])
              for n in range(150)]
    conn = broker.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    publish_orders(ch, orders[:100])
    for threshold in (20, 60):
        work_until(ch, lambda: count(ch, "ready") >= threshold, 60, f"{threshold} orders ready")
        # Mid-flight: a confirmation published and its pick not acked yet, then kill -9.
        assert pick_one(ch, ack=False)
        broker.kill9()
        broker.start()
        conn = broker.connect()
        ch = conn.channel()
        ch.confirm_delivery()
    # A publisher that did not know which orders made it publishes the last ten again (the
    # exchange's durable deduplication window drops them), then the rest.
    publish_orders(ch, orders[90:])
    settled = lambda: sum(count(ch, q) for q in ("wh-north", "wh-south", "picked")) == 0
    work_until(ch, lambda: count(ch, "ready") >= len(orders) and settled(), 90, "every order ready, every pick done")
    ready = drain(ch, "ready")
    keys = sorted(props.headers["x-aggregate-key"] for props, _ in ready)
    assert keys == sorted(order_id for order_id, _ in orders), "each order ready exactly once"
    for props, body in ready:
        parts = json.loads(body)
        assert [p["sku"] for p in parts] == [f"S-{props.headers['x-aggregate-key'][6:]}-{i}" for i in range(3)]
    assert count(ch, "failed-lines") == 0
    conn.close()
