"""``sysspan stats TRACE``: span counts of a trace file (what ``make demo`` shows)."""

from __future__ import annotations

import argparse
import gc
from collections import Counter

from sysspan.span_roles import (
    DECISION,
    OTHER,
    PROCESS,
    ROLE_KEY,
    ROLE_KEYS,
    RUN,
    STEP,
    SYSCALL,
    role_of,
)
from sysspan.tracefile import add_spool_flag, add_trace_files, expand_inputs, iter_span_facts


def prepare_parser(p: argparse.ArgumentParser) -> None:
    add_trace_files(p)
    add_spool_flag(p)
    p.add_argument("--top", type=int, default=10, help="how many syscall names to list")


# What stats reads of each span: enough for role_of, and the error of a syscall.
_WANTED = ROLE_KEYS | {"error.type"}
#: The roles counted, in the order they are printed.
_SHOWN = (RUN, PROCESS, SYSCALL, DECISION, STEP, OTHER)


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
    for path in expand_inputs(ns.files, include_spools=ns.include_spools):
        for facts in iter_span_facts(path, _WANTED):
            for trace_id, name, attrs in facts:
                traces.add(trace_id)
                role = attrs.get(ROLE_KEY)  # read directly first: nearly all are syscalls
                if role != SYSCALL:
                    role = role_of(attrs)
                kinds[role] += 1
                if role == SYSCALL:
                    syscalls[name] += 1
                    err = attrs.get("error.type")
                    if err:
                        errors[str(err)] += 1
    total = sum(kinds.values())
    print(f"{total} spans in {len(traces)} trace(s): " + ", ".join(
        f"{kinds[k]} {k}" for k in _SHOWN if kinds[k]
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
