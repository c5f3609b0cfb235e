"""Shared helpers for the benchmarks: timed runs with CPU time and peak RSS, alternating
comparisons (pinned and unpinned), a loopback OTLP/gRPC receiver process.

Why both pinned and unpinned: a ptrace stop wakes the tracer and, later, the tracee. When
the scheduler puts them on different CPUs every stop is a cross-CPU wake-up, and how often
that happens varies from run to run, so unpinned wall times of the same command swing by
several times. With both tools pinned to one CPU (``taskset -c 1``) the comparison measures
the work each tool does; CPU time (user + sys of the whole process tree, from ``wait4``)
says the same without depending on placement.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The console script a user runs (pip's wrapper imports re, which a `-m` start would not)
_SCRIPT = Path(sys.executable).parent / "sysspan"
SYSSPAN = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "sysspan"]
PIN = ["taskset", "-c", "1"]
RELEASE_VENV = REPO / "bench" / ".venv"


def use_release_venv() -> None:
    """Re-run the calling benchmark under ``bench/.venv``, a regular (not editable) install.

    An editable install (``make``'s ``.venv``) puts an import finder in every interpreter's
    start: about 10 ms, which doubles ``python -c pass`` on these VMs and would flatter every
    start-up ratio taken against a Python baseline. ``bench/.venv`` has sysspan's
    dependencies installed as ``pip install .`` installs them; ``PYTHONPATH`` (see ``env``)
    still points at this checkout, so the code measured is the code in the tree, with its
    in-place built extensions. Rebuilt when pyproject.toml or setup.py change;
    ``SYSSPAN_BENCH_VENV=current`` keeps the interpreter the benchmark was started with.

    The tree's bytecode is compiled first and ``PYTHONDONTWRITEBYTECODE`` dropped, as pip
    leaves an installed package: with stale or missing ``.pyc`` files every start would
    compile the modules it imports again.
    """
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "sysspan")],
                   check=True, stdout=subprocess.DEVNULL)
    if os.environ.get("SYSSPAN_BENCH_VENV") == "current" or Path(sys.prefix).resolve() == RELEASE_VENV.resolve():
        return
    digest = hashlib.sha256(b"".join((REPO / f).read_bytes() for f in ("pyproject.toml", "setup.py"))).hexdigest()
    stamp = RELEASE_VENV / "sysspan-deps.sha256"
    python = RELEASE_VENV / "bin" / "python"
    if not stamp.exists() or stamp.read_text() != digest:
        print(f"bench: installing sysspan into {RELEASE_VENV} (a regular install, once)", file=sys.stderr, flush=True)
        shutil.rmtree(RELEASE_VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(RELEASE_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"{REPO}[test]"], check=True)
        stamp.write_text(digest)
    os.execv(python, [str(python), *sys.argv])


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACEPARENT", "SYSSPAN_"))}
    e["PYTHONPATH"] = str(REPO)
    return e


@dataclass
class Sample:
    wall: float  # seconds
    cpu: float  # user + sys seconds of the child and every descendant it waited for
    rss_kib: int  # peak RSS of the largest process in that tree
    rc: int


def measure(cmd: list[str], cwd: str | Path, pin: bool = False, quiet: bool = True) -> Sample:
    out = subprocess.DEVNULL if quiet else None
    full = [*PIN, *cmd] if pin else cmd
    start = time.perf_counter()
    proc = subprocess.Popen(full, cwd=cwd, env=env(), stdout=out, stderr=out)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    return Sample(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, os.waitstatus_to_exitcode(status))


def run(cmd: list[str], cwd: str | Path, quiet: bool = True) -> tuple[float, int, int]:
    """(wall seconds, peak RSS of the process tree in KiB, exit status)."""
    s = measure(cmd, cwd, quiet=quiet)
    return s.wall, s.rss_kib, s.rc


def alternate(cmds: dict[str, list[str]], runs: int, cwd: Path, pin: bool = False) -> dict[str, list[Sample]]:
    """Run each command ``runs`` times, interleaved (a, b, a, b, ...) so drift in machine
    load hits all of them alike."""
    samples: dict[str, list[Sample]] = {name: [] for name in cmds}
    for _ in range(runs):
        for name, cmd in cmds.items():
            s = measure(cmd, cwd, pin=pin)
            if s.rc != 0:
                raise SystemExit(f"benchmark command failed ({s.rc}): {' '.join(cmd)}")
            samples[name].append(s)
    return samples


def median(values: list[float]) -> float:
    return statistics.median(values)


@dataclass
class Comparison:
    """``a`` against ``b``: pinned wall and CPU medians, unpinned wall median and range."""

    a: str
    b: str
    pinned: dict[str, list[Sample]]
    unpinned: dict[str, list[Sample]]

    def _med(self, which: dict[str, list[Sample]], name: str, field: str) -> float:
        return median([getattr(s, field) for s in which[name]])

    def ratio(self, field: str = "wall", pinned: bool = True) -> float:
        which = self.pinned if pinned else self.unpinned
        return self._med(which, self.a, field) / self._med(which, self.b, field)

    def lines(self, target: str) -> list[str]:
        out = []
        for label, which in (("pinned (taskset -c 1)", self.pinned), ("unpinned", self.unpinned)):
            if not which[self.a]:
                continue
            parts = []
            for name in (self.a, self.b):
                walls = [s.wall for s in which[name]]
                cpus = [s.cpu for s in which[name]]
                parts.append(f"{name} {median(walls):.2f}s [{min(walls):.2f}-{max(walls):.2f}] cpu {median(cpus):.2f}s")
            n = len(which[self.a])
            ratio = self.ratio("wall", which is self.pinned)
            cpu_ratio = self.ratio("cpu", which is self.pinned)
            extra = f"  {target}" if which is self.pinned else ""
            out.append(f"   {label:<22} {'; '.join(parts)}  wall ratio {ratio:.2f}, cpu ratio {cpu_ratio:.2f}"
                       f"  (medians of {n}){extra}")
        return out


def compare(a: str, b: str, cmds: dict[str, list[str]], runs: int, cwd: Path, pinned_runs: int | None = None) -> Comparison:
    pinned = alternate(cmds, pinned_runs or runs, cwd, pin=True)
    unpinned = alternate(cmds, runs, cwd, pin=False) if runs else {a: [], b: []}
    return Comparison(a, b, pinned, unpinned)


def machine_note() -> str:
    load = os.getloadavg()[0]
    return (f"{platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}, "
            f"Python {platform.python_version()}, load average {load:.1f}")


# -- a loopback OTLP/gRPC receiver in its own process ------------------------------------------
def serve_trace_service(port_q, on_request, workers: int = 2) -> None:
    """In a receiver process: an OTLP/gRPC trace service on a loopback ephemeral port that
    calls ``on_request(request)`` for each decoded ``ExportTraceServiceRequest``; the port
    goes to ``port_q``. Runs until the process is terminated."""
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    class Servicer(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):  # noqa: N802 - gRPC name
            on_request(request)
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers),
        options=[("grpc.max_receive_message_length", 64 << 20)],
    )
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    port_q.put(port)
    server.wait_for_termination()


def _receiver(port_q, counter, run_count, workers: int, pin_cpu: int | None) -> None:
    if pin_cpu is not None:
        os.sched_setaffinity(0, {pin_cpu})

    def count(request) -> None:
        n = 0
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                n += len(ss.spans)
                for span in ss.spans:
                    if not span.parent_span_id:
                        for kv in span.attributes:
                            if kv.key == "syscall.count":
                                with run_count.get_lock():
                                    run_count.value = kv.value.int_value
        with counter.get_lock():
            counter.value += n

    serve_trace_service(port_q, count, workers)


class Receiver:
    """``with Receiver() as r``: ``r.endpoint``, ``r.counter.value`` (spans counted),
    ``r.run_count.value`` (the run span's syscall.count, when a trace was sent)."""

    def __init__(self, workers: int = 2, pin_cpu: int | None = None) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.counter = ctx.Value("q", 0)
        self.run_count = ctx.Value("q", -1)
        self._q = ctx.Queue()
        self._proc = ctx.Process(target=_receiver, args=(self._q, self.counter, self.run_count, workers, pin_cpu), daemon=True)

    def __enter__(self) -> Receiver:
        self._proc.start()
        self.endpoint = f"http://127.0.0.1:{self._q.get(timeout=60)}"
        return self

    def reset(self) -> None:
        self.counter.value = 0
        self.run_count.value = -1

    def cpu_seconds(self) -> float:
        """User + system CPU time the receiver process has used so far (all its threads)."""
        with open(f"/proc/{self._proc.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_for(self, n: int, timeout: float = 600) -> float:
        deadline = time.perf_counter() + timeout
        while self.counter.value < n and time.perf_counter() < deadline:
            time.sleep(0.002)
        return time.perf_counter()

    def __exit__(self, *exc) -> None:
        self._proc.terminate()
        self._proc.join(5)
