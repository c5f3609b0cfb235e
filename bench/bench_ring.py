"""The shared-memory decision ring's figures, as ratios measured in this one run.

    .venv/bin/python bench/bench_ring.py            # full
    .venv/bin/python bench/bench_ring.py --quick    # fewer runs, smaller workloads

1. Python API, decision sampled out (0.1%) under sysspan (default mode, ptrace) / the
   API's cost with sysspan absent, per call of the same loop (bench/workloads/loop.py).
2. Python API, every decision recorded into the ring (--decision-sample 1
   --decision-rate 0), ns per decision and / the sampled-out cost; lost decisions (ring
   full) for a count below the ring's capacity.
3. C through include/sysspan_decisions.h at 0.1% sampling under sysspan --no-syscalls /
   the uninstrumented build (SYSSPAN_DECIDE compiled away): fib(35), is_prime over the
   first million, sum_array over 1,000-element arrays. Both builds use
   -O2 -fno-optimize-sibling-calls so that every fib call is a real call in both (gcc
   otherwise turns one recursive call of the uninstrumented fib into a loop, and the
   comparison would be between different call counts), and -falign-functions=64 so that
   both hot functions start on a cache-line boundary: where a 1 ns function happens to
   land moves fib(35) by up to 17% in either build, which is layout luck, not the cost of
   the decision. Wall time of the hot part and its
   thread CPU time (the reader thread of sysspan competes for the CPUs in wall time only).
   Then the C record path alone (bench/workloads/record.c: a private ring handed back
   between batches, no reader), in ns and as a multiple of one clock_gettime in the run.
   The Python versions of the three (bench/workloads/*.py) are run the same way; their hot
   part includes the first decision's one-time mapping of the ring (and msgpack import),
   which dominates the --quick sizes.
4. A Python program making 1,000,000 decisions under sysspan --no-syscalls (default
   settings) / untraced: whole-process wall time, CPU time of the whole process tree
   (user + sys), wall with both pinned to one CPU, and the program loop's own cost.

Runs alternate (untraced, traced, untraced, ...) and the median of the per-pair ratios is
printed with the min-max range.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / "workloads"
PY = sys.executable
SYSSPAN = [PY, "-m", "sysspan", "-q", "-q"]
C_FLAGS = ["-O2", "-fno-optimize-sibling-calls", "-falign-functions=64", "-std=gnu11"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SYSSPAN_", "TRACE", "BAGGAGE"))}
    env["PYTHONPATH"] = str(REPO)
    return env


def _out(argv: list[str], cwd: Path) -> tuple[float, list[str]]:
    """(whole-process wall seconds, stdout fields) of one run."""
    wall, _cpu, fields = _out_cpu(argv, cwd)
    return wall, fields


def _out_cpu(argv: list[str], cwd: Path, pin: bool = False) -> tuple[float, float, list[str]]:
    """(wall seconds, user + sys seconds of the whole process tree, stdout fields) of one
    run; ``pin`` runs it on one CPU (``taskset -c 1``). The tree's CPU time is the growth
    of this process's reaped-children usage (runs are one at a time)."""
    full = ["taskset", "-c", "1", *argv] if pin else argv
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(full, env=_env(), cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(argv)}\n{proc.stderr[-500:]}")
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return wall, cpu, proc.stdout.split()


def _ratios(base: list[float], other: list[float]) -> str:
    r = [o / b for b, o in zip(base, other, strict=True)]
    return f"x{statistics.median(r):.2f} (min-max {min(r):.2f}-{max(r):.2f}, {len(r)} pairs)"


def _run_span(trace: Path) -> dict:
    for line in trace.read_text().splitlines():
        for rs in json.loads(line).get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                for span in ss.get("spans", []):
                    attrs = {a["key"]: a["value"] for a in span.get("attributes", [])}
                    if "decision.count" in attrs:
                        return {k: int(next(iter(v.values()))) for k, v in attrs.items() if k.startswith("decision.")}
    raise SystemExit(f"no run span in {trace}")


def figures_python_api(tmp: Path, runs: int, calls: int) -> None:
    loop = str(WORK / "loop.py")
    absent, sampled, absent_cpu, sampled_cpu = [], [], [], []
    for _ in range(runs):
        fields = _out([PY, loop, str(calls)], tmp)[1]
        absent.append(float(fields[0]))
        absent_cpu.append(float(fields[1]))
        fields = _out([*SYSSPAN, "--decision-sample", "0.001", "--trace-file", str(tmp / "f1.jsonl"), "--", PY, loop, str(calls)], tmp)[1]
        assert fields[2] == "ring", fields
        sampled.append(float(fields[0]))
        sampled_cpu.append(float(fields[1]))
    print(f"1. Python API per call (loop included), sampled out (0.1%) under sysspan: {statistics.median(sampled):.0f} ns; "
          f"sysspan absent: {statistics.median(absent):.0f} ns; wall {_ratios(absent, sampled)}; "
          f"CPU {_ratios(absent_cpu, sampled_cpu)}   [target <= 2x]")
    below = 5000  # under the ring's 8192 slots even if the reader never ran
    recorded, recorded_cpu, lost = [], [], []
    for _ in range(runs):
        trace = tmp / "f2.jsonl"
        fields = _out([*SYSSPAN, "--no-syscalls", "--decision-sample", "1", "--decision-rate", "0", "--trace-file", str(trace), "--", PY, loop, str(below)], tmp)[1]
        recorded.append(float(fields[0]))
        recorded_cpu.append(float(fields[1]))
        run = _run_span(trace)
        assert run["decision.count"] == below + 1, run  # and the warm-up decision
        lost.append(run["decision.dropped"] + run["decision.ring.full"] + run["decision.ring.abandoned"])
    per, per_cpu = statistics.median(recorded), statistics.median(recorded_cpu)
    print(f"2. Python API per decision recorded into the ring: wall {per:.0f} ns, CPU {per_cpu:.0f} ns   [target <= 1.5 us]; "
          f"x{per / statistics.median(sampled):.1f} (CPU x{per_cpu / statistics.median(sampled_cpu):.1f}) of sampled out   [target <= 20x]; "
          f"lost of {below} (below capacity): {max(lost)}   [target 0]")


def _build_c(tmp: Path) -> dict[str, tuple[str, str]]:
    if shutil.which("gcc") is None:
        raise SystemExit("gcc is needed for the C figures (make deps installs it)")
    out = {}
    for name in ("fib", "primes", "array_sum"):
        src = str(WORK / f"{name}.c")
        on, off = str(tmp / name), str(tmp / f"{name}_off")
        subprocess.run(["gcc", *C_FLAGS, "-pthread", "-I", str(REPO / "include"), src, "-o", on, "-lm"], check=True)
        subprocess.run(["gcc", *C_FLAGS, "-DSYSSPAN_OFF", src, "-o", off], check=True)
        out[name] = (on, off)
    return out


def _compare(label: str, plain: list[str], traced: list[str], runs: int, tmp: Path, target: str) -> None:
    walls = {"plain": [], "traced": []}
    cpus = {"plain": [], "traced": []}
    for _ in range(runs):
        for key, argv in (("plain", plain), ("traced", traced)):
            fields = _out(argv, tmp)[1]
            walls[key].append(float(fields[0]))
            cpus[key].append(float(fields[1]))
    print(f"   {label:<34} wall {_ratios(walls['plain'], walls['traced'])}; "
          f"CPU {_ratios(cpus['plain'], cpus['traced'])}   [target {target}]")


def figures_workloads(tmp: Path, runs: int, quick: bool) -> None:
    c = _build_c(tmp)
    traced = [*SYSSPAN, "--no-syscalls", "--decision-sample", "0.001", "--trace-file", str(tmp / "f3.jsonl"), "--"]
    sizes = {"fib": "30" if quick else "35", "primes": "200000" if quick else "1000000", "array_sum": "20000" if quick else "100000"}
    print("3. C through the header, 0.1% sampling, under sysspan --no-syscalls / uninstrumented build")
    for name, target in (("fib", "<= 1.15"), ("primes", "<= 1.02"), ("array_sum", "<= 1.01")):
        on, off = c[name]
        _compare(f"{name}({sizes[name]})", [off, sizes[name]], [*traced, on, sizes[name]], runs, tmp, target)
        _compare(f"{name}({sizes[name]}), sysspan absent", [off, sizes[name]], [on, sizes[name]], runs, tmp, "-")
    record = str(tmp / "record")
    subprocess.run(["gcc", *C_FLAGS, "-pthread", "-I", str(REPO / "include"), str(WORK / "record.c"), "-o", record, "-lm"], check=True)
    per_record, per_clock = (float(x) for x in _out([record], tmp)[1])
    print(f"   C record path alone (every call kept, bench/workloads/record.c): {per_record:.1f} ns a record, "
          f"x{per_record / per_clock:.2f} one clock_gettime(CLOCK_REALTIME) ({per_clock:.1f} ns) in the same run")
    print("   Python versions, 0.1% sampling, under sysspan (default mode) / untraced")
    py_sizes = {"fib": "20" if quick else "25", "primes": "30000" if quick else "200000", "array_sum": "500" if quick else "3000"}
    traced_py = [*SYSSPAN, "--decision-sample", "0.001", "--trace-file", str(tmp / "f3p.jsonl"), "--"]
    for name in ("fib", "primes", "array_sum"):
        script = str(WORK / f"{name}.py")
        _compare(f"{name}.py({py_sizes[name]})", [PY, script, py_sizes[name]], [*traced_py, PY, script, py_sizes[name]], runs, tmp, "-")


def figure_program(tmp: Path, runs: int, n: int) -> None:
    loop = str(WORK / "loop.py")
    plain, traced, start_only, loop_plain, loop_traced = [], [], [], [], []
    cpu_plain, cpu_traced, pin_plain, pin_traced, loop_cpu_plain, loop_cpu_traced = [], [], [], [], [], []
    plain_argv = [PY, loop, str(n)]
    traced_argv = [*SYSSPAN, "--no-syscalls", "--trace-file", str(tmp / "f4.jsonl"), "--", PY, loop, str(n)]
    for _ in range(runs):
        wall, cpu, fields = _out_cpu(plain_argv, tmp)
        plain.append(wall)
        cpu_plain.append(cpu)
        loop_plain.append(float(fields[0]))
        loop_cpu_plain.append(float(fields[1]))
        wall, cpu, fields = _out_cpu(traced_argv, tmp)
        assert fields[2] == "ring", fields
        traced.append(wall)
        cpu_traced.append(cpu)
        loop_traced.append(float(fields[0]))
        loop_cpu_traced.append(float(fields[1]))
        start_only.append(_out([*SYSSPAN, "--no-syscalls", "--trace-file", str(tmp / "f4t.jsonl"), "--", "true"], tmp)[0])
        pin_plain.append(_out_cpu(plain_argv, tmp, pin=True)[0])
        pin_traced.append(_out_cpu(traced_argv, tmp, pin=True)[0])
    run = _run_span(tmp / "f4.jsonl")
    print(f"4. {n:,} decisions from Python under sysspan --no-syscalls / untraced (whole process): "
          f"{statistics.median(traced):.2f} s / {statistics.median(plain):.2f} s, {_ratios(plain, traced)}   [target <= 1.5x]; "
          f"decision.count {run['decision.count']:,}")
    print(f"   CPU of the whole process tree (user + sys): {statistics.median(cpu_traced):.2f} s / "
          f"{statistics.median(cpu_plain):.2f} s, {_ratios(cpu_plain, cpu_traced)}; wall, both pinned to one CPU: "
          f"{_ratios(pin_plain, pin_traced)}")
    # sysspan's own start and end (imports, the trace file) are in the figure above; this
    # is what is left for the decisions themselves
    rest = [t - s for t, s in zip(traced, start_only, strict=True)]
    print(f"   without sysspan's own start/stop (sysspan --no-syscalls -- true: {statistics.median(start_only):.2f} s): "
          f"{_ratios(plain, rest)}; the program's own loop, per call: wall {_ratios(loop_plain, loop_traced)}, "
          f"thread CPU {statistics.median(loop_cpu_traced):.0f} ns / {statistics.median(loop_cpu_plain):.0f} ns, "
          f"{_ratios(loop_cpu_plain, loop_cpu_traced)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs and smaller workloads")
    parser.add_argument("--runs", type=int, default=None, help="alternating runs per comparison (default 5, quick 2)")
    parser.add_argument("--figure", type=int, action="append", choices=(1, 2, 3, 4),
                        help="only this figure (repeatable; 1 and 2 are measured together)")
    ns = parser.parse_args()
    runs = ns.runs or (2 if ns.quick else 5)
    want = set(ns.figure or (1, 2, 3, 4))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if want & {1, 2}:
            figures_python_api(tmp, runs, 200_000 if ns.quick else 1_000_000)
        if 3 in want:
            figures_workloads(tmp, runs, ns.quick)
        if 4 in want:
            figure_program(tmp, runs, 100_000 if ns.quick else 1_000_000)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    from common import use_release_venv

    use_release_venv()
    raise SystemExit(main())
