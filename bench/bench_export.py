"""Export throughput: sysspan's direct OTLP path vs the OpenTelemetry SDK path.

All paths send syscall-shaped spans over OTLP/gRPC to a loopback receiver running in its own
process, which decodes every request with the official ``opentelemetry-proto`` classes and
counts the spans. The clock stops when the receiver has counted everything that was sent.

* fast: sysspan ``Span`` records (built in the loop) → ``OtlpSink`` (direct protobuf encoder,
  grpcio) in batches of 512, as the trace pipeline does; the sink encodes the next request
  while its sender thread waits for the answer to the last one;
* SDK:  ``TracerProvider`` + ``BatchSpanProcessor`` + ``OTLPSpanExporter`` (gRPC), one
  ``start_span``/``end`` per span with the same attributes;
* converted: the same sysspan ``Span`` batches turned into SDK ``ReadableSpan`` objects
  (``sdk_convert.py``) and handed to the SDK's ``OTLPSpanExporter``: the export path sysspan
  had as ``--otlp-sdk`` before it was removed.

Why the figures used to swing between runs: the sender, grpcio's own threads and the
receiver (which decodes every request) competed for the machine's two CPUs, and where the
scheduler put them decided the result; and with every fast round first and every SDK round
after, any change in the machine's load between the two phases went straight into the
ratio. Here the receiver is pinned to CPU 0 and the sender to CPU 1 (when there are two),
the paths alternate round by round, and the ratio is taken per round (fast / SDK of the same
round) and printed as the median with its range; garbage collection stays on, as it is in a
real trace.

What bounds the fast path: for each path the bench prints the CPU time of the sender (every
thread) and of the receiver per round beside the wall time. When the sender's CPU time is
close to the wall time, the sender is the limit; when the receiver's is, the bench measures
the receiver. (Before export was pipelined, the sender idled for a third of the wall time,
waiting for the answer to each request before encoding the next.)

    python bench/bench_export.py [--spans N] [--sdk-spans N] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Receiver, machine_note  # noqa: E402
from sdk_convert import Converter  # noqa: E402

ARGS = ['0, "\\0", 1', '1, "\\0", 1']


RESOURCE = {"service.name": "bench", "host.name": "bench"}


def _span_batches(n: int):
    """Syscall-shaped sysspan spans, built as the loop goes, in batches of 512."""
    from sysspan.model import Span

    trace_id = 0x0AF7651916CD43DD8448EB211C80319C
    start_ns = time.time_ns()
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
            yield batch
            batch = []
    if batch:
        yield batch


def fast_path(endpoint: str, n: int, rx: Receiver) -> tuple[float, int]:
    from sysspan.config import OtlpSettings
    from sysspan.exporters.otlp import OtlpSink

    sink = OtlpSink(
        OtlpSettings(endpoint=endpoint, protocol="grpc", insecure=True),
        RESOURCE,
        "/tmp/sysspan-bench-spool.jsonl",
        "bench",
    )
    rx.reset()
    t0 = time.perf_counter()
    for batch in _span_batches(n):
        sink.export(batch)
    report = sink.close()
    t1 = rx.wait_for(n)
    if not report.ok:
        raise SystemExit(f"fast path failed: {report.messages}")
    return t1 - t0, rx.counter.value


def converted_path(endpoint: str, n: int, rx: Receiver) -> tuple[float, int]:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    from sysspan.model import ResourceSpans

    exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True)
    converter = Converter(())
    rx.reset()
    t0 = time.perf_counter()
    for batch in _span_batches(n):
        spans = converter.convert([ResourceSpans(RESOURCE, batch, "sysspan", "bench")])
        if exporter.export(spans) != SpanExportResult.SUCCESS:
            raise SystemExit("converted path: the SDK exporter failed")
    t1 = rx.wait_for(n)
    exporter.shutdown()
    return t1 - t0, rx.counter.value


def sdk_path(endpoint: str, n: int, rx: Receiver) -> tuple[float, int]:
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
    rx.reset()
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
    t1 = rx.wait_for(n)
    provider.shutdown()
    return t1 - t0, rx.counter.value


def _rate(label: str, fn, endpoint: str, n: int, rx: Receiver) -> tuple[float, float, float, float, float]:
    """(spans per second of wall time, spans per CPU second of the sending process: every
    thread, grpcio's and the SDK's batch processor included; then the round's wall seconds,
    the sender's and the receiver's CPU seconds)."""
    cpu0, rx0 = time.process_time(), rx.cpu_seconds()
    secs, counted = fn(endpoint, n, rx)
    cpu, rx_cpu = time.process_time() - cpu0, rx.cpu_seconds() - rx0
    if counted != n:
        raise SystemExit(f"{label}: the receiver counted {counted} of {n} spans")
    return n / secs, n / cpu, secs, cpu, rx_cpu


def _busy(rounds: list[tuple[float, float, float, float, float]]) -> str:
    """Median wall, sender CPU and receiver CPU seconds of a path's rounds."""
    med = [statistics.median(r[i] for r in rounds) for i in (2, 3, 4)]
    return f"wall {med[0]:.2f}s, sender CPU {med[1]:.2f}s, receiver CPU {med[2]:.2f}s (medians per round)"


def _summary(values: list[float], unit: str = " spans/s") -> str:
    med = statistics.median(values)
    spread = (max(values) - min(values)) / med * 100
    fmt = "{:,.0f}" if unit else "{:.1f}x"
    return (f"median {fmt.format(med)}{unit} [{fmt.format(min(values))}-{fmt.format(max(values))}, "
            f"spread {spread:.0f}%]")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=200_000, help="spans per round on the fast path")
    ap.add_argument("--sdk-spans", type=int, default=50_000, help="the SDK paths are slow: fewer spans, same rate")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    two = (os.cpu_count() or 1) >= 2
    fast: list[tuple[float, float, float, float, float]] = []
    sdk: list[tuple[float, float, float, float, float]] = []
    converted: list[tuple[float, float, float, float, float]] = []
    with Receiver(pin_cpu=0 if two else None) as rx:
        if two:
            os.sched_setaffinity(0, {1})  # the sender (and its grpcio threads) on CPU 1
        print(f"machine: {machine_note()}; receiver on CPU 0, sender on CPU 1" if two else f"machine: {machine_note()}")
        fast_path(rx.endpoint, min(args.spans, 20_000), rx)  # warm-up: channel, imports
        sdk_path(rx.endpoint, min(args.sdk_spans, 5_000), rx)
        for _ in range(args.rounds):  # alternating, so drift in the machine's load hits all paths
            fast.append(_rate("fast path", fast_path, rx.endpoint, args.spans, rx))
            sdk.append(_rate("SDK path", sdk_path, rx.endpoint, args.sdk_spans, rx))
            converted.append(_rate("converted path", converted_path, rx.endpoint, args.sdk_spans, rx))
    ratios = [f[0] / s[0] for f, s in zip(fast, sdk, strict=True)]
    cpu_ratios = [f[1] / s[1] for f, s in zip(fast, sdk, strict=True)]
    conv_ratios = [f[0] / c[0] for f, c in zip(fast, converted, strict=True)]
    print(f"3. export      fast gRPC path, {args.rounds} rounds of {args.spans:,} spans, every span counted by the"
          f" receiver: {_summary([f[0] for f in fast])} (target >= 150,000)")
    print(f"               fast path: {_busy(fast)}")
    print(f"               SDK path, {args.rounds} rounds of {args.sdk_spans:,} spans: {_summary([s[0] for s in sdk])}")
    print(f"               SDK path: {_busy(sdk)}")
    print(f"               fast / SDK, per round: {_summary(ratios, '')} (target >= 10x)")
    # CPU time is what the paths cost; wall time also holds the waits for a CPU when the
    # machine is shared, which hit the SDK path's several threads much harder.
    print(f"               fast / SDK in spans per CPU second of the sender, per round: {_summary(cpu_ratios, '')}")
    print(f"               sysspan spans through the SDK exporter (the former --otlp-sdk), {args.rounds} rounds"
          f" of {args.sdk_spans:,}: {_summary([c[0] for c in converted])}; fast / that, per round:"
          f" {_summary(conv_ratios, '')}")


if __name__ == "__main__":
    from common import use_release_venv

    use_release_venv()
    main()
