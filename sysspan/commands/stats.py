"""``sysspan stats TRACE``: span counts of a trace file (what ``make demo`` shows)."""

from __future__ import annotations

import argparse
import gc
from collections import Counter

from sysspan.tracefile import add_spool_flag, expand_inputs, iter_span_facts


def prepare_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="TRACE", help="OTLP JSON lines file(s) or directories of them")
    add_spool_flag(p)
    p.add_argument("--top", type=int, default=10, help="how many syscall names to list")


# The attribute each kind of span carries, in the order that decides (a syscall span also
# has process.pid).
_KIND_KEYS = ("syscall.name", "decision.id", "syscall.count", "process.pid")
_KIND_NAMES = ("syscall", "decision", "run", "process", "other")
_RANKS = {key: i for i, key in enumerate(_KIND_KEYS)}


def classify(attrs: dict) -> str:
    """run / process / syscall / decision / other, from the attributes each kind carries."""
    for key, kind in zip(_KIND_KEYS, _KIND_NAMES, strict=False):
        if key in attrs:
            return kind
    return "other"


def run(ns: argparse.Namespace, env: dict[str, str]) -> int:
    # Millions of short-lived acyclic objects: the cyclic collector would only rescan them.
    gc.disable()
    try:
        return _run(ns)
    finally:
        gc.enable()


def _run(ns: argparse.Namespace) -> int:
    kinds: Counter[str] = Counter()
    syscalls: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    traces: set[int] = set()
    ranks: Counter[int] = Counter()
    syscall_rank = _RANKS["syscall.name"]
    for path in expand_inputs(ns.files, include_spools=ns.include_spools):
        for facts in iter_span_facts(path, _RANKS):
            for trace_id, name, rank, err in facts:
                ranks[rank] += 1
                traces.add(trace_id)
                if rank == syscall_rank:
                    syscalls[name] += 1
                    if err:
                        errors[str(err)] += 1
    for rank, n in ranks.items():
        kinds[_KIND_NAMES[rank]] += n
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


class Stats:
    name = "stats"
    help = "count the spans of a trace file by kind and name"
    description = None
    prepare_parser = staticmethod(prepare_parser)
    run = staticmethod(run)


COMMAND = Stats()
