"""-e trace= with the seccomp-bpf filter: the same spans as stopping everywhere, for a
fraction of the stops."""

from __future__ import annotations

from tests.tracehelpers import load_spans, sysspan

CMD = ("sh", "-c", "cat /etc/hostname /nonexistent >/dev/null 2>&1; grep Seccomp: /proc/self/status; ls / >/dev/null")


def _trace(tmp_path, name, *extra):
    out = tmp_path / f"{name}.jsonl"
    proc = sysspan("--trace-file", str(out), "-f", "-e", "trace=openat,execve", *extra, "--", *CMD, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return proc, load_spans(out)


def test_seccomp_filter_gives_the_same_spans_with_fewer_stops(tmp_path):
    fast_proc, fast = _trace(tmp_path, "seccomp")
    slow_proc, slow = _trace(tmp_path, "plain", "--no-seccomp")
    # the filter is really installed in the traced processes (mode 2 = filter)
    assert "Seccomp:\t2" in fast_proc.stdout
    assert "Seccomp:\t0" in slow_proc.stdout
    fast_run = next(s for s in fast if s.is_run)
    slow_run = next(s for s in slow if s.is_run)
    assert fast_run.attrs["sysspan.seccomp"] is True
    assert slow_run.attrs["sysspan.seccomp"] is False

    def calls(spans):
        return sorted(
            (s.name, s.attrs.get("file.path", ""), s.attrs.get("syscall.return"))
            for s in spans if s.is_syscall and s.attrs.get("file.path") != "/proc/self/status"
        )

    assert {s.name for s in fast if s.is_syscall} == {"openat", "execve"}
    assert calls(fast) == calls(slow)
    # every traced call costs two stops either way; with the filter nothing else stops
    traced = sum(s.is_syscall for s in fast)
    assert fast_run.attrs["sysspan.ptrace.stops"] < 2 * traced + 40
    assert slow_run.attrs["sysspan.ptrace.stops"] > 3 * fast_run.attrs["sysspan.ptrace.stops"]
    # the process tree is the same
    assert sorted(s.name for s in fast if s.is_process) == sorted(s.name for s in slow if s.is_process)


def test_seccomp_with_threads_and_signals(tmp_path):
    prog = (
        "import threading, os, signal\n"
        "signal.signal(signal.SIGUSR1, lambda *a: None)\n"
        "def w():\n    open('/etc/hostname').close()\n"
        "ts=[threading.Thread(target=w) for _ in range(3)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "os.kill(os.getpid(), signal.SIGUSR1)\n"
    )
    import sys

    out = tmp_path / "t.jsonl"
    proc = sysspan("--trace-file", str(out), "-f", "-e", "trace=openat", "--", sys.executable, "-c", prog, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    spans = load_spans(out)
    host = [s for s in spans if s.is_syscall and s.attrs.get("file.path") == "/etc/hostname"]
    assert len({s.attrs["thread.id"] for s in host}) == 3
    proc_span = next(s for s in spans if s.is_process)
    assert any(e["name"] == "signal" for e in proc_span.events)


def test_untraced_children_keep_working_under_the_filter(tmp_path):
    """Without -f the children inherit the filter but are not recorded: their filtered
    syscalls must still work (a RET_TRACE call without a tracer would fail with ENOSYS)."""
    out = tmp_path / "t.jsonl"
    proc = sysspan(
        "--trace-file", str(out), "-e", "trace=read,write,execve", "--",
        "sh", "-c", "head -c 4 /etc/passwd; echo; grep Seccomp: /proc/self/status",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    with open("/etc/passwd") as fh:
        assert proc.stdout.startswith(fh.read(4))
    assert "Seccomp:\t2" in proc.stdout
    spans = load_spans(out)
    assert len([s for s in spans if s.is_process]) == 1  # the shell only, not head or grep
    assert all(s.name in ("read", "write", "execve") for s in spans if s.is_syscall)
