"""Source correlation against real programs: the openat of each marker file must be
attributed to the exact source line of the call.

Small C programs (and a Rust one when ``rustc`` is present) are compiled in the test
session at several optimisation levels, traced with the real ptrace through a minimal stop
loop (the same ``Ptrace`` class the tracer uses), and every ``openat("marker-NN")`` is
checked against the line that holds that string in the source.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sysspan.collector import _ptrace as pt
from sysspan.collector.source import SourceCapture

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="ptrace is Linux-only"),
    pytest.mark.skipif(
        platform.machine() not in ("x86_64", "aarch64"), reason="x86_64 and aarch64 only"
    ),
]

ARCH = platform.machine()
OPENAT = {"x86_64": 257, "aarch64": 56}[ARCH] if ARCH in ("x86_64", "aarch64") else -1
MMAP = {"x86_64": 9, "aarch64": 222}.get(ARCH, -1)

MAIN_C = r"""
/* Call sites for sysspan's source-correlation tests: each marker string sits on the
 * line of the call that opens it. */
#define _GNU_SOURCE
#include <alloca.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OPEN_RO(path) open(path, O_RDONLY)
#define NOINLINE __attribute__((noinline))

volatile int sink;
void lib_open_a(void);
void lib_open_b(int n);
int lib_open_c(const char *mode);

static void use(int fd) {
    if (fd >= 0) close(fd);
    sink += fd;
}

NOINLINE void plain(void) {
    int fd = open("marker-01", O_RDONLY);
    use(fd);
}

NOINLINE void nested_arg(void) {
    use(open("marker-02", O_RDONLY));
    sink++;
}

static void small_static(int k) {
    int fd = open("marker-03", O_RDONLY | (k & 0));
    use(fd);
}

NOINLINE void in_loop(int n) {
    for (int i = 0; i < n; i++) {
        int fd = openat(AT_FDCWD, "marker-04", O_RDONLY);
        use(fd);
    }
}

NOINLINE void with_fopen(void) {
    FILE *f = fopen("marker-05", "r");
    if (f) fclose(f);
    sink++;
}

NOINLINE void with_opendir(void) {
    DIR *d = opendir("marker-06");
    if (d) closedir(d);
    sink++;
}

NOINLINE int recurse(int depth) {
    if (depth == 0) {
        int fd = open("marker-07", O_RDONLY);
        use(fd);
        return 1;
    }
    return recurse(depth - 1) + 1;
}

NOINLINE void via_macro(void) {
    int fd = OPEN_RO("marker-08");
    use(fd);
}

NOINLINE void in_switch(int c) {
    int fd = -1;
    switch (c) {
    case 1: fd = open("marker-09", O_RDONLY); break;
    case 2: fd = open("marker-10", O_RDONLY | O_CLOEXEC); break;
    default: fd = open("marker-11", O_RDONLY | O_NOFOLLOW); break;
    }
    use(fd);
}

NOINLINE void big_frame(void) {
    char buf[16384];
    memset(buf, sink & 1, sizeof buf);
    int fd = open("marker-12", O_RDONLY);
    use(fd + buf[(fd & 1023) + 7]);
}

NOINLINE void aligned_frame(void) {
    char buf[128] __attribute__((aligned(64)));
    memset(buf, sink & 1, sizeof buf);
    int fd = open("marker-13", O_RDONLY);
    use(fd + buf[fd & 63]);
}

static int cmp_and_open(const void *a, const void *b) {
    static int done;
    if (!done++) use(open("marker-14", O_RDONLY));
    return *(const int *)a - *(const int *)b;
}

NOINLINE void via_qsort(void) {
    int v[4] = {3, 1, 2, 0};
    qsort(v, 4, sizeof v[0], cmp_and_open);
    sink += v[0];
}

static void on_usr1(int sig) {
    int fd = open("marker-15", O_RDONLY);
    use(fd + sig);
}

NOINLINE void via_signal(void) {
    signal(SIGUSR1, on_usr1);
    raise(SIGUSR1);
    sink++;
}

int (*volatile opener)(const char *, int, ...) = open;

NOINLINE void via_pointer(void) {
    int fd = opener("marker-16", O_RDONLY);
    use(fd);
}

NOINLINE void conditional(void) {
    int fd = sink > 100000 ? -1 : open("marker-17", O_RDONLY);
    use(fd);
}

NOINLINE void with_vla(int n) {
    char *p = alloca(n + 16);
    char vla[n + 1];
    memset(vla, 0, n + 1);
    p[0] = vla[0];
    int fd = open("marker-19", O_RDONLY);
    use(fd + p[0] + vla[n]);
}

NOINLINE int pressure(int a, int b, int c, int d, int e, int f) {
    int x1 = a * b, x2 = b * c, x3 = c * d, x4 = d * e, x5 = e * f, x6 = f * a;
    int fd = open("marker-20", O_RDONLY);
    use(fd);
    return x1 + x2 + x3 + x4 + x5 + x6 + fd;
}

static void at_exit_open(void) {
    use(open("marker-24", O_RDONLY));
}

NOINLINE int tail_position(void) {
    return open("marker-25", O_RDONLY);
}

int main(int argc, char **argv) {
    (void)argv;
    atexit(at_exit_open);
    plain();
    nested_arg();
    small_static(argc);
    in_loop(3);
    with_fopen();
    with_opendir();
    recurse(5);
    via_macro();
    in_switch(1);
    in_switch(2);
    in_switch(3);
    big_frame();
    aligned_frame();
    via_qsort();
    via_signal();
    via_pointer();
    conditional();
    use(open("marker-18", O_RDONLY));
    with_vla(argc + 40);
    sink += pressure(argc, 2, 3, 4, 5, 6);
    lib_open_a();
    lib_open_b(2);
    sink += lib_open_c("r");
    use(tail_position());
    return 0;
}
"""

LIB_C = r"""
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

static void lib_use(int fd) {
    if (fd >= 0) close(fd);
}

void lib_open_a(void) {
    int fd = open("marker-21", O_RDONLY);
    lib_use(fd);
}

void lib_open_b(int n) {
    for (int i = 0; i < n; i++)
        lib_use(open("marker-22", O_RDONLY));
}

int lib_open_c(const char *mode) {
    FILE *f = fopen("marker-23", mode);
    int ok = f != NULL;
    if (f) fclose(f);
    return ok;
}
"""

RUST_SRC = r"""
use std::fs::{self, File, OpenOptions};

fn read_config() -> usize {
    fs::read_to_string("marker-r2").map(|s| s.len()).unwrap_or(0)
}

fn open_for_append() -> bool {
    OpenOptions::new().append(true).open("marker-r3").is_ok()
}

fn main() {
    let a = File::open("marker-r1").is_ok();
    let n = read_config();
    let b = open_for_append();
    println!("{} {} {}", a, n, b);
}
"""

MARKER = re.compile(r'"(marker-[0-9a-z]+)"')


def expected_lines(*sources: Path) -> dict[str, tuple[str, int]]:
    """marker -> (file name, line) from the sources themselves."""
    out = {}
    for src in sources:
        for n, line in enumerate(src.read_text().splitlines(), 1):
            for m in MARKER.finditer(line):
                if m.group(1).startswith("marker-r") and src.suffix != ".rs":
                    continue
                out[m.group(1)] = (src.name, n)
    return out


def trace_markers(
    argv: list[str],
    cwd: Path,
    full_stack: bool,
    other_nr: int = -1,
    stack_pointers: list[int] | None = None,
):
    """Run ``argv`` under ptrace (threads followed); capture the stack at every openat entry.

    Returns (SourceCapture, pid, [(path, pcs), ...]) with the process already gone, so
    attribution is checked exactly as the span builder will use it: after the fact.
    Entries of syscall ``other_nr`` are recorded too, as ("syscall", pcs). The stack pointer
    at each openat goes to ``stack_pointers`` when given."""
    ptrace = pt.Ptrace()
    pid = os.fork()
    if pid == 0:
        try:
            os.chdir(cwd)
            os.kill(os.getpid(), signal.SIGSTOP)
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    _, status = os.waitpid(pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status)
    ptrace.seize(
        pid,
        pt.PTRACE_O_TRACESYSGOOD | pt.PTRACE_O_TRACEEXEC | pt.PTRACE_O_TRACECLONE
        | pt.PTRACE_O_EXITKILL,
    )
    os.kill(pid, signal.SIGCONT)
    source = SourceCapture(ptrace, ARCH, full_stack)
    seen: list[tuple[str, tuple[int, ...] | None]] = []
    pending_mmap: set[int] = set()
    live = {pid}
    root_status = None
    while live:
        tid, status = os.waitpid(-1, 0x40000000)
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            live.discard(tid)
            if tid == pid:
                root_status = status
                source.release(pid)  # as the tracer does: stacks must still symbolise
            continue
        live.add(tid)
        sig = (status >> 8) & 0xFF
        if sig == signal.SIGTRAP | 0x80:
            info = ptrace.syscall_info(tid)
            if info[0] == pt.OP_ENTRY:
                nr = info[4]
                if nr in (OPENAT, other_nr):
                    # With and without the (ip, sp) hint the tracer can pass: the fast
                    # paths must find exactly the stack the register-based walk finds.
                    pcs = source.capture(pid, tid)
                    hinted = source.capture(pid, tid, (info[2], info[3]))
                    assert hinted == pcs, ([hex(x) for x in pcs or ()],
                                           [hex(x) for x in hinted or ()])
                    if nr == OPENAT:
                        path = ptrace.read_cstr(tid, info[6], 4096) or b""
                        seen.append((path.decode(), pcs))
                        if stack_pointers is not None:
                            stack_pointers.append(info[3])
                    else:
                        seen.append(("syscall", pcs))
                if nr == MMAP:
                    pending_mmap.add(tid)
            elif info[0] == pt.OP_EXIT and tid in pending_mmap:
                source.on_mmap(pid)
                pending_mmap.discard(tid)
            ptrace.syscall(tid)
            continue
        event = status >> 16
        if event == pt.PTRACE_EVENT_EXEC:
            source.on_exec(pid)
        if event:
            ptrace.syscall(tid)
            continue
        ptrace.syscall(tid, 0 if sig == signal.SIGSTOP else sig)
    assert root_status is not None and os.WIFEXITED(root_status), root_status
    return source, pid, seen


def score(source: SourceCapture, pid: int, seen, expected: dict[str, tuple[str, int]]):
    """(fraction of markers attributed to the exact line, misses)."""
    got: dict[str, list[dict]] = {}
    for path, pcs in seen:
        if path in expected:
            assert pcs, f"no stack captured for {path}"
            got.setdefault(path, []).append(source.attributes(pid, pcs))
    missing = set(expected) - set(got)
    assert not missing, f"markers never opened: {sorted(missing)}"
    misses = {}
    for marker, attrs_list in sorted(got.items()):
        want_file, want_line = expected[marker]
        for attrs in attrs_list:
            file = os.path.basename(attrs.get("code.file.path", ""))
            line = attrs.get("code.line.number")
            if (file, line) != (want_file, want_line):
                misses[marker] = (f"{want_file}:{want_line}", f"{file}:{line}", attrs)
                break
    return 1 - len(misses) / len(expected), misses


def _cc(*args: str) -> None:
    subprocess.run(["cc", *args], check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    if shutil.which("cc") is None:
        pytest.fail("a C compiler (cc) is required: apt-get install gcc")
    d = tmp_path_factory.mktemp("source")
    (d / "sites.c").write_text(MAIN_C.lstrip("\n"))
    (d / "marklib.c").write_text(LIB_C.lstrip("\n"))
    return d


def build(workdir: Path, name: str, flags: list[str]) -> Path:
    out = workdir / name
    out.mkdir(exist_ok=True)
    lib_flags = [f for f in flags if f != "-no-pie"]
    _cc("-g", *lib_flags, "-fPIC", "-shared", "-o", str(out / "libmark.so"),
        str(workdir / "marklib.c"))
    _cc("-g", *flags, "-o", str(out / "sites"), str(workdir / "sites.c"),
        f"-L{out}", "-lmark", f"-Wl,-rpath,{out}")
    return out / "sites"


FIGURES: dict[str, float] = {}

LEVELS = [
    ("O0", ["-O0"], 0.95),
    ("O0-nopie", ["-O0", "-no-pie"], 0.95),
    ("O1", ["-O1"], 0.95),
    ("O2", ["-O2"], 0.88),
    ("O2-nopie", ["-O2", "-no-pie"], 0.88),
    ("O2-omit-fp", ["-O2", "-fomit-frame-pointer"], 0.88),
    ("O3", ["-O3"], 0.88),
]


@pytest.mark.parametrize(("name", "flags", "bound"), LEVELS, ids=[lv[0] for lv in LEVELS])
def test_c_call_sites(workdir, name, flags, bound, record_property):
    exe = build(workdir, name, flags)
    expected = expected_lines(workdir / "sites.c", workdir / "marklib.c")
    assert len(expected) >= 20
    source, pid, seen = trace_markers([str(exe)], workdir, full_stack=False)
    accuracy, misses = score(source, pid, seen, expected)
    FIGURES[name] = accuracy
    record_property(f"accuracy_{name}", accuracy)
    print(f"\nsource accuracy {name}: {accuracy:.1%} of {len(expected)} call sites; "
          f"misses: { {k: v[:2] for k, v in misses.items()} }")
    assert accuracy >= bound, misses


def test_full_stack_matches_site_mode(workdir):
    """-k captures the whole stack (down to _start) and names the same site."""
    exe = build(workdir, "O0", ["-O0"])
    expected = expected_lines(workdir / "sites.c", workdir / "marklib.c")
    source, pid, seen = trace_markers([str(exe)], workdir, full_stack=True)
    accuracy, misses = score(source, pid, seen, expected)
    assert accuracy >= 0.95, misses
    by_path = dict(seen)
    attrs = source.attributes(pid, by_path["marker-07"])
    trace = attrs["code.stacktrace"].splitlines()
    # open in libc, then recurse() six times, main, libc start code, _start
    assert sum(1 for t in trace if t.startswith("recurse ")) == 6, trace
    assert any(t.startswith("main (") and "sites.c" in t for t in trace), trace
    assert "_start" in trace[-1], trace
    lines = source.stack_lines(pid, by_path["marker-21"])
    assert lines[0].startswith(" > ") and "libc.so" in lines[0], lines
    assert any("libmark.so(lib_open_a+0x" in x for x in lines), lines
    assert any("/sites(main+0x" in x for x in lines), lines
    # the signal handler's stack goes through the kernel's signal frame back to raise()
    trace = source.attributes(pid, by_path["marker-15"])["code.stacktrace"].splitlines()
    assert any(t.startswith("on_usr1 ") for t in trace), trace
    assert any(t.startswith("via_signal ") for t in trace), trace


TWO_CALLERS_C = r"""
#include <fcntl.h>
#include <unistd.h>
__attribute__((noipa)) static void leaf(const char *p) {
    int fd = open(p, O_RDONLY);
    if (fd >= 0) close(fd);
}
__attribute__((noipa)) static void from_a(const char *p) { leaf(p); __asm__ volatile(""); }
__attribute__((noipa)) static void from_b(const char *p) { leaf(p); __asm__ volatile(""); }
int main(void) {
    for (int i = 0; i < 4; i++) {
        from_a("marker-a");
        from_b("marker-b");
    }
    return 0;
}
"""


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_same_site_from_two_callers_gives_each_its_own_stack(tmp_path, opt):
    """-k remembers a walk per (pc, sp): the same call reached from another caller at the
    same depth (same pc, same sp, another return address on the stack) must not get the
    remembered stack. Each capture is also checked equal to the register-based walk."""
    if shutil.which("cc") is None:
        pytest.fail("a C compiler (cc) is required: apt-get install gcc")
    (tmp_path / "two.c").write_text(TWO_CALLERS_C.lstrip("\n"))
    _cc("-g", opt, "-o", str(tmp_path / "two"), str(tmp_path / "two.c"))
    sps: list[int] = []
    source, pid, seen = trace_markers([str(tmp_path / "two")], tmp_path, True, stack_pointers=sps)
    assert [p for p, _ in seen if p.startswith("marker-")] == ["marker-a", "marker-b"] * 4
    marker_sps = {sp for (p, _), sp in zip(seen, sps, strict=True) if p.startswith("marker-")}
    assert len(marker_sps) == 1, "both callers must reach open at the same depth"
    for path, pcs in seen:
        if not path.startswith("marker-"):
            continue
        funcs = [line.split("(", 1)[1].split("+", 1)[0] for line in source.stack_lines(pid, pcs)]
        want, other = ("from_a", "from_b") if path == "marker-a" else ("from_b", "from_a")
        assert "leaf" in funcs and want in funcs and other not in funcs, (path, funcs)


def _strip(path: Path, *sections: str) -> None:
    args = [f"--remove-section={s}" for s in sections]
    subprocess.run(["objcopy", *args, str(path)], check=True, capture_output=True)


@pytest.mark.parametrize("frames", ["debug_frame", "frame_pointers"])
def test_without_eh_frame(workdir, frames):
    """User code built without unwind tables: its frames unwind through .debug_frame, or,
    with that removed too, through the frame-pointer chain."""
    name = f"O0-{frames}"
    exe = build(workdir, name, ["-O0", "-fno-asynchronous-unwind-tables", "-fno-unwind-tables",
                                "-fno-omit-frame-pointer"])
    if frames == "frame_pointers":
        if shutil.which("objcopy") is None:
            pytest.fail("objcopy (binutils) is required")
        for f in (exe, exe.parent / "libmark.so"):
            _strip(f, ".debug_frame")
    expected = expected_lines(workdir / "sites.c", workdir / "marklib.c")
    source, pid, seen = trace_markers([str(exe)], workdir, full_stack=True)
    accuracy, misses = score(source, pid, seen, expected)
    print(f"\nsource accuracy {name}: {accuracy:.1%} of {len(expected)} call sites")
    assert accuracy >= 0.95, misses
    trace = source.attributes(pid, dict(seen)["marker-07"])["code.stacktrace"].splitlines()
    assert sum(1 for t in trace if t.startswith("recurse ")) == 6, trace
    assert any(t.startswith("main (") for t in trace), trace


THREADS_C = r"""
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

static void *worker(void *arg) {
    int fd = open((const char *)arg, O_RDONLY);
    if (fd >= 0) close(fd);
    return 0;
}

int main(void) {
    pthread_t t;
    pthread_create(&t, 0, worker, "marker-thread");
    pthread_join(t, 0);
    int fd = open("marker-main", O_RDONLY);
    if (fd >= 0) close(fd);
    return 0;
}
"""


def test_threads_use_their_own_registers(tmp_path):
    src = tmp_path / "threads.c"
    src.write_text(THREADS_C.lstrip("\n"))
    exe = tmp_path / "threads"
    _cc("-g", "-O0", "-pthread", "-o", str(exe), str(src))
    source, pid, seen = trace_markers([str(exe)], tmp_path, full_stack=False)
    by_path = dict(seen)
    worker = source.attributes(pid, by_path["marker-thread"])
    assert worker["code.function.name"] == "worker" and worker["code.line.number"] == 6, worker
    main = source.attributes(pid, by_path["marker-main"])
    assert main["code.function.name"] == "main" and main["code.line.number"] == 15, main


VDSO_C = r"""
#include <time.h>

int main(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int)(ts.tv_nsec & 0);
}
"""


def test_syscall_from_the_vdso(tmp_path):
    """CPU-time clocks make the vdso fall back to a real syscall: the unwinder reads the
    vdso's own CFI out of the tracee's memory and walks on into libc and main."""
    src = tmp_path / "vdso.c"
    src.write_text(VDSO_C.lstrip("\n"))
    exe = tmp_path / "vdso"
    _cc("-g", "-O0", "-o", str(exe), str(src))
    clock_gettime = {"x86_64": 228, "aarch64": 113}[ARCH]
    source, pid, seen = trace_markers([str(exe)], tmp_path, True, other_nr=clock_gettime)
    stacks = [pcs for label, pcs in seen if label == "syscall"]
    assert stacks, "no clock_gettime syscall seen"
    attrs = source.attributes(pid, stacks[-1])
    assert attrs["code.function.name"] == "main" and attrs["code.line.number"] == 5, attrs
    lines = source.stack_lines(pid, stacks[-1])
    if lines[0].startswith(" > [vdso]"):  # kernels without a vdso fallback call libc's
        assert "clock_gettime" in lines[0], lines
        assert "libc.so" in lines[1], lines


def test_pcs_resolve_after_exec(workdir, tmp_path):
    """A stack captured before exec still names the old image after the new one loaded."""
    exe = build(workdir, "O0", ["-O0"])
    sh = tmp_path / "wrap.c"
    sh.write_text(textwrap.dedent(f"""
        #include <fcntl.h>
        #include <unistd.h>
        int main(void) {{
            int fd = open("marker-pre-exec", O_RDONLY);
            if (fd >= 0) close(fd);
            execl("{exe}", "{exe}", (char *)0);
            return 1;
        }}
    """))
    wrap = tmp_path / "wrap"
    _cc("-g", "-O0", "-o", str(wrap), str(sh))
    source, pid, seen = trace_markers([str(wrap)], workdir, full_stack=False)
    by_path = dict(seen)
    pre = source.attributes(pid, by_path["marker-pre-exec"])
    assert pre["code.file.path"].endswith("wrap.c") and pre["code.line.number"] == 5, pre
    post = source.attributes(pid, by_path["marker-01"])
    assert post["code.file.path"].endswith("sites.c"), post


def test_maps_are_cached(workdir):
    """The warm path does not re-read /proc/PID/maps or re-resolve addresses."""
    exe = build(workdir, "O0", ["-O0"])
    source, pid, seen = trace_markers([str(exe)], workdir, full_stack=False)
    u = source.unwinder
    # a handful of maps reads per library load, not one per syscall
    assert u.maps.reads < len(seen), (u.maps.reads, len(seen))
    assert u.resolved < 4 * len({pcs for _, pcs in seen if pcs}) + 50


@pytest.mark.slow
@pytest.mark.timeout(300)  # compiles a Rust program
@pytest.mark.skipif(shutil.which("rustc") is None, reason="rustc not on PATH")
def test_rust_call_sites(tmp_path):
    src = tmp_path / "markers.rs"
    src.write_text(RUST_SRC.lstrip("\n"))
    exe = tmp_path / "markers"
    subprocess.run(["rustc", "-g", "-o", str(exe), str(src)], check=True, capture_output=True,
                   cwd=tmp_path)
    expected = expected_lines(src)
    for full in (False, True):
        source, pid, seen = trace_markers([str(exe)], tmp_path, full_stack=full)
        accuracy, misses = score(source, pid, seen, expected)
        print(f"\nsource accuracy rust (full_stack={full}): {accuracy:.1%} of {len(expected)}")
        assert accuracy == 1.0, misses
        attrs = source.attributes(pid, dict(seen)["marker-r2"])
        assert attrs["code.function.name"].endswith("read_config"), attrs
