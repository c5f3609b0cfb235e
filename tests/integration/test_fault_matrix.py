"""The fault matrix: {-o target, JSONL directory, spool directory} x {unwritable, disk full,
deleted mid-run} x {collector up, down, late by 1.5 s, answering 503}.

Every case runs the real CLI on a real command that exits 3, with real loopback receivers
and real file systems (a 1 MiB tmpfs for "disk full", a read-only tmpfs for "unwritable";
both need root and mount(2), else those cases are skipped with the reason). What must
hold each time: the exit status is the command's, and each sink accounts for every span,
either in a file sysspan's readers accept (where it was asked to go, or the fallback
location it announced) or counted as lost in a message.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sysspan.tracefile import iter_trace_file
from tests.otlp_receiver import HttpReceiver
from tests.tracehelpers import REPO

TARGETS = ("o-file", "jsonl-dir", "spool-dir")
FAULTS = ("unwritable", "disk-full", "deleted")
COLLECTORS = ("up", "down", "late", "503")
# ~2,400 syscalls before and after the directory goes away: several 512-span batches, so
# files exist (and fill up) while the command still runs.
DD = "dd if=/dev/zero of=/dev/null bs=1 count=600 2>/dev/null"
LOST = re.compile(r"(\d+) spans? lost")


def _mount(directory: Path, options: str) -> str | None:
    """Mount a tmpfs on ``directory``; None when this machine refuses (not root, no CAP)."""
    directory.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        return "mount(8) is not installed"
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(directory)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return None if proc.returncode == 0 else f"mount -t tmpfs refused: {proc.stderr.strip()}"


def _free_to(directory: Path, leave: int) -> None:
    """Fill a tmpfs until ``leave`` bytes are free."""
    st = os.statvfs(directory)
    fill = st.f_bavail * st.f_frsize - leave
    if fill > 0:
        (directory / "filler").write_bytes(b"\0" * fill)


@pytest.fixture
def faulty(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Path, str]]:
    """(directory, shell command that breaks it mid-run or ":") for the requested fault."""
    fault = request.param
    directory = tmp_path / "faulty"
    mounted = False
    if fault == "unwritable":
        why = _mount(directory, "ro,size=1m")
        if why is not None:
            pytest.skip(why)
        mounted = True
        breaker = ":"
    elif fault == "disk-full":
        why = _mount(directory, "size=1m")
        if why is not None:
            pytest.skip(why)
        mounted = True
        _free_to(directory, 96 * 1024)
        breaker = ":"
    else:
        directory.mkdir()
        breaker = f"sleep 0.3; rm -rf '{directory}'"  # once the first batches are written
    try:
        yield directory, breaker
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(directory)], check=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def collector(request: pytest.FixtureRequest) -> Iterator[tuple[str, HttpReceiver | None, float]]:
    """(endpoint, receiver or None, export timeout) for up / down / late / 503."""
    kind = request.param
    started: list[HttpReceiver] = []
    timer = None
    if kind == "down":
        yield f"http://127.0.0.1:{_free_port()}", None, 1.0
        return
    if kind == "late":
        port = _free_port()
        holder: dict[str, HttpReceiver] = {}

        def start() -> None:
            holder["r"] = HttpReceiver(port=port).start()
            started.append(holder["r"])

        timer = threading.Timer(1.5, start)
        timer.start()

        class Late:
            def spans(self):  # the receiver exists once the run is over
                timer.join()
                return holder["r"].spans()

        try:
            yield f"http://127.0.0.1:{port}", Late(), 5.0  # type: ignore[misc]
        finally:
            timer.join()
            for r in started:
                r.stop()
        return
    receiver = HttpReceiver().start()
    if kind == "503":
        receiver.fail(10**6, status=503, retry_after_s=0)
    try:
        yield receiver.endpoint, receiver, 1.0
    finally:
        receiver.stop()


def _ids(paths: list[Path]) -> list[int]:
    ids = []
    for path in paths:
        if path.is_file() and path.stat().st_size:
            ids += [s.span_id for b in iter_trace_file(path) for s in b.spans]
    return ids


def _lost(stderr: str, mark: str) -> int:
    return sum(int(m.group(1)) for line in stderr.splitlines() if mark in line for m in LOST.finditer(line))


@pytest.mark.parametrize("collector", COLLECTORS, indirect=True)
@pytest.mark.parametrize("faulty", FAULTS, indirect=True)
@pytest.mark.parametrize("target", TARGETS)
def test_fault_matrix(target: str, faulty, collector, tmp_path: Path) -> None:
    directory, breaker = faulty
    endpoint, receiver, timeout = collector
    good = tmp_path / "good"
    good.mkdir()
    state = tmp_path / "state"  # $XDG_STATE_HOME: the first fallback location
    lines = (directory if target == "o-file" else good) / "lines.txt"
    trace = (directory if target == "jsonl-dir" else good) / "t.jsonl"
    spool_dir = directory if target == "spool-dir" else good
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SYSSPAN_", "TRACE"))}
    env.update(PYTHONPATH=str(REPO), XDG_STATE_HOME=str(state))
    proc = subprocess.run(
        [sys.executable, "-m", "sysspan", "-f", "-o", str(lines), "--trace-file", str(trace),
         "--output-dir", str(spool_dir), "--otlp-endpoint", endpoint, "--otlp-timeout", str(timeout),
         "--", "sh", "-c", f"{DD}; {breaker}; {DD}; exit 3"],
        env=env, cwd=good, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    err = proc.stderr
    assert proc.returncode == 3, err
    assert "Traceback" not in err and "internal error" not in err, err

    fallback = state / "sysspan"
    jsonl_ids = _ids([trace, fallback / trace.name])
    spool_files = sorted(spool_dir.glob("*-spool-*.jsonl")) if spool_dir.is_dir() else []
    spool_files += sorted(fallback.glob("*-spool-*.jsonl")) if fallback.is_dir() else []
    spooled = _ids(spool_files)
    delivered = [int.from_bytes(s.span_id, "big") for _, s in receiver.spans()] if receiver else []
    everything = set(jsonl_ids) | set(spooled) | set(delivered)

    # The run span is the last one written; it says how many spans the run produced.
    runs = [
        s for path in [trace, fallback / trace.name, *spool_files] if path.is_file()
        for b in iter_trace_file(path) for s in b.spans if "syscall.count" in s.attributes
    ]  # fmt: skip
    assert runs or "lost" in err, err
    if runs:
        a = runs[0].attributes
        total = a["syscall.count"] - a["syscall.dropped"] + a["sysspan.process.count"] + 1
        assert len(everything) <= total
        # the JSONL sink: every span in its file (or the fallback copy), or counted lost
        assert len(jsonl_ids) == len(set(jsonl_ids)), "a span written twice"
        assert len(set(jsonl_ids)) + _lost(err, trace.name) == total, err
        # the OTLP sink: delivered, spooled (where asked or in the fallback), or counted lost
        assert len(set(delivered) | set(spooled)) + _lost(err, "spool") == total, err
    if target != "o-file" or breaker != ":":
        return
    # -o: the lines are in the file, in the announced fallback, or counted lost
    assert "-o:" in err and str(lines) in err, err
    kept = fallback / lines.name
    assert kept.is_file() or "lines lost" in err
    if kept.is_file():
        text = kept.read_text()
        assert text.endswith("\n") and "execve(" in text or "exit_group(" in text
