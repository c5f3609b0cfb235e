"""``sysspan stats TRACE``: span counts of a trace file (what ``make demo`` shows)."""

from __future__ import annotations

import argparse
from collections import Counter

from sysspan.tracefile import iter_trace_file


def register(subparsers) -> None:
    p = subparsers.add_parser("stats", help="count the spans of a trace file by kind and name")
    p.add_argument("files", nargs="+", metavar="TRACE", help="OTLP JSON lines file(s)")
    p.add_argument("--top", type=int, default=10, help="how many syscall names to list")


def classify(attrs: dict) -> str:
    """run / process / syscall / decision / other, from the attributes each kind carries."""
    if "syscall.name" in attrs:
        return "syscall"
    if "decision.id" in attrs:
        return "decision"
    if "syscall.count" in attrs:
        return "run"
    if "process.pid" in attrs:
        return "process"
    return "other"


def run(ns: argparse.Namespace, env: dict[str, str]) -> int:
    kinds: Counter[str] = Counter()
    syscalls: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    traces: set[int] = set()
    for path in ns.files:
        for batch in iter_trace_file(path):
            for span in batch.spans:
                kind = classify(span.attributes)
                kinds[kind] += 1
                traces.add(span.trace_id)
                if kind == "syscall":
                    syscalls[span.name] += 1
                    err = span.attributes.get("error.type")
                    if err:
                        errors[str(err)] += 1
    total = sum(kinds.values())
    print(f"{total} spans in {len(traces)} trace(s): " + ", ".join(
        f"{kinds[k]} {k}" for k in ("run", "process", "syscall", "decision", "other") if kinds[k]
    ))
    for tid in sorted(traces):
        print(f"  trace id {tid:032x}")
    if syscalls:
        print("top syscalls: " + ", ".join(f"{n} {c}" for n, c in syscalls.most_common(ns.top)))
    if errors:
        print("errors: " + ", ".join(f"{n} {c}" for n, c in errors.most_common()))
    return 0
