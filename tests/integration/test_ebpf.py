"""--backend ebpf on real programs, checked against strace and against what they did."""

from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from sysspan.collector.ebpf import libbpf
from sysspan.collector.ebpf.tracefs import syscall_fields
from tests.tracehelpers import REPO, load_spans, sysspan

pytestmark = [
    pytest.mark.skipif(not os.path.exists("/sys/kernel/btf/vmlinux"), reason="kernel without BTF"),
    pytest.mark.skipif(os.geteuid() != 0, reason="eBPF tracing needs root"),
    pytest.mark.skipif(
        shutil.which("bpftrace") is None and not libbpf.available(),
        reason="neither the libbpf loader nor bpftrace is here (make installs both)",
    ),
]
needs_bpftrace = pytest.mark.skipif(shutil.which("bpftrace") is None, reason="bpftrace missing")
BPFTRACE = {"SYSSPAN_EBPF_BPFTRACE": "1"}


def trace(tmp_path, *cmd, extra=(), env=None, check_rc=0):
    out = tmp_path / "trace.jsonl"
    proc = sysspan(
        "--backend", "ebpf", "--trace-file", str(out), *extra, "--", *cmd, env=env, cwd=tmp_path
    )
    if check_rc is not None:
        assert proc.returncode == check_rc, proc.stderr
    return proc, load_spans(out)


def _strace(tmp_path, *cmd):
    out = tmp_path / "strace.txt"
    subprocess.run(["strace", "-f", "-qq", "-o", str(out), *cmd], check=True, capture_output=True)
    calls, paths = [], []
    for line in out.read_text().splitlines():
        m = re.match(r"^(?:\d+\s+)?([a-z_0-9]+)\((.*)", line)
        if not m:
            continue
        calls.append(m.group(1))
        if m.group(1) == "openat":
            paths.append(re.search(r'"((?:[^"\\]|\\.)*)"', m.group(2)).group(1))
    return calls, paths


@pytest.mark.parametrize(
    "env", [None, pytest.param(BPFTRACE, marks=needs_bpftrace)], ids=["default", "bpftrace"]
)
def test_ls_matches_strace(tmp_path, env):
    calls, paths = _strace(tmp_path, "ls", "-la", "/")
    _, spans = trace(tmp_path, "ls", "-la", "/", extra=("-f",), env=env)
    sys_spans = sorted((s for s in spans if s.is_syscall), key=lambda s: s.start)
    ours = collections.Counter(s.name for s in sys_spans)
    theirs = collections.Counter(calls)
    assert set(ours) == set(theirs), set(ours) ^ set(theirs)
    for name in theirs:
        assert abs(ours[name] - theirs[name]) <= 2, (name, ours[name], theirs[name])
    assert [s.attrs["file.path"] for s in sys_spans if s.name == "openat"] == paths
    assert all(s.end > s.start for s in sys_spans if "syscall.return" in s.attrs)
    run = next(s for s in spans if s.is_run)
    assert run.attrs["syscall.lost"] == 0
    assert run.attrs["syscall.count"] == len(sys_spans)


def test_process_tree_exit_codes_and_lines(tmp_path):
    out = tmp_path / "lines.txt"
    _, spans = trace(
        tmp_path, "sh", "-c", "ls / >/dev/null; cat /nonexistent 2>/dev/null; exit 3",
        extra=("-f", "-o", str(out)), check_rc=3,
    )
    procs = [s for s in spans if s.is_process]
    ids = {s.span_id: s for s in spans}
    run = next(s for s in spans if s.is_run)
    ls = next(s for s in procs if s.name == "ls")
    cat = next(s for s in procs if s.name == "cat")
    parent = ids[ls.parent_id]
    assert parent.is_process and parent.name in ("sh", "dash")
    assert parent.parent_id == run.span_id
    assert ls.attrs["process.parent_pid"] == parent.attrs["process.pid"]
    assert ls.attrs["process.command_args"] == ["ls", "/"]
    assert ls.attrs["process.exit.code"] == 0
    assert cat.attrs["process.exit.code"] == 1
    assert run.attrs["process.exit.code"] == 3
    for s in spans:
        if s.is_syscall:
            assert ids[s.parent_id].is_process
    assert any(s.name == "getdents64" and s.parent_id == ls.span_id for s in spans)
    text = out.read_text()
    assert 'openat(AT_FDCWD, "/nonexistent", O_RDONLY) = -1 ENOENT (No such file or directory)' in text
    assert re.search(r'execve\("/usr/bin/ls", \["ls", "/"\]', text), text[:2000]


SHOW_START = 'grep -E "^Sig(Blk|Ign)" /proc/self/status; env; printf "<%s>" "$0" "$@"'


def test_command_starts_as_an_untraced_one_would(tmp_path):
    """The command's process (forked in C without Python's heap on the libbpf path) gets the
    argv, environment, signal mask and ignored signals an untraced start gives it."""
    cmd = ("sh", "-c", SHOW_START, "a", "b c", "")  # $0 is "a"
    proc, _ = trace(tmp_path, *cmd, env={"SYSSPAN_TEST_VALUE": "x=y z"})
    direct = subprocess.run(cmd, capture_output=True, text=True, check=True)

    def parts(text):
        lines = text.splitlines()
        return ([line for line in lines if line.startswith("Sig")], set(lines[2:-1]), lines[-1])

    sig, env_traced, args = parts(proc.stdout)
    # sysspan ignores SIGPIPE and blocks SIGINT and friends; none of that reaches the command
    assert (sig, args) == (parts(direct.stdout)[0], "<a><b c><>")
    assert len(sig) == 2
    assert "SYSSPAN_TEST_VALUE=x=y z" in env_traced
    assert any(line.startswith("TRACEPARENT=00-") for line in env_traced)


def test_command_that_cannot_run(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x7fELF not really")
    bad.chmod(0o755)
    out = tmp_path / "lines.txt"
    proc, spans = trace(tmp_path, "./bad", extra=("-o", str(out)), check_rc=127)
    assert "sysspan: ./bad: Exec format error" in proc.stderr
    assert 'execve("./bad", ["./bad"], ' in out.read_text()
    assert "= -1 ENOEXEC (Exec format error)" in out.read_text()
    assert next(s for s in spans if s.is_run).attrs["process.exit.code"] == 127


def test_threads_and_trace_filter(tmp_path):
    prog = textwrap.dedent(
        """
        import threading
        def work():
            with open('/etc/hostname') as fh:
                fh.read()
        ts = [threading.Thread(target=work) for _ in range(4)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        """
    )
    _, spans = trace(tmp_path, sys.executable, "-c", prog, extra=("-f", "-e", "trace=openat,read,close"))
    procs = [s for s in spans if s.is_process]
    assert len(procs) == 1
    opens = [s for s in spans if s.is_syscall and s.attrs.get("file.path") == "/etc/hostname"]
    tids = {s.attrs["thread.id"] for s in opens}
    assert len(tids) == 4
    assert procs[0].attrs["process.pid"] not in tids
    assert {s.name for s in spans if s.is_syscall} <= {"openat", "read", "close"}


def test_other_processes_make_no_spans(tmp_path):
    marker = tmp_path / "busy-marker"
    marker.write_text("x")
    busy = subprocess.Popen(["sh", "-c", f"while :; do cat {marker} >/dev/null; done"])
    try:
        _, spans = trace(tmp_path, "sh", "-c", "ls / >/dev/null; sleep 0.3", extra=("-f",))
    finally:
        busy.kill()
        busy.wait()
    pids = {s.attrs["process.pid"] for s in spans if s.is_process}
    assert busy.pid not in pids
    assert not [s for s in spans if s.is_syscall and s.attrs.get("file.path") == str(marker)]
    assert {s.name for s in spans if s.is_process} <= {"sh", "dash", "ls", "sleep"}


@pytest.mark.slow
def test_lost_events_are_counted_exactly(tmp_path):
    n = 50_000
    prog = f"import os, time\nfor _ in range({n}): os.getppid()\ntime.sleep(0.5)\n"
    out = tmp_path / "summary.txt"
    proc, spans = trace(
        tmp_path, sys.executable, "-c", prog,
        extra=("-e", "trace=getppid", "-c", "-o", str(out)),
        env={"SYSSPAN_EBPF_BUFFER_PAGES": "1"},
    )
    run = next(s for s in spans if s.is_run)
    got = sum(1 for s in spans if s.is_syscall and s.name == "getppid")
    lost = run.attrs["syscall.lost"]
    assert lost > 0, "a one-page buffer should overflow"
    assert got + lost == n
    assert run.attrs["syscall.count"] == got
    assert f"{lost} events lost" in out.read_text()
    assert "lost" in proc.stderr
    strict = sysspan(
        "--backend", "ebpf", "--strict", "--trace-file", str(tmp_path / "s.jsonl"), "-e",
        "trace=getppid", "--", sys.executable, "-c", prog,
        env={"SYSSPAN_EBPF_BUFFER_PAGES": "1"}, cwd=tmp_path,
    )
    assert strict.returncode == 1, strict.stderr


@pytest.mark.slow
def test_attach_to_running_process(tmp_path):
    target = subprocess.Popen(
        [sys.executable, "-c", "import os, time\nwhile True:\n    os.getppid(); time.sleep(0.01)\n"]
    )
    try:
        out = tmp_path / "trace.jsonl"
        holder = subprocess.Popen(
            [sys.executable, "-m", "sysspan", "--backend", "ebpf", "--trace-file", str(out),
             "-p", str(target.pid)],
            env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=tmp_path,
            stderr=subprocess.PIPE, text=True,
        )
        first = holder.stderr.readline()  # printed once every probe is attached
        assert f"Process {target.pid} attached" in first, first
        time.sleep(1)
        target.kill()
        target.wait()
        _, err = holder.communicate(timeout=60)
    finally:
        if target.poll() is None:
            target.kill()
    assert holder.returncode == 0, err
    spans = load_spans(out)
    calls = [s for s in spans if s.is_syscall and s.name == "getppid"]
    assert calls, err
    assert all(s.attrs["thread.id"] == target.pid for s in calls)


def test_missing_bpftrace_is_one_line(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    os.symlink(shutil.which("true"), bindir / "true")
    proc = sysspan("--backend", "ebpf", "--", "true", env={"PATH": str(bindir), **BPFTRACE},
                   cwd=tmp_path)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "bpftrace" in lines[0] and "--backend ptrace" in lines[0]


def test_unprivileged_is_one_line(tmp_path):
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) missing")
    tmp_path.chmod(0o777)
    proc = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
         sys.executable, "-m", "sysspan", "--backend", "ebpf", "--", "true"],
        capture_output=True, text=True, cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO)}, timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "CAP_BPF" in lines[0] and "--backend ptrace" in lines[0]


@pytest.mark.skipif(not libbpf.available(), reason="sysspan's libbpf loader was not built")
def test_long_paths_and_argv_are_read_whole(tmp_path):
    """Past bpftrace's 160 bytes: a 300-byte path and an 860-byte argv element."""
    long_path = "/nonexistent/" + "p" * 300
    word = "w" * 500
    out = tmp_path / "lines.txt"
    _, spans = trace(
        tmp_path, "sh", "-c", f"cat {long_path} 2>/dev/null; echo {word} >/dev/null; true",
        extra=("-f", "-o", str(out)), check_rc=0,
    )
    opens = [s for s in spans if s.is_syscall and s.name == "openat"]
    assert long_path in [s.attrs.get("file.path") for s in opens]
    text = out.read_text()
    assert f'openat(AT_FDCWD, "{long_path}", O_RDONLY) = -1 ENOENT' in text
    # the line cuts strings at -s (32), as strace does; the process span has the whole argv
    assert re.search(r'execve\("/usr/bin/sh", \["sh", "-c", "cat /nonexistent/p+"\.\.\.\]', text)
    sh = next(s for s in spans if s.is_process and s.name in ("sh", "dash"))
    assert sh.attrs["process.command_args"] == [
        "sh", "-c", f"cat {long_path} 2>/dev/null; echo {word} >/dev/null; true"
    ]


def _openat_calls(spans):
    return [
        (s.attrs["syscall.args"], s.attrs.get("syscall.return"), s.attrs.get("file.path"),
         s.attrs.get("error.type"))
        for s in sorted((s for s in spans if s.is_syscall), key=lambda s: s.start)
    ]


@pytest.mark.skipif(not libbpf.available(), reason="sysspan's libbpf loader was not built")
def test_trace_selection_fentry_matches_tracepoints(tmp_path):
    """-e trace=openat by fentry/fexit (where the kernel loads BPF tracing programs) records
    the same calls as by the syscall tracepoints, and nothing of the other syscalls."""
    data = tmp_path / "data.txt"
    data.write_text("x" * 100)
    script = f"cat /etc/hostname {data} >/dev/null; cat {tmp_path}/absent 2>/dev/null; " \
             f"echo y > {tmp_path}/made.txt; exit 0"
    cmd = ("sh", "-c", script)
    calls, paths = _strace(tmp_path, *cmd)
    assert {"read", "write", "close"} <= set(calls)  # the others were made, and are not traced
    debug = {"SYSSPAN_EBPF_DEBUG": "1", "SYSSPAN_EBPF_FENTRY": "1"}
    runs = [tmp_path / "fentry", tmp_path / "tracepoints"]
    for d in runs:
        d.mkdir()
    proc, fentry = trace(runs[0], *cmd, extra=("-f", "-e", "trace=openat"), env=debug)
    fallback = [line for line in proc.stderr.splitlines() if "using syscall tracepoints" in line]
    if libbpf._bpf.fentry_supported():
        assert not fallback, fallback
    else:  # the reason is in the debug log
        assert any("refuses BPF tracing" in line for line in fallback), proc.stderr[-2000:]
    _, tracepoints = trace(runs[1], *cmd, extra=("-f", "-e", "trace=openat"),
                           env={"SYSSPAN_EBPF_DEBUG": "1"})
    for spans in (fentry, tracepoints):
        assert {s.name for s in spans if s.is_syscall} == {"openat"}
        assert [c[2] for c in _openat_calls(spans)] == paths
    assert _openat_calls(fentry) == _openat_calls(tracepoints)
    made = [c for c in _openat_calls(fentry) if c[2] == f"{tmp_path}/made.txt"]
    assert made and "O_CREAT" in made[0][0] and made[0][1] >= 0
    assert [c[3] for c in _openat_calls(fentry) if c[2] == f"{tmp_path}/absent"] == ["ENOENT"]



@pytest.mark.skipif(not libbpf.available(), reason="sysspan's libbpf loader was not built")
def test_libbpf_path_loads_nothing_of_bpftrace(tmp_path):
    """Every module imported is start-up time of every traced command: the libbpf path
    leaves bpftrace's program generator and line parser (and what only they use) unloaded,
    and still records the selected syscall."""
    from tests.integration.test_startup_imports import _loaded, _run

    out = tmp_path / "trace.jsonl"
    code, modules = _run(tmp_path, "--backend", "ebpf", "-qq", "--trace-file", str(out),
                         "-e", "trace=openat", "--", "cat", "/etc/hostname")
    assert code == 0
    assert _loaded(modules, ("sysspan.collector.ebpf.program", "sysspan.collector.ebpf.parse",
                             "dataclasses", "inspect", "subprocess", "tempfile", "shutil")) == []
    assert "sysspan.collector.ebpf.libbpf" in modules  # the control: the path that ran
    paths = [s.attrs.get("file.path") for s in load_spans(out) if s.is_syscall]
    assert "/etc/hostname" in paths


@pytest.mark.skipif(not libbpf.available(), reason="sysspan's libbpf loader was not built")
@pytest.mark.skipif(syscall_fields("uname") is not None or syscall_fields("openat") is None,
                    reason="needs a kernel whose uname has no tracepoint (x86_64: newuname)")
def test_selected_syscall_without_tracepoint(tmp_path):
    proc, spans = trace(tmp_path, "uname", "-a", extra=("-e", "trace=openat,uname"))
    assert "-e trace=: no tracepoints here for uname; not traced" in proc.stderr
    names = {s.name for s in spans if s.is_syscall}
    assert "openat" in names and "uname" not in names
    proc, _ = trace(tmp_path, "uname", "-a", extra=("-e", "trace=uname"), check_rc=None)
    assert proc.returncode != 0
    assert "this kernel has no tracepoints for uname; use --backend ptrace" in proc.stderr

