"""Test helpers: run the real CLI and read what it wrote.

The OTLP JSON lines are parsed here with plain ``json`` rather than sysspan's own decoder,
so tests check the file format independently of the code that wrote it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` every 10 ms; fail naming ``what`` once ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(0.01)


@dataclass
class JSpan:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    start: int
    end: int
    attrs: dict
    status: dict
    events: list = field(default_factory=list)
    resource: dict = field(default_factory=dict)

    @property
    def is_syscall(self) -> bool:
        return "syscall.name" in self.attrs

    @property
    def is_run(self) -> bool:
        return "syscall.count" in self.attrs

    @property
    def is_process(self) -> bool:
        return (
            "process.pid" in self.attrs
            and not self.is_run
            and not self.is_syscall
            and "decision.id" not in self.attrs
        )


def _value(v: dict):
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "arrayValue" in v:
        return [_value(x) for x in v["arrayValue"].get("values", [])]
    raise AssertionError(f"unknown OTLP JSON value {v!r}")


def attrs_of(items: list) -> dict:
    return {a["key"]: _value(a["value"]) for a in items or []}


def load_spans(path: str | os.PathLike) -> list[JSpan]:
    spans: list[JSpan] = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            req = json.loads(line)
            for rs in req["resourceSpans"]:
                resource = attrs_of(rs.get("resource", {}).get("attributes", []))
                for ss in rs["scopeSpans"]:
                    for s in ss["spans"]:
                        spans.append(
                            JSpan(
                                name=s["name"],
                                trace_id=s["traceId"],
                                span_id=s["spanId"],
                                parent_id=s.get("parentSpanId", ""),
                                kind=int(s.get("kind", 0)),
                                start=int(s["startTimeUnixNano"]),
                                end=int(s["endTimeUnixNano"]),
                                attrs=attrs_of(s.get("attributes", [])),
                                status=s.get("status", {}),
                                events=s.get("events", []),
                                resource=resource,
                            )
                        )
    return spans


def sysspan_env(extra: dict | None = None) -> dict[str, str]:
    """The environment a test runs sysspan in: this checkout on ``PYTHONPATH``, none of the
    caller's telemetry settings (GITHUB_*: a suite run inside GitHub Actions must not join
    the workflow's trace)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACE", "SYSSPAN_", "BAGGAGE", "GITHUB_"))}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra or {})
    return env


@contextlib.contextmanager
def sysspan_running(*args: str, cwd: str | os.PathLike, **popen) -> Iterator[subprocess.Popen]:
    """``python -m sysspan ARGS`` started in a session of its own, stdout a text pipe; its
    whole process group is killed on the way out, so a failing test leaves nothing running."""
    proc = subprocess.Popen([sys.executable, "-m", "sysspan", *args], env=sysspan_env(), cwd=cwd,
                            stdout=subprocess.PIPE, text=True, start_new_session=True, **popen)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def sysspan(
    *args: str,
    env: dict | None = None,
    cwd: str | os.PathLike | None = None,
    timeout: float = 120,
    input: str | None = None,
) -> subprocess.CompletedProcess:
    """Run ``python -m sysspan ARGS`` as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "sysspan", *args],
        env=sysspan_env(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
    )
