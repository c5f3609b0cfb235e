"""strace's multi-task forms in ``-f -o``, against strace on real programs: a call another
task's line interrupts (``<unfinished ...>`` / ``<... NAME resumed>``), one exit line per
thread, and an execve from a thread that is not the leader.

Each program is built so that the interleaving does not depend on scheduling: the call that
must be split blocks while another process runs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tools import strace_compare as sc

pytestmark = pytest.mark.skipif(
    shutil.which("strace") is None or shutil.which("gcc") is None, reason="needs strace and gcc"
)


def _both(tmp_path: Path, argv: list[str]) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    outs = []
    prog = sc.Program("test", argv)
    for tool in ("strace", "sysspan"):
        out = tmp_path / f"{tool}.txt"
        sc.run_tool(tool, prog, tmp_path / f"work-{tool}", out, ("-f", "-s", "32"))
        outs.append(sc.parse(out.read_text()))
    return outs[0], outs[1]


def _labelled(lines: list[tuple[int, str]]) -> list[tuple[str, str]]:
    """Pids in the order they first print, as P0, P1, ..., in the pid column and the text."""
    labels: dict[int, str] = {}
    for pid, _ in lines:
        labels.setdefault(pid, f"P{len(labels)}")
    return [(labels[pid], sc.normalise(text, labels)) for pid, text in lines]


def _build(tmp_path: Path, source: str, *flags: str) -> Path:
    out = tmp_path / Path(source).stem
    subprocess.run(["gcc", "-O1", *flags, "-o", str(out), str(sc.PROGRAM_SOURCES / source)], check=True)
    return out


def _halves(lines: list[tuple[int, str]], call: str) -> list[str]:
    """The first ``<unfinished ...>`` line starting with ``call`` and its resumed half."""
    out: list[str] = []
    resumed = f"<... {call.split('(')[0]} resumed>"
    for _, text in lines:
        if not out and text.startswith(call) and text.endswith("<unfinished ...>"):
            out.append(text)
        elif out and text.startswith(resumed):
            out.append(text)
            break
    return [sc.normalise(t, {}) for t in out]


def test_blocked_calls_are_split_as_strace_splits_them(tmp_path: Path) -> None:
    # cat blocks in read(0) and the shell in wait4 while the subshell sleeps and writes
    ref, ours = _both(tmp_path, ["sh", "-c", "(sleep 0.3; echo x) | cat"])
    for name in ("wait4", "read(0"):
        theirs, mine = _halves(ref, name), _halves(ours, name)
        assert len(theirs) == 2, (name, theirs)
        # the pid returned by wait4 differs between the runs
        assert [re.sub(r"= \d+$", "= PID", t) for t in mine] == [re.sub(r"= \d+$", "= PID", t) for t in theirs]
    assert 'read(0,  <unfinished ...>' in [t for _, t in ours]
    assert any(t.startswith('<... read resumed>"x\\n", ') for _, t in ours)
    # with the halves joined, every line of the short-lived processes equals strace's
    joined = sc.compare("\n".join(f"{p} {t}" for p, t in ref), "\n".join(f"{p} {t}" for p, t in ours), joined=True)
    assert joined.percent > 97.0, joined.categories


def test_every_thread_gets_its_exit_line(tmp_path: Path) -> None:
    prog = _build(tmp_path, "threads.c", "-pthread")
    ref, ours = _both(tmp_path, [str(prog)])
    for lines in (ref, ours):
        exited = [pid for pid, text in lines if text == "+++ exited with 0 +++"]
        assert len(exited) == 5 and len(set(exited)) == 5, exited  # four threads and main
        # a thread's exit line follows its exit(0) call (whole or resumed)
        for pid in exited[:-1]:
            own = [text for p, text in lines if p == pid]
            assert own[-1] == "+++ exited with 0 +++"
            assert own[-2].startswith(("exit(0)", "<... exit resumed>)")) and own[-2].endswith("= ?")


def test_execve_from_a_thread_supersedes_the_leader(tmp_path: Path) -> None:
    prog = _build(tmp_path, "thread_exec.c", "-pthread")
    ref, ours = _both(tmp_path, [str(prog)])
    for lines in (ref, ours):
        leader = lines[0][0]
        thread = next(pid for pid, _ in lines if pid != leader)
        texts = lines
        at = texts.index((leader, f"+++ superseded by execve in pid {thread} +++"))
        # the exec'ing thread opened the call, the leader's pid finishes it
        assert (leader, "<... execve resumed>)             = 0") in texts[at + 1 :]
        assert any(p == thread and t.startswith('execve("/bin/true", ["/bin/true"], ') and t.endswith(" <unfinished ...>") for p, t in texts[:at])
        # the leader's own pending pause() never returns
        assert any(p == leader and t.startswith(("pause()", "<... pause resumed>)")) and t.endswith("= ?") for p, t in texts[:at])
        # after the exec, /bin/true runs under the leader's pid to its end
        assert texts[-1] == (leader, "+++ exited with 0 +++")
    # apart from the lines scheduling decides on, the two outputs agree
    a = [t for _, t in _labelled(ref) if "unfinished" not in t and "resumed" not in t]
    b = [t for _, t in _labelled(ours) if "unfinished" not in t and "resumed" not in t]
    assert "+++ superseded by execve in pid P1 +++" in a and "+++ superseded by execve in pid P1 +++" in b


def test_k_frames_follow_their_line_with_f(tmp_path: Path) -> None:
    # -f routes lines through the stop-order replay; each call's frames must stay under it
    def setup(work: Path) -> None:
        (work / "in.txt").write_text("x\n")

    prog = sc.Program("test", ["cat", "in.txt"], setup)
    outs = []
    for tool in ("strace", "sysspan"):
        out = tmp_path / f"{tool}.txt"
        sc.run_tool(tool, prog, tmp_path / f"work-{tool}", out, ("-f", "-k", "-e", "trace=openat,close"))
        outs.append(re.sub(r"^\d+ +", "PID ", out.read_text(), flags=re.M))
    ref, ours = outs
    assert sum(line.startswith(" > ") for line in ref.splitlines()) > 10
    assert ours.splitlines() == ref.splitlines()
