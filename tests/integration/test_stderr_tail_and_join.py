"""--stderr-tail on real commands (bytes passed through unchanged, the redacted tail on the
failing run span) and the zero-config GitHub Actions join of a traced step."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

from tests.tracehelpers import REPO, load_spans, sysspan

NOISY = (
    "printf 'first\\n'; seq 1 20000; printf 'a line with a tab\\t and a CR\\r\\n'; "
    "printf '\\377\\376 raw bytes\\n' ; "
    "echo 'curl -H Authorization: Bearer s3cr3t' ; echo 'db password=hunter2 failed'; "
    "printf 'last words'"
)


def _run_span(path):
    (span,) = [s for s in load_spans(path) if s.is_run]
    return span


def test_stderr_passes_through_byte_for_byte_and_the_tail_lands_on_the_run_span(tmp_path):
    script = tmp_path / "noisy.sh"
    script.write_text(f"exec 1>&2\n{NOISY}\nexit 5\n")
    direct = subprocess.run(["sh", str(script)], capture_output=True)
    assert direct.returncode == 5

    trace = tmp_path / "t.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "sysspan", "-qq", "-f", "--stderr-tail", "4", "--trace-file", str(trace),
         "--", "sh", str(script)],
        capture_output=True,
        env=_env(),
        cwd=tmp_path,
    )
    assert proc.returncode == 5
    assert len(direct.stderr) > 100_000
    assert proc.stderr == direct.stderr  # -qq: sysspan itself says nothing here

    run = _run_span(trace)
    (event,) = [e for e in run.events if e["name"] == "stderr.tail"]
    ev = {a["key"]: a["value"] for a in event["attributes"]}
    tail = ev["stderr.tail"]["stringValue"].split("\n")
    assert int(ev["stderr.tail.lines"]["intValue"]) == 4 == len(tail)
    assert tail[0] == "\ufffd\ufffd raw bytes"
    assert "s3cr3t" not in tail[1] and "[REDACTED]" in tail[1]
    assert "hunter2" not in tail[2] and "[REDACTED]" in tail[2]
    assert tail[3] == "last words"


def test_no_event_when_the_command_succeeds(tmp_path):
    trace = tmp_path / "t.jsonl"
    proc = sysspan("--stderr-tail", "3", "--trace-file", str(trace), "--", "sh", "-c", "echo oops >&2", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stderr.startswith("oops\n")
    assert not _run_span(trace).events


def test_a_step_in_github_actions_joins_the_workflow_trace(tmp_path):
    trace = tmp_path / "t.jsonl"
    env = {
        "GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "8812345678", "GITHUB_RUN_ATTEMPT": "3",
        "SYSSPAN_GITHUB_CHECK_RUN_ID": "24680135791", "SYSSPAN_GITHUB_STEP_NAME": "Build the thing",
    }
    proc = sysspan("--trace-file", str(trace), "--", "sh", "-c", 'printf %s "$TRACEPARENT" > tp', env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run = _run_span(trace)
    assert run.trace_id == hashlib.sha256(b"88123456783t").hexdigest()[:32]
    assert run.parent_id == hashlib.sha256(b"24680135791-Build the thing-s").hexdigest()[16:32]
    assert (tmp_path / "tp").read_text() == f"00-{run.trace_id}-{run.span_id}-01"
    assert "joining the GitHub Actions trace" in proc.stderr

    # An explicit TRACEPARENT wins; SYSSPAN_GITHUB_JOIN=0 starts a new trace.
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    proc = sysspan("--trace-file", str(tmp_path / "a.jsonl"), "--", "true", env={**env, "TRACEPARENT": tp}, cwd=tmp_path)
    assert _run_span(tmp_path / "a.jsonl").parent_id == "b7ad6b7169203331"
    proc = sysspan("--trace-file", str(tmp_path / "b.jsonl"), "--", "true", env={**env, "SYSSPAN_GITHUB_JOIN": "0"}, cwd=tmp_path)
    assert _run_span(tmp_path / "b.jsonl").parent_id == ""


def _env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACE", "SYSSPAN_", "GITHUB_"))}
    env["PYTHONPATH"] = str(REPO)
    return env

