"""The management API with an unmodified management client: the `rabbitmqadmin` that Debian's
rabbitmq-server package ships (RabbitMQ 3.10's), run as a command against Warren's HTTP port.

Needs WARREN_HTTP_PORT (interop/run.sh sets it) and rabbitmqadmin on the PATH (`.ci/run`
installs rabbitmq-server before the interop suites; elsewhere these tests are skipped unless
CI is set, where a missing rabbitmqadmin fails them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import pika
import pytest

HTTP_PORT = os.environ.get("WARREN_HTTP_PORT")
AMQP_PORT = int(os.environ.get("WARREN_AMQP_PORT", "0"))
ADMIN = shutil.which("rabbitmqadmin")

if not HTTP_PORT:
    pytest.skip("WARREN_HTTP_PORT is not set (run via interop/run.sh)", allow_module_level=True)
if not ADMIN:
    if os.environ.get("CI"):
        raise RuntimeError("rabbitmqadmin is not installed (apt-get install rabbitmq-server)")
    pytest.skip("rabbitmqadmin is not installed", allow_module_level=True)


def admin(*args: str, check: bool = True) -> str:
    cmd = [ADMIN, "-H", "127.0.0.1", "-P", HTTP_PORT, "-u", "guest", "-p", "guest", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({done.returncode}): {done.stdout}{done.stderr}")
    return done.stdout


def listed(kind: str, *columns: str) -> list[dict]:
    return json.loads(admin("-f", "raw_json", "list", kind, *columns))


@pytest.fixture
def names():
    suffix = uuid.uuid4().hex[:8]
    made = {"queue": f"admin-q-{suffix}", "exchange": f"admin-x-{suffix}"}
    yield made
    admin("delete", "queue", f"name={made['queue']}", check=False)
    admin("delete", "exchange", f"name={made['exchange']}", check=False)


def test_declare_bind_publish_get_purge_delete(names):
    q, x = names["queue"], names["exchange"]
    assert "queue declared" in admin("declare", "queue", f"name={q}", "durable=true", 'arguments={"x-max-length": 100}')
    assert "exchange declared" in admin("declare", "exchange", f"name={x}", "type=topic")
    assert "binding declared" in admin("declare", "binding", f"source={x}", f"destination={q}", "routing_key=orders.*")
    assert "Message published" in admin("publish", f"exchange={x}", "routing_key=orders.new", "payload=hello",
                                        'properties={"content_type": "text/plain", "headers": {"n": 1}}')
    queue = next(item for item in listed("queues") if item["name"] == q)
    assert queue["messages"] == 1 and queue["durable"] is True and queue["arguments"] == {"x-max-length": 100}
    binding = next(b for b in listed("bindings") if b["source"] == x)
    assert (binding["destination"], binding["routing_key"]) == (q, "orders.*")

    got = json.loads(admin("-f", "raw_json", "get", f"queue={q}", "ackmode=ack_requeue_true"))
    assert got[0]["payload"] == "hello" and got[0]["properties"]["headers"] == {"n": 1}
    assert "queue purged" in admin("purge", "queue", f"name={q}")
    assert next(item for item in listed("queues") if item["name"] == q)["messages"] == 0
    assert "binding deleted" in admin("delete", "binding", f"source={x}", f"destination={q}",
                                      "destination_type=queue", "properties_key=orders.*")
    assert "queue deleted" in admin("delete", "queue", f"name={q}")
    assert "exchange deleted" in admin("delete", "exchange", f"name={x}")
    assert all(item["name"] != q for item in listed("queues"))


def test_close_a_connection_with_a_reason():
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", AMQP_PORT))
    try:
        port = conn._impl._transport._sock.getsockname()[1]  # noqa: SLF001
        mine = next(c for c in listed("connections") if c["peer_port"] == port)
        assert mine["user"] == "guest" and mine["client_properties"]["product"].startswith("Pika")
        assert "connection closed" in admin("close", "connection", f"name={mine['name']}")
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
            conn.process_data_events(time_limit=5)
            conn.process_data_events(time_limit=5)
        assert closed.value.reply_code == 320
    finally:
        if conn.is_open:
            conn.close()


def test_overview_users_permissions_and_export(tmp_path):
    overview = json.loads(admin("-f", "raw_json", "show", "overview"))
    assert overview[0]["product_name"] == "Warren"
    users = listed("users")
    assert any(u["name"] == "guest" and "administrator" in u["tags"] for u in users)
    assert any(p["user"] == "guest" and p["vhost"] == "/" for p in listed("permissions"))
    assert any(v["name"] == "/" for v in listed("vhosts"))
    target = tmp_path / "defs.json"
    admin("export", str(target))
    defs = json.loads(target.read_text())
    assert defs["users"][0]["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    assert {"queues", "exchanges", "bindings", "permissions", "vhosts"} <= set(defs)
    # Importing it back changes nothing and is accepted (RabbitMQ's import format both ways).
    assert "Uploaded definitions" in admin("import", str(target))
    assert any(u["name"] == "guest" for u in listed("users"))


def test_vhosts_users_and_permissions():
    suffix = uuid.uuid4().hex[:8]
    vhost, user = f"admin-v-{suffix}", f"admin-u-{suffix}"
    try:
        assert "vhost declared" in admin("declare", "vhost", f"name={vhost}")
        assert "user declared" in admin("declare", "user", f"name={user}", "password=pw", "tags=management")
        assert "permission declared" in admin("declare", "permission", f"vhost={vhost}", f"user={user}",
                                              "configure=^app\\.", "write=.*", "read=.*")
        assert any(v["name"] == vhost for v in listed("vhosts"))
        mine = next(p for p in listed("permissions") if p["user"] == user)
        assert (mine["vhost"], mine["configure"]) == (vhost, "^app\\.")
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", AMQP_PORT, vhost, pika.PlainCredentials(user, "pw")))
        ch = conn.channel()
        ch.queue_declare("app.allowed")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            ch.queue_declare("other")
        assert refused.value.reply_code == 403
        conn.close()
        assert "permission deleted" in admin("delete", "permission", f"vhost={vhost}", f"user={user}")
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
            pika.BlockingConnection(pika.ConnectionParameters(
                "127.0.0.1", AMQP_PORT, vhost, pika.PlainCredentials(user, "pw")))
    finally:
        admin("delete", "user", f"name={user}", check=False)
        admin("delete", "vhost", f"name={vhost}", check=False)
    assert all(v["name"] != vhost for v in listed("vhosts"))
    assert all(u["name"] != user for u in listed("users"))


def test_policies_and_operator_policies():
    suffix = uuid.uuid4().hex[:8]
    queue, policy, cap = f"pol-q-{suffix}", f"pol-{suffix}", f"cap-{suffix}"
    try:
        assert "queue declared" in admin("declare", "queue", f"name={queue}")
        assert "policy declared" in admin("declare", "policy", f"name={policy}", f"pattern=^{queue}$",
                                          'definition={"max-length": 2}', "priority=5", "apply-to=queues")
        assert "operator_policy declared" in admin("declare", "operator_policy", f"name={cap}", "pattern=^pol-",
                                                   'definition={"max-length": 1}', "apply-to=queues")
        mine = next(p for p in listed("policies") if p["name"] == policy)
        assert (mine["pattern"], mine["definition"], mine["priority"]) == (f"^{queue}$", {"max-length": 2}, 5)
        assert any(p["name"] == cap for p in listed("operator_policies"))
        # Applied at once: the queue keeps one message, the lower of the two limits.
        for n in range(3):
            admin("publish", "exchange=amq.default", f"routing_key={queue}", f"payload=m{n}")
        shown = next(item for item in listed("queues") if item["name"] == queue)
        assert (shown["policy"], shown["operator_policy"], shown["messages"]) == (policy, cap, 1)
        assert "policy deleted" in admin("delete", "policy", f"name={policy}")
        assert "operator_policy deleted" in admin("delete", "operator_policy", f"name={cap}")
        assert all(p["name"] != policy for p in listed("policies"))
    finally:
        admin("delete", "policy", f"name={policy}", check=False)
        admin("delete", "operator_policy", f"name={cap}", check=False)
        admin("delete", "queue", f"name={queue}", check=False)
