"""--backend ebpf figures, each a ratio measured in the same run (medians of alternating runs).

1. full trace:  dd bs=1 count=200000, every syscall a span in the JSONL file, both pinned to
                CPU 1: the whole run under --backend ebpf vs strace -f -o FILE, with the span
                count checked against the syscall count and the lost events printed
2. slowdown:    the time dd reports for itself under --backend ebpf vs under strace
3. attach:      a process making about 20,000 syscalls a second with work between them,
                attached with -p for a few seconds: its throughput while attached vs
                unattached, for --backend ebpf and for strace -p
4. filtered:    -e trace=openat on dd count=2000000 vs the untraced command (whole run, and
                dd's own time), and the kernel's part: dd's CPU while another sysspan holds the
                openat tracepoints vs not
5. startup:     where figure 4's fixed cost goes: CPU of -e trace=openat -- true under
                --backend ebpf, under --backend ptrace, of --no-syscalls -- true and of
                python -c pass, and the ebpf run's
                phases (interpreter, imports, the tracer's checks, object load, attach, the
                run, its end), timed by wrapping the loader's calls in the same process, which
                ends as the sysspan command does (os._exit once the atexit handlers ran)

Needs root and sysspan's libbpf loader (built by make where clang, bpftool and libbpf-dev are
installed), or bpftrace: SYSSPAN_EBPF_BPFTRACE=1 measures the bpftrace kernel side. Usage: python bench/bench_ebpf.py [--runs N] [--quick] [--only NAME] (--only repeats)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import PIN, SYSSPAN, alternate, compare, env, machine_note, measure, median

#: common.env() drops SYSSPAN_* variables; this one chooses the kernel side being measured
BPFTRACE = os.environ.get("SYSSPAN_EBPF_BPFTRACE", "") not in ("", "0")
EBPF = [*(["env", "SYSSPAN_EBPF_BPFTRACE=1"] if BPFTRACE else []), *SYSSPAN, "--backend", "ebpf"]
DD_TIME = re.compile(rb"copied, ([0-9.]+) s")


def dd(count: int) -> list[str]:
    return ["dd", "if=/dev/zero", "of=/dev/null", "bs=1", f"count={count}"]


def run_attrs(path: Path) -> dict:
    """The run span's attributes in a JSONL trace file."""
    for line in path.read_text().splitlines():
        for rs in json.loads(line).get("resourceSpans", []):
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:
                    attrs = {a["key"]: a["value"] for a in span.get("attributes", [])}
                    if "syscall.count" in attrs:
                        return {k: next(iter(v.values())) for k, v in attrs.items()}
    return {}


def full_trace(runs: int, count: int, tmp: Path) -> None:
    out = tmp / "full.jsonl"
    c = compare("ebpf", "strace", {
        "ebpf": [*EBPF, "-qq", "--trace-file", str(out), "--", *dd(count)],
        "strace": ["strace", "-f", "-o", str(tmp / "strace.txt"), *dd(count)],
    }, runs, tmp)
    attrs = run_attrs(out)
    strace_calls = sum(1 for line in (tmp / "strace.txt").read_text().splitlines() if "(" in line)
    print(f"1. full trace  dd count={count} to JSONL, --backend ebpf vs strace -f -o FILE")
    print("\n".join(c.lines("(target <= 1.0)")))
    print(f"   last run: {int(attrs.get('syscall.count', -1)):,} syscall spans, "
          f"{int(attrs.get('syscall.lost', -1)):,} lost; strace saw {strace_calls:,} syscalls")


def dd_time(cmd: list[str], pin: bool) -> float:
    full = [*PIN, *cmd] if pin else cmd
    done = subprocess.run(full, env=env(), capture_output=True, check=True)
    m = DD_TIME.search(done.stderr)
    if m is None:
        raise SystemExit(f"no dd time in: {done.stderr[-300:]!r}")
    return float(m.group(1))


def slowdown(runs: int, count: int, tmp: Path) -> None:
    cmds = {
        "ebpf": [*EBPF, "-qq", "--trace-file", str(tmp / "slow.jsonl"), "--", *dd(count)],
        "strace": ["strace", "-f", "-o", str(tmp / "strace.txt"), *dd(count)],
        "untraced": dd(count),
    }
    print(f"2. slowdown    dd count={count}: the time dd reports for itself")
    for pin in (True, False):
        times: dict[str, list[float]] = {name: [] for name in cmds}
        for _ in range(runs):
            for name, cmd in cmds.items():
                times[name].append(dd_time(cmd, pin))
        med = {name: median(v) for name, v in times.items()}
        label = "pinned (taskset -c 1)" if pin else "unpinned"
        print(f"   {label:<22} " + "; ".join(
            f"{n} {med[n]:.3f}s [{min(v):.3f}-{max(v):.3f}]" for n, v in times.items())
            + f"  ebpf/strace {med['ebpf'] / med['strace']:.2f} (target <= 0.3)"
            + f", ebpf/untraced {med['ebpf'] / med['untraced']:.1f}  (medians of {runs})")


WORKER = """
import os, sys, time
work = int(sys.argv[1])
n = 0
nxt = time.monotonic() + 0.25
while True:
    x = 0
    for i in range(work):
        x += i
    os.getppid()
    n += 1
    if n % 256 == 0 and time.monotonic() >= nxt:
        print(time.monotonic(), n, flush=True)
        nxt += 0.25
"""


class Worker:
    """A process making syscalls with work between them; reports its count 4 times a second."""

    def __init__(self, work: int) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER, str(work)], stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        self.samples: list[tuple[float, int]] = []

    def rate(self, seconds: float) -> float:
        """Syscalls per second over the next ``seconds``."""
        assert self.proc.stdout is not None
        first = tuple(map(float, self.proc.stdout.readline().split()))
        end = first[0] + seconds
        last = first
        while last[0] < end:
            last = tuple(map(float, self.proc.stdout.readline().split()))
        return (last[1] - first[1]) / (last[0] - first[0])

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def calibrate(target: float) -> int:
    work = 50
    for _ in range(6):
        w = Worker(work)
        try:
            w.rate(0.3)
            r = w.rate(1.0)
        finally:
            w.close()
        work = max(1, int(work * r / target))
        if abs(r - target) / target < 0.15:
            break
    return work


def attach(runs: int, seconds: float, tmp: Path) -> None:
    work = calibrate(20_000)
    ratios: dict[str, list[float]] = {"ebpf": [], "strace": []}
    base_rates: list[float] = []
    lost: list[int] = []
    worker = Worker(work)
    try:
        worker.rate(0.5)
        for i in range(runs):
            for name in ("ebpf", "strace"):
                base = worker.rate(seconds)
                out = tmp / f"attach-{i}.jsonl"
                cmd = ([*EBPF, "-qq", "--trace-file", str(out), "-p", str(worker.proc.pid)]
                       if name == "ebpf" else
                       ["strace", "-qq", "-o", str(tmp / "strace-p.txt"), "-p", str(worker.proc.pid)])
                tracer = subprocess.Popen(cmd, env=env(), stderr=subprocess.DEVNULL)
                time.sleep(3.0 if name == "ebpf" else 0.5)  # bpftrace compiles and attaches
                during = worker.rate(seconds)
                tracer.send_signal(signal.SIGINT)
                tracer.wait(timeout=300)
                ratios[name].append(during / base)
                base_rates.append(base)
                if name == "ebpf":
                    lost.append(int(run_attrs(out).get("syscall.lost", -1)))
    finally:
        worker.close()
    print(f"3. attach      a process making {median(base_rates):,.0f} syscalls/s unattached, "
          f"attached with -p for {seconds:.0f} s")
    for name, vals in ratios.items():
        target = "  (target >= 0.90)" if name == "ebpf" else ""
        print(f"   {name:<8} throughput attached / unattached {median(vals):.2f} "
              f"[{min(vals):.2f}-{max(vals):.2f}] (median of {runs}){target}")
    print(f"   ebpf lost events per run: {lost}")


def filtered(runs: int, count: int, tmp: Path) -> None:
    c = compare("ebpf", "untraced", {
        "ebpf": [*EBPF, "-qq", "--trace-file", str(tmp / "filtered.jsonl"), "-e", "trace=openat",
                 "--", *dd(count)],
        "untraced": dd(count),
    }, runs, tmp)
    print(f"4. filtered    -e trace=openat dd count={count} vs the untraced command (whole run)")
    print("\n".join(c.lines("(target <= 1.2)")))
    ours = [dd_time(c_, True) for c_ in
            [[*EBPF, "-qq", "--trace-file", str(tmp / "f.jsonl"), "-e", "trace=openat", "--", *dd(count)],
             dd(count)] * runs]
    e, u = median(ours[0::2]), median(ours[1::2])
    print(f"   dd's own time, pinned: ebpf {e:.3f}s, untraced {u:.3f}s, ratio {e / u:.2f}  (medians of {runs})")
    on, off = tracepoints_held(runs, count, tmp)
    print(f"   the kernel's part: dd's CPU, pinned, while an idle sysspan holds the openat "
          f"tracepoints {on * 1000:.0f} ms, without {off * 1000:.0f} ms, ratio {on / off:.2f}"
          f"  (medians of {runs})")


def tracepoints_held(runs: int, count: int, tmp: Path) -> tuple[float, float]:
    """dd's CPU time with an enabled syscall tracepoint (every syscall then takes the kernel's
    slower tracing path) and without, the holder being a sysspan that traces a sleep on the
    other CPU; the median of each."""
    on: list[float] = []
    off: list[float] = []
    for _ in range(runs):
        holder = subprocess.Popen(["taskset", "-c", "0", *EBPF, "-qq", "--trace-file",
                                   str(tmp / "holder.jsonl"), "-e", "trace=openat", "--", "sleep", "3"],
                                  env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # attached within tens of milliseconds
        on.append(measure(dd(count), tmp, pin=True).cpu)
        holder.wait()
        time.sleep(1.5)  # its probes are detached after it exits, by the child it hands them to
        off.append(measure(dd(count), tmp, pin=True).cpu)
    return median(on), median(off)


PHASES = """
import atexit, json, sys, time
marks = [("python up", time.perf_counter(), time.process_time())]
def mark(name):
    marks.append((name, time.perf_counter(), time.process_time()))
from sysspan import cli
from sysspan.collector.ebpf import libbpf
mark("imports")
def wrap(owner, attr, name, before=None):
    inner = getattr(owner, attr)
    def timed(*a, **kw):
        if before:
            mark(before)
        try:
            return inner(*a, **kw)
        finally:
            mark(name)
    setattr(owner, attr, timed)
wrap(libbpf, "new_tracer", "tracer init (checks)", before="generic setup")
wrap(libbpf.LibbpfTracer, "_fork_paused", "the command's process (paused)")
Real = libbpf._bpf.Session
class Session:
    def __init__(self, *a):
        mark("until the load")
        self._s = Real(*a)
        mark("object load (maps, ring, verifier)")
    def __getattr__(self, name):
        return getattr(self._s, name)
    def handoff(self):
        mark("the traced command's run")
        self._s.handoff()
        mark("handoff of the probes")
libbpf._bpf.Session = Session
start = libbpf.LibbpfTracer._start_kernel
def start_kernel(self, target):
    start(self, target)
    mark("configure and attach")
libbpf.LibbpfTracer._start_kernel = start_kernel
run = libbpf.LibbpfTracer.run
def run_(self, *a, **kw):
    mark("until the command may run")
    try:
        return run(self, *a, **kw)
    finally:
        mark("last drain")
libbpf.LibbpfTracer.run = run_
@atexit.register
def _():
    mark("spans written, until exit")
    with open(sys.argv[1], "w") as fh:
        json.dump(marks, fh)
code = cli.main(sys.argv[2:])
cli._exit_quickly(code)  # as the sysspan command ends: os._exit, no interpreter teardown
sys.exit(code)
"""


def startup(runs: int, tmp: Path) -> None:
    true = ["-qq", "--trace-file", str(tmp / "true.jsonl"), "-e", "trace=openat", "--", "true"]
    cmds = {
        "ebpf": [*EBPF, *true],
        "ptrace": [*SYSSPAN, "--backend", "ptrace", *true],
        # sysspan's start without any tracer: what the ebpf backend adds is the difference
        "--no-syscalls": [*SYSSPAN, *true[:3], "--no-syscalls", *true[-2:]],
        "python -c pass": [sys.executable, "-c", "pass"],
    }
    samples = alternate(cmds, runs, tmp, pin=True)
    cpu = {n: median([x.cpu for x in v]) * 1000 for n, v in samples.items()}
    print("5. startup     CPU of -e trace=openat -- true, pinned (medians of "
          f"{runs}; figure 4's fixed cost)")
    print("   " + "; ".join(f"{n} {cpu[n]:.0f} ms "
                            f"[{min(x.cpu for x in v) * 1000:.0f}-{max(x.cpu for x in v) * 1000:.0f}]"
                            for n, v in samples.items()))
    print(f"   the ebpf backend adds {cpu['ebpf'] - cpu['--no-syscalls']:.1f} ms to a start without "
          f"a tracer (ptrace: {cpu['ptrace'] - cpu['--no-syscalls']:.1f} ms)")
    rows: list[list[tuple[str, float, float]]] = []
    out = tmp / "phases.json"
    for _ in range(runs):
        # as in figure 4, where an untraced run comes between: the previous run's probes are
        # detached by then (an attach waits for that, holding the kernel's event mutex)
        time.sleep(0.5)
        begin = time.perf_counter()
        proc = subprocess.Popen([*PIN, sys.executable, "-c", PHASES, str(out), "--backend", "ebpf", *true],
                                env=env(), cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, _, usage = os.wait4(proc.pid, 0)
        end = time.perf_counter()
        marks = json.loads(out.read_text())
        row, wall, cpu = [], begin, 0.0
        for name, t, c in marks:
            row.append((name, t - wall, c - cpu))
            wall, cpu = t, c
        row.append(("exit (os._exit: the kernel's teardown)", end - wall,
                    usage.ru_utime + usage.ru_stime - cpu))
        rows.append(row)
    print(f"   the ebpf run's phases, pinned, wall / CPU ms (medians of {runs}):")
    for i, (name, _, _) in enumerate(rows[0]):
        print(f"     {name:<40} {median([r[i][1] for r in rows]) * 1000:6.1f} "
              f"{median([r[i][2] for r in rows]) * 1000:6.1f}")


def kernel_side() -> str:
    """Which kernel side --backend ebpf runs here (the figures differ a lot between them)."""
    from sysspan.collector.ebpf import libbpf

    if libbpf.available() and not BPFTRACE:
        # figure 4 differs a lot between the two: tracepoints slow down every syscall
        fentry = libbpf._bpf.fentry_supported()
        return "libbpf (sysspan.bpf.c); -e trace= by " + (
            "fentry/fexit" if fentry else "tracepoints (this kernel refuses BPF tracing programs)")
    return "bpftrace"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=("full", "slowdown", "attach", "filtered", "startup"),
                    action="append")
    args = ap.parse_args()
    only = set(args.only or ("full", "slowdown", "attach", "filtered", "startup"))
    scale = 10 if args.quick else 1
    print(f"machine: {machine_note()}")
    print(f"kernel side: {kernel_side()}")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if "full" in only:
            full_trace(args.runs, 200_000 // scale, tmp)
        if "slowdown" in only:
            slowdown(args.runs, 200_000 // scale, tmp)
        if "attach" in only:
            attach(args.runs, 2.0 if args.quick else 5.0, tmp)
        if "filtered" in only:
            filtered(args.runs, 2_000_000 // scale, tmp)
        if "startup" in only:
            startup(args.runs, tmp)


if __name__ == "__main__":
    from common import use_release_venv

    use_release_venv()
    main()
