"""--no-syscalls runs the command itself (no tracer): it starts as an untraced run would
(ignored signals, descriptors), sysspan forwards a signal it receives, and the exit status
(or the death by signal) is the command's."""

from __future__ import annotations

import signal
import subprocess
import sys

from tests.tracehelpers import load_spans, sysspan, sysspan_running, wait_until

_FDS = "import os; print(sorted(os.listdir('/proc/self/fd')))"


def test_the_command_starts_with_default_signals_and_no_descriptor_of_sysspans(tmp_path):
    """SIGPIPE and SIGXFSZ, which Python (sysspan) ignores, are back to their defaults in the
    command, as subprocess leaves them; and the command has the descriptors an untraced run
    has, no more."""
    trace = str(tmp_path / "t.jsonl")
    proc = sysspan("-qq", "--no-syscalls", "--trace-file", trace, "--", "grep", "SigIgn", "/proc/self/status", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    ignored = int(proc.stdout.split()[1], 16)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        assert not ignored & (1 << (sig - 1)), proc.stdout
    argv = [sys.executable, "-S", "-c", _FDS]
    untraced = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    proc = sysspan("-qq", "--no-syscalls", "--trace-file", trace, "--", *argv, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == untraced


def test_a_signal_to_sysspan_reaches_the_command_and_its_status_is_returned(tmp_path):
    trace = tmp_path / "t.jsonl"
    script = "trap 'exit 7' TERM; echo ready; while :; do sleep 0.05; done"
    with sysspan_running("-qq", "--no-syscalls", "--trace-file", str(trace), "--", "sh", "-c", script,
                         cwd=tmp_path) as proc:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 7
    run = next(s for s in load_spans(trace) if s.is_run)
    assert run.attrs["process.exit.code"] == 7


def test_a_command_killed_by_a_signal_is_reported_as_such(tmp_path):
    trace = tmp_path / "t.jsonl"
    proc = sysspan("-qq", "--no-syscalls", "--trace-file", str(trace), "--", "sh", "-c", "kill -KILL $$", cwd=tmp_path)
    assert proc.returncode == 128 + signal.SIGKILL, proc.stderr
    wait_until(trace.exists, "the trace file")
    run = next(s for s in load_spans(trace) if s.is_run)
    assert run.attrs["error.type"] == "SIGKILL"
    assert run.attrs["process.pid"] > 0
