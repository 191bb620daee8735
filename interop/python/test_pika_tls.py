"""AMQP over TLS and HTTPS through pika and Python's ssl, unchanged: a broker of its own
(WARREN_BIN) with certificates made by openssl at test time (a CA, the server's, a client's),
a PLAIN login over TLS, an EXTERNAL login as the user the client certificate names, a client
certificate of another authority refused, and the management API over HTTPS.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import tempfile
import urllib.request

import pika
import pytest

from warren_process import Broker

if not os.environ.get("WARREN_BIN"):
    pytest.skip("WARREN_BIN is not set (run via interop/run.sh)", allow_module_level=True)


def openssl(*args: str, cwd: str):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def authority(cwd: str, name: str):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}", cwd=cwd)


def issue(cwd: str, ca: str, name: str, cn: str, san: str | None = None):
    """An X.509 v3 certificate (webpki takes no v1): for a server with `san`, else for a client."""
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=cwd)
    usage = f"subjectAltName={san}\nextendedKeyUsage=serverAuth" if san else "extendedKeyUsage=clientAuth"
    with open(os.path.join(cwd, f"{name}.ext"), "w") as f:
        f.write(f"basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n{usage}\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=cwd)


@pytest.fixture(scope="module")
def tls_broker():
    with tempfile.TemporaryDirectory(prefix="warren-tls-") as tmp:
        authority(tmp, "ca")
        authority(tmp, "stranger")
        issue(tmp, "ca", "server", "localhost", "DNS:localhost,IP:127.0.0.1")
        issue(tmp, "ca", "client", "guest")
        issue(tmp, "stranger", "mallory", "guest")
        config = os.path.join(tmp, "warren.toml")
        with open(config, "w") as f:
            f.write(f"""[tls]
cert_file = "{tmp}/server.pem"
key_file = "{tmp}/server.key"
ca_file = "{tmp}/ca.pem"
verify_peer = true
amqps_port = 0
https_port = 0
""")
        broker = Broker(tmp, config)
        try:
            assert broker.amqps_port and broker.https_port, "TLS listeners in the ready line"
            broker.files = tmp
            yield broker
        finally:
            broker.stop()


def context(files: str, client: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=os.path.join(files, "ca.pem"))
    if client:
        ctx.load_cert_chain(os.path.join(files, f"{client}.pem"), os.path.join(files, f"{client}.key"))
    return ctx


def round_trip(conn: pika.BlockingConnection):
    ch = conn.channel()
    queue = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", queue, b"over tls")
    method, _, body = ch.basic_get(queue, auto_ack=True)
    assert method is not None and body == b"over tls"


def test_plain_login_over_tls(tls_broker):
    params = pika.ConnectionParameters(
        "localhost", tls_broker.amqps_port, credentials=pika.PlainCredentials("guest", "guest"),
        ssl_options=pika.SSLOptions(context(tls_broker.files), "localhost"))
    conn = pika.BlockingConnection(params)
    round_trip(conn)
    conn.close()


def test_external_login_as_the_user_the_certificate_names(tls_broker):
    params = pika.ConnectionParameters(
        "localhost", tls_broker.amqps_port, credentials=pika.credentials.ExternalCredentials(),
        ssl_options=pika.SSLOptions(context(tls_broker.files, "client"), "localhost"))
    conn = pika.BlockingConnection(params)
    round_trip(conn)
    conn.close()


def test_a_certificate_of_another_authority_is_refused(tls_broker):
    params = pika.ConnectionParameters(
        "localhost", tls_broker.amqps_port, credentials=pika.credentials.ExternalCredentials(),
        ssl_options=pika.SSLOptions(context(tls_broker.files, "mallory"), "localhost"),
        connection_attempts=1)
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(params)


def test_the_management_api_over_https(tls_broker):
    req = urllib.request.Request(f"https://localhost:{tls_broker.https_port}/api/overview")
    req.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")
    with urllib.request.urlopen(req, context=context(tls_broker.files), timeout=30) as resp:
        assert resp.status == 200
        assert json.loads(resp.read())["management_version"]
