"""Tracer figures: every comparison as pinned wall (both tools on CPU 1), CPU time of the
whole process tree, and unpinned wall (median and min-max of alternating runs).

1. full trace:  dd bs=1 count=200000, every syscall a span in the JSONL file, vs strace -f -o FILE;
                beside it the stop loop with record parsing only (loop_only.py): the floor
2. over OTLP:   the same exported over OTLP/gRPC to a loopback receiver (the receiver unpinned),
                every span counted by the receiver, vs strace -f -o FILE
3. start-up:    sysspan -qq -- true vs python3 -c pass; python3 -c 'import json, sqlite3'
                traced with -f vs strace -f -o FILE
4. memory:      peak RSS tracing 2,000,000 syscalls fully vs 200,000
5. filtered:    -e trace=openat on dd count=2000000 (seccomp-bpf) vs the untraced command
6. burst:       10,000,000 syscalls with --max-spans-per-second 10000: peak RSS and exact counts

Usage: python bench/bench_trace.py [--runs N] [--quick] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import SYSSPAN, Receiver, compare, env, machine_note, measure


def dd(count: int) -> list[str]:
    return ["dd", "if=/dev/zero", "of=/dev/null", "bs=1", f"count={count}"]


def full_trace(runs: int, count: int, tmp: Path) -> None:
    c = compare("sysspan", "strace", {
        "sysspan": [*SYSSPAN, "-qq", "--trace-file", str(tmp / "full.jsonl"), "--", *dd(count)],
        "strace": ["strace", "-f", "-o", str(tmp / "strace.txt"), *dd(count)],
    }, runs, tmp)
    print(f"1. full trace  dd count={count} ({2 * count:,} syscalls) to JSONL vs strace -f -o FILE")
    print("\n".join(c.lines("(target <= 1.2)")))
    floor = compare("loop only", "strace", {
        "loop only": [sys.executable, str(Path(__file__).parent / "loop_only.py"), *dd(count)],
        "strace": ["strace", "-f", "-o", str(tmp / "strace.txt"), *dd(count)],
    }, 0, tmp, pinned_runs=max(1, runs // 2))
    print("   the stop loop and record parsing alone (no spans, no export), same command:")
    print("\n".join(floor.lines("")))


def over_otlp(runs: int, count: int, tmp: Path) -> None:
    with Receiver() as rx:
        # every syscall a span, as in figure 1 (OTLP sinks default to the span budget)
        cmd = [*SYSSPAN, "-qq", "--syscall-spans", "all", "--otlp-endpoint", rx.endpoint, "--otlp-protocol", "grpc",
               "--", *dd(count)]
        c = compare("sysspan", "strace", {
            "sysspan": cmd, "strace": ["strace", "-f", "-o", str(tmp / "strace.txt"), *dd(count)],
        }, runs, tmp)
        # one more run to check that every span arrived: the syscalls, dd's process span, the run span
        rx.reset()
        s = measure(cmd, tmp)
        assert s.rc == 0
        rx.wait_for(1, timeout=60)
        expected = rx.run_count.value + 2
        rx.wait_for(expected, timeout=120)
        received = rx.counter.value
    print(f"2. over OTLP   dd count={count} exported over OTLP/gRPC to a loopback receiver vs strace -f -o FILE")
    print("\n".join(c.lines("(target <= 1.25)")))
    print(f"   every span received: {received == expected} ({received:,} of {expected:,})")


def startup(runs: int, tmp: Path) -> None:
    from bench_startup import startup as measure_startup  # printed in ms, with a breakdown

    measure_startup(runs, tmp)


def memory(small: int, large: int, tmp: Path) -> None:
    rss = {}
    for count in (small, large):
        trace = tmp / f"mem-{count}.jsonl"
        s = measure([*SYSSPAN, "-qq", "--trace-file", str(trace), "--", *dd(count)], tmp)
        assert s.rc == 0
        trace.unlink()
        rss[count] = s.rss_kib / 1024
    print(f"4. memory      peak RSS {2 * small:,} syscalls: {rss[small]:.1f} MB, {2 * large:,} syscalls: "
          f"{rss[large]:.1f} MB  growth x{rss[large] / rss[small]:.2f}  (target within 10%)")


def filtered(runs: int, count: int, tmp: Path) -> None:
    c = compare("sysspan", "untraced", {
        "sysspan": [*SYSSPAN, "-qq", "--trace-file", str(tmp / "filtered.jsonl"), "-e", "trace=openat", "--", *dd(count)],
        "untraced": dd(count),
    }, runs, tmp, pinned_runs=max(1, runs // 2))
    print(f"5. filtered    -e trace=openat dd count={count} (seccomp-bpf) vs the untraced command")
    print("\n".join(c.lines("(target <= 1.5)")))


def burst(count: int, tmp: Path) -> None:
    trace = tmp / "burst.jsonl"
    cmd = [*SYSSPAN, "-c", "--trace-file", str(trace), "--max-spans-per-second", "10000", "--", *dd(count // 2)]
    proc = subprocess.Popen(cmd, cwd=tmp, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    stderr = proc.stderr.read()
    calls = {}
    lines = stderr.splitlines()
    head = lines.index("% time     seconds  usecs/call     calls    errors syscall")
    for line in lines[head + 2:]:
        if line.startswith("------"):
            break
        parts = line.split()
        calls[parts[-1]] = int(parts[3])
    run_attrs = {}
    spans = 0
    with open(trace) as fh:
        for line in fh:
            for rs in json.loads(line)["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    for s in ss["spans"]:
                        attrs = {a["key"]: a["value"] for a in s.get("attributes", [])}
                        if "syscall.name" in attrs:
                            spans += 1
                        if "syscall.count" in attrs:
                            run_attrs = {k: int(v.get("intValue", 0)) for k, v in attrs.items() if "intValue" in v}
    trace.unlink()
    exact = (run_attrs.get("syscall.count") == sum(calls.values())
             and spans == run_attrs.get("syscall.count", 0) - run_attrs.get("syscall.dropped", 0)
             and calls.get("read", 0) >= count // 2)
    print(f"6. burst       {sum(calls.values())} syscalls at --max-spans-per-second 10000: peak RSS {usage.ru_maxrss / 1024:.1f} MB,"
          f" syscall.count={run_attrs.get('syscall.count')} dropped={run_attrs.get('syscall.dropped')} spans={spans}"
          f" counts exact: {exact}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5, help="alternating runs per comparison (>= 5 for the figures)")
    ap.add_argument("--quick", action="store_true", help="smaller workloads (a smoke test, not the figures)")
    ap.add_argument("--only", choices=("full", "otlp", "startup", "memory", "filtered", "burst"), action="append")
    args = ap.parse_args()
    scale = 10 if args.quick else 1
    only = set(args.only or ("full", "otlp", "startup", "memory", "filtered", "burst"))
    print(f"machine: {machine_note()}")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if "full" in only:
            full_trace(args.runs, 200_000 // scale, tmp)
        if "otlp" in only:
            over_otlp(args.runs, 200_000 // scale, tmp)
        if "startup" in only:
            startup(max(args.runs, 10), tmp)
        if "memory" in only:
            memory(100_000 // scale, 1_000_000 // scale, tmp)
        if "filtered" in only:
            filtered(args.runs, 2_000_000 // scale, tmp)
        if "burst" in only:
            burst(10_000_000 // scale, tmp)


if __name__ == "__main__":
    from common import use_release_venv

    use_release_venv()
    main()
