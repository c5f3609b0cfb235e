"""Export throughput: sysspan's direct OTLP path vs the OpenTelemetry SDK path.

Both send syscall-shaped spans over OTLP/gRPC to a loopback receiver running in its own
process, which decodes every request with the official ``opentelemetry-proto`` classes and
counts the spans. The clock stops when the receiver has counted everything that was sent.

* fast: sysspan ``Span`` records (built in the loop) → ``OtlpSink`` (direct protobuf encoder,
  grpcio) in batches of 512, as the trace pipeline does;
* SDK:  ``TracerProvider`` + ``BatchSpanProcessor`` + ``OTLPSpanExporter`` (gRPC), one
  ``start_span``/``end`` per span with the same attributes.

    python bench/bench_export.py [--spans N] [--sdk-spans N]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import machine_note, serve_trace_service  # noqa: E402

ARGS = ['0, "\\0", 1', '1, "\\0", 1']


def _receiver(port_q, counter) -> None:
    def count(request) -> None:
        n = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        with counter.get_lock():
            counter.value += n

    serve_trace_service(port_q, count)


def _wait(counter, target: int, timeout: float = 600) -> float:
    deadline = time.perf_counter() + timeout
    while counter.value < target and time.perf_counter() < deadline:
        time.sleep(0.002)
    return time.perf_counter()


def fast_path(endpoint: str, n: int, counter) -> tuple[float, int]:
    from sysspan.config import OtlpSettings
    from sysspan.exporters.otlp import OtlpSink
    from sysspan.model import Span

    sink = OtlpSink(
        OtlpSettings(endpoint=endpoint, protocol="grpc", insecure=True),
        {"service.name": "bench", "host.name": "bench"},
        "/tmp/sysspan-bench-spool.jsonl",
        "bench",
    )
    trace_id = 0x0AF7651916CD43DD8448EB211C80319C
    start_ns = time.time_ns()
    counter.value = 0
    t0 = time.perf_counter()
    batch = []
    for i in range(n):
        nr = i & 1
        batch.append(
            Span(
                trace_id, i + 1, 7, "read" if nr == 0 else "write", start_ns + i * 1000,
                start_ns + i * 1000 + 700,
                attributes={
                    "syscall.name": "read" if nr == 0 else "write",
                    "syscall.args": ARGS[nr],
                    "thread.id": 4242,
                    "syscall.return": 1,
                },
            )
        )
        if len(batch) == 512:
            sink.export(batch)
            batch = []
    if batch:
        sink.export(batch)
    report = sink.close()
    t1 = _wait(counter, n)
    if not report.ok:
        raise SystemExit(f"fast path failed: {report.messages}")
    return t1 - t0, counter.value


def sdk_path(endpoint: str, n: int, counter) -> tuple[float, int]:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    # A queue large enough that the processor never drops: the comparison is about cost.
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=endpoint, insecure=True),
            max_queue_size=n + 1,
            max_export_batch_size=512,
            schedule_delay_millis=100,
        )
    )
    tracer = provider.get_tracer("bench")
    start_ns = time.time_ns()
    counter.value = 0
    t0 = time.perf_counter()
    for i in range(n):
        nr = i & 1
        span = tracer.start_span(
            "read" if nr == 0 else "write",
            start_time=start_ns + i * 1000,
            attributes={
                "syscall.name": "read" if nr == 0 else "write",
                "syscall.args": ARGS[nr],
                "thread.id": 4242,
                "syscall.return": 1,
            },
        )
        span.end(end_time=start_ns + i * 1000 + 700)
    provider.force_flush(600_000)
    t1 = _wait(counter, n)
    provider.shutdown()
    return t1 - t0, counter.value


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--sdk-spans", type=int, default=200_000, help="the SDK path is slow: fewer spans, same rate")
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    counter = ctx.Value("q", 0)
    port_q = ctx.Queue()
    proc = ctx.Process(target=_receiver, args=(port_q, counter), daemon=True)
    proc.start()
    endpoint = f"http://127.0.0.1:{port_q.get(timeout=30)}"
    try:
        print(f"machine: {machine_note()}")
        fast_s, fast_n = fast_path(endpoint, args.spans, counter)
        sdk_s, sdk_n = sdk_path(endpoint, args.sdk_spans, counter)
    finally:
        proc.terminate()
    fast_rate, sdk_rate = fast_n / fast_s, sdk_n / sdk_s
    print(f"3. export      fast gRPC path: {args.spans} spans sent, {fast_n} counted by the receiver,"
          f" {fast_s:.2f}s = {fast_rate:,.0f} spans/s (target >= 150,000)")
    print(f"               SDK path:       {args.sdk_spans} spans sent, {sdk_n} counted, {sdk_s:.2f}s ="
          f" {sdk_rate:,.0f} spans/s")
    print(f"               fast / SDK = {fast_rate / sdk_rate:.1f}x (target >= 10x); receiver count equals sent:"
          f" {fast_n == args.spans and sdk_n == args.sdk_spans}")


if __name__ == "__main__":
    main()
