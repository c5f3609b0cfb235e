"""The compiled stop loop: records, ordering, back-pressure, and the build without a compiler."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from sysspan.collector.decode import Decoder
from sysspan.collector.records import ProcessExec, ProcessExit, ProcessStart, Syscall
from sysspan.collector.syscalls import machine_arch, table
from sysspan.collector.tracer import Tracer

from ..tracehelpers import load_spans, sysspan

ARCH = machine_arch()
NR = {name: nr for nr, name in table(ARCH).items()}


def _tracer(**kw) -> Tracer:
    return Tracer(
        Decoder(ARCH),
        follow=True,
        execve_nrs=frozenset({NR["execve"], NR["execveat"]}),
        **kw,
    )


def _run(tracer: Tracer, argv: list[str], consume) -> int | None:
    path = shutil.which(argv[0])
    assert path
    tracer.spawn(path, argv, dict(os.environ))
    return tracer.run(consume)


def _strace_count(tmp_path: Path, argv: list[str], name: str) -> int:
    out = tmp_path / "strace-c.txt"
    subprocess.run(["strace", "-f", "-c", "-o", str(out), *argv], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for line in out.read_text().splitlines():
        parts = line.split()
        if parts and parts[-1] == name:
            return int(parts[3])
    return 0


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace compares the counts")
def test_slow_consumer_loses_nothing_and_the_ring_stays_bounded(tmp_path):
    # 20,000 reads and 20,000 writes through a 64 KiB ring drained by a consumer that
    # sleeps on every 500th record: the loop must wait for it, not drop or grow.
    argv = ["dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=20000"]
    tracer = _tracer(ring_bytes=65536)
    seen: dict[str, int] = {}
    n = 0

    def slow(rec) -> None:
        nonlocal n
        n += 1
        if n % 500 == 0:
            time.sleep(0.01)
        if isinstance(rec, Syscall):
            name = table(ARCH).get(rec.nr, "?")
            seen[name] = seen.get(name, 0) + 1

    status = _run(tracer, argv, slow)
    assert status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert tracer.stats["ring_waits"] > 0, "the consumer was never slower than the loop"
    assert tracer.stats["ring_peak"] <= 65536
    assert tracer.stats["lost"] == 0
    assert seen["read"] == _strace_count(tmp_path, argv, "read") >= 20000
    assert seen["write"] == _strace_count(tmp_path, argv, "write") >= 20000


def test_records_are_typed_ordered_and_complete(tmp_path):
    recs: list = []
    status = _run(_tracer(), ["sh", "-c", "cat /etc/hostname > /dev/null; exit 3"], recs.append)
    assert os.WEXITSTATUS(status) == 3
    starts = [r for r in recs if isinstance(r, ProcessStart)]
    exits = [r for r in recs if isinstance(r, ProcessExit)]
    execs = [r for r in recs if isinstance(r, ProcessExec)]
    calls = [r for r in recs if isinstance(r, Syscall)]
    assert len(starts) == len(exits) == 2  # sh and cat
    assert {os.path.basename(e.path) for e in execs} >= {"cat"}
    assert any(e.argv == ["cat", "/etc/hostname"] for e in execs)
    # one global sequence: every number used once, entry before exit, and records come in
    # the order they were written (syscalls at their exit)
    seqs = [s for c in calls for s in (c.seq0, c.seq1)]
    seqs += [r.seq for r in recs if not isinstance(r, Syscall)]
    assert len(seqs) == len(set(seqs))
    assert all(c.seq0 < c.seq1 and c.t0 <= c.t1 for c in calls)
    written = [r.seq1 if isinstance(r, Syscall) else r.seq for r in recs]
    assert written == sorted(written)
    opens = [c for c in calls if c.nr == NR["openat"] and c.ecap and c.ecap[0] == b"/etc/hostname"]
    assert len(opens) == 1 and opens[0].rval is not None and opens[0].rval >= 0
    # exit_group never returns
    assert any(c.nr == NR["exit_group"] and c.rval is None for c in calls)


def test_exec_from_a_thread_is_the_calling_threads(tmp_path):
    prog = textwrap.dedent(
        """
        import os, threading
        def go():
            os.execv("/bin/true", ["true"])
        t = threading.Thread(target=go)
        t.start()
        t.join()
        """
    )
    recs: list = []
    status = _run(_tracer(), [sys.executable, "-c", prog], recs.append)
    assert os.WEXITSTATUS(status) == 0
    execve = [r for r in recs if isinstance(r, Syscall) and r.nr == NR["execve"] and r.rval == 0]
    assert len(execve) == 2  # the interpreter's and the thread's
    leader = execve[0].tgid
    thread_exec = execve[1]
    assert thread_exec.tgid == leader and thread_exec.tid != leader
    # the thread that made the call is the one that created it (its clone's return value)
    clones = [r for r in recs if isinstance(r, Syscall) and r.tid == leader and r.rval
              and r.nr in (NR["clone"], NR.get("clone3", -1))]
    tids = [c.rval for c in clones]
    assert thread_exec.tid in tids
    done = [r for r in recs if isinstance(r, ProcessExec) and r.tgid == leader]
    assert done[-1].tid == thread_exec.tid and done[-1].path.endswith("true")


def test_thread_exec_span_carries_the_calling_thread(tmp_path):
    prog = "import os, threading\nt = threading.Thread(target=os.execv, args=('/bin/true', ['true']))\nt.start(); t.join()\n"
    out = tmp_path / "t.jsonl"
    proc = sysspan("--trace-file", str(out), "-f", "-e", "trace=execve", "--", sys.executable, "-c", prog,
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    spans = load_spans(out)
    execs = [s for s in spans if s.name == "execve"]
    pid = next(s for s in spans if s.is_process).attrs["process.pid"]
    assert len(execs) == 2 and execs[1].attrs["thread.id"] != pid


def test_a_failing_consumer_does_not_wedge_the_loop(tmp_path):
    # A consumer that raises does not wedge the loop: the trace ends, the error is reported.
    tracer = _tracer(ring_bytes=65536)

    def broken(rec) -> None:
        raise RuntimeError("consumer bug")

    with pytest.raises(Exception, match="consumer bug"):
        _run(tracer, ["dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=20000"], broken)


def test_arguments_larger_than_a_record_are_reported(tmp_path):
    # -s asks for more bytes of one write than a record may hold (a quarter of the ring)
    prog = "import os; os.write(1, b'x' * 1_500_000)"
    out = tmp_path / "t.jsonl"
    proc = sysspan("--trace-file", str(out), "-s", "2000000", "-e", "trace=write", "--",
                   sys.executable, "-c", prog, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "1 syscalls had more argument data than one record holds" in proc.stderr
    writes = [s for s in load_spans(out) if s.name == "write"]
    assert len(writes) == 1 and writes[0].attrs["syscall.args"].startswith("1, 0x")


def test_build_without_a_compiler_names_the_package(tmp_path, repo_root):
    src = tmp_path / "src"
    shutil.copytree(repo_root, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "*.so", "sysspan-traces", "__pycache__", "*.egg-info"))
    env = dict(os.environ, CC="/nonexistent/gcc-missing")
    proc = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(tmp_path / "out")],
        cwd=src, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "C compiler" in ln]
    assert len(lines) == 1, proc.stdout + proc.stderr
    assert "install the Debian package gcc" in lines[0]
    assert not list((tmp_path / "out").rglob("*.so"))


def test_ctrl_c_while_the_consumer_blocks_the_loop(tmp_path):
    # The loop waits for a stuck consumer; a signal must still reach the Python handler.
    tracer = _tracer(ring_bytes=65536)
    release = threading.Event()
    got: list[int] = []

    def stuck(rec) -> None:
        release.wait()

    import signal

    old = signal.signal(signal.SIGALRM, lambda s, f: (got.append(s), tracer.forward(signal.SIGKILL),
                                                      release.set()))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        status = _run(tracer, ["dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=10000000"], stuck)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert got == [signal.SIGALRM]
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
