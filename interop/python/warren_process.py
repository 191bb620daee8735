"""A Warren process for the interop tests that need brokers of their own (to kill them, or to
give them a configuration): started from WARREN_BIN on ports 0 with a data directory that
outlives it, its addresses read from its "ready" log line."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pika

READY_TIMEOUT_S = 30


class Broker:
    """One Warren process on ports 0 and a data directory that outlives it."""

    def __init__(self, data_dir: str, config: str | None = None, store_dir: str | None = None):
        self.data_dir = data_dir
        self.config = config
        # The broker's own data directory: under data_dir unless given (a small disk, say).
        self.store_dir = store_dir or os.path.join(data_dir, "d")
        self.proc = None
        self.start()

    def start(self):
        self.log_path = os.path.join(self.data_dir, f"broker-{time.monotonic_ns()}.log")
        self.log = open(self.log_path, "w")
        args = [os.environ["WARREN_BIN"], "server", "--amqp-port", "0", "--http-port", "0",
                "--data-dir", self.store_dir]
        if self.config:
            args += ["-c", self.config]
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            text = re.sub(r"\x1b\[[0-9;]*m", "", open(self.log_path).read())
            amqp = re.search(r'amqp_addr="?[^" ]*:(\d+)', text)
            http = re.search(r'http_addr="?[^" ]*:(\d+)', text)
            if amqp and http:
                self.amqp_port, self.http_port = int(amqp.group(1)), int(http.group(1))
                amqps = re.search(r'amqps_addr="?[^" ]*:(\d+)', text)
                https = re.search(r'https_addr="?[^" ]*:(\d+)', text)
                self.amqps_port = int(amqps.group(1)) if amqps else None
                self.https_port = int(https.group(1)) if https else None
                return
            assert self.proc.poll() is None, f"the broker exited: {text[-2000:]}"
            assert time.monotonic() < deadline, f"the broker was not ready in {READY_TIMEOUT_S}s: {text[-2000:]}"
            time.sleep(0.05)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def connect(self) -> pika.BlockingConnection:
        return pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", self.amqp_port, blocked_connection_timeout=30))

    def api(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=data, method=method)
        req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
                return resp.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")


@contextlib.contextmanager
def own_broker(prefix: str):
    """A broker of one's own on a fresh data directory, stopped (and the directory removed)
    after the `with` block."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        broker = Broker(tmp)
        try:
            yield broker
        finally:
            broker.stop()
