"""What the span budget costs: a full trace of a real build exported over OTLP/gRPC with the
default budget vs the same trace with ``--syscall-spans all``.

The workload is a generated C project of 30 sources built with ``make -j2`` (``clean``
first, inside the traced command, so every run does the same work) traced with ``-f``.
The receiver runs in its own process and decodes every request with the official
``opentelemetry-proto`` classes; it also reports what one budget run delivered (syscall
spans, bytes) next to what the trace held.

Figures, all ratios of budget / all measured in this run:
  * wall time with sysspan and the build pinned to one CPU (``taskset -c 1``);
  * CPU time (user + sys of sysspan and the traced tree, from ``os.wait4``);
  * unpinned: median and min–max of ``--runs`` alternating runs.

    python bench/bench_budget.py [--runs 5] [--files 30]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from common import SYSSPAN, env, machine_note, serve_trace_service  # noqa: E402

from tests.cproject import make_project  # noqa: E402


def _receiver(port_q, counts) -> None:
    def count(request) -> None:
        # sysspan writes syscall.name first on a syscall span: one look per span keeps the
        # receiver quick, so its own decoding does not stretch the sender's wait
        syscalls = sum(
            1
            for rs in request.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
            if span.attributes and span.attributes[0].key == "syscall.name"
        )
        with counts.get_lock():
            counts[0] += syscalls
            counts[1] += request.ByteSize()

    serve_trace_service(port_q, count)


def _timed(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the whole process tree)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(cmd)}\n{err[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--files", type=int, default=30)
    args = ap.parse_args()
    if shutil.which("gcc") is None or shutil.which("make") is None:
        print("bench_budget: needs gcc and make; skipped")
        return 0

    counts = mp.Array("q", 2)
    port_q: mp.Queue = mp.Queue()
    server = mp.Process(target=_receiver, args=(port_q, counts), daemon=True)
    server.start()
    endpoint = f"http://127.0.0.1:{port_q.get(timeout=30)}"

    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "proj"
        project.mkdir()
        make_project(project, args.files)
        build = ["sh", "-c", "rm -f *.o prog; make -j2 -s"]
        base = [*SYSSPAN, "-q", "-f", "--otlp-endpoint", endpoint, "--otlp-protocol", "grpc",
                "--output-dir", str(Path(tmp) / "out")]
        cmds = {
            "budget": [*base, "--", *build],
            "all": [*base, "--syscall-spans", "all", "--", *build],
        }

        # What one budget run delivers, and how many syscalls the trace had.
        counts[0] = counts[1] = 0
        trace_file = Path(tmp) / "full.jsonl"
        _timed([*base, "--trace-file", str(trace_file), "--", *build], project)
        time.sleep(0.5)
        budget_spans, budget_bytes = counts[0], counts[1]
        total = _count_syscalls(trace_file)

        pinned: dict[str, list[tuple[float, float]]] = {name: [] for name in cmds}
        unpinned: dict[str, list[float]] = {name: [] for name in cmds}
        taskset = shutil.which("taskset")
        for _ in range(max(1, args.runs)):
            for name, cmd in cmds.items():
                if taskset:
                    pinned[name].append(_timed([taskset, "-c", "1", *cmd], project))
                unpinned[name].append(_timed(cmd, project)[0])
    server.terminate()

    print(f"machine: {machine_note()}")
    print(
        f"make -j2 of {args.files} C files under sysspan -f: {total:,} syscall spans in the "
        f"trace; the budget run delivered {budget_spans:,} syscall spans, "
        f"{budget_bytes / 1e6:.2f} MB of OTLP requests"
    )
    if taskset:
        wall = {n: statistics.median(w for w, _ in v) for n, v in pinned.items()}
        cpu = {n: statistics.median(c for _, c in v) for n, v in pinned.items()}
        print(
            f"pinned (taskset -c 1), median of {args.runs}: budget {wall['budget']:.2f} s vs "
            f"all {wall['all']:.2f} s: {wall['budget'] / wall['all']:.3f}x wall; CPU "
            f"{cpu['budget']:.2f} s vs {cpu['all']:.2f} s: {cpu['budget'] / cpu['all']:.3f}x"
        )
    med = {n: statistics.median(v) for n, v in unpinned.items()}
    print(
        f"unpinned, {args.runs} alternating runs: budget median {med['budget']:.2f} s "
        f"(min {min(unpinned['budget']):.2f}, max {max(unpinned['budget']):.2f}) vs all "
        f"{med['all']:.2f} s (min {min(unpinned['all']):.2f}, max {max(unpinned['all']):.2f}): "
        f"{med['budget'] / med['all']:.3f}x (target <= 1.05x)"
    )
    return 0


def _count_syscalls(path: Path) -> int:
    import json

    n = 0
    with path.open() as fh:
        for line in fh:
            for rs in json.loads(line)["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    for span in ss["spans"]:
                        if any(a["key"] == "syscall.name" for a in span.get("attributes", [])):
                            n += 1
    return n


if __name__ == "__main__":
    from common import use_release_venv

    use_release_venv()
    raise SystemExit(main())
