"""``--source`` call sites answered by the stop loop (``_sites.h``) once the Python unwinder
has found them: the same sites as the unwinder alone gives, across fork and exec, and most
syscalls of a loop never reach Python."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from sysspan.collector.decode import Decoder
from sysspan.collector.records import Syscall
from sysspan.collector.source import SourceCapture
from sysspan.collector.syscalls import machine_arch, table
from sysspan.collector.tracer import NativeReader, Tracer

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")

ARCH = machine_arch()
NR = {name: nr for nr, name in table(ARCH).items()}
ROUNDS = 60

# Three call sites in a loop; then a forked child runs the loop again (same addresses, another
# process) and the parent execs itself once (another image of the same file).
SRC = textwrap.dedent(
    """\
    #include <fcntl.h>
    #include <stdlib.h>
    #include <string.h>
    #include <sys/wait.h>
    #include <unistd.h>
    __attribute__((noinline)) static int site_a(void) { return open("m-a", O_RDONLY); }
    __attribute__((noinline)) static int site_b(void) { return open("m-b", O_RDONLY); }
    __attribute__((noinline)) static int site_c(void) {
        return openat(AT_FDCWD, "m-c", O_RDONLY);
    }
    static void rounds(int n) {
        for (int i = 0; i < n; i++) {
            int fd = i % 3 == 0 ? site_a() : i % 3 == 1 ? site_b() : site_c();
            if (fd >= 0) close(fd);
        }
    }
    int main(int argc, char **argv) {
        int n = atoi(argv[1]);
        rounds(n);
        if (argc > 2) return 0;
        pid_t child = fork();
        if (child == 0) { rounds(n); _exit(0); }
        waitpid(child, NULL, 0);
        execl("/proc/self/exe", argv[0], argv[1], "again", (char *)NULL);
        return 1;
    }
    """
)


# The same through stdio: the syscalls are made by libc's own functions (fopen, fflush,
# fclose), several libc frames away from the program's line.
STDIO = textwrap.dedent(
    """\
    #include <stdio.h>
    #include <stdlib.h>
    #include <unistd.h>
    int main(int argc, char **argv) {
        int n = atoi(argv[1]);
        for (int i = 0; i < n; i++) {
            FILE *f = fopen(i % 2 ? "m-a" : "m-b", "a");
            if (!f) return 1;
            fputs("x", f);
            fflush(f);
            fclose(f);
        }
        if (argc > 2) return 0;
        pid_t child = fork();
        if (child == 0) { execl("/proc/self/exe", argv[0], argv[1], "again", (char *)NULL); }
        return 0;
    }
    """
)


def _sites(prog: Path, answer_in_loop: bool) -> tuple[list[tuple], dict[str, int]]:
    """(tgid, file path, (function, file, line)) of every openat/close in order, and the
    loop's counters."""
    source = SourceCapture(NativeReader(), ARCH, full_stack=False)
    if not answer_in_loop:
        source.use_loop = lambda loop: None  # type: ignore[method-assign]
    tracer = Tracer(Decoder(ARCH), follow=True, source=source,
                    execve_nrs=frozenset({NR["execve"], NR["execveat"]}))
    wanted = {NR["openat"], NR["close"], NR["write"], NR.get("open", -1)}
    seen: list[tuple] = []

    def consume(rec) -> None:
        if type(rec) is Syscall and rec.nr in wanted:
            site = source.site(rec.tgid, rec.pcs) if rec.pcs else None
            seen.append((rec.tgid, rec.nr, site))

    tracer.spawn(str(prog), [str(prog), str(ROUNDS)], dict(os.environ))
    status = tracer.run(consume)
    assert status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    return seen, tracer.stats


def _normalised(seen: list[tuple]) -> list[tuple]:
    """Pids numbered in order of appearance (the two runs get different ones)."""
    names: dict[int, int] = {}
    return [(names.setdefault(tgid, len(names)), nr, site) for tgid, nr, site in seen]


def _both_ways(tmp_path: Path, source: str, opt: str) -> tuple[list[tuple], dict[str, int]]:
    """Build ``source`` and trace it in ``tmp_path`` with the loop answering known sites and
    with the unwinder alone; the sites must be the same. The first run's sites and counters."""
    (tmp_path / "prog.c").write_text(source)
    prog = tmp_path / "prog"
    subprocess.run(["cc", "-g", opt, "-o", str(prog), str(tmp_path / "prog.c")], check=True)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        answered, stats = _sites(prog, True)
        reference, ref_stats = _sites(prog, False)
    finally:
        os.chdir(cwd)
    assert ref_stats["sites_answered"] == 0
    assert _normalised(answered) == _normalised(reference)
    return answered, stats


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_the_loop_answers_the_sites_python_found(tmp_path, opt):
    for name in ("m-a", "m-b", "m-c"):
        (tmp_path / name).write_text("x")
    answered, stats = _both_ways(tmp_path, SRC, opt)
    # Three images run the loop (parent, child, the exec'd parent): 3 x ROUNDS opens and as
    # many closes. Each image teaches the loop its few sites; the loop answers the rest.
    calls = [s for s in answered if s[2] is not None and s[2][1].endswith("prog.c")]
    assert len(calls) >= 6 * ROUNDS
    assert stats["sites_answered"] >= 6 * ROUNDS - 3 * 12
    lines = {line for _, _, (func, _, line) in calls}
    # The three opens (their own lines, or main's/rounds' at -O2 where site_* are tail
    # calls) and the close: several distinct lines, the same in both runs.
    assert len(lines) >= 2


def test_stdio_sites_several_libc_frames_away(tmp_path):
    answered, stats = _both_ways(tmp_path, STDIO, "-O1")
    lines = {s[2][2] for s in answered if s[2] is not None and s[2][1].endswith("prog.c")}
    assert {7, 10, 11} <= lines  # fopen, fflush (the write), fclose
    # Two images, ROUNDS x (openat, write, close) each: most answered by the loop.
    assert stats["sites_answered"] >= 2 * 3 * ROUNDS - 2 * 3 * 6
