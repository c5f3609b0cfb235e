"""``sysspan replay``: a JSONL trace file delivered to real OTLP receivers, line resources kept."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sysspan.cli import command_parser
from sysspan.commands import replay
from sysspan.errors import TraceFileError, UsageError
from sysspan.exporters.jsonl import JsonlSink
from sysspan.exporters.otlp_json import encode_line
from sysspan.model import ResourceSpans, Span, SpanKind, StatusCode
from sysspan.tracefile import iter_trace_file
from tests.otlp_receiver import GrpcReceiver, HttpReceiver, attrs


def parse(argv: list[str]) -> argparse.Namespace:
    return command_parser(replay.COMMAND).parse_args(["replay", *argv])


def spans(service_tag: int, n: int) -> list[Span]:
    base = service_tag << 16
    return [
        Span(
            0xAB << 100, base + i + 1, 0 if i == 0 else base + 1, f"op{i}", 1000 + i, 2000 + i,
            kind=SpanKind.INTERNAL,
            attributes={"i": i, "tag": f"t{service_tag}", "list": ["a", "ü"]},
            status=StatusCode.ERROR if i == 2 else StatusCode.UNSET,
        )
        for i in range(n)
    ]


def write_trace(path: Path) -> list[tuple[str, int]]:
    """Three lines, two services (resources); returns the expected (service, span id) pairs."""
    a = JsonlSink(str(path), {"service.name": "alpha", "host.name": "h1"}, "0.1.0")
    a.export(spans(1, 3))
    a.export(spans(2, 2))
    assert a.close().ok
    b = JsonlSink(str(path), {"service.name": "beta"}, "0.1.0")
    b.export(spans(3, 4))
    assert b.close().ok
    return sorted(
        (str(batch.resource["service.name"]), s.span_id) for batch in iter_trace_file(path) for s in batch.spans
    )


def received(receiver: Any) -> list[tuple[str, int]]:
    return sorted((r["service.name"], int.from_bytes(pb.span_id, "big")) for r, pb in receiver.spans())


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf", "http/json"])
def test_replay_delivers_exactly_the_files_spans(
    protocol: str,
    grpc_receiver: GrpcReceiver,
    http_receiver: HttpReceiver,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    receiver = grpc_receiver if protocol == "grpc" else http_receiver
    trace = tmp_path / "run.jsonl"
    expected = write_trace(trace)
    endpoint = receiver.endpoint.removesuffix("/v1/traces")  # the base URL, as users give it
    ns = parse([str(trace), "--otlp-endpoint", endpoint, "--otlp-protocol", protocol, "--otlp-header", "x-team=core"])
    assert replay.run(ns, {"SYSSPAN_OUTPUT_DIR": str(tmp_path / "out")}) == 0

    assert received(receiver) == expected  # every span once, each with its own line's resource
    assert len(expected) == 9
    by_id = {int.from_bytes(pb.span_id, "big"): (r, pb) for r, pb in receiver.spans()}
    resource, pb = by_id[(1 << 16) + 3]
    assert resource == {"service.name": "alpha", "host.name": "h1"}
    assert pb.name == "op2" and pb.status.code == 2 and pb.parent_span_id == ((1 << 16) + 1).to_bytes(8, "big")
    assert attrs(pb.attributes) == {"i": 2, "tag": "t1", "list": ["a", "ü"]}
    assert (pb.start_time_unix_nano, pb.end_time_unix_nano) == (1002, 2002)
    assert all(h.get("x-team") == "core" for h in receiver.headers)
    err = capsys.readouterr().err
    assert err.strip() == f"sysspan replay: sent 9 spans from {trace} to {receiver.endpoint if protocol != 'grpc' else endpoint} ({protocol})"
    assert not (tmp_path / "out").exists()  # nothing spooled


def test_replay_uses_the_environment_endpoint(http_receiver: HttpReceiver, tmp_path: Path) -> None:
    trace = tmp_path / "run.jsonl"
    expected = write_trace(trace)
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": http_receiver.endpoint.removesuffix("/v1/traces"),
           "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"}
    assert replay.run(parse([str(trace), str(trace)]), env) == 0
    assert received(http_receiver) == sorted(expected * 2)
    assert set(http_receiver.encodings) == {"gzip"}


def test_replay_without_an_endpoint_is_a_usage_error(tmp_path: Path) -> None:
    trace = tmp_path / "run.jsonl"
    write_trace(trace)
    with pytest.raises(UsageError) as info:
        replay.run(parse([str(trace)]), {})
    assert str(info.value) == "replay: no OTLP endpoint: pass --otlp-endpoint or set OTEL_EXPORTER_OTLP_ENDPOINT"


def test_replay_to_a_dead_endpoint_spools_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "run.jsonl"
    expected = write_trace(trace)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    out = tmp_path / "out"
    ns = parse([str(trace), "--otlp-endpoint", f"http://127.0.0.1:{port}", "--otlp-timeout", "1"])
    assert replay.run(ns, {"SYSSPAN_OUTPUT_DIR": str(out)}) == 1
    (spool,) = out.iterdir()
    assert sorted((str(b.resource["service.name"]), s.span_id) for b in iter_trace_file(spool) for s in b.spans) == expected
    err = capsys.readouterr().err
    assert "sent 0 of 9 spans" in err and "connection refused" in err and str(spool) in err


def test_replay_of_a_spool_file_completes_the_delivery(http_receiver: HttpReceiver, tmp_path: Path) -> None:
    """The spool left by a failed replay is itself replayable."""
    trace = tmp_path / "run.jsonl"
    expected = write_trace(trace)
    http_receiver.fail(1, status=400, retry_after_s=None)  # first request rejected
    out = tmp_path / "out"
    ns = parse([str(trace), "--otlp-endpoint", http_receiver.endpoint])
    assert replay.run(ns, {"SYSSPAN_OUTPUT_DIR": str(out)}) == 1
    (spool,) = out.iterdir()
    assert replay.run(parse([str(spool), "--otlp-endpoint", http_receiver.endpoint]), {}) == 0
    assert received(http_receiver) == expected


def test_missing_or_bad_files_raise_trace_file_error(http_receiver: HttpReceiver, tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    write_trace(good)
    with pytest.raises(TraceFileError, match="no such file"):
        replay.run(parse([str(good), str(tmp_path / "missing.jsonl"), "--otlp-endpoint", http_receiver.endpoint]), {})
    assert http_receiver.requests == []  # checked before anything was sent

    bad = tmp_path / "bad.jsonl"
    bad.write_text(encode_line(ResourceSpans({"service.name": "x"}, spans(1, 1))) + "\n{oops\n")
    with pytest.raises(TraceFileError, match=r"bad\.jsonl:2: not valid JSON"):
        replay.run(parse([str(bad), "--otlp-endpoint", http_receiver.endpoint]), {})


def test_replay_through_the_real_cli(http_receiver: HttpReceiver, tmp_path: Path, repo_root: Path) -> None:
    trace = tmp_path / "run.jsonl"
    expected = write_trace(trace)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    proc = subprocess.run(
        [sys.executable, "-m", "sysspan", "replay", str(trace), "--otlp-endpoint", http_receiver.endpoint],
        cwd=repo_root, env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "sent 9 spans" in proc.stderr and proc.stdout == ""
    assert received(http_receiver) == expected

    proc = subprocess.run(
        [sys.executable, "-m", "sysspan", "replay", str(tmp_path / "nope.jsonl"), "--otlp-endpoint", http_receiver.endpoint],
        cwd=repo_root, env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"sysspan: {tmp_path / 'nope.jsonl'}: no such file"
