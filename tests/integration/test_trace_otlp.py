"""`sysspan -- CMD` shipping over OTLP to real loopback receivers: what arrives equals the
JSONL file written in the same run; a dead endpoint costs nothing but a warning."""

from __future__ import annotations

import re
import socket

import pytest

from tests.otlp_receiver import attrs
from tests.tracehelpers import load_spans, sysspan


def _compare(receiver, jsonl_path):
    file_spans = {s.span_id: s for s in load_spans(jsonl_path)}
    assert receiver.wait_for_spans(len(file_spans), timeout=20)
    got = receiver.spans()
    assert len(got) == len(file_spans)
    for resource, pb in got:
        span_id = pb.span_id.hex()
        ref = file_spans[span_id]
        assert pb.trace_id.hex() == ref.trace_id
        assert pb.parent_span_id.hex() == ref.parent_id
        assert pb.name == ref.name
        assert pb.start_time_unix_nano == ref.start
        assert pb.end_time_unix_nano == ref.end
        # OTLP goes through the span budget: process spans carry its -c summaries too
        plain = {k: v for k, v in attrs(pb.attributes).items() if not k.startswith("syscall.summary.")}
        assert plain == ref.attrs
        assert pb.status.code == ref.status.get("code", 0)
        assert resource == ref.resource
    return file_spans


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf", "http/json"])
def test_otlp_receives_what_the_file_holds(tmp_path, grpc_receiver, http_receiver, protocol):
    receiver = grpc_receiver if protocol == "grpc" else http_receiver
    out = tmp_path / "t.jsonl"
    proc = sysspan(
        "--trace-file", str(out), "-f", "--otlp-protocol", protocol,
        "--", "sh", "-c", "cat /etc/hostname /nonexistent; true",
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SERVICE_NAME": "otlp-test"},
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    spans = _compare(receiver, out)
    assert any(s.attrs.get("error.type") == "ENOENT" for s in spans.values())
    assert all(s.resource["service.name"] == "otlp-test" for s in spans.values())


def test_otlp_headers_and_flag_endpoint(tmp_path, http_receiver):
    out = tmp_path / "t.jsonl"
    proc = sysspan(
        "--trace-file", str(out), "--otlp-endpoint", http_receiver.endpoint, "--", "true",
        env={"OTEL_EXPORTER_OTLP_HEADERS": "x-team=infra,authorization=Bearer%20abc"},
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    _compare(http_receiver, out)
    headers = http_receiver.headers[0]
    assert headers.get("x-team") == "infra"
    assert headers.get("authorization") == "Bearer abc"


def test_unreachable_endpoint_spools_and_keeps_exit_status(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = sysspan(
        "--otlp-endpoint", f"http://127.0.0.1:{port}", "--otlp-timeout", "1", "--", "sh", "-c", "exit 5", cwd=tmp_path,
    )
    assert proc.returncode == 5
    assert "warning" in proc.stderr
    assert "Traceback" not in proc.stderr
    m = re.search(r"(\S+spool\S*\.jsonl)", proc.stderr)
    assert m, proc.stderr
    spans = load_spans(tmp_path / m.group(1))
    assert any(s.is_run and s.attrs["process.exit.code"] == 5 for s in spans)


def test_bad_endpoint_value_is_a_clear_warning_and_the_command_runs(tmp_path):
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4317"}
    proc = sysspan("--", "sh", "-c", "exit 4", env=env, cwd=tmp_path)
    assert proc.returncode == 4
    assert "warning: OTEL_EXPORTER_OTLP_ENDPOINT" in proc.stderr
    assert "spans go to the JSONL file" in proc.stderr
    assert "Traceback" not in proc.stderr
    strict = sysspan("--strict", "--", "true", env=env, cwd=tmp_path)
    assert strict.returncode == 2 and "OTEL_EXPORTER_OTLP_ENDPOINT" in strict.stderr
