"""Pipelined OTLP export against real loopback receivers: the sink encodes the next request
while its sender thread waits for the answer to the last one.

Nothing may change for the receiver: every span arrives once, with its content, in the order
sent. A slow receiver holds the caller back after a bounded number of queued requests; a
shutdown with requests queued either still delivers them or spools them, never drops them.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from sysspan.config import OtlpSettings
from sysspan.exporters import otlp
from sysspan.exporters.otlp import OtlpSink
from sysspan.model import Span
from sysspan.tracefile import iter_trace_file
from tests.integration.test_otlp_export import (
    PROTOCOLS,
    RESOURCE,
    make_spans,
    model_key,
    receiver_for,
    settings_for,
    span_key,
)
from tests.otlp_receiver import GrpcReceiver, HttpReceiver

QUEUED = otlp._QUEUED_REQUESTS


def batches(n: int, size: int) -> list[list[Span]]:
    return [make_spans(size, start_id=0x10000 * (i + 1)) for i in range(n)]


def received_ids(receiver: Any) -> list[int]:
    return [int.from_bytes(pb.span_id, "big") for _, pb in receiver.spans()]


def fail_all(protocol: str, receiver: Any, retry_after_s: int) -> None:
    """Every request answered "unavailable, retry in ``retry_after_s``"."""
    if protocol == "grpc":
        receiver.fail(1000, grpc.StatusCode.UNAVAILABLE, retry_after_s=float(retry_after_s))
    else:
        receiver.fail(1000, status=503, retry_after_s=retry_after_s)


def queue_then_shut_down(sink: OtlpSink, receiver: Any, sent: list[list[Span]]) -> None:
    """Export ``sent`` while the receiver holds the first request, shut the sink down with
    that request in flight and the rest queued, then let the receiver answer."""
    receiver.hold()
    try:
        for batch in sent:
            sink.export(batch)
        assert receiver.wait_held(1)
        sink.shutdown()
    finally:
        receiver.release()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_many_batches_arrive_once_complete_and_in_order(
    protocol: str, grpc_receiver: GrpcReceiver, http_receiver: HttpReceiver, tmp_path: Path
) -> None:
    receiver = receiver_for(protocol, grpc_receiver, http_receiver)
    sent = batches(40, 25)
    sink = OtlpSink(settings_for(receiver, protocol), RESOURCE, str(tmp_path / "s.jsonl"), "1")
    for batch in sent:
        sink.export(batch)
    report = sink.close()
    flat = [s for b in sent for s in b]
    assert report.ok and report.spans_written == len(flat) and report.spans_failed == 0
    assert received_ids(receiver) == [s.span_id for s in flat]  # once each, in order
    assert sorted(span_key(r, pb) for r, pb in receiver.spans()) == sorted(model_key(RESOURCE, s) for s in flat)
    assert not (tmp_path / "s.jsonl").exists()


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_slow_receiver_holds_the_caller_back_and_loses_nothing(
    protocol: str, grpc_receiver: GrpcReceiver, http_receiver: HttpReceiver, tmp_path: Path
) -> None:
    """While the receiver sits on the first request, the caller may queue only
    ``_QUEUED_REQUESTS`` more; the next export waits (memory stays bounded)."""
    receiver = receiver_for(protocol, grpc_receiver, http_receiver)
    receiver.hold()
    sent = batches(20, 10)
    settings = OtlpSettings(receiver.endpoint, protocol, insecure=True, timeout_s=30.0)
    sink = OtlpSink(settings, RESOURCE, str(tmp_path / "s.jsonl"), "1")
    returned: list[int] = []

    def produce() -> None:
        for i, batch in enumerate(sent):
            sink.export(batch)
            returned.append(i)

    producer = threading.Thread(target=produce)
    try:
        producer.start()
        assert receiver.wait_held(1), "the first request never reached the receiver"
        deadline = time.monotonic() + 10
        while len(returned) < QUEUED + 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # room for a wrongly unbounded queue to take more
        # one request at the receiver, QUEUED waiting, the caller blocked on the next
        assert len(returned) == QUEUED + 1 and receiver.held == 1
    finally:
        receiver.release()
    producer.join(30)
    assert not producer.is_alive()
    report = sink.close()
    flat = [s for b in sent for s in b]
    assert report.ok and report.spans_written == len(flat)
    assert received_ids(receiver) == [s.span_id for s in flat]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_failing_receiver_gets_every_queued_batch_spooled_in_order(
    protocol: str, grpc_receiver: GrpcReceiver, http_receiver: HttpReceiver, tmp_path: Path
) -> None:
    """Queued requests behind one that fails for good are spooled, not tried and not lost."""
    receiver = receiver_for(protocol, grpc_receiver, http_receiver)
    fail_all(protocol, receiver, retry_after_s=0)
    spool = tmp_path / "s.jsonl"
    sent = batches(12, 5)
    sink = OtlpSink(settings_for(receiver, protocol), RESOURCE, str(spool), "1")
    for batch in sent:
        sink.export(batch)
    report = sink.close()
    assert receiver.attempts == 6 and not receiver.spans()  # the first request's retries only
    assert report.spans_failed == 60 and report.spans_written == 0
    assert [s.span_id for b in iter_trace_file(spool) for s in b.spans] == [s.span_id for b in sent for s in b]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_shutdown_with_requests_queued_spools_them_all_without_waiting(
    protocol: str, grpc_receiver: GrpcReceiver, http_receiver: HttpReceiver, tmp_path: Path
) -> None:
    receiver = receiver_for(protocol, grpc_receiver, http_receiver)
    fail_all(protocol, receiver, retry_after_s=30)  # within a 60 s timeout
    spool = tmp_path / "s.jsonl"
    sent = batches(QUEUED + 1, 5)  # one in flight, the rest queued: no export blocks
    settings = OtlpSettings(receiver.endpoint, protocol, insecure=True, timeout_s=60.0)
    sink = OtlpSink(settings, RESOURCE, str(spool), "1")
    queue_then_shut_down(sink, receiver, sent)
    closing = threading.Thread(target=sink.close)
    closing.start()
    closing.join(20)  # the first request's backoff would otherwise last 30 s
    assert not closing.is_alive(), "close() did not end after shutdown()"
    report = sink.close()  # a second close returns the same outcome
    assert receiver.attempts == 1 and not receiver.spans()
    assert report.spans_failed == 5 * len(sent) and report.spans_written == 0
    assert [s.span_id for b in iter_trace_file(spool) for s in b.spans] == [s.span_id for b in sent for s in b]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_shutdown_with_requests_in_flight_still_delivers_what_is_accepted(
    protocol: str, grpc_receiver: GrpcReceiver, http_receiver: HttpReceiver, tmp_path: Path
) -> None:
    """shutdown() only cuts waits short: requests the receiver accepts at once still go."""
    receiver = receiver_for(protocol, grpc_receiver, http_receiver)
    spool = tmp_path / "s.jsonl"
    sent = batches(QUEUED + 1, 5)
    sink = OtlpSink(settings_for(receiver, protocol), RESOURCE, str(spool), "1")
    queue_then_shut_down(sink, receiver, sent)
    report = sink.close()
    assert report.ok and report.spans_written == 5 * len(sent)
    assert received_ids(receiver) == [s.span_id for b in sent for s in b]
    assert not spool.exists()


def test_pipeline_flush_waits_for_the_sinks_sender_thread(grpc_receiver: GrpcReceiver, tmp_path: Path) -> None:
    """Pipeline.flush() (before a Lambda environment freezes) returns only when the spans
    have reached the receiver, not when they are merely queued in the sink."""
    from sysspan.exporters.pipeline import Pipeline

    grpc_receiver.hold()
    sink = OtlpSink(settings_for(grpc_receiver, "grpc"), RESOURCE, str(tmp_path / "s.jsonl"), "1")
    pipe = Pipeline([sink], batch_size=10)
    spans = make_spans(30)
    for s in spans:
        pipe.emit(s)
    releaser = threading.Timer(0.5, grpc_receiver.release)
    releaser.start()
    try:
        assert pipe.flush(timeout=20)
        assert received_ids(grpc_receiver) == [s.span_id for s in spans]
    finally:
        releaser.cancel()
        grpc_receiver.release()
        pipe.close()
