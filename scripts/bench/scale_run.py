#!/usr/bin/env python3
"""One broker's scale-of-costs runs (called by scripts/bench/scale.sh): `warren perf` with 1 to
10,000 queues (one producer and one consumer each, over at most 100 connections of each kind),
with up to 10,000 idle connections open, and through a topic exchange with up to 100,000
bindings. For each run, the rate, and the broker's CPU per message and peak RSS read from /proc
over exactly the measured part of the run (set-up excluded).

    scale_run.py --broker NAME --port PORT --pid PID --perf WARREN_BIN --round N --out FILE.jsonl
                 [--total MESSAGES] [--kind queues|idle_connections|topic_bindings]

Pick --total so that each run lasts a few seconds (the CPU is read from /proc every 100 ms).
"""

import argparse
import json
import subprocess
import sys
import threading
import time

TICKS_PER_S = 100

SCENARIOS = (
    [("queues", n) for n in (1, 100, 1000, 10_000)]
    + [("idle_connections", n) for n in (0, 1000, 10_000)]
    + [("topic_bindings", n) for n in (1, 1000, 100_000)]
)


def perf_args(kind, n, total):
    if kind == "queues" and n > 1:
        producers = min(n, 100)
        return ["--queue-count", str(n), "--producers", str(producers), "--count", str(total // producers)]
    extra = {"idle_connections": ["--idle-connections"], "topic_bindings": ["--topic-bindings"]}.get(kind)
    return (extra + [str(n)] if extra and n else []) + ["--count", str(total)]


def proc_sample(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    with open(f"/proc/{pid}/status") as f:
        rss_kb = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    return time.time() * 1000, ticks, rss_kb


def main():
    ap = argparse.ArgumentParser()
    for name in ("--broker", "--perf", "--out"):
        ap.add_argument(name, required=True)
    for name in ("--port", "--pid", "--round"):
        ap.add_argument(name, type=int, required=True)
    ap.add_argument("--total", type=int, default=1_000_000)
    ap.add_argument("--kind", choices=sorted({k for k, _ in SCENARIOS}), help="only these runs")
    a = ap.parse_args()
    for kind, n in SCENARIOS:
        if a.kind and kind != a.kind:
            continue
        samples, stop = [], threading.Event()

        def sample():
            while not stop.is_set():
                samples.append(proc_sample(a.pid))
                stop.wait(0.1)

        t = threading.Thread(target=sample)
        t.start()
        run = subprocess.run([a.perf, "perf", "--addr", f"127.0.0.1:{a.port}", "--size", "16", "--timeout-s", "900"]
                             + perf_args(kind, n, a.total), capture_output=True, text=True)
        stop.set()
        t.join()
        row = {"broker": a.broker, "round": a.round, "kind": kind, "count": n}
        if run.returncode != 0:
            row["error"] = run.stderr.strip()[-300:]
        else:
            r = json.loads(run.stdout.strip().splitlines()[-1])
            t0, t1 = r["started_unix_ms"], r["finished_unix_ms"]
            # The CPU between the first and last samples inside the measured part of the run.
            inside = [s for s in samples if t0 <= s[0] <= t1]
            if len(inside) < 5:
                row["error"] = f"a run of {t1 - t0} ms is too short to read the broker's CPU: raise --total"
                inside = samples
            first, last = inside[0], inside[-1]
            cpu_share = (last[1] - first[1]) / TICKS_PER_S / max((last[0] - first[0]) / 1000, 1e-3)
            rate = r["end_to_end_msgs_per_s"]
            row.update({
                "msgs_per_s": rate,
                "broker_cpu_us_per_msg": round(cpu_share * 1e6 / max(rate, 1), 2),
                "broker_cpu_percent": round(100 * cpu_share),
                "peak_rss_mb": round(max(s[2] for s in inside) / 1024, 1),
                "tool_cpu_percent": r.get("tool_cpu_percent"),
            })
        print(json.dumps(row), flush=True)
        with open(a.out, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    sys.exit(main())
