#!/usr/bin/env python3
"""Medians of the scale-of-costs runs (scripts/bench/scale.sh) as JSON and as curves: msg/s and
peak RSS against the number of queues, idle connections and topic bindings, Warren and
RabbitMQ. Needs matplotlib (installed with pip when missing).

    plot_scale.py RUNS.jsonl --json OUT.json --png OUT.png [--rabbitmq-version V]
"""

import argparse
import json
import statistics
import subprocess
import sys
import time

TITLES = {
    "queues": "queues (one producer and one consumer each)",
    "idle_connections": "idle connections open",
    "topic_bindings": "bindings on the topic exchange",
}


def medians(path):
    runs = [json.loads(l) for l in open(path) if l.strip()]
    groups = {}
    for r in runs:
        if "error" not in r:
            groups.setdefault((r["kind"], r["broker"], r["count"]), []).append(r)
    out = []
    for (kind, broker, count), rs in sorted(groups.items()):
        row = {"kind": kind, "broker": broker, "count": count, "rounds": len(rs)}
        for key in ("msgs_per_s", "broker_cpu_us_per_msg", "peak_rss_mb", "broker_cpu_percent", "tool_cpu_percent"):
            values = [r[key] for r in rs if r.get(key) is not None]
            row[key] = statistics.median(values) if values else None
        out.append(row)
    errors = [r for r in runs if "error" in r]
    return out, errors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs")
    ap.add_argument("--json", required=True)
    ap.add_argument("--png", required=True)
    ap.add_argument("--rabbitmq-version", default="unknown")
    a = ap.parse_args()
    rows, errors = medians(a.runs)
    with open(a.json, "w") as f:
        json.dump({"generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                   "rabbitmq_version": a.rabbitmq_version, "medians": rows, "errors": errors}, f, indent=1)
    try:
        import matplotlib
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "matplotlib"], check=True)
        import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(TITLES)
    fig, axes = plt.subplots(2, len(kinds), figsize=(15, 8))
    for col, kind in enumerate(kinds):
        for broker, style in (("warren", "o-"), ("rabbitmq", "s--")):
            pts = sorted((r["count"], r) for r in rows if r["kind"] == kind and r["broker"] == broker)
            if not pts:
                continue
            xs = [max(c, 0.5) for c, _ in pts]  # 0 idle connections drawn at the axis' start
            axes[0][col].plot(xs, [r["msgs_per_s"] for _, r in pts], style, label=broker)
            axes[1][col].plot(xs, [r["peak_rss_mb"] for _, r in pts], style, label=broker)
        for row, ylabel in ((0, "messages/s (end to end)"), (1, "broker peak RSS (MB)")):
            ax = axes[row][col]
            ax.set_xscale("symlog", linthresh=1)
            ax.set_xlabel(TITLES[kind])
            ax.set_ylabel(ylabel)
            ax.set_ylim(bottom=0)
            ax.grid(True, alpha=0.3)
            ax.legend()
    fig.suptitle(f"Scale of costs, 16 B transient messages, same machine (RabbitMQ {a.rabbitmq_version})")
    fig.tight_layout()
    fig.savefig(a.png, dpi=90)
    for r in rows:
        print(json.dumps(r))
    for e in errors:
        print("error:", json.dumps(e))


if __name__ == "__main__":
    main()
