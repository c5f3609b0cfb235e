"""A signal sysspan was started with ignored (``nohup`` ignores SIGHUP, a non-interactive
shell's background job SIGINT and SIGQUIT) stays ignored in the command, as it would be
untraced, and sysspan neither relays it nor dies of it; every way sysspan starts a command
(the ptrace loop, ``--no-syscalls``, the eBPF backend) behaves the same."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest

from sysspan.collector.ebpf import libbpf
from tests.tracehelpers import load_spans, sysspan_env, sysspan_running

IGNORED = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT)

_EBPF_MISSING = (
    "kernel without BTF" if not os.path.exists("/sys/kernel/btf/vmlinux")
    else "eBPF tracing needs root" if os.geteuid() != 0
    else "neither the libbpf loader nor bpftrace is here (make installs both)"
    if shutil.which("bpftrace") is None and not libbpf.available() else ""
)
MODES = [
    pytest.param((), id="ptrace"),
    pytest.param(("--no-syscalls",), id="no-syscalls"),
    pytest.param(("--backend", "ebpf"), id="ebpf",
                 marks=pytest.mark.skipif(bool(_EBPF_MISSING), reason=_EBPF_MISSING)),
]


def _ignore_some() -> None:
    for sig in IGNORED:
        signal.signal(sig, signal.SIG_IGN)


def _ignored_mask(text: str) -> int:
    """The standard signals (1-31) of /proc's SigIgn mask. glibc's posix_spawn, which
    ``--no-syscalls`` starts the command with (as subprocess does), sets its own two
    real-time signals (32, 33) to ignored in every child; that is not sysspan's doing."""
    line = next(line for line in text.splitlines() if line.startswith("SigIgn:"))
    return int(line.split()[1], 16) & 0x7FFFFFFF


@pytest.mark.parametrize("mode", MODES)
def test_the_command_keeps_the_signals_sysspan_was_started_with_ignored(tmp_path, mode):
    cmd = ["grep", "SigIgn", "/proc/self/status"]
    direct = subprocess.run(cmd, capture_output=True, text=True, check=True, preexec_fn=_ignore_some)
    traced = subprocess.run(
        [sys.executable, "-m", "sysspan", "-qq", *mode, "--trace-file", str(tmp_path / "t.jsonl"), "--", *cmd],
        capture_output=True, text=True, env=sysspan_env(), cwd=tmp_path, timeout=60, preexec_fn=_ignore_some,
    )
    assert traced.returncode == 0, traced.stderr
    expected = _ignored_mask(direct.stdout)
    assert all(expected & (1 << (sig - 1)) for sig in IGNORED), direct.stdout
    assert _ignored_mask(traced.stdout) == expected


@pytest.mark.parametrize("mode", MODES)
def test_an_ignored_hangup_neither_ends_sysspan_nor_reaches_the_command(tmp_path, mode):
    trace = tmp_path / "t.jsonl"
    with sysspan_running("-qq", *mode, "--trace-file", str(trace), "--", "sh", "-c", "echo ready; sleep 0.3; echo done",
                         cwd=tmp_path, preexec_fn=_ignore_some) as proc:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGHUP)
        assert proc.stdout.read() == "done\n"
        assert proc.wait(timeout=30) == 0
    run = next(s for s in load_spans(trace) if s.is_run)
    assert run.attrs["process.exit.code"] == 0
