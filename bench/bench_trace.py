"""Tracer figures (issue: trace at the speed of the kernel).

1. full trace: dd bs=1 count=200000, every syscall a span in the JSONL file, vs strace -f -o FILE
2. filtered:   -e trace=openat on dd count=2000000 (seccomp-bpf) vs the untraced command
4. memory:     peak RSS tracing count=2000000 fully, and its ratio to count=200000
5. burst:      10,000,000 syscalls with --max-spans-per-second 10000: peak RSS and exact counts

Usage: python bench/bench_trace.py [--runs N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

from common import SYSSPAN, alternate, env, machine_note, median, run


def dd(count: int) -> list[str]:
    return ["dd", "if=/dev/zero", "of=/dev/null", "bs=1", f"count={count}"]


def full_trace(runs: int, count: int, tmp: Path) -> dict:
    times = alternate(
        {
            "sysspan": [*SYSSPAN, "-qq", "--trace-file", str(tmp / "full.jsonl"), "--", *dd(count)],
            "strace": ["strace", "-f", "-o", str(tmp / "strace.txt"), *dd(count)],
        },
        runs,
        tmp,
    )
    return {"sysspan_s": median(times["sysspan"]), "strace_s": median(times["strace"]),
            "ratio": median(times["sysspan"]) / median(times["strace"]), "runs": times}


def filtered(runs: int, count: int, tmp: Path) -> dict:
    times = alternate(
        {
            "sysspan": [*SYSSPAN, "-qq", "--trace-file", str(tmp / "filtered.jsonl"), "-e", "trace=openat", "--", *dd(count)],
            "untraced": dd(count),
        },
        runs,
        tmp,
    )
    return {"sysspan_s": median(times["sysspan"]), "untraced_s": median(times["untraced"]),
            "ratio": median(times["sysspan"]) / median(times["untraced"]), "runs": times}


def memory(small: int, large: int, tmp: Path) -> dict:
    rss = {}
    for count in (small, large):
        trace = tmp / f"mem-{count}.jsonl"
        _, kib, rc = run([*SYSSPAN, "-qq", "--trace-file", str(trace), "--", *dd(count)], tmp)
        assert rc == 0
        trace.unlink()
        rss[count] = kib / 1024
    return {"small_count": small, "large_count": large, "small_mb": rss[small], "large_mb": rss[large],
            "growth": rss[large] / rss[small]}


def burst(count: int, tmp: Path) -> dict:
    trace = tmp / "burst.jsonl"
    cmd = [*SYSSPAN, "-c", "--trace-file", str(trace), "--max-spans-per-second", "10000", "--", *dd(count // 2)]
    proc = subprocess.Popen(cmd, cwd=tmp, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    import os

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
    return {
        "syscalls": sum(calls.values()),
        "reads": calls.get("read", 0),
        "writes": calls.get("write", 0),
        "syscall.count": run_attrs.get("syscall.count"),
        "syscall.dropped": run_attrs.get("syscall.dropped"),
        "spans_in_file": spans,
        "counts_exact": run_attrs.get("syscall.count") == sum(calls.values())
        and spans == run_attrs.get("syscall.count", 0) - run_attrs.get("syscall.dropped", 0)
        and calls.get("read", 0) >= count // 2,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="smaller workloads (a smoke test, not the figures)")
    ap.add_argument("--only", choices=("full", "filtered", "memory", "burst"), action="append")
    args = ap.parse_args()
    scale = 10 if args.quick else 1
    only = set(args.only or ("full", "filtered", "memory", "burst"))
    print(f"machine: {machine_note()}")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if "full" in only:
            r = full_trace(args.runs, 200_000 // scale, tmp)
            print(f"1. full trace  dd count={200_000 // scale}: sysspan {r['sysspan_s']:.2f}s  strace -f -o {r['strace_s']:.2f}s"
                  f"  ratio {r['ratio']:.2f}  (target <= 1.25; medians of {args.runs} alternating runs)")
        if "filtered" in only:
            r = filtered(args.runs, 2_000_000 // scale, tmp)
            print(f"2. filtered    -e trace=openat dd count={2_000_000 // scale}: sysspan {r['sysspan_s']:.2f}s"
                  f"  untraced {r['untraced_s']:.2f}s  ratio {r['ratio']:.2f}  (target <= 1.5)")
        if "memory" in only:
            r = memory(200_000 // scale, 2_000_000 // scale, tmp)
            print(f"4. memory      peak RSS count={r['small_count']}: {r['small_mb']:.1f} MB, count={r['large_count']}: "
                  f"{r['large_mb']:.1f} MB  growth x{r['growth']:.2f}  (target <= 150 MB and within 20%)")
        if "burst" in only:
            r = burst(10_000_000 // scale, tmp)
            print(f"5. burst       {r['syscalls']} syscalls at --max-spans-per-second 10000: peak RSS {r['peak_rss_mb']:.1f} MB,"
                  f" syscall.count={r['syscall.count']} dropped={r['syscall.dropped']} spans={r['spans_in_file']}"
                  f" counts exact: {r['counts_exact']}")


if __name__ == "__main__":
    main()
