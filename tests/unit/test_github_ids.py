"""GitHub Actions id derivation, checked against the receiver's scheme computed here
independently: SHA-256 of the documented text, ids taken from the raw digest bytes
(trace id: bytes 0-15; span ids: bytes 8-15)."""

from __future__ import annotations

import hashlib

import pytest

from sysspan.propagation import github_ids as gh

TUPLES = [
    # (run id, attempt, check-run id, step name)
    (12719320830, 1, 35483121697, "Build"),
    (14460881260, 2, 40685651258, "Run actions/checkout@v4"),
    (1, 1, 2, "Set up job"),
    (9876543210123, 7, 51725241954, "make test-all (x86_64, gcc)"),
    (555, 3, 777, "unicode ✓ step"),
]


def _bytes(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


@pytest.mark.parametrize(("run", "attempt", "check", "step"), TUPLES)
def test_ids_follow_the_receiver_scheme(run, attempt, check, step):
    assert gh.trace_id(run, attempt).to_bytes(16, "big") == _bytes(f"{run}{attempt}t")[:16]
    assert gh.run_span_id(run, attempt).to_bytes(8, "big") == _bytes(f"{run}{attempt}s")[8:16]
    assert gh.job_span_id(check).to_bytes(8, "big") == _bytes(f"{check}-j")[8:16]
    assert gh.step_span_id(check, step).to_bytes(8, "big") == _bytes(f"{check}-{step}-s")[8:16]


def _env(**extra: str) -> dict[str, str]:
    env = {"GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "12719320830", "GITHUB_RUN_ATTEMPT": "2"}
    env.update(extra)
    return env


def test_parent_is_step_then_job_then_run():
    trace = _bytes("127193208302t")[:16].hex()
    step, _ = gh.github_parent(_env(SYSSPAN_GITHUB_CHECK_RUN_ID="35483121697", SYSSPAN_GITHUB_STEP_NAME="Build"))
    job, _ = gh.github_parent(_env(SYSSPAN_GITHUB_CHECK_RUN_ID="35483121697"))
    run, _ = gh.github_parent(_env())
    assert step and job and run
    assert {f"{p.context.trace_id:032x}" for p in (step, job, run)} == {trace}
    assert f"{step.context.span_id:016x}" == _bytes("35483121697-Build-s")[8:16].hex()
    assert f"{job.context.span_id:016x}" == _bytes("35483121697-j")[8:16].hex()
    assert f"{run.context.span_id:016x}" == _bytes("127193208302s")[8:16].hex()
    assert (step.level, job.level, run.level) == ("step", "job", "run")
    assert step.context.remote and step.context.sampled


def test_outside_actions_or_with_bad_numbers():
    assert gh.github_parent({"GITHUB_RUN_ID": "5"}) == (None, [])
    parent, warnings = gh.github_parent(_env(SYSSPAN_GITHUB_CHECK_RUN_ID="abc"))
    assert parent is not None and parent.level == "run"
    assert warnings == ["SYSSPAN_GITHUB_CHECK_RUN_ID: expected a positive number, got 'abc'; ignoring it"]
    assert gh.github_parent(_env(GITHUB_RUN_ID=""))[0] is None
