"""Zero-config joins in GitHub Actions: the trace and span ids the workflow trace will have.

The OpenTelemetry Collector's GitHub receiver (``githubreceiver`` in collector-contrib)
builds a trace per workflow run from GitHub's webhooks. Its ids are not random: they are
derived from numbers a running step can also see, so sysspan can parent its run span
inside that trace without any ``TRACEPARENT`` being passed around. The scheme (SHA-256,
lower-case hex digest; decimal numbers; no separators unless shown):

==================  ==========================================  =====================
id                  hashed text                                 taken from the digest
==================  ==========================================  =====================
trace id            ``<run id><run attempt>t``                  hex characters 0–31
workflow run span   ``<run id><run attempt>s``                  hex characters 16–31
job span            ``<check run id>-j``                        hex characters 16–31
step span           ``<check run id>-<step name>-s``            hex characters 16–31
==================  ==========================================  =====================

The run id and attempt are ``GITHUB_RUN_ID`` and ``GITHUB_RUN_ATTEMPT``. The check-run id
of the job (``job.check_run_id`` in a workflow expression) is not in a step's default
environment, so the workflow passes it as ``SYSSPAN_GITHUB_CHECK_RUN_ID``; the step's
display name, when the run span should hang under the step rather than the job, as
``SYSSPAN_GITHUB_STEP_NAME`` (the step's ``name:`` exactly as the workflow spells it).
The parent is the step span when both are known, else the job span, else the workflow
run span. ``SYSSPAN_GITHUB_JOIN=0`` turns the derivation off (a new trace, as elsewhere).
"""

from __future__ import annotations

from collections.abc import Mapping

from sysspan.plainrecord import FrozenRecord
from sysspan.propagation.traceparent import SpanContext

CHECK_RUN_ID_VAR = "SYSSPAN_GITHUB_CHECK_RUN_ID"
STEP_NAME_VAR = "SYSSPAN_GITHUB_STEP_NAME"
JOIN_VAR = "SYSSPAN_GITHUB_JOIN"  # "0": start a new trace instead


def _digest(text: str) -> str:
    import hashlib  # only inside GitHub Actions: loading OpenSSL costs every other run

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def trace_id(run_id: int, run_attempt: int) -> int:
    """The workflow run's trace id."""
    return int(_digest(f"{run_id}{run_attempt}t")[:32], 16)


def run_span_id(run_id: int, run_attempt: int) -> int:
    """The span id of the workflow run (the root of the receiver's trace)."""
    return int(_digest(f"{run_id}{run_attempt}s")[16:32], 16)


def job_span_id(check_run_id: int) -> int:
    """The span id of the job whose check run this is."""
    return int(_digest(f"{check_run_id}-j")[16:32], 16)


def step_span_id(check_run_id: int, step_name: str) -> int:
    """The span id of the step ``step_name`` of that job."""
    return int(_digest(f"{check_run_id}-{step_name}-s")[16:32], 16)


class GithubParent(FrozenRecord):
    """Where a step's run span goes in the workflow trace, and what it was derived from.
    ``level`` is "step", "job" or "run"."""

    __slots__ = _FIELDS = ("context", "level", "run_id", "run_attempt", "check_run_id", "step_name")
    context: SpanContext
    level: str
    run_id: int
    run_attempt: int
    check_run_id: int | None
    step_name: str | None

    def __init__(self, context: SpanContext, level: str, run_id: int, run_attempt: int,
                 check_run_id: int | None, step_name: str | None) -> None:
        self._set("context", context)
        self._set("level", level)
        self._set("run_id", run_id)
        self._set("run_attempt", run_attempt)
        self._set("check_run_id", check_run_id)
        self._set("step_name", step_name)


def _number(env: Mapping[str, str], name: str, warnings: list[str]) -> int | None:
    text = (env.get(name) or "").strip()
    if not text:
        return None
    if text.isdigit() and int(text) > 0:
        return int(text)
    warnings.append(f"{name}: expected a positive number, got {text[:40]!r}; ignoring it")
    return None


def github_parent(env: Mapping[str, str]) -> tuple[GithubParent | None, list[str]]:
    """The derived parent inside a GitHub Actions job (None outside one, or without a
    usable ``GITHUB_RUN_ID``), and warnings about values that could not be used."""
    warnings: list[str] = []
    if env.get("GITHUB_ACTIONS") != "true" or env.get(JOIN_VAR, "").strip() == "0":
        return None, warnings
    run_id = _number(env, "GITHUB_RUN_ID", warnings)
    if run_id is None:
        return None, warnings
    attempt = _number(env, "GITHUB_RUN_ATTEMPT", warnings) or 1
    check_run = _number(env, CHECK_RUN_ID_VAR, warnings)
    step = env.get(STEP_NAME_VAR) or None
    if check_run is not None and step is not None:
        level, parent = "step", step_span_id(check_run, step)
    elif check_run is not None:
        level, parent = "job", job_span_id(check_run)
    else:
        level, parent = "run", run_span_id(run_id, attempt)
    context = SpanContext(trace_id=trace_id(run_id, attempt), span_id=parent, remote=True)
    return GithubParent(context, level, run_id, attempt, check_run, step), warnings


def describe(parent: GithubParent) -> str:
    """One line for the user: which span of the workflow trace the run joins."""
    where = {
        "step": f"step {parent.step_name!r} of check run {parent.check_run_id}",
        "job": f"the job of check run {parent.check_run_id}",
        "run": f"workflow run {parent.run_id} attempt {parent.run_attempt}",
    }[parent.level]
    return f"joining the GitHub Actions trace {parent.context.trace_id:032x} under {where}"
