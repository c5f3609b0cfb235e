"""Shared helpers for the benchmarks: timed runs, medians, peak RSS of a child."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SYSSPAN = [sys.executable, "-m", "sysspan"]


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACEPARENT", "SYSSPAN_"))}
    e["PYTHONPATH"] = str(REPO)
    return e


def run(cmd: list[str], cwd: str | Path, quiet: bool = True) -> tuple[float, int, int]:
    """(wall seconds, peak RSS of the direct child in KiB, exit status)."""
    out = subprocess.DEVNULL if quiet else None
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env(), stdout=out, stderr=out)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss, proc.returncode


def alternate(cmds: dict[str, list[str]], runs: int, cwd: Path) -> dict[str, list[float]]:
    """Run each command ``runs`` times, interleaved (a, b, a, b, ...) so drift in machine
    load hits all of them alike. Returns the wall times per name."""
    times: dict[str, list[float]] = {name: [] for name in cmds}
    for _ in range(runs):
        for name, cmd in cmds.items():
            wall, _, rc = run(cmd, cwd)
            if rc != 0:
                raise SystemExit(f"benchmark command failed ({rc}): {' '.join(cmd)}")
            times[name].append(wall)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine_note() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()}"


def serve_trace_service(port_q, on_request) -> None:
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
        futures.ThreadPoolExecutor(max_workers=2),
        options=[("grpc.max_receive_message_length", 64 << 20)],
    )
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    port_q.put(port)
    server.wait_for_termination()
