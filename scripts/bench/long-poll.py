#!/usr/bin/env python3
"""Issue 21, target 3: what 10,000 long-polling status reads cost the broker.

Publishes one tracked message over HTTP to a queue nobody consumes, opens WAITERS keep-alive
connections that each long-poll its status (`GET /api/messages/{id}?wait=60&version=V`), then:
1. idle: the broker's CPU and RSS over a few seconds with every waiter parked;
2. busy elsewhere: the broker's CPU while AMQP traffic and HTTP publishes of *other* tracked
   messages run (a change must wake only the waiters of its own message);
3. the change: the message is consumed, and the time until every waiter has its answer.

    scripts/bench/long-poll.py [--waiters N] [--bin PATH] [--json OUT]
"""

import argparse
import asyncio
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024


def http(base, method, path, body=None, headers=None):
    req = urllib.request.Request(base + path, data=body, method=method, headers=headers or {})
    req.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")  # guest:guest
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, json.loads(r.read() or b"null")


async def waiter(host, port, path, opened, answered):
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    await writer.drain()
    opened.append(1)
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(re.search(rb"content-length: *(\d+)", head, re.I).group(1))
    status = json.loads(await reader.readexactly(length))
    answered.append((time.monotonic(), status))
    writer.close()


async def run(a, broker, http_port, amqp_port):
    base = f"http://127.0.0.1:{http_port}"
    pid = broker.pid
    http(base, "PUT", "/api/queues/%2F/long-poll-target", json.dumps({"durable": True}).encode(),
         {"Content-Type": "application/json"})
    _, published = http(base, "POST", "/api/vhosts/%2F/exchanges/amq.default/messages?routing_key=long-poll-target",
                        b"0123456789abcdef", {"Content-Type": "text/plain"})
    url = published["status_url"]
    _, status = http(base, "GET", url)
    path = f"{url}?wait=60&version={status['version']}"
    idle_before = rss_mb(pid)
    opened, answered = [], []
    tasks = []
    for i in range(a.waiters):
        tasks.append(asyncio.create_task(waiter("127.0.0.1", http_port, path, opened, answered)))
        if i % 200 == 199:
            await asyncio.sleep(0.01)
    deadline = time.monotonic() + 120
    while len(opened) < a.waiters and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    # Every request sent; they are parked once the broker has stopped working on them: wait
    # (at most 30 s) for a quiet half second before measuring the idle cost.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        c0 = cpu_s(pid)
        await asyncio.sleep(0.5)
        if cpu_s(pid) - c0 < 0.01:
            break
    rss_parked = rss_mb(pid)
    c0, t0 = cpu_s(pid), time.monotonic()
    await asyncio.sleep(a.idle_s)
    idle_cpu = (cpu_s(pid) - c0) / (time.monotonic() - t0)
    # Other traffic: AMQP publishes and consumes, and HTTP publishes of other tracked messages.
    loop = asyncio.get_running_loop()
    c0, t0 = cpu_s(pid), time.monotonic()
    perf = await asyncio.create_subprocess_exec(
        a.bin, "perf", "--addr", f"127.0.0.1:{amqp_port}", "--count", "300000", "--size", "16",
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    other = 0
    while perf.returncode is None:
        await loop.run_in_executor(None, lambda: http(
            base, "POST", "/api/vhosts/%2F/exchanges/amq.default/messages?routing_key=nowhere", b"x",
            {"Content-Type": "text/plain"}))
        other += 1
        try:
            await asyncio.wait_for(perf.wait(), 0.001)
        except asyncio.TimeoutError:
            pass
    busy_s = time.monotonic() - t0
    busy_cpu = (cpu_s(pid) - c0) / busy_s
    perf_out = json.loads((await perf.stdout.read()).decode().strip().splitlines()[-1])
    still_waiting = a.waiters - len(answered)
    # The change: take the message; every waiter must answer.
    t_change = time.monotonic()
    http(base, "POST", "/api/vhosts/%2F/queues/long-poll-target/receive?max=1", b"", {})
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    last = max(t for t, _ in answered)
    changed = sum(1 for _, s in answered if s["version"] > status["version"])
    return {
        "waiters": a.waiters,
        "rss_mb_idle": round(idle_before, 1),
        "rss_mb_parked": round(rss_parked, 1),
        "bytes_per_waiter": round((rss_parked - idle_before) * 1024 * 1024 / a.waiters),
        "idle_cpu_percent": round(100 * idle_cpu, 2),
        "busy_elsewhere_cpu_percent": round(100 * busy_cpu, 1),
        "busy_elsewhere_amqp_msgs_per_s": perf_out.get("end_to_end_msgs_per_s"),
        "busy_elsewhere_http_publishes": other,
        "answered_before_the_change": a.waiters - still_waiting,
        "answered_after_the_change": changed,
        "all_answered_ms": round((last - t_change) * 1000, 1),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--waiters", type=int, default=10_000)
    ap.add_argument("--idle-s", type=float, default=5.0)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/warren"))
    ap.add_argument("--json")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = tempfile.mkdtemp(prefix="long-poll.")
    config = os.path.join(work, "warren.toml")
    with open(config, "w") as f:
        f.write(f"[limits]\nconnection_rate_per_address = 0\n[http]\nmax_connections = {a.waiters + 100}\n")
    log = open(os.path.join(work, "warren.log"), "w")
    broker = subprocess.Popen([a.bin, "server", "--bind", "127.0.0.1", "--amqp-port", "0", "--http-port", "0",
                               "--data-dir", os.path.join(work, "data"), "--config", config, "--log", "info"],
                              stderr=log, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = open(log.name).read()
            if "warren ready" in text:
                break
            time.sleep(0.05)
        amqp_port = re.search(r"amqp_addr=\S+:(\d+)", text).group(1)
        http_port = re.search(r"http_addr=\S+:(\d+)", text).group(1)
        figures = asyncio.run(run(a, broker, int(http_port), amqp_port))
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(timeout=60)
        subprocess.run(["rm", "-rf", work])
    print(json.dumps(figures))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
