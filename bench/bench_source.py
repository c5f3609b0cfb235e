"""Cost of source correlation (``--source`` / ``-k``) over a plain ptrace loop.

Workload: a C program (compiled here with ``cc -g -O2``) making 20,000 openat calls from
three hot call sites, each followed by close. Three stop loops trace it, identical except
for what happens at a syscall-entry stop:

* plain:   nothing (the baseline every sysspan trace pays),
* source:  ``SourceCapture.capture`` in site mode (``--source``), given the (ip, sp) the
           loop's PTRACE_GET_SYSCALL_INFO already returned, as the tracer does,
* source-noregs-hint: the same without that hint (one more ptrace request per stop),
* stack:   ``SourceCapture.capture`` with whole stacks (``-k``), hint given.

Each is run several times, alternating, and the best wall time of each is compared (ratios
measured in the same run, per docs/architecture.md §9). The minimal loop is the harshest baseline; the
bench also times ``python -m sysspan`` on the same workload and reports the overhead the
measured per-capture cost adds to it (measured directly once the CLI accepts
``--source``). Symbolising the captured stacks happens off the hot path and is timed
separately. First of all it times whole ``sysspan`` runs of the workload with and without
``--source``: one openat (the fixed cost of a run) and 1,000 syscalls.

    .venv/bin/python bench/bench_source.py [--calls N] [--repeat R]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sysspan.collector import _ptrace as pt  # noqa: E402
from sysspan.collector.source import SourceCapture  # noqa: E402

WORKLOAD = r"""
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((noinline)) static int site_a(void) { int fd = open("bench-a", O_RDONLY); return fd; }
__attribute__((noinline)) static int site_b(void) { int fd = open("bench-b", O_RDONLY); return fd; }
__attribute__((noinline)) static int site_c(void) { int fd = openat(AT_FDCWD, "bench-c", O_RDONLY); return fd; }

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 20000;
    for (int i = 0; i < n; i++) {
        int fd = (i % 3 == 0) ? site_a() : (i % 3 == 1) ? site_b() : site_c();
        if (fd >= 0) close(fd);
    }
    return 0;
}
"""


def trace(argv: list[str], mode: str) -> tuple[float, float, int, SourceCapture | None, list]:
    """Run argv under a minimal syscall-stop loop.

    Returns (wall seconds, tracer CPU seconds, stops, capture, stacks). The tracer's own CPU
    time is what source capture adds to; it is far less disturbed by other load on the
    machine than wall time."""
    ptrace = pt.Ptrace()
    arch = platform.machine()
    source = SourceCapture(ptrace, arch, full_stack=(mode == "stack")) if mode != "plain" else None
    capture = source.capture if source is not None else None
    hinted = mode in ("source", "stack")
    stacks: list = []
    keep = stacks.append
    t0 = time.perf_counter()
    c0 = time.process_time()
    pid = os.fork()
    if pid == 0:
        try:
            os.kill(os.getpid(), signal.SIGSTOP)
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    os.waitpid(pid, os.WUNTRACED)
    ptrace.seize(pid, pt.PTRACE_O_TRACESYSGOOD | pt.PTRACE_O_TRACEEXEC | pt.PTRACE_O_EXITKILL)
    os.kill(pid, signal.SIGCONT)
    info = ptrace.syscall_info
    resume = ptrace.syscall
    waitpid = os.waitpid
    trap = signal.SIGTRAP | 0x80
    stops = 0
    while True:
        _, status = waitpid(pid, 0x40000000)
        if status & 0xFF != 0x7F:
            break
        stops += 1
        sig = (status >> 8) & 0xFF
        if sig == trap:
            si = info(pid)
            if si[0] == pt.OP_ENTRY and capture is not None:
                keep(capture(pid, pid, (si[2], si[3])) if hinted else capture(pid, pid))
            resume(pid, 0)
        elif status >> 16:
            if status >> 16 == pt.PTRACE_EVENT_EXEC and source is not None:
                source.on_exec(pid)
            resume(pid, 0)
        else:
            resume(pid, 0 if sig == signal.SIGSTOP else sig)
    return time.perf_counter() - t0, time.process_time() - c0, stops, source, stacks


def run_sysspan(argv: list[str], extra: list[str], out: Path) -> float | None:
    """Wall time of ``python -m sysspan [extra] -- argv`` (None if it failed)."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "sysspan", "--trace-file", str(out), *extra, "--", *argv],
        env=env, capture_output=True, text=True,
    )
    dt = time.perf_counter() - t0
    return dt if proc.returncode == 0 else None


def cli_has_source() -> bool:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    proc = subprocess.run([sys.executable, "-m", "sysspan", "--help"], env=env,
                          capture_output=True, text=True)
    return "--source" in proc.stdout


def _cli_run(
    argv: list[str], extra: list[str], out: Path, pin: bool, cache: str
) -> tuple[float, float]:
    """(wall s, user+sys CPU s of the whole process tree) of one ``python -m sysspan`` run;
    ``cache`` is its SYSSPAN_SOURCE_CACHE."""
    cmd = [*(["taskset", "-c", "1"] if pin else []), sys.executable, "-m", "sysspan", "-q", *extra,
           "--trace-file", str(out), "--", *argv]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SYSSPAN_", "TRACE"))}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    env["SYSSPAN_SOURCE_CACHE"] = cache
    # An installed sysspan runs from compiled bytecode. Without it every run compiles the
    # modules it imports, and --source imports more of them: a cost users do not pay.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - t0, usage.ru_utime + usage.ru_stime


def cli_costs(exe: Path, runs: int, tmp: Path) -> None:
    """What ``--source`` adds to whole ``sysspan`` runs: a run with one openat (its fixed
    cost) and one with 1,000 syscalls (500 openat+close), without ``--source``, with it and
    the on-disk cache warm (the program was traced before), and with the cache off,
    alternating. Wall time pinned to one CPU and unpinned (median, min-max), and the CPU time
    of the whole process tree (rusage), median."""
    pin = shutil.which("taskset") is not None
    warm = str(tmp / "source-cache")
    modes: tuple[tuple[str, list[str], str], ...] = (("without", [], "off"), ("warm cache", ["--source"], warm), ("cache off", ["--source"], "off"))
    _cli_run([str(exe), "1"], ["--source"], tmp / "cli.jsonl", False, warm)  # fills the cache
    for label, n in (("1 openat", 1), ("1,000 syscalls", 500)):
        argv = [str(exe), str(n)]
        for pinned in ((True, False) if pin else (False,)):
            walls: dict[str, list[float]] = {m[0]: [] for m in modes}
            cpus: dict[str, list[float]] = {m[0]: [] for m in modes}
            for _ in range(runs):
                for mode, extra, cache in modes:
                    w, c = _cli_run(argv, extra, tmp / "cli.jsonl", pinned, cache)
                    walls[mode].append(w)
                    cpus[mode].append(c)
            where = "pinned" if pinned else "unpinned"
            base_w, base_c = statistics.median(walls["without"]), statistics.median(cpus["without"])
            print(f"sysspan, {label}, {where}: without --source wall {base_w * 1000:.1f} ms "
                  f"(min-max {min(walls['without']) * 1000:.0f}-{max(walls['without']) * 1000:.0f}), "
                  f"CPU {base_c * 1000:.1f} ms")
            for mode, _, _ in modes[1:]:
                w, c = statistics.median(walls[mode]), statistics.median(cpus[mode])
                # Each round's runs follow each other, so the ratio within a round sees the
                # same load on the machine; its median drifts less than a ratio of medians.
                paired_w = statistics.median([a / b for a, b in zip(walls[mode], walls["without"], strict=True)])
                paired_c = statistics.median([a / b for a, b in zip(cpus[mode], cpus["without"], strict=True)])
                print(f"    --source, {mode:10s}: wall {w * 1000:6.1f} ms ({w / base_w - 1:+6.1%}, "
                      f"{(w - base_w) * 1000:+6.1f} ms; min-max {min(walls[mode]) * 1000:.0f}-"
                      f"{max(walls[mode]) * 1000:.0f}), CPU {c * 1000:6.1f} ms ({c / base_c - 1:+6.1%}, "
                      f"{(c - base_c) * 1000:+6.1f} ms); per-round median wall {paired_w - 1:+6.1%}, "
                      f"CPU {paired_c - 1:+6.1%}")


@contextlib.contextmanager
def _inside(path: str) -> Iterator[None]:
    """Run the block with ``path`` as the working directory (contextlib.chdir is 3.11+)."""
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cli-only", action="store_true", help="only the whole-run figures (fixed cost, 1,000 syscalls)")
    args = ap.parse_args()
    if shutil.which("cc") is None:
        print("bench_source: needs a C compiler (cc)", file=sys.stderr)
        return 2
    modes = ("plain", "source", "source-noregs-hint", "stack")
    with tempfile.TemporaryDirectory() as tmp, _inside(tmp):
        src = Path(tmp) / "workload.c"
        exe = Path(tmp) / "workload"
        src.write_text(WORKLOAD)
        subprocess.run(["cc", "-g", "-O2", "-o", str(exe), str(src)], check=True)
        # The files the workload opens exist, in the directory every run starts in: otherwise
        # each open fails and no close follows (half the syscalls the figures name).
        for name in ("bench-a", "bench-b", "bench-c"):
            (Path(tmp) / name).write_text("x")
        cli_costs(exe, max(args.repeat, 5), Path(tmp))
        if args.cli_only:
            return 0
        argv = [str(exe), str(args.calls)]
        best: dict[str, float] = {}
        cpu: dict[str, float] = {}
        last: dict[str, tuple] = {}
        for _ in range(args.repeat):
            for mode in modes:
                secs, cpu_secs, stops, source, stacks = trace(argv, mode)
                best[mode] = min(best.get(mode, secs), secs)
                cpu[mode] = min(cpu.get(mode, cpu_secs), cpu_secs)
                last[mode] = (stops, source, stacks)
        base = best["plain"]
        stops = last["plain"][0]
        print(f"workload: {args.calls} openat+close from 3 call sites, {stops} syscall stops, "
              f"best of {args.repeat}")
        print(f"minimal ptrace loop (harshest baseline): {base:.3f} s wall, "
              f"{cpu['plain']:.3f} s tracer CPU, {base / stops * 1e6:.1f} us/stop")
        per_capture: dict[str, float] = {}
        labels = {
            "source": "--source (site)",
            "source-noregs-hint": "--source, no ip/sp hint",
            "stack": "-k (whole stack)",
        }
        for mode in modes[1:]:
            t = best[mode]
            n = len(last[mode][2])
            extra_cpu = cpu[mode] - cpu["plain"]
            per_capture[mode] = extra_cpu / n * 1e6 if n else 0.0
            print(f"  {labels[mode]:26s} {t:7.3f} s  {t / base - 1:+7.1%} wall  "
                  f"{cpu[mode] / cpu['plain'] - 1:+7.1%} tracer CPU  "
                  f"{per_capture[mode]:5.1f} us CPU per capture")

        # The real thing: sysspan's own pipeline (decoder, span builder, JSONL exporter).
        out = Path(tmp) / "trace.jsonl"
        plain_runs = [run_sysspan(argv, [], out) for _ in range(args.repeat)]
        plain_ok = [t for t in plain_runs if t is not None]
        if plain_ok:
            t_sys = min(plain_ok)
            captures = len(last["source"][2])
            print(f"python -m sysspan (no --source): {t_sys:.3f} s wall, "
                  f"{t_sys / max(captures, 1) * 1e6:.1f} us per syscall")
            if cli_has_source():
                for flag, label in (("--source", "--source"), ("-k", "-k")):
                    runs = [run_sysspan(argv, [flag], out) for _ in range(args.repeat)]
                    ok = [t for t in runs if t is not None]
                    if ok:
                        print(f"  sysspan {label:9s} measured  {min(ok):7.3f} s  "
                              f"{min(ok) / t_sys - 1:+7.1%} wall")
            else:
                print("  (the CLI has no --source yet: overhead estimated from the per-capture "
                      "CPU cost above)")
                for mode in modes[1:]:
                    est = captures * per_capture[mode] / 1e6
                    print(f"  {labels[mode]:26s} estimated {(t_sys + est) / t_sys - 1:+7.1%} wall")

        # Off the hot path: attributes for every captured syscall (warm after the first few).
        for mode in ("source", "stack"):
            _, source, stacks = last[mode]
            pid_stacks = [s for s in stacks if s]
            pid = next(iter(source.unwinder._procs))
            times = []
            for _ in range(2):  # cold (parses DWARF once), then warm (cache hits only)
                t0 = time.perf_counter()
                for pcs in pid_stacks:
                    source.attributes(pid, pcs)
                times.append(time.perf_counter() - t0)
            n = max(len(pid_stacks), 1)
            print(f"symbolise ({mode}): {len(pid_stacks)} stacks, cold {times[0]:.3f} s, "
                  f"warm {times[1] / n * 1e6:.1f} us per stack")
        _, source, stacks = last["source"]
        pid = next(iter(source.unwinder._procs))
        print(f"sample site: {source.attributes(pid, stacks[-2])}")
    return 0


if __name__ == "__main__":
    from common import use_release_venv

    use_release_venv()
    sys.exit(main())
