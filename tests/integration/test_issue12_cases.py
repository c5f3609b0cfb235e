"""The cases of the fault and bad-input campaign, each as it was found, under the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from urllib.parse import urlsplit

import pytest

from sysspan.commands import replay
from sysspan.errors import TraceFileError
from sysspan.tracefile import iter_trace_file
from tests.integration.test_otlp_export import closed_port_url
from tests.integration.test_replay import parse, received, write_trace
from tests.tracehelpers import load_spans, sysspan


def test_decision_after_an_overlong_stderr_write_is_kept(tmp_path):
    # Only the first 64 KiB of a write to fd 2 are read: what follows in that write is not
    # seen (opt::unread), but the next write is parsed again.
    prog = tmp_path / "prog.py"
    prog.write_text(
        textwrap.dedent(
            """\
            import os
            os.write(2, b'[DECISION] big::one input=' + b'x' * 70000 + b'\\n')
            os.write(2, b'[DECISION] opt::after input={"n": 1}\\n')
            os.write(2, b'y' * 70000 + b'\\n[DECISION] opt::unread input={"n": 2}\\n')
            os.write(2, b'[DECISION] opt::tail input={"n": 3}\\n')
            """
        )
    )
    out = tmp_path / "t.jsonl"
    proc = sysspan("--trace-file", str(out), "--", sys.executable, str(prog), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    names = sorted(s.name for s in load_spans(out) if "decision.id" in s.attrs)
    assert names == ["opt::after", "opt::tail"]
    assert "2 malformed decision records" in proc.stderr


# --------------------------------------------------------------------------- 9: replay


def test_replay_keeps_one_spool_per_source_and_removes_it_once_delivered(tmp_path, http_receiver):
    trace = tmp_path / "run.jsonl"
    expected = write_trace(trace)
    out = tmp_path / "out"
    env = {"SYSSPAN_OUTPUT_DIR": str(out)}
    dead = closed_port_url()
    for _attempt in range(2):  # two failed attempts: still one spool, each span once
        assert replay.run(parse([str(trace), "--otlp-endpoint", dead, "--otlp-timeout", "2"]), env) == 1
    (spool,) = out.iterdir()
    assert spool.name == "run-spool-replay.jsonl" and oct(spool.stat().st_mode & 0o777) == "0o600"
    assert sorted((str(b.resource["service.name"]), s.span_id) for b in iter_trace_file(spool) for s in b.spans) == expected

    assert replay.run(parse([str(spool), "--otlp-endpoint", http_receiver.endpoint, "--keep"]), env) == 0
    assert spool.exists()  # --keep
    assert replay.run(parse([str(spool), "--otlp-endpoint", http_receiver.endpoint]), env) == 0
    assert not spool.exists() and list(out.iterdir()) == []
    assert received(http_receiver) == sorted(expected * 2)  # once per successful replay
    with pytest.raises(TraceFileError, match="no such file"):  # a third run cannot duplicate
        replay.run(parse([str(spool), "--otlp-endpoint", http_receiver.endpoint]), env)


def test_replay_of_a_partly_delivered_spool_leaves_only_the_rest(tmp_path, http_receiver):
    spool = tmp_path / "run-spool-20240101T000000Z-abcd.jsonl"
    expected = write_trace(spool)
    http_receiver.fail(1, status=400, retry_after_s=None)  # the first request is rejected
    assert replay.run(parse([str(spool), "--otlp-endpoint", http_receiver.endpoint]), {}) == 1
    delivered = received(http_receiver)
    left = sorted((str(b.resource["service.name"]), s.span_id) for b in iter_trace_file(spool) for s in b.spans)
    assert left and sorted(delivered + left) == expected
    assert replay.run(parse([str(spool), "--otlp-endpoint", http_receiver.endpoint]), {}) == 0
    assert received(http_receiver) == expected and not spool.exists()


def test_replay_flags_are_the_trace_commands():
    ns = parse(["x.jsonl", "--otlp-timeout", "1.5", "--otlp-header", "a=b", "--otlp-protocol", "http/json"])
    assert ns.otlp_timeout == 1.5 and ns.otlp_header == ["a=b"] and ns.otlp_protocol == "http/json"
    with pytest.raises(SystemExit):
        parse(["x.jsonl", "--otlp-timeout", "-3"])


# --------------------------------------------------------------------------- 6, 10: export


def test_a_collector_that_comes_up_late_still_gets_every_span(tmp_path):
    from tests.otlp_receiver import HttpReceiver

    port = urlsplit(closed_port_url()).port
    trace = tmp_path / "t.jsonl"
    cmd = [sys.executable, "-m", "sysspan", "--trace-file", str(trace), "--otlp-endpoint",
           f"http://127.0.0.1:{port}", "--", "sh", "-c", "exit 7"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)  # noqa: S603
    time.sleep(1.5)
    receiver = HttpReceiver(port=port).start()
    try:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 7, err
        spans = load_spans(trace)
        assert receiver.wait_for_spans(len(spans), timeout=10), err
        assert len(receiver.spans()) == len(spans) and "spool" not in err
    finally:
        receiver.stop()


def test_http_to_a_grpc_port_names_the_protocol_flag(tmp_path, grpc_receiver):
    proc = sysspan(
        "--otlp-endpoint", grpc_receiver.endpoint, "--otlp-protocol", "http/protobuf",
        "--", "sh", "-c", "exit 3", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 3
    assert "answered in HTTP/2" in proc.stderr and "--otlp-protocol grpc" in proc.stderr
    assert "BadStatusLine" not in proc.stderr


# --------------------------------------------------------------------------- 1, 7, 8


def test_full_o_file_keeps_the_exit_status_and_the_trace(tmp_path):
    state = tmp_path / "state"
    proc = sysspan("-qq", "-o", "/dev/full", "--output-dir", str(tmp_path / "d"), "--",
                   "sh", "-c", "exit 5", cwd=tmp_path, env={"XDG_STATE_HOME": str(state)})  # fmt: skip
    assert proc.returncode == 5, proc.stderr
    assert "internal error" not in proc.stderr and "could not be decoded" not in proc.stderr
    assert proc.stderr.count(f"writing the rest to {state / 'sysspan'}") == 1  # announced once
    (trace,) = (tmp_path / "d").iterdir()
    assert any(s.is_run and s.attrs["process.exit.code"] == 5 for s in load_spans(trace))
    assert "exit_group(5" in (state / "sysspan" / "full").read_text()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "no-equals-sign"),
        ("OTEL_RESOURCE_ATTRIBUTES", "team=a,broken"),
        ("SYSSPAN_DECISION_SAMPLE", "xyz"),
    ],
)
def test_bad_telemetry_variables_warn_by_name_and_the_command_runs(tmp_path, name, value, http_receiver):
    env = {name: value, "OTEL_EXPORTER_OTLP_ENDPOINT": http_receiver.endpoint}
    proc = sysspan("--", "sh", "-c", "exit 6", cwd=tmp_path, env=env)
    assert proc.returncode == 6, proc.stderr
    assert f"warning: {name}:" in proc.stderr and value.split(",")[-1] in proc.stderr
    assert http_receiver.spans()  # and the spans still went where they were configured to


def test_bad_flags_are_named(tmp_path):
    proc = sysspan("--otlp-timeout", "-3", "--", "true", cwd=tmp_path)
    assert proc.returncode == 2 and "argument --otlp-timeout: must be a positive" in proc.stderr
    proc = sysspan("--no-syscalls", "-e", "trace=openat", "--", "true", cwd=tmp_path)
    assert proc.returncode == 2 and "--no-syscalls" in proc.stderr and "-e" in proc.stderr


def test_files_and_directories_sysspan_creates_are_private(tmp_path):
    out = tmp_path / "traces" / "deep"
    proc = sysspan("--capture-data", "--output-dir", str(out), "-o", str(tmp_path / "o" / "lines.txt"),
                   "--decisions-out", str(tmp_path / "dec"), "--", "sh", "-c", "echo hi", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (trace,) = out.iterdir()
    report = tmp_path / "r.html"
    merged = tmp_path / "m.jsonl"
    assert sysspan("report", str(out), "-o", str(report), cwd=tmp_path).returncode == 0
    assert sysspan("merge", str(trace), "-o", str(merged), cwd=tmp_path).returncode == 0
    decisions = list((tmp_path / "dec").rglob("*"))
    assert any(p.name == "decisions.msgpack" for p in decisions)
    for path in (trace, tmp_path / "o" / "lines.txt", report, merged, *(p for p in decisions if p.is_file())):
        assert path.stat().st_mode & 0o777 == 0o600, path
    for path in (tmp_path / "traces", out, tmp_path / "o", *(p for p in decisions if p.is_dir())):
        assert path.stat().st_mode & 0o777 == 0o700, path
