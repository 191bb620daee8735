"""The management API with a published management-API library: pyrabbit2 (PyPI), written for
RabbitMQ's HTTP API, used unchanged against Warren's HTTP port.

Needs WARREN_HTTP_PORT and WARREN_AMQP_PORT (interop/run.sh sets them) and pyrabbit2 (`.ci/run`
installs it; elsewhere these tests are skipped unless CI is set).
"""

from __future__ import annotations

import os
import uuid

import pika
import pytest

HTTP_PORT = os.environ.get("WARREN_HTTP_PORT")
AMQP_PORT = int(os.environ.get("WARREN_AMQP_PORT", "0"))

if not HTTP_PORT:
    pytest.skip("WARREN_HTTP_PORT is not set (run via interop/run.sh)", allow_module_level=True)
try:
    from pyrabbit2.api import Client
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("pyrabbit2 is not installed", allow_module_level=True)


@pytest.fixture
def client():
    return Client(f"127.0.0.1:{HTTP_PORT}", "guest", "guest", timeout=10)


def test_overview_and_liveness(client):
    assert client.is_alive()
    assert client.get_overview()["product_name"] == "Warren"
    assert client.get_whoami()["name"] == "guest"
    assert "/" in client.get_vhost_names()


def test_queues_exchanges_bindings_and_messages(client):
    suffix = uuid.uuid4().hex[:8]
    queue, exchange = f"pyrabbit-q-{suffix}", f"pyrabbit-x-{suffix}"
    client.create_queue("/", queue, durable=True)
    client.create_exchange("/", exchange, "topic", durable=True)
    client.create_binding("/", exchange, queue, "orders.#")
    try:
        assert client.publish("/", exchange, "orders.new", "hello")
        assert client.get_queue_depth("/", queue) == 1
        got = client.get_messages("/", queue, count=1, requeue=True)
        assert got[0]["payload"] == "hello" and got[0]["routing_key"] == "orders.new"
        assert any(b["routing_key"] == "orders.#" for b in client.get_queue_bindings("/", queue))
        client.purge_queue("/", queue)
        assert client.get_queue_depth("/", queue) == 0
    finally:
        client.delete_queue("/", queue)
        client.delete_exchange("/", exchange)
    assert all(q["name"] != queue for q in client.get_queues("/"))


def test_users_permissions_policies_and_connections(client):
    suffix = uuid.uuid4().hex[:8]
    user, vhost, policy = f"pyrabbit-u-{suffix}", f"pyrabbit-v-{suffix}", f"pyrabbit-p-{suffix}"
    client.create_vhost(vhost)
    client.create_user(user, "pw", tags="management")
    client.set_vhost_permissions(vhost, user, "^app\\.", ".*", ".*")
    try:
        assert client.get_permission(vhost, user)["configure"] == "^app\\."
        client.create_policy(vhost, policy, pattern="^app\\.", definition={"max-length": 10}, priority=1,
                             **{"apply-to": "queues"})
        assert client.get_policy(vhost, policy)["definition"] == {"max-length": 10}
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", AMQP_PORT, vhost, pika.PlainCredentials(user, "pw")))
        try:
            conn.channel().queue_declare("app.jobs")
            assert [c for c in client.get_connections() if c["user"] == user]
        finally:
            conn.close()
        assert any(p["name"] == policy for p in client.get_definitions()["policies"])
        client.delete_policy(vhost, policy)
    finally:
        client.delete_user(user)
        client.delete_vhost(vhost)
    assert vhost not in client.get_vhost_names()
