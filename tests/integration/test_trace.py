"""The core promise: real programs under the real tracer, checked against what they did."""

from __future__ import annotations

import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.tracehelpers import load_spans, sysspan, wait_until

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="ptrace is Linux-only")


def trace(tmp_path, *cmd, extra=(), env=None, check_rc=0):
    out = tmp_path / "trace.jsonl"
    proc = sysspan("--trace-file", str(out), *extra, "--", *cmd, env=env, cwd=tmp_path)
    if check_rc is not None:
        assert proc.returncode == check_rc, proc.stderr
    return proc, load_spans(out)


def by_id(spans):
    return {s.span_id: s for s in spans}


def test_ls_matches_strace(tmp_path):
    """Same syscall multiset as strace (within a small tolerance) and identical openat paths."""
    strace_out = tmp_path / "strace.txt"
    subprocess.run(
        ["strace", "-f", "-qq", "-o", str(strace_out), "ls", "-la", "/"],
        check=True,
        capture_output=True,
    )
    strace_calls = []
    strace_paths = []
    for line in strace_out.read_text().splitlines():
        m = re.match(r"^(?:\d+\s+)?([a-z_0-9]+)\((.*)", line)
        if not m:
            continue
        strace_calls.append(m.group(1))
        if m.group(1) == "openat":
            strace_paths.append(re.search(r'"((?:[^"\\]|\\.)*)"', m.group(2)).group(1))

    _, spans = trace(tmp_path, "ls", "-la", "/", extra=("-f",))
    sys_spans = sorted((s for s in spans if s.is_syscall), key=lambda s: s.start)
    ours = collections.Counter(s.name for s in sys_spans)
    theirs = collections.Counter(strace_calls)
    # Nondeterminism between two runs of ls: none expected for the set of names; counts may
    # differ by a few (e.g. getdents64 batches, write buffering). Allow ±2 per name.
    assert set(ours) == set(theirs), (set(ours) ^ set(theirs))
    for name in theirs:
        assert abs(ours[name] - theirs[name]) <= 2, (name, ours[name], theirs[name])
    our_paths = [s.attrs["file.path"] for s in sys_spans if s.name == "openat"]
    assert our_paths == strace_paths
    # Real durations: every syscall that returned has end > start.
    assert all(s.end > s.start for s in sys_spans if "syscall.return" in s.attrs)


def test_process_tree_with_fork(tmp_path):
    _, spans = trace(tmp_path, "sh", "-c", "ls / >/dev/null; echo hi", extra=("-f",))
    procs = [s for s in spans if s.is_process]
    names = {s.name for s in procs}
    assert {"dash", "ls"} <= names or {"sh", "ls"} <= names, names
    ids = by_id(spans)
    ls = next(s for s in procs if s.name == "ls")
    parent = ids[ls.parent_id]
    assert parent.is_process and parent.name in ("sh", "dash")
    run = next(s for s in spans if s.is_run)
    assert parent.parent_id == run.span_id
    assert ls.attrs["process.parent_pid"] == parent.attrs["process.pid"]
    assert ls.attrs["process.command_args"] == ["ls", "/"]
    assert ls.attrs["process.exit.code"] == 0
    # every syscall span hangs under the process that made it
    for s in spans:
        if s.is_syscall:
            owner = ids[s.parent_id]
            assert owner.is_process
    ls_calls = [s for s in spans if s.is_syscall and s.parent_id == ls.span_id]
    assert any(s.name == "getdents64" for s in ls_calls)


def test_threads_have_distinct_ids_and_right_parents(tmp_path):
    prog = textwrap.dedent(
        """
        import os, threading
        def work(i):
            with open('/etc/hostname') as fh:
                fh.read()
        ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        """
    )
    _, spans = trace(tmp_path, sys.executable, "-c", prog, extra=("-f", "-e", "trace=openat,read,close"))
    procs = [s for s in spans if s.is_process]
    assert len(procs) == 1, [p.name for p in procs]
    proc = procs[0]
    host_opens = [s for s in spans if s.is_syscall and s.attrs.get("file.path") == "/etc/hostname"]
    tids = {s.attrs["thread.id"] for s in host_opens}
    assert len(tids) == 4
    assert proc.attrs["process.pid"] not in tids  # worker threads, not the main thread
    assert all(s.parent_id == proc.span_id for s in spans if s.is_syscall)
    # the filter: nothing but the three names
    assert {s.name for s in spans if s.is_syscall} <= {"openat", "read", "close"}


@pytest.mark.parametrize(
    ("cmd", "rc"),
    [(("sh", "-c", "exit 3"), 3), (("sh", "-c", "kill -TERM $$"), 143), (("true",), 0)],
)
def test_exit_status_is_the_commands(tmp_path, cmd, rc):
    proc, spans = trace(tmp_path, *cmd, check_rc=rc)
    run = next(s for s in spans if s.is_run)
    assert run.attrs["process.exit.code"] == rc
    if rc:
        assert run.status.get("code") == 2
        assert run.attrs["error.type"] == ("SIGTERM" if rc == 143 else "3")
    else:
        assert "error.type" not in run.attrs


def test_command_not_found_and_bad_options(tmp_path):
    proc = sysspan("--", "no-such-command-xyz", cwd=tmp_path)
    assert proc.returncode == 127
    assert "no-such-command-xyz: command not found" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = sysspan("--definitely-not-an-option", "--", "true", cwd=tmp_path)
    assert proc.returncode == 2
    assert "usage:" in proc.stderr
    proc = sysspan("-e", "trace=nosuchcall", "--", "true", cwd=tmp_path)
    assert proc.returncode == 2
    assert "nosuchcall" in proc.stderr and "Traceback" not in proc.stderr


def test_traceparent_propagates(tmp_path):
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    proc, spans = trace(
        tmp_path, "sh", "-c", 'echo "$TRACEPARENT"', extra=("-f",), env={"TRACEPARENT": tp}
    )
    assert all(s.trace_id == "0af7651916cd43dd8448eb211c80319c" for s in spans)
    run = next(s for s in spans if s.is_run)
    assert run.parent_id == "b7ad6b7169203331"
    printed = proc.stdout.strip()
    version, trace_id, parent_id, flags = printed.split("-")
    assert trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert parent_id == run.span_id
    assert flags == "01"


def test_invalid_traceparent_warns_once_and_starts_new_trace(tmp_path):
    bad = "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"
    proc, spans = trace(tmp_path, "true", env={"TRACEPARENT": bad})
    assert proc.stderr.count("warning") == 1, proc.stderr
    run = next(s for s in spans if s.is_run)
    assert run.parent_id == ""
    assert run.trace_id != "0af7651916cd43dd8448eb211c80319c"


def test_strace_lines_and_summary(tmp_path):
    lines = tmp_path / "lines.txt"
    proc = sysspan(
        "-o", str(lines), "-e", "trace=openat", "--", "cat", "/etc/hostname", "/nonexistent",
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    text = lines.read_text()
    assert re.search(r'openat\(AT_FDCWD, "/etc/hostname", O_RDONLY\) += 3', text), text
    assert re.search(
        r'openat\(AT_FDCWD, "/nonexistent", O_RDONLY\) += -1 ENOENT \(No such file or directory\)',
        text,
    ), text
    assert "+++ exited with 1 +++" in text
    # default sink still written, path printed
    m = re.search(r"(sysspan-traces/\S+\.jsonl)", proc.stderr)
    assert m, proc.stderr
    spans = load_spans(tmp_path / m.group(1))
    failed = [s for s in spans if s.is_syscall and s.attrs.get("file.path") == "/nonexistent"]
    assert len(failed) == 1 and failed[0].status.get("code") == 2
    assert failed[0].attrs["error.type"] == "ENOENT"
    assert failed[0].attrs["syscall.return"] == -2

    out = tmp_path / "c.jsonl"
    proc = sysspan("-c", "--trace-file", str(out), "--", "cat", "/etc/hostname", "/nonexistent", cwd=tmp_path)
    assert "% time     seconds  usecs/call     calls    errors syscall" in proc.stderr
    spans = [s for s in load_spans(out) if s.is_syscall]
    row = next(ln for ln in proc.stderr.splitlines() if ln.endswith(" openat"))
    opens = [s for s in spans if s.name == "openat"]
    assert int(row.split()[-3]) == len(opens)
    assert int(row.split()[-2]) == sum("error.type" in s.attrs for s in opens)
    total = next(ln for ln in proc.stderr.splitlines() if ln.endswith(" total"))
    assert int(total.split()[3]) == len(spans)


def test_default_sink_path_printed(tmp_path):
    proc = sysspan("--", "true", cwd=tmp_path)
    assert proc.returncode == 0
    files = list((tmp_path / "sysspan-traces").glob("*.jsonl"))
    assert len(files) == 1
    assert files[0].name in proc.stderr
    spans = load_spans(files[0])
    assert spans[0].resource["service.name"] == "true"
    assert sum(s.is_run for s in spans) == 1


def test_service_name_and_resource_attributes(tmp_path):
    _, spans = trace(
        tmp_path,
        "true",
        env={"OTEL_SERVICE_NAME": "build-step", "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=ci,team=infra"},
    )
    res = spans[0].resource
    assert res["service.name"] == "build-step"
    assert res["deployment.environment"] == "ci"
    assert res["team"] == "infra"
    assert res["host.name"]


def test_secrets_are_redacted(tmp_path):
    _, spans = trace(tmp_path, "sh", "-c", "true", "--password=hunter2", "token=abc")
    run = next(s for s in spans if s.is_run)
    joined = " ".join(run.attrs["process.command_args"])
    assert "hunter2" not in joined and "abc" not in joined
    assert all("hunter2" not in str(s.attrs.get("syscall.args", "")) for s in spans)


def test_attach_and_detach_leaves_program_running(tmp_path):
    marker = tmp_path / "ticks"
    prog = f"import time\nwhile True:\n    open({str(marker)!r}, 'a').write('x')\n    time.sleep(0.01)\n"
    target = subprocess.Popen([sys.executable, "-c", prog])
    try:
        wait_until(marker.exists, "the target's first tick")
        out = tmp_path / "attach.jsonl"
        env = {k: v for k, v in os.environ.items()}
        env["PYTHONPATH"] = os.getcwd()
        tracer = subprocess.Popen(
            [sys.executable, "-m", "sysspan", "--trace-file", str(out), "-p", str(target.pid)],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        # Wait until the tracer reports the attach, then let it see a few syscalls.
        line = tracer.stderr.readline()
        assert "attached" in line, line
        size = marker.stat().st_size
        wait_until(lambda: marker.stat().st_size >= size + 5, "five ticks under the tracer")
        tracer.send_signal(signal.SIGINT)
        rest = tracer.communicate(timeout=30)[1]
        assert tracer.returncode == 0, rest
        assert "detached" in rest
        # the target still runs and is no longer traced
        size = marker.stat().st_size
        wait_until(lambda: marker.stat().st_size > size, "a tick after the detach", timeout=10)
        assert target.poll() is None
        with open(f"/proc/{target.pid}/status") as fh:
            tracer_pid = next(ln for ln in fh if ln.startswith("TracerPid:")).split()[1]
        assert tracer_pid == "0"
        spans = load_spans(out)
        assert any(s.is_syscall and s.attrs.get("file.path") == str(marker) for s in spans)
        assert any(s.is_process and s.attrs["process.pid"] == target.pid for s in spans)
    finally:
        target.kill()
        target.wait()


def test_signals_are_reported_and_delivered(tmp_path):
    # The child traps USR1 and exits 7 from the handler: the signal must reach it.
    script = "trap 'exit 7' USR1; kill -USR1 $$; sleep 5"
    out = tmp_path / "lines.txt"
    proc, spans = trace(tmp_path, "sh", "-c", script, extra=("-o", str(out)), check_rc=7)
    assert "--- SIGUSR1 {si_signo=SIGUSR1" in out.read_text()
    proc_span = next(s for s in spans if s.is_process)
    assert any(e["name"] == "signal" for e in proc_span.events)


def test_group_stop_does_not_hang(tmp_path):
    # The child stops itself (group-stop) and is continued by its parent shell. The parent
    # cannot see the stop itself, so it sends SIGCONT until the child says it has resumed: a
    # SIGCONT that comes before the SIGSTOP does nothing, the next one ends the stop.
    done = tmp_path / "resumed"
    script = (
        f"sh -c 'kill -STOP $$; echo resumed; : > {done}' & pid=$!; n=0; "
        f"until [ -e {done} ] || [ $n -ge 3000 ]; do kill -CONT $pid; sleep 0.01; n=$((n+1)); done; "
        "wait $pid"
    )
    proc, _ = trace(tmp_path, "sh", "-c", script, extra=("-f",))
    assert "resumed" in proc.stdout


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
def test_vfork_and_clone3_followed(tmp_path):
    src = tmp_path / "vf.c"
    src.write_text(
        textwrap.dedent(
            """
            #include <unistd.h>
            #include <sys/wait.h>
            int main(void) {
                pid_t p = vfork();
                if (p == 0) { execl("/bin/true", "true", (char*)0); _exit(1); }
                int st; waitpid(p, &st, 0);
                return WEXITSTATUS(st);
            }
            """
        )
    )
    subprocess.run(["cc", "-o", str(tmp_path / "vf"), str(src)], check=True)
    _, spans = trace(tmp_path, str(tmp_path / "vf"), extra=("-f",))
    names = [s.name for s in spans if s.is_process]
    assert "true" in names and "vf" in names
    assert any(s.name == "vfork" for s in spans if s.is_syscall)


def _child_of(ppid: int) -> int | None:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == ppid:
                return int(entry)
    return None


def _traced_sleep(pid: int) -> bool:
    """strace has attached and the child has exec'd sleep."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            status = dict(line.split(":", 1) for line in fh if ":" in line)
    except OSError:
        return False
    return status.get("Name", "").strip() == "sleep" and status.get("TracerPid", "0").strip() != "0"


def test_ptrace_refused_says_why_and_how(tmp_path):
    """A process that already has a tracer cannot be seized: one line, exit 1."""
    holder = subprocess.Popen(["strace", "-qq", "-o", "/dev/null", "sleep", "30"])
    try:
        deadline = time.time() + 10
        child = None
        while time.time() < deadline:
            child = _child_of(holder.pid)
            if child is not None and _traced_sleep(child):
                break
            time.sleep(0.01)
        assert child is not None and _traced_sleep(child)
        proc = sysspan("-p", str(child), cwd=tmp_path)
        assert proc.returncode == 1
        assert "ptrace was refused" in proc.stderr and "SYS_PTRACE" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        assert "Traceback" not in proc.stderr
    finally:
        holder.kill()
        holder.wait()


def test_interrupt_is_forwarded_and_the_trace_is_flushed(tmp_path):
    out = tmp_path / "t.jsonl"
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    tracer = subprocess.Popen(
        [sys.executable, "-m", "sysspan", "--trace-file", str(out), "--", "sh", "-c", "echo ready; exec sleep 30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, stdin=subprocess.DEVNULL,
    )
    assert tracer.stdout.readline().strip() == "ready"
    tracer.send_signal(signal.SIGINT)
    _, err = tracer.communicate(timeout=30)
    assert tracer.returncode == 130, err  # the command's status: killed by SIGINT
    spans = load_spans(out)
    run = next(s for s in spans if s.is_run)
    assert run.attrs["error.type"] == "SIGINT"
    assert any(s.is_syscall and s.name == "execve" for s in spans)
