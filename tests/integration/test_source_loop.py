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
from sysspan.collector.source import SourceCapture, unwind
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
    return [(names.setdefault(tgid, len(names)), *rest) for tgid, *rest in seen]


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
    # An open's path is read at its entry: the wrapper's return address came with that read
    # (and the sites above are Python's all the same).
    assert stats["sites_prefetched"] >= 3 * ROUNDS - 3 * 12
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


# Before main: a library's constructor (run by ld.so) that opens a file and dlopens another
# library, and an IFUNC resolver (run by ld.so while it relocates the program) that makes a
# syscall. Both put the program's own code under ld.so's frames, where the stop loop must
# stop at the same site as the Python walk does.
LIB = textwrap.dedent(
    """\
    #include <dlfcn.h>
    #include <fcntl.h>
    #include <unistd.h>
    __attribute__((constructor)) static void lib_init(void) {
        int fd = open("m-a", O_RDONLY);
        if (fd >= 0) close(fd);
        void *h = dlopen("libm.so.6", RTLD_NOW);
        (void)h;
    }
    int lib_value(void) { return 7; }
    """
)

EARLY = textwrap.dedent(
    """\
    #include <fcntl.h>
    #include <stdlib.h>
    #include <unistd.h>
    int lib_value(void);
    static int impl(void) { return 1; }
    static int (*resolve_pick(void))(void) {
        (void)getppid();
        return impl;
    }
    int pick(void) __attribute__((ifunc("resolve_pick")));
    int main(int argc, char **argv) {
        int n = atoi(argv[1]);
        for (int i = 0; i < n; i++) {
            int fd = open(i % 2 ? "m-a" : "m-b", O_RDONLY);
            if (fd >= 0) close(fd);
        }
        return pick() + lib_value() == 8 ? 0 : 1;
    }
    """
)


def _walked_alone(source: SourceCapture) -> list[tuple[int, ...]]:
    """Record the stacks the Python unwinder is asked for (the stops the loop did not
    answer)."""
    walked: list[tuple[int, ...]] = []
    unwind = source.unwinder.unwind

    def counting(pid, tid, site_only, hint=None):
        got = unwind(pid, tid, site_only, hint)
        walked.append(got or ())
        return got

    source.unwinder.unwind = counting  # type: ignore[method-assign]
    return walked


def _every_stack(argv: list[str], answer_in_loop: bool) -> tuple[list[tuple], dict, list[list]]:
    """Every syscall of a run as (tgid, nr, its stack as (file, offset) pairs, site), the
    loop's counters, and the stacks Python walked (each as (file, offset) pairs)."""
    source = SourceCapture(NativeReader(), ARCH, full_stack=False)
    if not answer_in_loop:
        source.use_loop = lambda loop: None  # type: ignore[method-assign]
    walked = _walked_alone(source)
    tracer = Tracer(Decoder(ARCH), follow=True, source=source,
                    execve_nrs=frozenset({NR["execve"], NR["execveat"]}))
    seen: list[tuple] = []
    bare = [0]  # syscalls after the first exec that came without a stack

    def where(tgid: int, pcs: tuple[int, ...]) -> list:
        return [(os.path.basename(fr.path), fr.foff) if fr is not None else None
                for fr in source.unwinder.frames(tgid, pcs)]

    def consume(rec) -> None:
        if type(rec) is Syscall:
            pcs = rec.pcs or ()
            if not pcs and seen:
                bare[0] += 1
            if pcs and source.unwinder.all_system(rec.tgid, pcs):
                # No call site in it: the loop keeps no such stack (it hands over none).
                seen.append((rec.tgid, rec.nr, (), None))
                return
            seen.append((rec.tgid, rec.nr, tuple(where(rec.tgid, pcs)),
                         source.site(rec.tgid, pcs) if pcs else None))

    tracer.spawn(argv[0], argv, dict(os.environ))
    status = tracer.run(consume)
    assert status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    source.save_cache()
    pid = seen[0][0]
    return seen, {**tracer.stats, "bare": bare[0]}, [where(pid, pcs) for pcs in walked]


def _build_early(tmp_path: Path) -> Path:
    (tmp_path / "lib.c").write_text(LIB)
    (tmp_path / "prog.c").write_text(EARLY)
    for name in ("m-a", "m-b"):
        (tmp_path / name).write_text("x")
    subprocess.run(["cc", "-g", "-O1", "-shared", "-fPIC", "-o", str(tmp_path / "libearly.so"),
                    str(tmp_path / "lib.c"), "-ldl"], check=True)
    prog = tmp_path / "prog"
    subprocess.run(["cc", "-g", "-O1", "-o", str(prog), str(tmp_path / "prog.c"),
                    f"-L{tmp_path}", "-learly", f"-Wl,-rpath,{tmp_path}"], check=True)
    return prog


def _interpreter(prog: Path) -> str:
    from elftools.elf.elffile import ELFFile

    with open(prog, "rb") as fh:
        for seg in ELFFile(fh).iter_segments():
            if seg["p_type"] == "PT_INTERP":
                return seg.get_interp_name()
    pytest.skip("the program names no interpreter")


@pytest.mark.parametrize("through_loader", [False, True], ids=["direct", "ld.so-argv0"])
@pytest.mark.parametrize("from_cache", [True, False], ids=["taught-from-cache", "taught-by-walks"])
def test_start_up_stacks_answered_by_the_loop_equal_pythons(
    tmp_path, monkeypatch, through_loader, from_cache
):
    """Every syscall's whole stack (not only its site) is the same whether the loop or the
    Python walk answered it, from exec on: ld.so's start-up stops (answered by the loop from
    the rules a first run kept on disk), a library constructor run by ld.so that opens a
    file and dlopens, an IFUNC resolver that makes a syscall, and the same run through the
    explicit loader. And, taught from the cache, the start-up stops in ld.so no longer reach
    Python; with files too big to be taught at once, the walks alone teach the loop."""
    if not from_cache:
        monkeypatch.setattr(unwind, "PRELOAD_MAX", 0)
    prog = _build_early(tmp_path)
    argv = [str(prog), str(ROUNDS)]
    if through_loader:
        argv = [_interpreter(prog), *argv]
    monkeypatch.setenv("SYSSPAN_SOURCE_CACHE", str(tmp_path / "cache"))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        reference, ref_stats, ref_walked = _every_stack(argv, False)  # also fills the cache
        answered, stats, walked = _every_stack(argv, True)
    finally:
        os.chdir(cwd)
    assert ref_stats["sites_answered"] == 0
    assert _normalised(answered) == _normalised(reference)
    # ld.so's start-up stacks came from the loop without their pcs (no call site in them)
    # while Python alone gave every one: the lists above agree on which ones they are.
    assert stats["bare"] >= 10 and ref_stats["bare"] == 0
    by_nr = {nr: site for _, nr, _, site in answered}
    assert by_nr[NR["getppid"]] is not None and by_nr[NR["getppid"]][0] == "resolve_pick"
    ctor = [site for _, _, _, site in answered if site is not None and site[0] == "lib_init"]
    assert len(ctor) >= 4  # its openat and close, and dlopen's openat, mmap ...
    ld_only = [w for w in walked if w and all(f is not None and f[0].startswith("ld-") for f in w)]
    ref_ld_only = [w for w in ref_walked if w and all(f is not None and f[0].startswith("ld-") for f in w)]
    assert len(ref_ld_only) >= 10
    if from_cache:
        assert not ld_only  # taught at exec, the loop answers even the image's first stop
    else:
        assert len(ld_only) > 5
    assert stats["sites_answered"] >= 2 * ROUNDS
