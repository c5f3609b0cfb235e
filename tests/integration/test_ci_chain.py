"""CI hops as a pipeline runs them: steps that cannot share an environment chained through a
carrier file, a pipeline span opened in one step and closed in another (the $GITHUB_ENV
pattern), spans with RFC 3339 times, and --tp-required. All with --no-syscalls, as on
runners where ptrace is denied."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tests.tracehelpers import load_spans, sysspan

GITHUB = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_WORKFLOW": "ci",
    "GITHUB_RUN_ID": "4242",
    "GITHUB_REPOSITORY": "acme/app",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_JOB": "test",
}


def _run_span(path: Path):
    (span,) = [s for s in load_spans(path) if s.is_run]
    return span


def _env_file(text: str) -> dict[str, str]:
    """What a runner does with $GITHUB_ENV: KEY=value lines become variables."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_two_steps_chained_through_carrier(tmp_path: Path) -> None:
    carrier = tmp_path / "ctx.env"
    step = "printf %s \"$TRACEPARENT\" > {out}"
    r1 = sysspan(
        "--no-syscalls", "--tp-carrier", str(carrier), "--trace-file", str(tmp_path / "s1.jsonl"),
        "--", "sh", "-c", step.format(out=tmp_path / "tp1"), env=GITHUB,
    )  # fmt: skip
    assert r1.returncode == 0, r1.stderr
    first = _run_span(tmp_path / "s1.jsonl")
    # No TRACEPARENT inside a GitHub Actions job: the first step joins the workflow trace
    # at the ids the Collector's GitHub receiver derives (run 4242, attempt 1).
    assert first.trace_id == hashlib.sha256(b"42421t").hexdigest()[:32]
    assert first.parent_id == hashlib.sha256(b"42421s").hexdigest()[16:32]
    assert carrier.read_text().startswith(f"TRACEPARENT=00-{first.trace_id}-{first.span_id}-")
    assert oct(os.stat(carrier).st_mode & 0o777) == "0o600"
    # The derived trace id is a hash, not random: W3C Level 2's random flag stays off.
    assert (tmp_path / "tp1").read_text() == f"00-{first.trace_id}-{first.span_id}-01"

    # Step 2: a different process with a different environment; only the file connects them.
    r2 = sysspan(
        "--no-syscalls", "--tp-carrier", str(carrier), "--trace-file", str(tmp_path / "s2.jsonl"), "--tp-print",
        "--", "sh", "-c", step.format(out=tmp_path / "tp2"),
    )  # fmt: skip
    assert r2.returncode == 0, r2.stderr
    second = _run_span(tmp_path / "s2.jsonl")
    assert second.trace_id == first.trace_id
    assert second.parent_id == first.span_id
    assert (tmp_path / "tp2").read_text() == f"00-{second.trace_id}-{second.span_id}-01"
    assert f"TRACEPARENT=00-{second.trace_id}-{second.span_id}-01" in r2.stderr
    assert f"00-{second.trace_id}-{second.span_id}-" in carrier.read_text()
    assert first.resource.get("cicd.pipeline.run.id") == "4242"

    # A failing step keeps its exit status (the CI step fails) and still joins the chain.
    r3 = sysspan("--no-syscalls", "--tp-carrier", str(carrier), "--trace-file", str(tmp_path / "s3.jsonl"), "--", "sh", "-c", "exit 7")
    assert r3.returncode == 7, r3.stderr
    third = _run_span(tmp_path / "s3.jsonl")
    assert third.parent_id == second.span_id and third.attrs["process.exit.code"] == 7
    assert third.status.get("code") == 2


def test_pipeline_span_across_steps_with_rfc3339(tmp_path: Path) -> None:
    trace_file = tmp_path / "pipeline.jsonl"
    env = dict(GITHUB)
    # Step 1: open the pipeline span; the runner keeps the lines for later steps.
    opened = sysspan("span", "--open", "--name", "pipeline", env=env)
    assert opened.returncode == 0, opened.stderr
    env.update(_env_file(opened.stdout))
    # Step 2: a traced command, child of the open span.
    r = sysspan("--no-syscalls", "--trace-file", str(trace_file), "--", "sh", "-c", "true", env=env)
    assert r.returncode == 0, r.stderr
    # Step 3: something that happened earlier, recorded afterwards with RFC 3339 times.
    r = sysspan(
        "span", "--name", "checkout", "--start", "2024-05-01T10:00:00.250Z",
        "--end", "2024-05-01T12:00:01.750+02:00", "--trace-file", str(trace_file), env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    # Last step: close it.
    r = sysspan("span", "--close", "--name", "pipeline", "--status", "ok", "--trace-file", str(trace_file), env=env)
    assert r.returncode == 0, r.stderr

    run, checkout, pipeline = load_spans(trace_file)
    open_span_id = env["TRACEPARENT"].split("-")[2]
    assert pipeline.span_id == open_span_id and pipeline.parent_id == ""
    assert {run.trace_id, checkout.trace_id} == {pipeline.trace_id}
    assert run.parent_id == checkout.parent_id == pipeline.span_id
    assert (checkout.start, checkout.end) == (1714557600_250_000_000, 1714557601_750_000_000)
    assert pipeline.start == int(env["SYSSPAN_SPAN_START"]) <= run.start and pipeline.end >= run.end
    assert pipeline.status == {"code": 1}
    assert pipeline.resource.get("cicd.pipeline.name") == "ci"


def test_tp_required_fails_without_context(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    cmd = ["--no-syscalls", "--tp-required", "--trace-file", str(tmp_path / "t.jsonl"), "--", "touch", str(marker)]
    r = sysspan(*cmd)
    assert r.returncode == 1 and "--tp-required" in r.stderr and "Traceback" not in r.stderr
    assert not marker.exists()
    r = sysspan(*cmd, env={"TRACEPARENT": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"})
    assert r.returncode == 1 and not marker.exists()
    r = sysspan(*cmd, env={"TRACEPARENT": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
    assert r.returncode == 0, r.stderr
    assert marker.exists()
    assert _run_span(tmp_path / "t.jsonl").parent_id == "00f067aa0ba902b7"
    # The span command too.
    r = sysspan("span", "--name", "x", "--start", "now", "--end", "now", "--tp-required", "--trace-file", str(tmp_path / "u.jsonl"))
    assert r.returncode == 1 and "--tp-required" in r.stderr
