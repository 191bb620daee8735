"""Differential conformance check: plays every scenario of the corpus against a reference broker
(RabbitMQ) and a candidate (Warren), and reports each difference in what they answered.

    python3 interop/differential/differential.py --reference HOST:PORT --candidate HOST:PORT
        [--only SUBSTRING] [--show-all] [--json FILE]

A scenario passes when both transcripts are equal after normalisation (generated names, reply
texts and timestamps are not compared). A difference listed in `deliberate.toml` (scenario name
and the reason) is reported but does not fail the run; every other difference does, and so does
a deliberate entry whose scenario no longer differs (the list stays true). Exit status: 0 when
nothing unexpected differs, 1 otherwise, 2 on a usage or connection error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import engine  # noqa: E402
from engine import Session  # noqa: E402
import corpus  # noqa: E402


# Names are private to a run too, so that runs against a broker that kept an earlier run's
# durable entities do not meet them.
RUN = f"{os.getpid() % 100000:05d}"


def parse_addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def play(addr: tuple[str, int], index: int, scenario) -> dict:
    try:
        session = Session(addr, f"d{index}-{RUN}")
    except Exception as e:  # noqa: BLE001 - a broker that refuses to connect is a result too
        return {"steps": [], "async": {}, "error": f"cannot connect: {e}"}
    try:
        scenario.run(session)
    except Exception as e:  # noqa: BLE001 - reported as a failure of the scenario itself
        import traceback
        session.finish()
        return {"steps": [], "async": {}, "raised": traceback.format_exc()}
    return session.finish()


def first_difference(ref: dict, cand: dict) -> str | None:
    for side, transcript in (("reference", ref), ("candidate", cand)):
        if "raised" in transcript:
            return f"the scenario raised against the {side}:\n{transcript['raised']}"
    if ref.get("error") or cand.get("error"):
        if ref.get("error") == cand.get("error"):
            return None
        return f"reference: {ref.get('error')}\n      candidate: {cand.get('error')}"
    for i in range(max(len(ref["steps"]), len(cand["steps"]))):
        r = ref["steps"][i] if i < len(ref["steps"]) else None
        c = cand["steps"][i] if i < len(cand["steps"]) else None
        if r is None or c is None or r["got"] != c["got"]:
            step = (r or c)["step"]
            return (f"step {i + 1}: {step}\n"
                    f"      reference: {r['shown'] if r else '(no such step)'}\n"
                    f"      candidate: {c['shown'] if c else '(no such step)'}")
    if ref["async"] != cand["async"]:
        return (f"messages the brokers sent on their own time differ\n"
                f"      reference: {json.dumps(ref['async'], sort_keys=True)}\n"
                f"      candidate: {json.dumps(cand['async'], sort_keys=True)}")
    return None


def load_deliberate(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The scenarios that may differ, and the message headers left out of every comparison,
    each with its reason."""
    with path.open("rb") as f:
        data = tomllib.load(f)
    scenarios = {entry["scenario"]: entry["reason"] for entry in data.get("difference", [])}
    headers = {entry["header"]: entry["reason"] for entry in data.get("ignored_header", [])}
    return scenarios, headers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", required=True, help="HOST:PORT of RabbitMQ")
    parser.add_argument("--candidate", required=True, help="HOST:PORT of Warren")
    parser.add_argument("--only", help="run only scenarios whose name contains this")
    parser.add_argument("--show-all", action="store_true", help="print every transcript")
    parser.add_argument("--json", help="write both transcripts of every scenario to this file")
    parser.add_argument("--deliberate", default=str(HERE / "deliberate.toml"))
    args = parser.parse_args()

    reference, candidate = parse_addr(args.reference), parse_addr(args.candidate)
    deliberate, ignored_headers = load_deliberate(Path(args.deliberate))
    engine.IGNORED_HEADERS.update(ignored_headers)
    scenarios = corpus.load()
    names = [s.name for s in scenarios]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        print(f"differential: duplicate scenario names: {sorted(duplicates)}", file=sys.stderr)
        return 2
    unknown = set(deliberate) - set(names)
    if unknown:
        print(f"differential: deliberate.toml names unknown scenarios: {sorted(unknown)}", file=sys.stderr)
        return 2
    if args.only:
        scenarios = [s for s in scenarios if args.only in s.name]

    started = time.monotonic()
    unexpected, allowed, stale, dump = [], [], [], []
    for index, scenario in enumerate(scenarios):
        ref = play(reference, index, scenario)
        cand = play(candidate, index, scenario)
        diff = first_difference(ref, cand)
        if args.json:
            dump.append({"scenario": scenario.name, "reference": ref, "candidate": cand})
        if args.show_all:
            print(f"--- {scenario.name}")
            for step in cand["steps"]:
                print(f"    {step['step']}: {step['shown']}")
        if diff is None:
            if scenario.name in deliberate:
                stale.append(scenario.name)
            continue
        if scenario.name in deliberate:
            allowed.append((scenario.name, deliberate[scenario.name], diff))
        else:
            unexpected.append((scenario.name, diff))

    elapsed = time.monotonic() - started
    for name, reason, diff in allowed:
        print(f"DELIBERATE {name}\n    why: {reason}\n    {diff}\n")
    for header, reason in ignored_headers.items():
        print(f"IGNORED    header {header}: {reason}\n")
    for name in stale:
        print(f"STALE      {name}: listed in deliberate.toml, but both brokers now answer alike\n")
    for name, diff in unexpected:
        print(f"DIFFERS    {name}\n    {diff}\n")
    if args.json:
        Path(args.json).write_text(json.dumps(dump, indent=1, default=str))
    same = len(scenarios) - len(unexpected) - len(allowed)
    print(f"differential: {len(scenarios)} scenarios in {elapsed:.1f} s: {same} alike, "
          f"{len(allowed)} deliberate differences, {len(unexpected)} unexpected differences, "
          f"{len(stale)} stale deliberate entries")
    return 1 if unexpected or stale else 0


if __name__ == "__main__":
    sys.exit(main())
