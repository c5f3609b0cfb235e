"""OtlpSink against real in-process OTLP receivers (gRPC, HTTP/protobuf, HTTP/JSON).

What the receiver decodes with the official protobuf classes must equal what the JSONL file
written in the same run holds; failures must end in the spool file, quickly and quietly.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from sysspan.config import OtlpSettings
from sysspan.exporters.jsonl import JsonlSink
from sysspan.exporters.otlp import OtlpSink
from sysspan.exporters.pipeline import Pipeline
from sysspan.model import ResourceSpans, Span, SpanEvent, SpanKind, StatusCode
from sysspan.tracefile import iter_trace_file
from tests.otlp_receiver import GrpcReceiver, HttpReceiver, attrs

PROTOCOLS = ["grpc", "http/protobuf", "http/json"]
RESOURCE = {"service.name": "make", "host.name": "ci-runner-7", "process.pid": 4242}
TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
REMOTE_PARENT = 0x00F067AA0BA902B7


def make_spans(n: int, start_id: int = 0x1000) -> list[Span]:
    """A run span under a remote parent, then syscall-like children with varied attributes."""
    t0 = 1_700_000_000_000_000_000
    out = [
        Span(
            TRACE_ID, start_id, REMOTE_PARENT, "make", t0, t0 + 10**9,
            kind=SpanKind.SERVER,
            attributes={"process.command_args": ["make", "-j4"], "process.exit.code": 0},
            trace_state="rojo=00f067aa0ba902b7",
        )
    ]
    for i in range(1, n):
        failed = i % 7 == 0
        out.append(
            Span(
                TRACE_ID, start_id + i, start_id, "openat" if i % 2 else "read",
                t0 + i * 1000, t0 + i * 1000 + 500,
                attributes={
                    "syscall.name": "openat" if i % 2 else "read",
                    "syscall.return": -2 if failed else i,
                    "thread.id": 4242,
                    "file.path": f"/tmp/ü/{i}",
                    "syscall.duration_ratio": i / 3,
                    "syscall.blocking": i % 3 == 0,
                    **({"error.type": "ENOENT"} if failed else {}),
                },
                status=StatusCode.ERROR if failed else StatusCode.UNSET,
                status_message="No such file or directory" if failed else "",
                events=[SpanEvent("signal", t0 + i * 1000 + 100, {"signal.number": 17})] if i % 5 == 0 else [],
                trace_state="rojo=00f067aa0ba902b7",
            )
        )
    return out


def settings_for(receiver: Any, protocol: str, **kw: Any) -> OtlpSettings:
    return OtlpSettings(endpoint=receiver.endpoint, protocol=protocol, insecure=True, timeout_s=5.0, **kw)


def closed_port_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/v1/traces"


def receiver_for(protocol: str, grpc_receiver: GrpcReceiver, http_receiver: HttpReceiver) -> Any:
    return grpc_receiver if protocol == "grpc" else http_receiver


def span_key(resource: dict, pb: Any) -> tuple:
    return (
        int.from_bytes(pb.trace_id, "big"),
        int.from_bytes(pb.span_id, "big"),
        int.from_bytes(pb.parent_span_id, "big"),
        pb.name,
        pb.kind,
        pb.start_time_unix_nano,
        pb.end_time_unix_nano,
        sorted((k, repr(v)) for k, v in attrs(pb.attributes).items()),
        pb.status.code,
        pb.status.message,
        [(e.name, e.time_unix_nano, sorted((k, repr(v)) for k, v in attrs(e.attributes).items())) for e in pb.events],
        pb.trace_state,
        sorted((k, repr(v)) for k, v in resource.items()),
    )


def model_key(resource: dict, s: Span) -> tuple:
    return (
        s.trace_id,
        s.span_id,
        s.parent_id,
        s.name,
        int(s.kind),
        s.start_ns,
        s.end_ns,
        sorted((k, repr(v)) for k, v in s.attributes.items()),
        int(s.status),
        s.status_message,
        [(e.name, e.time_ns, sorted((k, repr(v)) for k, v in e.attributes.items())) for e in s.events],
        s.trace_state,
        sorted((k, repr(v)) for k, v in resource.items()),
    )


# --------------------------------------------------------------------------- delivery


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_receiver_gets_exactly_what_the_jsonl_file_holds(
    protocol: str, grpc_receiver: GrpcReceiver, http_receiver: HttpReceiver, tmp_path: Path
) -> None:
    receiver = receiver_for(protocol, grpc_receiver, http_receiver)
    jsonl = tmp_path / "run.jsonl"
    sinks = [
        JsonlSink(str(jsonl), RESOURCE, "0.1.0"),
        OtlpSink(settings_for(receiver, protocol), RESOURCE, str(tmp_path / "spool.jsonl"), "0.1.0",
                 remote_parent_ids={REMOTE_PARENT}),
    ]
    pipe = Pipeline(sinks, batch_size=16)
    for s in make_spans(40):
        pipe.emit(s)
    file_report, otlp_report = pipe.close()

    assert otlp_report.ok and otlp_report.spans_written == 40 and otlp_report.path is None
    assert otlp_report.messages == [f"sent 40 spans to {receiver.endpoint} ({protocol})"]
    assert not (tmp_path / "spool.jsonl").exists()
    assert len(receiver.requests) == 3  # 16 + 16 + 8

    from_file = sorted(model_key(b.resource, s) for b in iter_trace_file(jsonl) for s in b.spans)
    received = sorted(span_key(r, pb) for r, pb in receiver.spans())
    assert len(from_file) == 40
    assert received == from_file
    assert {r["service.name"] for r, _ in receiver.spans()} == {"make"}
    assert set(receiver.scopes()) == {("sysspan", "0.1.0")}


def test_grpc_marks_the_incoming_parent_remote(grpc_receiver: GrpcReceiver, tmp_path: Path) -> None:
    sink = OtlpSink(settings_for(grpc_receiver, "grpc"), RESOURCE, str(tmp_path / "s.jsonl"), "1",
                    remote_parent_ids={REMOTE_PARENT})
    sink.export(make_spans(2))
    assert sink.close().ok
    flags = {int.from_bytes(pb.span_id, "big"): pb.flags for _, pb in grpc_receiver.spans()}
    has_is_remote, is_remote = 0x100, 0x200
    assert flags[0x1000] & (has_is_remote | is_remote) == has_is_remote | is_remote
    assert flags[0x1001] & is_remote == 0


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_http_gzip_and_custom_headers_arrive(protocol: str, http_receiver: HttpReceiver, tmp_path: Path) -> None:
    settings = settings_for(http_receiver, protocol, compression="gzip",
                            headers={"Authorization": "Bearer s3cret", "X-Scope-OrgID": "tenant-1"})
    sink = OtlpSink(settings, RESOURCE, str(tmp_path / "s.jsonl"), "1")
    sink.export(make_spans(5))
    assert sink.close().ok
    assert http_receiver.encodings == ["gzip"]
    expected_type = "application/json" if protocol == "http/json" else "application/x-protobuf"
    assert http_receiver.content_types == [expected_type]
    headers = http_receiver.headers[0]
    assert headers["authorization"] == "Bearer s3cret" and headers["x-scope-orgid"] == "tenant-1"
    assert len(http_receiver.spans()) == 5


def test_grpc_headers_arrive_as_metadata(grpc_receiver: GrpcReceiver, tmp_path: Path) -> None:
    settings = settings_for(grpc_receiver, "grpc", compression="gzip", headers={"X-Scope-OrgID": "tenant-1"})
    sink = OtlpSink(settings, RESOURCE, str(tmp_path / "s.jsonl"), "1")
    sink.export(make_spans(3))
    assert sink.close().ok
    assert grpc_receiver.headers[0]["x-scope-orgid"] == "tenant-1"


def test_grpc_gzip_is_really_on_the_wire(tmp_path: Path) -> None:
    """A server that refuses gzip rejects our gzip requests and accepts uncompressed ones."""
    receiver = GrpcReceiver(accept_gzip=False).start()
    try:
        plain = OtlpSink(settings_for(receiver, "grpc"), RESOURCE, str(tmp_path / "a.jsonl"), "1")
        plain.export(make_spans(2))
        assert plain.close().ok
        zipped = OtlpSink(settings_for(receiver, "grpc", compression="gzip"), RESOURCE, str(tmp_path / "b.jsonl"), "1")
        zipped.export(make_spans(2))
        report = zipped.close()
        assert report.spans_failed == 2 and "UNIMPLEMENTED" in report.messages[-1]
        assert len(receiver.requests) == 1
    finally:
        receiver.stop()


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_dead_endpoint_spools_everything_within_the_timeout_and_quietly(
    protocol: str, tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    url = closed_port_url()
    spool = tmp_path / "spool" / "run-spool.jsonl"
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    # "connection refused" is retried with backoff for at most the export timeout (a
    # collector may be starting), then everything goes to the spool.
    pipe = Pipeline([OtlpSink(OtlpSettings(url, protocol, insecure=True, timeout_s=1.5), RESOURCE, str(spool), "1")],
                    batch_size=10)
    spans = make_spans(35)
    for s in spans:
        pipe.emit(s)
    (report,) = pipe.close()
    elapsed = time.monotonic() - started

    assert elapsed < 1.5 + 2.0, f"a dead endpoint held sysspan for {elapsed:.1f}s"
    assert report.spans_written == 0 and report.spans_failed == 35 and report.path == str(spool)
    (message,) = report.messages
    assert message.startswith(f"could not reach {url} (connection refused)")
    assert f"35 spans spooled to {spool}" in message and "sysspan replay" in message
    spooled = list(iter_trace_file(spool))
    assert len(spooled) == 4  # one line per batch, same format as the default output
    assert [s.span_id for b in spooled for s in b.spans] == [s.span_id for s in spans]
    assert all(b.resource == RESOURCE for b in spooled)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert not [r for r in caplog.records if r.name.startswith(("opentelemetry", "grpc"))]


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_http_transient_errors_are_retried(protocol: str, http_receiver: HttpReceiver, tmp_path: Path) -> None:
    http_receiver.fail(2, status=503, retry_after_s=0)
    sink = OtlpSink(settings_for(http_receiver, protocol), RESOURCE, str(tmp_path / "s.jsonl"), "1")
    sink.export(make_spans(4))
    report = sink.close()
    assert report.ok and report.spans_written == 4
    assert http_receiver.attempts == 3 and len(http_receiver.spans()) == 4


def test_grpc_unavailable_is_retried(grpc_receiver: GrpcReceiver, tmp_path: Path) -> None:
    grpc_receiver.fail(1, grpc.StatusCode.UNAVAILABLE, retry_after_s=0)
    sink = OtlpSink(settings_for(grpc_receiver, "grpc"), RESOURCE, str(tmp_path / "s.jsonl"), "1")
    sink.export(make_spans(4))
    report = sink.close()
    assert report.ok and grpc_receiver.attempts == 2 and len(grpc_receiver.spans()) == 4


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_an_endpoint_that_keeps_failing_is_given_up_after_one_batch(
    protocol: str, http_receiver: HttpReceiver, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    http_receiver.fail(1000, status=503, retry_after_s=0)
    spool = tmp_path / "s.jsonl"
    sink = OtlpSink(settings_for(http_receiver, protocol), RESOURCE, str(spool), "1")
    for i in range(5):
        sink.export(make_spans(3, start_id=0x100 * (i + 1)))
    report = sink.close()
    assert http_receiver.attempts == 6  # the retries for batch 1, nothing for batches 2-5
    assert report.spans_failed == 15 and report.spans_written == 0
    assert "stopped trying after the first failure" in report.messages[-1]
    assert "unavailable" in report.messages[-1].lower()
    assert sum(len(b.spans) for b in iter_trace_file(spool)) == 15
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_a_rejected_batch_is_spooled_and_later_batches_still_sent(
    protocol: str, http_receiver: HttpReceiver, tmp_path: Path
) -> None:
    http_receiver.fail(1, status=400, retry_after_s=None)
    spool = tmp_path / "s.jsonl"
    sink = OtlpSink(settings_for(http_receiver, protocol), RESOURCE, str(spool), "1")
    sink.export(make_spans(2, start_id=0x100))
    sink.export(make_spans(3, start_id=0x200))
    report = sink.close()
    assert report.spans_written == 3 and report.spans_failed == 2
    assert "HTTP 400" in report.messages[-1] and "did not accept" in report.messages[-1]
    assert {int.from_bytes(pb.span_id, "big") for _, pb in http_receiver.spans()} == {0x200, 0x201, 0x202}
    assert [s.span_id for b in iter_trace_file(spool) for s in b.spans] == [0x100, 0x101]


def test_export_batches_keeps_each_resource(http_receiver: HttpReceiver, tmp_path: Path) -> None:
    sink = OtlpSink(settings_for(http_receiver, "http/protobuf"), {}, str(tmp_path / "s.jsonl"), "1")
    sink.export_batches([
        ResourceSpans({"service.name": "a"}, make_spans(2, 0x10), "sysspan", "1"),
        ResourceSpans({"service.name": "b", "k": [1, 2]}, make_spans(3, 0x20), "sysspan", "1"),
    ])
    assert sink.close().ok
    got = sorted((r["service.name"], int.from_bytes(pb.span_id, "big")) for r, pb in http_receiver.spans())
    assert got == [("a", 0x10), ("a", 0x11), ("b", 0x20), ("b", 0x21), ("b", 0x22)]


def test_grpc_failures_are_retried_then_given_up_quietly(
    grpc_receiver: GrpcReceiver, tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Retries and the final failure print nothing, and no OpenTelemetry or grpc log
    record escapes."""
    caplog.set_level(logging.DEBUG)
    grpc_receiver.fail(1000, grpc.StatusCode.UNAVAILABLE, retry_after_s=0)
    spool = tmp_path / "s.jsonl"
    sink = OtlpSink(settings_for(grpc_receiver, "grpc"), RESOURCE, str(spool), "1")
    sink.export(make_spans(3, 0x100))
    sink.export(make_spans(3, 0x200))
    report = sink.close()
    assert grpc_receiver.attempts == 6  # the retries, for the first batch only
    assert report.spans_failed == 6 and "UNAVAILABLE" in report.messages[-1]
    assert sum(len(b.spans) for b in iter_trace_file(spool)) == 6
    assert capfd.readouterr().err == ""
    assert not [r for r in caplog.records if r.name.startswith(("opentelemetry", "grpc"))]
    for name in ("opentelemetry", "grpc"):  # the user's logging is left as it was
        assert logging.getLogger(name).propagate


def test_endpoint_that_dies_mid_run_costs_one_timeout_at_most(tmp_path: Path) -> None:
    receiver = HttpReceiver().start()
    spool = tmp_path / "s.jsonl"
    sink = OtlpSink(OtlpSettings(receiver.endpoint, "http/protobuf", timeout_s=1.5), RESOURCE, str(spool), "1")
    try:
        sink.export(make_spans(2, 0x100))
        sink.flush()  # delivered before the collector goes
    finally:
        receiver.stop()  # the collector goes away after the first batch
    started = time.monotonic()
    for i in range(2, 6):
        sink.export(make_spans(2, 0x100 * i))
    report = sink.close()
    assert time.monotonic() - started < 1.5 + 1.0
    assert report.spans_written == 2 and report.spans_failed == 8
    assert "connection refused" in report.messages[-1]
    assert len(receiver.spans()) == 2
    assert sum(len(b.spans) for b in iter_trace_file(spool)) == 8


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_shutdown_during_a_backoff_ends_the_wait_and_spools(
    protocol: str, grpc_receiver: GrpcReceiver, http_receiver: HttpReceiver, tmp_path: Path
) -> None:
    """The server asks for a 30 s pause (Retry-After / RetryInfo) within a 60 s timeout; a
    shutdown from another thread ends the wait, and the batch and every later one are
    spooled, not lost and not sent."""
    receiver = receiver_for(protocol, grpc_receiver, http_receiver)
    if protocol == "grpc":
        grpc_receiver.fail(1000, grpc.StatusCode.UNAVAILABLE, retry_after_s=30.0)
    else:
        http_receiver.fail(1000, status=503, retry_after_s=30)
    spool = tmp_path / "s.jsonl"
    settings = OtlpSettings(receiver.endpoint, protocol, insecure=True, timeout_s=60.0)
    sink = OtlpSink(settings, RESOURCE, str(spool), "1")
    exporting = threading.Thread(target=sink.export, args=(make_spans(3, 0x100),))
    exporting.start()
    deadline = time.monotonic() + 20
    while receiver.attempts == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert receiver.attempts == 1, "the first attempt never reached the receiver"
    sink.shutdown()
    exporting.join(timeout=20)  # the wait would otherwise last 30 s
    assert not exporting.is_alive(), "shutdown did not end the backoff"
    sink.export(make_spans(2, 0x200))  # after shutdown: straight to the spool
    report = sink.close()
    assert receiver.attempts == 1 and not receiver.spans()
    assert report.spans_failed == 5 and report.spans_written == 0
    assert "stopped trying after the first failure" in report.messages[-1]
    assert [s.span_id for b in iter_trace_file(spool) for s in b.spans] == [0x100, 0x101, 0x102, 0x200, 0x201]
