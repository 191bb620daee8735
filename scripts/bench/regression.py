#!/usr/bin/env python3
"""Performance regression check: short end-to-end runs of `warren perf` against a fresh release
Warren, and the divan micro-benchmarks, compared with the committed baseline
(scripts/bench/regression-baseline.json). Fails (exit 1) on a large drop: a figure worse than
the baseline by more than its tolerance (the baseline file says how much, chosen so that this
machine's run-to-run noise does not trip it). Each end-to-end figure is the best of 3 runs.

    python3 scripts/bench/regression.py [path/to/warren]         check against the baseline
    python3 scripts/bench/regression.py [path/to/warren] --write  record this machine as baseline

Bounded: every run has a timeout; the whole check takes about two minutes after the build.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASELINE = os.path.join(ROOT, "scripts", "bench", "regression-baseline.json")
ROUNDS = 3

# name -> (warren perf arguments, the figure to read); higher is better.
SCENARIOS = {
    "16 B transient, publish only": ("--count 300000 --size 16 --consumers 0", "publish_msgs_per_s"),
    "16 B transient, end-to-end": ("--count 300000 --size 16 --consumers 1", "end_to_end_msgs_per_s"),
    "16 B transient, end-to-end, prefetch 100, one ack per message":
        ("--count 200000 --size 16 --consumers 1 --prefetch 100 --ack-mode manual", "end_to_end_msgs_per_s"),
    "16 B persistent, confirms, publish only":
        ("--count 100000 --size 16 --consumers 0 --persistent --confirm 1000", "publish_msgs_per_s"),
    "RPC round trips, direct reply-to": ("--rpc --direct-reply-to --count 10000 --size 16", "calls_per_s"),
}

# The divan benchmarks that guard the publish path: (package, bench target).
MICRO = [("amqp-codec", "codec"), ("warren-core", "routing"), ("warren-core", "contracts")]


def start_warren(binary, work):
    log = open(os.path.join(work, "warren.log"), "w")
    proc = subprocess.Popen(
        [binary, "server", "--bind", "127.0.0.1", "--amqp-port", "0", "--http-port", "0",
         "--data-dir", os.path.join(work, "data"), "--log", "info"],
        stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.time() + 30
    while time.time() < deadline:
        text = open(os.path.join(work, "warren.log")).read()
        m = re.search(r"amqp_addr=\"?[^\s\"]*:(\d+)", re.sub(r"\x1b\[[0-9;]*m", "", text))
        if m:
            return proc, int(m.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    sys.exit("regression: warren did not start:\n" + open(os.path.join(work, "warren.log")).read())


def end_to_end(binary):
    figures = {}
    with tempfile.TemporaryDirectory() as work:
        proc, port = start_warren(binary, work)
        try:
            for name, (args, key) in SCENARIOS.items():
                best = 0.0
                for _ in range(ROUNDS):
                    out = subprocess.run([binary, "perf", "--addr", f"127.0.0.1:{port}", "--timeout-s", "60"] + args.split(),
                                         capture_output=True, text=True, timeout=90)
                    try:
                        result = json.loads(out.stdout.strip().splitlines()[-1])
                        best = max(best, float(result.get(key) or 0))
                    except (IndexError, ValueError):
                        print(f"regression: {name}: no result ({out.stderr.strip()[-200:]})")
                figures[name] = best
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return figures


UNITS = {"ps": 1e-3, "ns": 1.0, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}
ROW = re.compile(r"^((?:│  |   |├─ |╰─ )*)(\S+)(.*)$")
# After the name: fastest │ slowest │ median; the fastest sample is kept (another process on
# the machine slows samples down, never speeds them up: the fastest is the least noisy).
TIMES = re.compile(r"^\s+([\d.]+) (ps|ns|µs|us|ms|s)\s+│")


def micro():
    """Fastest sample time (ns) of every divan benchmark in MICRO, by 'target/path'."""
    figures = {}
    for package, target in MICRO:
        out = subprocess.run(["cargo", "bench", "-q", "-p", package, "--bench", target, "--", "--sample-count", "50"],
                             cwd=ROOT, capture_output=True, text=True, timeout=900)
        if out.returncode != 0:
            sys.exit(f"regression: cargo bench -p {package} --bench {target} failed:\n{out.stderr[-2000:]}")
        path = []
        for line in out.stdout.splitlines():
            # divan's tree: each level indents by three characters, and a group's or a bench's
            # row ends its indent with a branch; a bench's row then has "fastest │ slowest │
            # median │ ...". Rows without a branch (throughputs) are skipped.
            m = ROW.match(line)
            if not m or not m.group(1).endswith(("├─ ", "╰─ ")):
                continue
            depth = len(m.group(1)) // 3
            path = path[: depth - 1] + [m.group(2)]
            times = TIMES.match(m.group(3))
            if times:
                figures[f"{target}/" + "/".join(path)] = float(times.group(1)) * UNITS[times.group(2)]
    return figures


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    binary = args[0] if args else os.path.join(ROOT, "target", "release", "warren")
    write = "--write" in sys.argv
    e2e = end_to_end(binary)
    times = micro()
    if write:
        baseline = {
            "about": "Recorded by scripts/bench/regression.py --write. End to end: messages (or round trips) per "
                     "second, best of 3; a run below baseline x e2e_tolerance fails. Micro: divan's fastest sample, ns; "
                     "one above baseline x micro_tolerance fails.",
            "e2e_tolerance": 0.5,
            "micro_tolerance": 3.0,
            "end_to_end": {k: round(v) for k, v in e2e.items()},
            "micro_ns": {k: round(v, 2) for k, v in times.items()},
        }
        with open(BASELINE, "w") as f:
            json.dump(baseline, f, indent=2, ensure_ascii=False)
            f.write("\n")
        print(f"regression: baseline written to {BASELINE}")
        return 0
    baseline = json.load(open(BASELINE))
    failed = []
    print(f"{'figure':<75} {'baseline':>14} {'now':>14} {'ratio':>7}")
    for name, base in baseline["end_to_end"].items():
        now = e2e.get(name, 0.0)
        ratio = now / base if base else 0.0
        bad = ratio < baseline["e2e_tolerance"]
        print(f"{name:<75} {base:>14,.0f} {now:>14,.0f} {ratio:>7.2f}{'  DROP' if bad else ''}")
        if bad:
            failed.append(name)
    for name, base in baseline["micro_ns"].items():
        if name not in times:
            print(f"{name:<75} {base:>12.1f}ns {'missing':>14}")
            failed.append(name)
            continue
        ratio = times[name] / base if base else 0.0
        bad = ratio > baseline["micro_tolerance"]
        print(f"{name:<75} {base:>12.1f}ns {times[name]:>12.1f}ns {ratio:>7.2f}{'  SLOWER' if bad else ''}")
        if bad:
            failed.append(name)
    if failed:
        print(f"regression: {len(failed)} figure(s) fell past the tolerance: {', '.join(failed)}")
        return 1
    print("regression: no figure fell past its tolerance")
    return 0


if __name__ == "__main__":
    sys.exit(main())
