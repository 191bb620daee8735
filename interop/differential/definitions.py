"""Definitions both ways between Warren and RabbitMQ: the fixture RabbitMQ exported imports into
Warren; Warren's export of it then imports into RabbitMQ with `rabbitmqctl import_definitions`,
and RabbitMQ lists the same users, policies, operator policies, queues, exchanges and bindings.

    python3 definitions.py --warren-http PORT --fixture FILE --export OUT   (step 1)
    python3 definitions.py --check OUT --listed DIR                         (step 2)

Step 2 reads what `rabbitmqctl ... --formatter json` printed into DIR (run.sh does that).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import urllib.request
from pathlib import Path


def call(port: int, method: str, path: str, body: bytes | None = None) -> bytes:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method)
    req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.read()


def export(port: int, fixture: Path, out: Path) -> None:
    call(port, "POST", "/api/definitions", fixture.read_bytes())
    out.write_text(call(port, "GET", "/api/definitions").decode())


def check(exported: Path, listed: Path) -> list[str]:
    defs = json.loads(exported.read_text())
    shop = lambda items: [i for i in items if i.get("vhost") == "shop"]  # noqa: E731
    read = lambda name: json.loads((listed / f"{name}.json").read_text() or "[]")  # noqa: E731
    problems = []

    def same(what: str, want: set, got: set) -> None:
        if want != got:
            problems.append(f"{what}: Warren exported {sorted(want)}, RabbitMQ holds {sorted(got)}")

    users = {u["name"] for u in defs["users"]}
    same("users", users, {u["user"] for u in read("users")} & users)

    def policy(p: dict) -> tuple:
        definition = p["definition"]  # rabbitmqctl prints it as a JSON string
        definition = json.loads(definition) if isinstance(definition, str) else definition
        return p["name"], p["pattern"], p["apply-to"], json.dumps(definition, sort_keys=True)

    same("policies", {policy(p) for p in shop(defs["policies"])}, {policy(p) for p in read("policies")})
    same("operator policies", {p["name"] for p in shop(defs["parameters"])},
         {p["name"] for p in read("operator_policies")})
    same("queues", {q["name"] for q in shop(defs["queues"])}, {q["name"] for q in read("queues")})
    same("exchanges", {x["name"] for x in shop(defs["exchanges"])},
         {x["name"] for x in read("exchanges") if x["name"] and not x["name"].startswith("amq.")})
    same("bindings", {(b["source"], b["destination"], b["routing_key"]) for b in shop(defs["bindings"])},
         {(b["source_name"], b["destination_name"], b["routing_key"]) for b in read("bindings") if b["source_name"]})
    return problems


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--warren-http", type=int)
    ap.add_argument("--fixture", type=Path)
    ap.add_argument("--export", type=Path)
    ap.add_argument("--check", type=Path)
    ap.add_argument("--listed", type=Path)
    args = ap.parse_args()
    if args.check:
        problems = check(args.check, args.listed)
        for p in problems:
            print(f"definitions: {p}")
        print(f"definitions: Warren's export imported into RabbitMQ: {'FAILED' if problems else 'same objects'}")
        return 1 if problems else 0
    export(args.warren_http, args.fixture, args.export)
    return 0


if __name__ == "__main__":
    sys.exit(main())
