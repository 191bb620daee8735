#!/usr/bin/env python3
"""Issue 21, target 2: many persistent 16 B messages queued, then read back.

Publishes COUNT persistent messages with confirms to one durable queue with no consumer, and
reports the broker's RSS above idle (at the end and at its peak), the time a restart takes to
recover them and the RSS after it, then the rate at which one consumer drains them from disk.

Usage: scripts/bench/queued-messages.py [--count N] [--bin PATH] [--json OUT]
The log takes about 50 bytes a message (5 GB for 100 million) in a directory under target/.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Broker:
    def __init__(self, binary, work):
        self.binary, self.work = binary, work
        self.proc = None

    def start(self, timeout_s=1800):
        log = open(os.path.join(self.work, "warren.log"), "a")
        mark = log.tell()
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [self.binary, "server", "--bind", "127.0.0.1", "--amqp-port", "0", "--http-port", "0",
             "--data-dir", os.path.join(self.work, "data"), "--log", "info"],
            stderr=log, stdout=subprocess.DEVNULL)
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            with open(log.name) as f:
                f.seek(mark)
                text = f.read()
            m = re.search(r"amqp_addr=(\S+)", text)
            if "warren ready" in text and m:
                self.addr = m.group(1)
                return time.monotonic() - started
            if self.proc.poll() is not None:
                sys.exit(f"warren exited:\n{text}")
            time.sleep(0.05)
        sys.exit("warren did not start in time")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=600)


def perf(broker, args, timeout_s):
    run = subprocess.run([broker.binary, "perf", "--addr", broker.addr, "--timeout-s", str(timeout_s)] + args,
                         capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"warren perf {' '.join(args)} failed:\n{run.stderr}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def with_peak_rss(pid, work):
    """Runs `work()` while sampling the RSS of `pid`; returns (result, peak MB)."""
    peak, done = [0.0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb(pid))
            done.wait(0.2)

    t = threading.Thread(target=sample)
    t.start()
    try:
        result = work()
    finally:
        done.set()
        t.join()
    return result, max(peak[0], rss_mb(pid))


def settled_rss(pid, seconds=3.0):
    """The RSS once it stops falling (freed memory returned), at most `seconds` later."""
    last, deadline = rss_mb(pid), time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = rss_mb(pid)
        if now >= last:
            return now
        last = now
    return last


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=10_000_000)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/warren"))
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args()
    os.makedirs(os.path.join(ROOT, "target"), exist_ok=True)
    work = tempfile.mkdtemp(prefix="queued-messages.", dir=os.path.join(ROOT, "target"))
    timeout_s = max(600, a.count // 20_000)
    broker = Broker(a.bin, work)
    try:
        broker.start()
        idle = settled_rss(broker.proc.pid)
        queue = ["--queue", "bench-queued", "--size", "16", "--persistent"]
        pub, pub_peak = with_peak_rss(broker.proc.pid, lambda: perf(
            broker, queue + ["--confirm", "1000", "--consumers", "0", "--count", str(a.count)], timeout_s))
        after_publish = settled_rss(broker.proc.pid)
        log_bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(os.path.join(work, "data")) for f in fs)
        broker.stop()
        recovery_s = broker.start()
        after_recovery = settled_rss(broker.proc.pid)
        con, con_peak = with_peak_rss(broker.proc.pid, lambda: perf(
            broker, queue + ["--producers", "0", "--consumers", "1", "--count", str(a.count)], timeout_s))
        broker.stop()
    finally:
        if broker.proc and broker.proc.poll() is None:
            broker.proc.kill()
        shutil.rmtree(work, ignore_errors=True)
    figures = {
        "count": a.count,
        "idle_rss_mb": round(idle, 1),
        "publish_msg_s": pub.get("publish_msgs_per_s"),
        "after_publish_rss_above_idle_mb": round(after_publish - idle, 1),
        "publish_peak_rss_above_idle_mb": round(pub_peak - idle, 1),
        "log_bytes": log_bytes,
        "recovery_s": round(recovery_s, 2),
        "after_recovery_rss_above_idle_mb": round(after_recovery - idle, 1),
        "consume_msg_s": con.get("end_to_end_msgs_per_s"),
        "consume_peak_rss_above_idle_mb": round(con_peak - idle, 1),
    }
    print(json.dumps(figures))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
