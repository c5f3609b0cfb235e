"""sysspan's ``-o`` lines against strace's, on real programs run under both.

The comparison code is the harness in ``tools/strace_compare.py`` (which also prints the
identical-line share over a set of larger programs); here it runs on programs whose output
does not depend on scheduling, so any difference is a decoding or formatting bug.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tools import strace_compare as sc

pytestmark = pytest.mark.skipif(
    shutil.which("strace") is None or shutil.which("gcc") is None, reason="needs strace and gcc"
)


def _both(
    tmp_path: Path, argv: list[str], *opts: str, setup: Callable[[Path], None] | None = None
) -> tuple[str, str]:
    """Run ``argv`` under strace and under sysspan with the same options, each in a fresh
    work directory that ``setup`` fills the same way (outputs go beside, not inside)."""
    outs = []
    prog = sc.Program("test", argv, setup or (lambda _work: None))
    for tool in ("strace", "sysspan"):
        out = tmp_path / f"{tool}.txt"
        sc.run_tool(tool, prog, tmp_path / f"work-{tool}", out, opts)
        outs.append(out.read_text())
    return outs[0], outs[1]


def test_single_process_lines_are_identical_with_the_pid_column(tmp_path: Path) -> None:
    def setup(work: Path) -> None:
        (work / "in.txt").write_text("one\ntwo\n" * 50)

    ref, ours = _both(tmp_path, ["cat", "in.txt"], "-f", "-s", "32", setup=setup)
    # the pid column: "%-5d " exactly as strace (one space after a five-digit pid)
    for line in ours.splitlines():
        pid = line.split(" ", 1)[0]
        assert line.startswith(f"{pid:<5} ") and line[len(f"{pid:<5} ")] != " ", line
    result = sc.compare(ref, ours)
    assert result.lines > 20
    assert result.percent == 100.0, result.examples


def test_qq_drops_exit_lines_but_keeps_killed_lines(tmp_path: Path) -> None:
    ref, ours = _both(tmp_path, ["sh", "-c", "sh -c 'kill -9 $$'; true"], "-f", "-qq")
    for out in (ref, ours):
        assert "+++ exited with" not in out
        assert "+++ killed by SIGKILL +++" in out
    _, loud = _both(tmp_path, ["true"], "-f")
    assert "+++ exited with 0 +++" in loud


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("probe") / "decode_probe"
    subprocess.run(["gcc", "-O1", "-o", str(out), str(sc.PROGRAM_SOURCES / "decode_probe.c")], check=True)
    return out


def _calls(text: str, name: str) -> list[str]:
    return [
        sc.normalise(t, {})
        for _, t in sc.join_pairs(sc.parse(text))
        if t.startswith(name + "(") or t.startswith(f"--- {name} ")
    ]


_PER_RUN = re.compile(r"(si_pid|uptime|loads|freeram|sharedram|bufferram|procs|f_bfree|f_bavail|f_ffree|tv_nsec)=(\[[^]]*\]|\d+)")


def test_structs_strace_decodes_are_decoded(tmp_path: Path, probe: Path) -> None:
    # the work directory holds a tree whose top-level entries getdents64 counts
    ref, ours = _both(tmp_path, [str(probe)], "-f", "-s", "32", setup=sc._tree)
    for name in ("sysinfo", "statfs", "fstatfs", "sched_getaffinity", "getdents64", "ioctl", "setitimer", "clock_nanosleep", "rt_sigreturn", "SIGALRM", "SIGTERM"):
        theirs, mine = _calls(ref, name), _calls(ours, name)
        assert theirs, f"strace printed no {name}"
        # values that change from one run to the next (free blocks, uptime, the time a sleep
        # had left) are compared by shape; everything else must be equal
        assert [_PER_RUN.sub(r"\1=N", t) for t in mine] == [_PER_RUN.sub(r"\1=N", t) for t in theirs], name
    assert any("/* " in t and " entries */" in t for t in _calls(ours, "getdents64"))
    assert any("{mask=[USR1]}" in t for t in _calls(ours, "rt_sigreturn"))
    assert "BTRFS_IOC_CLONE or FICLONE, " in _calls(ours, "ioctl")[0]


def test_sigchld_lines_equal_strace_s(tmp_path: Path, probe: Path) -> None:
    ref, ours = _both(tmp_path, [str(probe)], "-f")
    theirs, mine = _calls(ref, "SIGCHLD"), _calls(ours, "SIGCHLD")
    assert len(mine) == len(theirs) == 2
    for t, m in zip(theirs, mine, strict=True):
        # the child's pid and CPU ticks change from run to run; status, codes and layout not
        same = re.compile(r"(si_pid|si_utime|si_stime)=\d+")
        assert same.sub(r"\1=N", m) == same.sub(r"\1=N", t)
        assert re.search(r"si_utime=\d+, si_stime=\d+\} ---$", m), m
    assert "si_code=CLD_EXITED" in mine[0] and "si_code=CLD_KILLED" in mine[1]


def test_harness_joins_unfinished_pairs_and_pairs_processes(tmp_path: Path) -> None:
    # A real multi-process strace output: a pipeline interleaves, so strace splits calls.
    out = tmp_path / "st.txt"
    subprocess.run(["strace", "-f", "-o", str(out), "sh", "-c", "echo a | cat | cat > /dev/null"], check=True)
    text = out.read_text()
    joined = sc.join_pairs(sc.parse(text))
    assert not any("<unfinished ...>" in t or "resumed>" in t for _, t in joined)
    halves = sum("<unfinished ...>" in line for line in text.splitlines())
    assert len(joined) == len(text.splitlines()) - halves
    # the same output compared with itself, pids renumbered: every line identical
    pids = sorted({pid for pid, _ in sc.parse(text)})
    swap = {str(a): str(b) for a, b in zip(pids, reversed(pids), strict=True)}
    assert len(pids) == 4 and len({len(p) for p in swap}) == 1  # same width: same padding
    renumbered = re.sub(r"\b\d+\b", lambda m: swap.get(m.group(), m.group()), text)
    assert renumbered != text
    assert sc.compare(text, renumbered, joined=True).percent == 100.0
    # a dropped line is one difference, found under its syscall's name
    lines = text.splitlines()
    victim = next(i for i, line in enumerate(lines) if " close(" in line and "unfinished" not in line and "resumed" not in line)
    result = sc.compare(text, "\n".join(lines[:victim] + lines[victim + 1 :]), joined=True)
    assert result.lines - result.identical == 1 and result.categories == {"close": 1}


def test_harness_script_runs(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, str(sc.REPO / "tools" / "strace_compare.py"), "tcp"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    row = next(line for line in res.stdout.splitlines() if line.startswith("tcp "))
    assert re.match(r"tcp +\d+ +[\d.]+% +[\d.]+% +[\d.]+%", row), res.stdout


def test_k_stack_lines_are_strace_s(tmp_path: Path) -> None:
    # strace -k (libunwind) names each frame by the closest symbol of the file's own tables,
    # the first of aliases at one address (glibc's __open64_nocancel, not __open_nocancel),
    # frame 0 at the instruction after the syscall, and "()" where no symbol precedes.
    def setup(work: Path) -> None:
        (work / "in.txt").write_text("x\n")

    ref, ours = _both(tmp_path, ["cat", "in.txt"], "-k", "-e", "trace=openat,close,fstat,newfstatat", setup=setup)
    frames = [line for line in ref.splitlines() if line.startswith(" > ")]
    assert len(frames) > 20 and any("libc.so" in f for f in frames)
    assert ours.splitlines() == ref.splitlines()
