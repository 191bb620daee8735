"""One line of raw results for scripts/bench-vs-rabbitmq.sh, from a `warren perf` summary.

Usage: bench_record.py run BROKER SCENARIO METRIC LATENCY ROUND T0 T1 CPU0 CPU1 RSS_KB SUMMARY
       bench_record.py memory BROKER ROUND SUMMARY
"""
import json, os, sys

def summary(text):
    try:
        return json.loads(text)
    except ValueError:
        return {}

kind, args = sys.argv[1], sys.argv[2:]
if kind == "memory":
    broker, round_, result = args
    r = summary(result)
    print(json.dumps({"broker": broker, "round": int(round_), "per_connection": r.get("bytes_per_connection"),
                      "per_queue": r.get("bytes_per_queue_with_consumer")}))
    sys.exit(0)
broker, name, metric, latency, round_, t0, t1, c0, c1, rss, result = args
r = summary(result)
rate = {"publish": r.get("publish_msgs_per_s"), "e2e": r.get("end_to_end_msgs_per_s"), "rpc": r.get("calls_per_s")}[metric]
p99 = None
if latency != "-" and rate is not None:
    p99 = (r.get("confirm_latency" if latency == "confirm" else "latency") or {}).get("p99_us")
wall = float(t1) - float(t0)
cpu = (int(c1) - int(c0)) / os.sysconf("SC_CLK_TCK")
print(json.dumps({"broker": broker, "scenario": name, "round": int(round_), "rate": rate, "p99_us": p99,
                  "cpu_percent": round(100 * cpu / wall, 1) if wall > 0 else None,
                  "rss_mb": round(int(rss) / 1024, 1), "tool_cpu_percent": r.get("tool_cpu_percent")}))
