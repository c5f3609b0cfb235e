"""The strace-style decoder: captures at entry/exit and the text it renders.

Expected strings are what strace 6.1 printed for the same calls (captured from real runs of
small C programs on x86_64), so a regression in any printer shows up as a string mismatch.
"""

from __future__ import annotations

import pickle
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sysspan.collector.decode import Decoded, Decoder, quote
from sysspan.collector.syscalls import number_of, table
from sysspan.errors import ConfigError

PID = 4242
AT_FDCWD = 0xFFFFFF9C  # -100 as the kernel sees an int in a 64-bit register
U64 = (1 << 64) - 1


class Mem:
    """In-memory MemoryReader: a dict of address -> bytes, with a bump allocator for tests."""

    def __init__(self) -> None:
        self.regions: dict[int, bytes] = {}
        self.next = 0x10000
        self.reads: list[tuple[int, int]] = []

    def put(self, data: bytes, addr: int | None = None) -> int:
        if addr is None:
            addr = self.next
            self.next += (len(data) + 0x100) & ~0xFF
        self.regions[addr] = bytes(data)
        return addr

    def cstr(self, text: bytes | str) -> int:
        raw = text.encode() if isinstance(text, str) else text
        return self.put(raw + b"\0")

    def ptrs(self, addrs: list[int]) -> int:
        return self.put(b"".join(struct.pack("<Q", a) for a in [*addrs, 0]))

    def _find(self, addr: int) -> tuple[bytes, int] | None:
        for base, data in self.regions.items():
            if base <= addr < base + len(data):
                return data, addr - base
        return None

    def read(self, pid: int, addr: int, size: int) -> bytes:
        assert pid == PID
        self.reads.append((addr, size))
        found = self._find(addr)
        if found is None:
            return b""
        data, off = found
        return data[off : off + size]

    def read_cstr(self, pid: int, addr: int, limit: int) -> bytes | None:
        assert pid == PID
        self.reads.append((addr, limit))
        found = self._find(addr)
        if found is None:
            return None
        data, off = found
        chunk = data[off:]
        end = chunk.find(b"\0")
        if end >= 0:
            return chunk[: min(end, limit)]
        return chunk[:limit] if len(chunk) >= limit else None


def args6(*values: int) -> tuple[int, ...]:
    vals = [v & U64 for v in values]
    return tuple(vals + [0] * (6 - len(vals)))


def call(dec: Decoder, mem: Mem, name: str, args: tuple[int, ...], rval: int | None) -> Decoded:
    """Run a syscall through both capture phases and format it, as the tracer would."""
    nr = number_of(name, dec.arch)
    assert nr is not None, name
    args = args6(*args)
    entry = dec.capture_entry(nr, args, PID, mem)
    exit_ = dec.capture_exit(nr, args, rval, PID, mem) if rval is not None else None
    # What the tracer hands over must survive a trip to another thread/process.
    entry, exit_ = pickle.loads(pickle.dumps((entry, exit_)))
    return dec.format(nr, args, rval, entry, exit_)


def line(d: Decoded) -> str:
    return f"{d.name}({d.args}) = {d.ret}"


@pytest.fixture
def x86() -> Decoder:
    return Decoder("x86_64")


@pytest.fixture
def arm() -> Decoder:
    return Decoder("aarch64")


@pytest.fixture
def mem() -> Mem:
    return Mem()


def x86_stat(mode: int, size: int = 0, rdev: int = 0) -> bytes:
    buf = bytearray(144)
    struct.pack_into("<I", buf, 24, mode)
    struct.pack_into("<Q", buf, 40, rdev)
    struct.pack_into("<q", buf, 48, size)
    return bytes(buf)


def arm_stat(mode: int, size: int = 0, rdev: int = 0) -> bytes:
    buf = bytearray(128)
    struct.pack_into("<I", buf, 16, mode)
    struct.pack_into("<Q", buf, 32, rdev)
    struct.pack_into("<q", buf, 48, size)
    return bytes(buf)


# ============================================================================================
# construction, names, return values
# ============================================================================================


def test_constructor_validates() -> None:
    with pytest.raises(ConfigError):
        Decoder("sparc")
    with pytest.raises(ConfigError):
        Decoder("x86_64", strsize=-1)


def test_names(x86: Decoder, arm: Decoder) -> None:
    assert x86.name(257) == "openat"
    assert arm.name(56) == "openat"
    assert x86.name(500) == "syscall_0x1f4"
    assert x86.name(-1) == "syscall_0xffffffffffffffff"


def test_unknown_syscall_prints_raw_hex_args(x86: Decoder) -> None:
    d = x86.format(500, (1, 2, 3, 4, 5, 6), -38, None, None)
    assert line(d) == (
        "syscall_0x1f4(0x1, 0x2, 0x3, 0x4, 0x5, 0x6) = -1 ENOSYS (Function not implemented)"
    )
    assert d.error == "ENOSYS"


_X86_NRS = sorted(table("x86_64"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    nr=st.sampled_from(_X86_NRS),
    regs=st.lists(st.integers(-(1 << 63), U64), min_size=0, max_size=7),
)
def test_registers_render_alike_in_any_form(x86: Decoder, nr: int, regs: list[int]) -> None:
    # The tracers hand over six unsigned ints, which format() uses as they are; any other
    # form (signed values, a list, fewer or more than six) must render the same call.
    canonical = tuple(v & U64 for v in regs[:6]) + (0,) * max(0, 6 - len(regs))
    want = x86.format(nr, canonical, 0, None, None)
    for form in (tuple(regs), regs, tuple(regs[:6]), [*canonical, 7]):
        assert x86.format(nr, form, 0, None, None) == want
    assert x86.format(nr, tuple(float(v) if abs(v) < 1 << 52 else v for v in canonical), 0, None, None) == want


@pytest.mark.parametrize(
    ("rval", "ret", "error"),
    [
        (-2, "-1 ENOENT (No such file or directory)", "ENOENT"),
        (-11, "-1 EAGAIN (Resource temporarily unavailable)", "EAGAIN"),
        (-95, "-1 EOPNOTSUPP (Operation not supported)", "EOPNOTSUPP"),
        (-512, "? ERESTARTSYS (To be restarted if SA_RESTART is set)", "ERESTARTSYS"),
        (-513, "? ERESTARTNOINTR (To be restarted)", "ERESTARTNOINTR"),
        (-514, "? ERESTARTNOHAND (To be restarted if no handler)", "ERESTARTNOHAND"),
        (-516, "? ERESTART_RESTARTBLOCK (Interrupted by signal)", "ERESTART_RESTARTBLOCK"),
        (-515, "-1 ENOIOCTLCMD (Unknown error 515)", "ENOIOCTLCMD"),
        (-530, "-1 ERECALLCONFLICT (Unknown error 530)", "ERECALLCONFLICT"),
        (-4095, "-1 (errno 4095)", "E4095"),
        (0, "0", None),
        (None, "?", None),
    ],
)
def test_return_values(
    x86: Decoder, mem: Mem, rval: int | None, ret: str, error: str | None
) -> None:
    d = call(x86, mem, "close", (3,), rval)
    assert (d.ret, d.error) == (ret, error)


def test_never_returning_calls(x86: Decoder, mem: Mem) -> None:
    assert line(call(x86, mem, "exit_group", (7,), None)) == "exit_group(7) = ?"
    assert line(call(x86, mem, "exit", (0,), None)) == "exit(0) = ?"


def test_pointer_and_octal_returns(x86: Decoder, mem: Mem) -> None:
    assert line(call(x86, mem, "brk", (0,), 0x55738E052000)) == "brk(NULL) = 0x55738e052000"
    assert call(x86, mem, "umask", (0o22,), 0o22).args == "022"
    assert call(x86, mem, "umask", (0o22,), 0o22).ret == "022"
    assert line(call(x86, mem, "getpid", (), 4106)) == "getpid() = 4106"


# ============================================================================================
# files
# ============================================================================================


def test_openat(x86: Decoder, mem: Mem) -> None:
    p = mem.cstr("/etc/passwd")
    d = call(x86, mem, "openat", (AT_FDCWD, p, 0o2000000), 3)
    assert line(d) == 'openat(AT_FDCWD, "/etc/passwd", O_RDONLY|O_CLOEXEC) = 3'
    assert d.path == "/etc/passwd"
    assert d.error is None and d.argv is None


def test_openat_failure_still_shows_path(x86: Decoder, mem: Mem) -> None:
    p = mem.cstr("/nonexistent")
    d = call(x86, mem, "openat", (AT_FDCWD, p, 0), -2)
    assert (
        line(d)
        == 'openat(AT_FDCWD, "/nonexistent", O_RDONLY) = -1 ENOENT (No such file or directory)'
    )
    assert d.error == "ENOENT" and d.path == "/nonexistent"


@pytest.mark.parametrize(
    ("flags", "mode", "text"),
    [
        (0o1 | 0o100 | 0o200 | 0o1000, 0o640, "O_WRONLY|O_CREAT|O_EXCL|O_TRUNC, 0640"),
        (0o2 | 0o20200000, 0o600, "O_RDWR|O_TMPFILE, 0600"),
        (0o2 | 0o200 | 0o2000000 | 0o20200000, 0, "O_RDWR|O_EXCL|O_CLOEXEC|O_TMPFILE, 000"),
        (0o1 | 0o4010000, 0, "O_WRONLY|O_SYNC"),
        (0o1 | 0o10000, 0, "O_WRONLY|O_DSYNC"),
        (0o400 | 0o40000 | 0o400000 | 0o1000000 | 0o10000000 | 0o200000 | 0o20000, 0,
         "O_RDONLY|O_NOCTTY|O_DIRECT|O_NOFOLLOW|O_NOATIME|O_PATH|O_DIRECTORY|FASYNC"),
        (0o100000 | 0o200000 | 0o4000 | 0o2000 | 0o1000, 0,
         "O_RDONLY|O_TRUNC|O_APPEND|O_NONBLOCK|O_LARGEFILE|O_DIRECTORY"),
        (3, 0, "O_ACCMODE"),
        (0x80000000 | 0o100, 0o4755, "O_RDONLY|O_CREAT|0x80000000, 04755"),
    ],
)  # fmt: skip
def test_open_flags_x86(x86: Decoder, mem: Mem, flags: int, mode: int, text: str) -> None:
    p = mem.cstr("/x")
    assert call(x86, mem, "openat", (AT_FDCWD, p, flags, mode), 3).args == f'AT_FDCWD, "/x", {text}'


def test_open_flags_differ_on_aarch64(x86: Decoder, arm: Decoder, mem: Mem) -> None:
    p = mem.cstr("/d")
    assert (
        call(arm, mem, "openat", (AT_FDCWD, p, 0o40000), 3).args
        == 'AT_FDCWD, "/d", O_RDONLY|O_DIRECTORY'
    )
    assert (
        call(x86, mem, "openat", (AT_FDCWD, p, 0o40000), 3).args
        == 'AT_FDCWD, "/d", O_RDONLY|O_DIRECT'
    )
    assert (
        call(arm, mem, "openat", (AT_FDCWD, p, 0o100000), 3).args
        == 'AT_FDCWD, "/d", O_RDONLY|O_NOFOLLOW'
    )
    # O_TMPFILE includes the arch's O_DIRECTORY bit.
    assert call(arm, mem, "openat", (AT_FDCWD, p, 0o20040002, 0o600), 3).args == (
        'AT_FDCWD, "/d", O_RDWR|O_TMPFILE, 0600'
    )


def test_dirfd_and_legacy_open(x86: Decoder, mem: Mem) -> None:
    p = mem.cstr("/x")
    assert call(x86, mem, "openat", (-50, p, 0), 3).args == '-50, "/x", O_RDONLY'
    assert call(x86, mem, "openat", (-100, p, 0), 3).args == 'AT_FDCWD, "/x", O_RDONLY'
    assert line(call(x86, mem, "open", (p, 0o100, 0), 4)) == 'open("/x", O_RDONLY|O_CREAT, 000) = 4'


def test_openat2(x86: Decoder, mem: Mem) -> None:
    p = mem.cstr("/etc/hostname")
    how = mem.put(struct.pack("<QQQ", 0o2000000, 0, 0x04))
    assert line(call(x86, mem, "openat2", (AT_FDCWD, p, how, 24), 13)) == (
        'openat2(AT_FDCWD, "/etc/hostname", {flags=O_RDONLY|O_CLOEXEC, '
        "resolve=RESOLVE_NO_SYMLINKS}, 24) = 13"
    )


def test_unreadable_path_prints_address(x86: Decoder, mem: Mem) -> None:
    d = call(x86, mem, "openat", (AT_FDCWD, 0xDEAD000, 0), -14)
    assert d.args == "AT_FDCWD, 0xdead000, O_RDONLY"
    assert d.path is None
    assert call(x86, mem, "chdir", (0,), -14).args == "NULL"


def test_paths_are_never_cut_by_strsize(mem: Mem) -> None:
    dec = Decoder("x86_64", strsize=4)
    long_path = "/a/very/long/path/that/is/longer/than/strsize/" * 20
    p = mem.cstr(long_path)
    d = call(dec, mem, "openat", (AT_FDCWD, p, 0), 3)
    assert d.args == f'AT_FDCWD, "{long_path}", O_RDONLY'
    assert d.path == long_path


def test_stat_family_x86(x86: Decoder, mem: Mem) -> None:
    p = mem.cstr("/etc/passwd")
    empty = mem.cstr("")
    st = mem.put(x86_stat(0o100644, 1294))
    assert line(call(x86, mem, "newfstatat", (AT_FDCWD, p, st, 0), 0)) == (
        'newfstatat(AT_FDCWD, "/etc/passwd", {st_mode=S_IFREG|0644, st_size=1294, ...}, 0) = 0'
    )
    assert line(call(x86, mem, "newfstatat", (3, empty, st, 0x1000), 0)) == (
        'newfstatat(3, "", {st_mode=S_IFREG|0644, st_size=1294, ...}, AT_EMPTY_PATH) = 0'
    )
    assert line(call(x86, mem, "stat", (p, st), 0)) == (
        'stat("/etc/passwd", {st_mode=S_IFREG|0644, st_size=1294, ...}) = 0'
    )
    dev = mem.put(x86_stat(0o020666, 0, (1 << 8) | 3))
    assert line(call(x86, mem, "fstat", (0, dev), 0)) == (
        "fstat(0, {st_mode=S_IFCHR|0666, st_rdev=makedev(0x1, 0x3), ...}) = 0"
    )
    null = mem.cstr("/dev/null")
    assert line(call(x86, mem, "lstat", (null, dev), 0)) == (
        'lstat("/dev/null", {st_mode=S_IFCHR|0666, st_rdev=makedev(0x1, 0x3), ...}) = 0'
    )
    tmp = mem.put(x86_stat(0o041777, 4096))
    assert call(x86, mem, "newfstatat", (AT_FDCWD, p, tmp, 0), 0).args == (
        'AT_FDCWD, "/etc/passwd", {st_mode=S_IFDIR|S_ISVTX|0777, st_size=4096, ...}, 0'
    )


def test_stat_failure_shows_buffer_address(x86: Decoder, mem: Mem) -> None:
    p = mem.cstr("/root/.cargo/bin/ls")
    st = mem.put(x86_stat(0o100644, 1))
    d = call(x86, mem, "newfstatat", (AT_FDCWD, p, 0x7FFC1680B080, 0), -2)
    assert line(d) == (
        'newfstatat(AT_FDCWD, "/root/.cargo/bin/ls", 0x7ffc1680b080, 0) = '
        "-1 ENOENT (No such file or directory)"
    )
    # Even when the buffer is readable, a failed call shows its address, not stale contents.
    assert "st_mode" not in call(x86, mem, "newfstatat", (AT_FDCWD, p, st, 0), -2).args


def test_stat_layout_is_per_arch(x86: Decoder, arm: Decoder, mem: Mem) -> None:
    st = mem.put(arm_stat(0o100755, 151344))
    assert line(call(arm, mem, "fstat", (3, st), 0)) == (
        "fstat(3, {st_mode=S_IFREG|0755, st_size=151344, ...}) = 0"
    )
    assert "S_IFREG|0755" not in call(x86, mem, "fstat", (3, st), 0).args
    st2 = mem.put(x86_stat(0o100755, 151344))
    assert "S_IFREG|0755" not in call(arm, mem, "fstat", (3, st2), 0).args


def test_statx(x86: Decoder, mem: Mem) -> None:
    p = mem.cstr("/etc/passwd")
    buf = bytearray(256)
    struct.pack_into("<I", buf, 0, 0x17FF)
    struct.pack_into("<H", buf, 28, 0o100644)
    struct.pack_into("<Q", buf, 40, 1294)
    sx = mem.put(bytes(buf))
    assert line(call(x86, mem, "statx", (AT_FDCWD, p, 0x100, 0x7FF, sx), 0)) == (
        'statx(AT_FDCWD, "/etc/passwd", AT_STATX_SYNC_AS_STAT|AT_SYMLINK_NOFOLLOW, '
        "STATX_BASIC_STATS, {stx_mask=STATX_BASIC_STATS|STATX_MNT_ID, stx_attributes=0, "
        "stx_mode=S_IFREG|0644, stx_size=1294, ...}) = 0"
    )


def test_access_family(x86: Decoder, mem: Mem) -> None:
    p = mem.cstr("/etc/passwd")
    assert line(call(x86, mem, "access", (p, 0), 0)) == 'access("/etc/passwd", F_OK) = 0'
    assert line(call(x86, mem, "access", (p, 7), -13)) == (
        'access("/etc/passwd", R_OK|W_OK|X_OK) = -1 EACCES (Permission denied)'
    )
    etc = mem.cstr("/etc")
    assert call(x86, mem, "faccessat2", (AT_FDCWD, etc, 1, 0x200), 0).args == (
        'AT_FDCWD, "/etc", X_OK, AT_EACCESS'
    )
    x = mem.cstr("x")
    assert (
        call(x86, mem, "faccessat2", (3, x, 4, 0x100), -20).args
        == '3, "x", R_OK, AT_SYMLINK_NOFOLLOW'
    )
    root = mem.cstr("/")
    assert (
        call(x86, mem, "faccessat", (AT_FDCWD, root, 8), -22).args
        == 'AT_FDCWD, "/", 0x8 /* ?_OK */'
    )


def test_readlink(x86: Decoder, mem: Mem) -> None:
    p = mem.cstr("/proc/self/exe")
    buf = mem.put(b"/tmp/dec/t" + b"\xaa" * 246)
    assert line(call(x86, mem, "readlink", (p, buf, 256), 10)) == (
        'readlink("/proc/self/exe", "/tmp/dec/t", 256) = 10'
    )
    short = Decoder("x86_64", strsize=4)
    assert call(short, mem, "readlink", (p, buf, 64), 11).args == '"/proc/self/exe", "/tmp"..., 64'
    n = mem.cstr("/nonexist")
    assert line(call(x86, mem, "readlinkat", (AT_FDCWD, n, 0x7FFD28E6F620, 10), -2)) == (
        'readlinkat(AT_FDCWD, "/nonexist", 0x7ffd28e6f620, 10) = -1 ENOENT (No such file or directory)'
    )


def test_directory_calls(x86: Decoder, mem: Mem) -> None:
    d = mem.cstr("/tmp/dec/d")
    d2, d3 = mem.cstr("/tmp/dec/d2"), mem.cstr("/tmp/dec/d3")
    assert line(call(x86, mem, "unlinkat", (AT_FDCWD, d, 0x200), -2)) == (
        'unlinkat(AT_FDCWD, "/tmp/dec/d", AT_REMOVEDIR) = -1 ENOENT (No such file or directory)'
    )
    assert line(call(x86, mem, "mkdir", (d, 0o755), 0)) == 'mkdir("/tmp/dec/d", 0755) = 0'
    assert line(call(x86, mem, "mkdirat", (AT_FDCWD, d2, 0o700), 0)) == (
        'mkdirat(AT_FDCWD, "/tmp/dec/d2", 0700) = 0'
    )
    r = call(x86, mem, "rename", (d2, d3), 0)
    assert line(r) == 'rename("/tmp/dec/d2", "/tmp/dec/d3") = 0'
    assert r.path == "/tmp/dec/d2"
    assert line(call(x86, mem, "renameat", (AT_FDCWD, d3, AT_FDCWD, d2), 0)) == (
        'renameat(AT_FDCWD, "/tmp/dec/d3", AT_FDCWD, "/tmp/dec/d2") = 0'
    )
    assert line(call(x86, mem, "renameat2", (AT_FDCWD, d2, AT_FDCWD, d3, 1), 0)) == (
        'renameat2(AT_FDCWD, "/tmp/dec/d2", AT_FDCWD, "/tmp/dec/d3", RENAME_NOREPLACE) = 0'
    )
    assert line(call(x86, mem, "unlink", (d3,), 0)) == 'unlink("/tmp/dec/d3") = 0'
    tmp = mem.cstr("/tmp")
    assert line(call(x86, mem, "chdir", (tmp,), 0)) == 'chdir("/tmp") = 0'
    assert line(call(x86, mem, "fchdir", (14,), 0)) == "fchdir(14) = 0"
    assert line(call(x86, mem, "getdents64", (14, 0x7FFD28E6E470, 4096), 128)) == (
        "getdents64(14, 0x7ffd28e6e470, 4096) = 128"
    )
    cwd = mem.cstr("/tmp/dec")
    assert line(call(x86, mem, "getcwd", (cwd, 64), 9)) == 'getcwd("/tmp/dec", 64) = 9'
    five = mem.cstr("/")
    assert line(call(x86, mem, "fchmodat", (5, five, 0o644), 0)) == 'fchmodat(5, "/", 0644) = 0'


def test_arm_has_no_open_but_has_openat(arm: Decoder, mem: Mem) -> None:
    p = mem.cstr("/etc/passwd")
    d = call(arm, mem, "openat", (AT_FDCWD, p, 0o2000000), 3)
    assert line(d) == 'openat(AT_FDCWD, "/etc/passwd", O_RDONLY|O_CLOEXEC) = 3'
    assert number_of("open", "aarch64") is None


# ============================================================================================
# descriptors and data
# ============================================================================================


def test_write_and_read_buffers(x86: Decoder, mem: Mem) -> None:
    hello = mem.put(b"hello\n\t\0\x01\x7f\xff world")
    assert line(call(x86, mem, "write", (6, hello, 17), 17)) == (
        'write(6, "hello\\n\\t\\0\\1\\177\\377 world", 17) = 17'
    )
    alpha = mem.put(b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEF")
    assert line(call(x86, mem, "write", (6, alpha, 42), 42)) == (
        'write(6, "abcdefghijklmnopqrstuvwxyz012345"..., 42) = 42'
    )
    digits = mem.put(b"0123456789012345678901234567890123456789")
    assert (
        call(x86, mem, "write", (1, digits, 33), 33).args
        == '1, "01234567890123456789012345678901"..., 33'
    )
    assert (
        call(x86, mem, "write", (1, digits, 32), 32).args
        == '1, "01234567890123456789012345678901", 32'
    )
    assert (
        call(x86, mem, "write", (1, digits, 31), 31).args
        == '1, "0123456789012345678901234567890", 31'
    )
    data = mem.put(b"hello\n\t\0\x01\x7f\xff worldabcdefghijklmnopqrstuvwxyz0123")
    assert line(call(x86, mem, "read", (5, data, 100), 59)) == (
        'read(5, "hello\\n\\t\\0\\1\\177\\377 worldabcdefghijklmno"..., 100) = 59'
    )
    assert line(call(x86, mem, "read", (3, data, 4096), 0)) == 'read(3, "", 4096) = 0'


def test_absent_buffers_print_their_address(x86: Decoder, mem: Mem) -> None:
    assert line(call(x86, mem, "write", (1, 1, 5), 5)) == "write(1, 0x1, 5) = 5"
    assert line(call(x86, mem, "read", (0xFFFFFFFF, 0x7FFD28E6F620, 5), -9)) == (
        "read(-1, 0x7ffd28e6f620, 5) = -1 EBADF (Bad file descriptor)"
    )


def test_output_buffer_read_only_on_success(x86: Decoder, mem: Mem) -> None:
    buf = mem.put(b"secret" * 10)
    nr = number_of("read", "x86_64")
    assert x86.capture_exit(nr, args6(3, buf, 60), -4, PID, mem) is None
    assert mem.reads == []
    assert x86.capture_exit(nr, args6(3, buf, 60), 6, PID, mem) == (b"secret",)
    assert mem.reads == [(buf, 6)]  # never more than the call returned


def test_strsize(mem: Mem) -> None:
    elf = mem.put(b"\x7fELF\x02\x01\x01\x03" + b"\0" * 824)
    assert (
        call(Decoder("x86_64", strsize=4), mem, "read", (3, elf, 832), 832).args
        == '3, "\\177ELF"..., 832'
    )
    assert (
        call(Decoder("x86_64", strsize=0), mem, "read", (3, elf, 832), 832).args == '3, ""..., 832'
    )
    assert (
        call(Decoder("x86_64", strsize=4), mem, "write", (3, elf, 4), 4).args == '3, "\\177ELF", 4'
    )


def test_quote_matches_strace_escaping() -> None:
    raw = b"\x001\x008\x01\x80\x9a\r\x0b\x0c\\\"'\x00\x00\x01"
    assert quote(raw) == '"\\0001\\08\\1\\200\\232\\r\\v\\f\\\\\\"\'\\0\\0\\1"'
    assert quote(b"\x7fELF\x02\x01\x01\x03\x00\x00") == '"\\177ELF\\2\\1\\1\\3\\0\\0"'
    assert quote(b"\x10t") == '"\\20t"'
    assert quote(b"plain text") == '"plain text"'


def test_pread_pwrite_readv_writev(x86: Decoder, mem: Mem) -> None:
    buf = mem.put(b"x:0:0:root")
    assert (
        line(call(x86, mem, "pread64", (8, buf, 10, 5), 10))
        == 'pread64(8, "x:0:0:root", 10, 5) = 10'
    )
    assert line(call(x86, mem, "pwrite64", (1, buf, 0, 7), 0)) == 'pwrite64(1, "", 0, 7) = 0'
    ab, cde = mem.put(b"ab"), mem.put(b"cde\n")
    iov = mem.put(struct.pack("<QQQQ", ab, 2, cde, 4))
    assert line(call(x86, mem, "writev", (1, iov, 2), 6)) == (
        'writev(1, [{iov_base="ab", iov_len=2}, {iov_base="cde\\n", iov_len=4}], 2) = 6'
    )
    b1, b2 = mem.put(b"012"), mem.put(b"3456789" + b"\0" * 93)
    riov = mem.put(struct.pack("<QQQQ", b1, 3, b2, 100))
    assert line(call(x86, mem, "readv", (5, riov, 2), 10)) == (
        'readv(5, [{iov_base="012", iov_len=3}, {iov_base="3456789", iov_len=100}], 2) = 10'
    )
    assert line(call(x86, mem, "readv", (5, riov, 2), -11)) == (
        f"readv(5, {riov:#x}, 2) = -1 EAGAIN (Resource temporarily unavailable)"
    )


def test_close_dup(x86: Decoder, mem: Mem) -> None:
    assert line(call(x86, mem, "close", (8,), 0)) == "close(8) = 0"
    assert (
        line(call(x86, mem, "close", (0xFFFFFFFF,), -9))
        == "close(-1) = -1 EBADF (Bad file descriptor)"
    )
    assert call(x86, mem, "close", (0x100000000,), 0).args == "0"
    assert line(call(x86, mem, "dup", (11,), 7)) == "dup(11) = 7"
    assert line(call(x86, mem, "dup2", (10, 11), 11)) == "dup2(10, 11) = 11"
    assert line(call(x86, mem, "dup3", (5, 10, 0o2000000), 10)) == "dup3(5, 10, O_CLOEXEC) = 10"


@pytest.mark.parametrize(
    ("args", "rval", "text"),
    [
        ((10, 4, 0o2000 | 0o4000), 0, "fcntl(10, F_SETFL, O_RDONLY|O_APPEND|O_NONBLOCK) = 0"),
        ((10, 3), 0xC00, "fcntl(10, F_GETFL) = 0xc00 (flags O_RDONLY|O_APPEND|O_NONBLOCK)"),
        ((10, 1), 1, "fcntl(10, F_GETFD) = 0x1 (flags FD_CLOEXEC)"),
        ((10, 2, 1), 0, "fcntl(10, F_SETFD, FD_CLOEXEC) = 0"),
        ((0, 2, 3), -9, "fcntl(0, F_SETFD, FD_CLOEXEC|0x2) = -1 EBADF (Bad file descriptor)"),
        ((0, 2, 0), 0, "fcntl(0, F_SETFD, 0) = 0"),
        ((10, 1030, 20), 20, "fcntl(10, F_DUPFD_CLOEXEC, 20) = 20"),
        ((1, 0, 10), 11, "fcntl(1, F_DUPFD, 10) = 11"),
        ((0, 1000, 5), -22, "fcntl(0, 0x3e8 /* F_??? */, 0x5) = -1 EINVAL (Invalid argument)"),
        ((0, 6, 0), -9, "fcntl(0, F_SETLK, NULL) = -1 EBADF (Bad file descriptor)"),
        ((0, 8, 5), 0, "fcntl(0, F_SETOWN, 5) = 0"),
        ((0, 1032), 65536, "fcntl(0, F_GETPIPE_SZ) = 65536"),
        ((0, 10, 29), 0, "fcntl(0, F_SETSIG, SIGIO) = 0"),
        ((0, 1033, 9), 0, "fcntl(0, F_ADD_SEALS, F_SEAL_SEAL|F_SEAL_WRITE) = 0"),
        ((0, 1026, 0x80000002), 0, "fcntl(0, F_NOTIFY, DN_MODIFY|DN_MULTISHOT) = 0"),
        ((0, 1024, 1), 0, "fcntl(0, F_SETLEASE, F_WRLCK) = 0"),
    ],
)
def test_fcntl(x86: Decoder, mem: Mem, args: tuple[int, ...], rval: int, text: str) -> None:
    assert line(call(x86, mem, "fcntl", args, rval)) == text


def test_fcntl_lock_struct(x86: Decoder, mem: Mem) -> None:
    lk = mem.put(struct.pack("<hh4xqqi4x", 1, 0, 0, 0, 0))
    assert call(x86, mem, "fcntl", (3, 7, lk), 0).args == (
        "3, F_SETLKW, {l_type=F_WRLCK, l_whence=SEEK_SET, l_start=0, l_len=0}"
    )


def test_lseek(x86: Decoder, mem: Mem) -> None:
    assert line(call(x86, mem, "lseek", (0, 10, 1), 0)) == "lseek(0, 10, SEEK_CUR) = 0"
    assert line(call(x86, mem, "lseek", (0, 5, 3), 0)) == "lseek(0, 5, SEEK_DATA) = 0"
    assert call(x86, mem, "lseek", (0, -5, 99), -9).args == "0, -5, 0x63 /* SEEK_??? */"
    assert (
        call(x86, mem, "lseek", (0, 0xFFFFFFFB, 5), -9).args == "0, 4294967291, 0x5 /* SEEK_??? */"
    )


def test_pipes(x86: Decoder, mem: Mem) -> None:
    fds = mem.put(struct.pack("<ii", 3, 4))
    assert line(call(x86, mem, "pipe2", (fds, 0o4000 | 0o2000000), 0)) == (
        "pipe2([3, 4], O_NONBLOCK|O_CLOEXEC) = 0"
    )
    assert line(call(x86, mem, "pipe", (fds,), 0)) == "pipe([3, 4]) = 0"
    assert line(call(x86, mem, "pipe2", (0, 0), -14)) == "pipe2(NULL, 0) = -1 EFAULT (Bad address)"
    assert (
        line(call(x86, mem, "socketpair", (1, 1, 0, fds), 0))
        == "socketpair(AF_UNIX, SOCK_STREAM, 0, [3, 4]) = 0"
    )


def test_ioctl(x86: Decoder, mem: Mem) -> None:
    assert line(call(x86, mem, "ioctl", (1, 0x5401, 0x7FFD28E6F620), -25)) == (
        "ioctl(1, TCGETS, 0x7ffd28e6f620) = -1 ENOTTY (Inappropriate ioctl for device)"
    )
    n = mem.put(struct.pack("<i", 0))
    assert line(call(x86, mem, "ioctl", (5, 0x541B, n), 0)) == "ioctl(5, FIONREAD, [0]) = 0"
    assert line(call(x86, mem, "ioctl", (5, 0x5451, 0), 0)) == "ioctl(5, FIOCLEX) = 0"
    assert line(call(x86, mem, "ioctl", (5, 0x12345678, 0), -25)) == (
        "ioctl(5, _IOC(_IOC_NONE, 0x56, 0x78, 0x1234), 0) = -1 ENOTTY (Inappropriate ioctl for device)"
    )
    ws = mem.put(struct.pack("<HHHH", 24, 80, 0, 0))
    assert line(call(x86, mem, "ioctl", (0, 0x5414, ws), 0)) == (
        "ioctl(0, TIOCSWINSZ, {ws_row=24, ws_col=80, ws_xpixel=0, ws_ypixel=0}) = 0"
    )
    assert line(call(x86, mem, "ioctl", (0, 0x5413, ws), 0)) == (
        "ioctl(0, TIOCGWINSZ, {ws_row=24, ws_col=80, ws_xpixel=0, ws_ypixel=0}) = 0"
    )
    pg = mem.put(struct.pack("<i", 17859))
    assert call(x86, mem, "ioctl", (0, 0x540F, pg), 0).args == "0, TIOCGPGRP, [17859]"
    one = mem.put(struct.pack("<i", 1))
    assert call(x86, mem, "ioctl", (0, 0x5421, one), 0).args == "0, FIONBIO, [1]"
    term = mem.put(
        struct.pack("<IIII", 0o400 | 0o2000, 0o1 | 0o4, 0o17 | 0o60 | 0o200,
                    1 | 2 | 0o10 | 0o20 | 0o40 | 0o100000 | 0o1000 | 0o4000) + b"\0" * 20
    )  # fmt: skip
    assert line(call(x86, mem, "ioctl", (0, 0x5401, term), 0)) == (
        "ioctl(0, TCGETS, {c_iflag=ICRNL|IXON, c_oflag=NL0|CR0|TAB0|BS0|VT0|FF0|OPOST|ONLCR, "
        "c_cflag=B38400|CS8|CREAD, c_lflag=ISIG|ICANON|ECHO|ECHOE|ECHOK|IEXTEN|ECHOCTL|ECHOKE, "
        "...}) = 0"
    )


# ============================================================================================
# memory
# ============================================================================================


def test_mmap_family(x86: Decoder, mem: Mem) -> None:
    assert line(call(x86, mem, "mmap", (0, 8192, 3, 0x22, 0xFFFFFFFF, 0), 0x7FF3B4664000)) == (
        "mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ff3b4664000"
    )
    assert line(
        call(x86, mem, "mmap", (0x7FF3B449F000, 1400832, 5, 0x812, 3, 0x26000), 0x7FF3B449F000)
    ) == (
        "mmap(0x7ff3b449f000, 1400832, PROT_READ|PROT_EXEC, MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE, "
        "3, 0x26000) = 0x7ff3b449f000"
    )
    assert line(call(x86, mem, "mmap", (0x10000, 4096, 4, 0x108001, 0xFFFFFFFF, 0), -9)) == (
        "mmap(0x10000, 4096, PROT_EXEC, MAP_SHARED|MAP_POPULATE|MAP_FIXED_NOREPLACE, -1, 0) = "
        "-1 EBADF (Bad file descriptor)"
    )
    big = call(x86, mem, "mmap", (0, 4096, 0x100010F, 0x540F6343, 3, 4096), -22)
    assert big.args == (
        "NULL, 4096, PROT_READ|PROT_WRITE|PROT_EXEC|PROT_SEM|PROT_GROWSDOWN|0x100, "
        "MAP_SHARED_VALIDATE|MAP_32BIT|MAP_NORESERVE|MAP_NONBLOCK|MAP_GROWSDOWN|MAP_LOCKED|"
        "MAP_STACK|MAP_HUGETLB|MAP_SYNC|0x200|21<<MAP_HUGE_SHIFT, 3, 0x1000"
    )
    assert (
        call(x86, mem, "mmap", (0, 4096, 0, 0, 0xFFFFFFFF, 0), -9).args
        == "NULL, 4096, PROT_NONE, MAP_FILE, -1, 0"
    )
    assert call(x86, mem, "mmap", (0, 4096, 0, 0xF, 100, 0), -9).args == (
        "NULL, 4096, PROT_NONE, 0xf /* MAP_??? */, 100, 0"
    )
    assert (
        line(call(x86, mem, "mprotect", (0x7F95071EF000, 4096, 0), 0))
        == "mprotect(0x7f95071ef000, 4096, PROT_NONE) = 0"
    )
    assert (
        line(call(x86, mem, "munmap", (0x7FF3B465B000, 34547), 0))
        == "munmap(0x7ff3b465b000, 34547) = 0"
    )
    assert line(call(x86, mem, "madvise", (0x7F95071EF000, 8192, 4), 0)) == (
        "madvise(0x7f95071ef000, 8192, MADV_DONTNEED) = 0"
    )
    assert call(x86, mem, "madvise", (0, 0, 100), -22).args == "NULL, 0, MADV_HWPOISON"
    assert line(call(x86, mem, "mremap", (0x1000, 4096, 8192, 3, 0x5000), -14)) == (
        "mremap(0x1000, 4096, 8192, MREMAP_MAYMOVE|MREMAP_FIXED, 0x5000) = -1 EFAULT (Bad address)"
    )
    assert line(call(x86, mem, "mremap", (0x7F0000000000, 8192, 16384, 1, 0), 0x7F0000100000)) == (
        "mremap(0x7f0000000000, 8192, 16384, MREMAP_MAYMOVE) = 0x7f0000100000"
    )


def test_mmap_flags_per_arch(arm: Decoder, mem: Mem) -> None:
    # 0x40 is MAP_32BIT only on x86_64; PROT_BTI only on aarch64.
    assert call(arm, mem, "mmap", (0, 4096, 0x15, 0x62, 3, 0), 0x1000).args == (
        "NULL, 4096, PROT_READ|PROT_EXEC|PROT_BTI, MAP_PRIVATE|MAP_ANONYMOUS|0x40, 3, 0"
    )


# ============================================================================================
# processes and signals
# ============================================================================================


def test_execve(x86: Decoder, mem: Mem) -> None:
    path = mem.cstr("/bin/true")
    argv = mem.ptrs([mem.cstr("/bin/true"), mem.cstr("a b"), mem.cstr('"q"')])
    env_strings = [mem.cstr("SECRET_TOKEN=hunter2"), mem.cstr("B=2")]
    envp = mem.ptrs(env_strings)
    d = call(x86, mem, "execve", (path, argv, envp), 0)
    assert line(d) == (
        f'execve("/bin/true", ["/bin/true", "a b", "\\"q\\""], {envp:#x} /* 2 vars */) = 0'
    )
    assert d.argv == ["/bin/true", "a b", '"q"']
    assert d.path == "/bin/true"
    # The environment is counted, never read.
    assert not any(addr in env_strings for addr, _ in mem.reads)


def test_execve_success_seen_only_at_entry(x86: Decoder, mem: Mem) -> None:
    path = mem.cstr("/usr/bin/ls")
    argv = mem.ptrs([mem.cstr("ls"), mem.cstr("-la"), mem.cstr("/")])
    envp = mem.ptrs([mem.cstr(f"V{i}=x") for i in range(12)])
    nr = number_of("execve", "x86_64")
    entry = x86.capture_entry(nr, args6(path, argv, envp), PID, mem)
    d = x86.format(nr, args6(path, argv, envp), None, entry, None)
    assert line(d) == f'execve("/usr/bin/ls", ["ls", "-la", "/"], {envp:#x} /* 12 vars */) = ?'


def test_execve_truncation_and_full_argv(mem: Mem) -> None:
    dec = Decoder("x86_64", strsize=4)
    path = mem.cstr("/bin/true")
    items = ["a", "bbbbbbbb", "c", "d", "e"]
    argv = mem.ptrs([mem.cstr(s) for s in items])
    d = call(dec, mem, "execve", (path, argv, 0), 0)
    assert d.args == '"/bin/true", ["a", "bbbb"..., "c", "d", ...], NULL'
    assert d.argv == items  # the attribute keeps everything
    long_arg = "x" * 5000
    argv2 = mem.ptrs([mem.cstr("prog"), mem.cstr(long_arg)])
    assert call(Decoder("x86_64"), mem, "execve", (path, argv2, 0), 0).argv == ["prog", long_arg]


def test_execve_failure_and_bad_arrays(x86: Decoder, mem: Mem) -> None:
    path = mem.cstr("/nonexistent")
    d = call(x86, mem, "execve", (path, 0xBAD0000, 0xBAD1000), -2)
    assert line(d) == (
        'execve("/nonexistent", 0xbad0000, 0xbad1000) = -1 ENOENT (No such file or directory)'
    )
    assert d.argv is None
    dirfd_call = call(x86, mem, "execveat", (AT_FDCWD, path, 0, 0, 0x1000), -2)
    assert dirfd_call.args == 'AT_FDCWD, "/nonexistent", NULL, NULL, AT_EMPTY_PATH'


def test_clone_x86_and_aarch64_argument_order(x86: Decoder, arm: Decoder, mem: Mem) -> None:
    flags = 0x1200000 | 17  # CHILD_CLEARTID|CHILD_SETTID|SIGCHLD
    assert line(call(x86, mem, "clone", (flags, 0, 0, 0x7F9507002A10, 0), 13439)) == (
        "clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, "
        "child_tidptr=0x7f9507002a10) = 13439"
    )
    # aarch64 passes tls before child_tid.
    assert call(arm, mem, "clone", (flags, 0, 0, 0x1111, 0x7F9507002A10), 13439).args == (
        "child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, "
        "child_tidptr=0x7f9507002a10"
    )
    ptid = mem.put(struct.pack("<i", 1235))
    thread = 0x3D0F00  # VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID
    assert call(
        x86, mem, "clone", (thread, 0x7F00DEAD0000, ptid, 0x7F00BEEF0910, 0x7F00BEEF0640), 1235
    ).args == (
        "child_stack=0x7f00dead0000, flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|"
        "CLONE_THREAD|CLONE_SYSVSEM|CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID, "
        "parent_tid=[1235], tls=0x7f00beef0640, child_tidptr=0x7f00beef0910"
    )


def test_clone3(x86: Decoder, mem: Mem) -> None:
    ptid = mem.put(struct.pack("<i", 13442))
    args = struct.pack("<11Q", 0x100000, 0, 0, ptid, 17, 0, 0, 0, 0, 0, 0)
    ca = mem.put(args)
    assert line(call(x86, mem, "clone3", (ca, 88), 13442)) == (
        f"clone3({{flags=CLONE_PARENT_SETTID, parent_tid={ptid:#x}, exit_signal=SIGCHLD, "
        "stack=NULL, stack_size=0} => {parent_tid=[13442]}, 88) = 13442"
    )
    thread = struct.pack(
        "<11Q", 0x3D0F00, 0, 0x7F10, 0x7F10, 0, 0x7F0000, 0x7FFE00, 0x7F20, 0, 0, 0
    )
    assert call(x86, mem, "clone3", (mem.put(thread), 88), -11).args == (
        "{flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|"
        "CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID, child_tid=0x7f10, "
        "parent_tid=0x7f10, exit_signal=0, stack=0x7f0000, stack_size=0x7ffe00, tls=0x7f20}, 88"
    )


def test_fork_and_wait(x86: Decoder, mem: Mem) -> None:
    assert line(call(x86, mem, "vfork", (), 4107)) == "vfork() = 4107"
    assert line(call(x86, mem, "fork", (), 0)) == "fork() = 0"
    st = mem.put(struct.pack("<I", 3 << 8))
    assert line(call(x86, mem, "wait4", (13439, st, 0, 0), 13439)) == (
        "wait4(13439, [{WIFEXITED(s) && WEXITSTATUS(s) == 3}], 0, NULL) = 13439"
    )
    killed = mem.put(struct.pack("<I", 9))
    assert line(call(x86, mem, "wait4", (13440, killed, 0, 0), 13440)) == (
        "wait4(13440, [{WIFSIGNALED(s) && WTERMSIG(s) == SIGKILL}], 0, NULL) = 13440"
    )
    assert line(call(x86, mem, "wait4", (13440, 0x7FFD28E6E19C, 0x40000001, 0), 0)) == (
        "wait4(13440, 0x7ffd28e6e19c, WNOHANG|__WALL, NULL) = 0"
    )
    assert (
        line(call(x86, mem, "wait4", (0xFFFFFFFF, 0, 0, 0), 13441))
        == "wait4(-1, NULL, 0, NULL) = 13441"
    )
    core = mem.put(struct.pack("<I", 0x80 | 11))
    assert call(x86, mem, "wait4", (1, core, 0, 0), 1).args == (
        "1, [{WIFSIGNALED(s) && WTERMSIG(s) == SIGSEGV && WCOREDUMP(s)}], 0, NULL"
    )
    stopped = mem.put(struct.pack("<I", (4 << 16) | (5 << 8) | 0x7F))
    assert call(x86, mem, "wait4", (1, stopped, 0x40000000, 0), 1).args == (
        "1, [{WIFSTOPPED(s) && WSTOPSIG(s) == SIGTRAP}|PTRACE_EVENT_EXEC << 16], __WALL, NULL"
    )
    ru = mem.put(struct.pack("<qqqq", 0, 1000, 0, 2000) + b"\0" * 112)
    assert call(x86, mem, "wait4", (1, st, 0, ru), 1).args == (
        "1, [{WIFEXITED(s) && WEXITSTATUS(s) == 3}], 0, "
        "{ru_utime={tv_sec=0, tv_usec=1000}, ru_stime={tv_sec=0, tv_usec=2000}, ...}"
    )


def test_kill_family(x86: Decoder, mem: Mem) -> None:
    assert line(call(x86, mem, "kill", (13438, 0), 0)) == "kill(13438, 0) = 0"
    assert line(call(x86, mem, "kill", (13440, 9), None)) == "kill(13440, SIGKILL) = ?"
    assert (
        line(call(x86, mem, "kill", (0xFFFFFFFF, 99), -22))
        == "kill(-1, 99) = -1 EINVAL (Invalid argument)"
    )
    assert call(x86, mem, "kill", (1, 34), 0).args == "1, SIGRT_2"
    assert call(x86, mem, "kill", (1, 64), 0).args == "1, SIGRT_32"
    assert call(x86, mem, "kill", (1, 15), 0).args == "1, SIGTERM"
    assert (
        line(call(x86, mem, "tgkill", (13438, 13438, 6), 0)) == "tgkill(13438, 13438, SIGABRT) = 0"
    )
    assert (
        line(call(x86, mem, "tkill", (999999, 9), -3))
        == "tkill(999999, SIGKILL) = -1 ESRCH (No such process)"
    )


def sigset(*sigs: int) -> bytes:
    return struct.pack("<Q", sum(1 << (s - 1) for s in sigs))


def test_signal_masks_and_actions(x86: Decoder, mem: Mem) -> None:
    it = mem.put(sigset(2, 15))
    old = mem.put(sigset(2, 15))
    assert line(call(x86, mem, "rt_sigprocmask", (0, it, 0, 8), 0)) == (
        "rt_sigprocmask(SIG_BLOCK, [INT TERM], NULL, 8) = 0"
    )
    assert line(call(x86, mem, "rt_sigprocmask", (1, it, old, 8), 0)) == (
        "rt_sigprocmask(SIG_UNBLOCK, [INT TERM], [INT TERM], 8) = 0"
    )
    most = mem.put(struct.pack("<Q", U64 & ~((1 << 31) | (1 << 32))))
    empty = mem.put(sigset())
    assert call(x86, mem, "rt_sigprocmask", (2, empty, most, 8), 0).args == (
        "SIG_SETMASK, [], ~[RTMIN RT_1], 8"
    )
    odd = mem.put(sigset(1, 29, 40, 64))
    assert call(x86, mem, "rt_sigprocmask", (5, odd, 0, 8), -22).args == (
        "0x5 /* SIG_??? */, [HUP IO RT_8 RT_32], NULL, 8"
    )
    assert (
        call(x86, mem, "rt_sigprocmask", (2, odd, 0, 16), -22).args
        == f"SIG_SETMASK, {odd:#x}, NULL, 16"
    )
    act = mem.put(struct.pack("<QQQ", 1, 0x14000000, 0x7F9507041050) + sigset())
    assert line(call(x86, mem, "rt_sigaction", (10, act, 0, 8), 0)) == (
        "rt_sigaction(SIGUSR1, {sa_handler=SIG_IGN, sa_mask=[], sa_flags=SA_RESTORER|SA_RESTART, "
        "sa_restorer=0x7f9507041050}, NULL, 8) = 0"
    )
    oldact = mem.put(struct.pack("<QQQ", 0, 0, 0) + sigset())
    assert line(call(x86, mem, "rt_sigaction", (2, 0, oldact, 8), 0)) == (
        "rt_sigaction(SIGINT, NULL, {sa_handler=SIG_DFL, sa_mask=[], sa_flags=0}, 8) = 0"
    )
    mask = struct.pack("<Q", U64 & ~((1 << 8) | (1 << 31) | (1 << 32)))
    wild = mem.put(
        struct.pack("<QQQ", 0x1234, 0xFFFFFFFFDC000007 & U64 | 0x08000000, 0x7FC1962C8050) + mask
    )
    assert call(x86, mem, "rt_sigaction", (17, wild, 0, 8), 0).args == (
        "SIGCHLD, {sa_handler=0x1234, sa_mask=~[KILL RTMIN RT_1], sa_flags=SA_RESTORER|SA_ONSTACK|"
        "SA_RESTART|SA_NODEFER|SA_RESETHAND|SA_SIGINFO|SA_NOCLDSTOP|SA_NOCLDWAIT|"
        "0xffffffff00000000, sa_restorer=0x7fc1962c8050}, NULL, 8"
    )


# ============================================================================================
# network
# ============================================================================================


def sin(port: int, addr: bytes) -> bytes:
    return struct.pack("<H", 2) + struct.pack(">H", port) + addr + b"\0" * 8


def sin6(port: int, addr: bytes, flow: int = 0, scope: int = 0) -> bytes:
    return struct.pack("<H", 10) + struct.pack(">HI", port, flow) + addr + struct.pack("<I", scope)


def test_socket(x86: Decoder, mem: Mem) -> None:
    cases = {
        (2, 1 | 0o2000000, 6): "socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_TCP) = 3",
        (2, 1, 0): "socket(AF_INET, SOCK_STREAM, IPPROTO_IP) = 3",
        (1, 2, 0): "socket(AF_UNIX, SOCK_DGRAM, 0) = 3",
        (10, 2, 17): "socket(AF_INET6, SOCK_DGRAM, IPPROTO_UDP) = 3",
        (10, 3, 58): "socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6) = 3",
        (
            16,
            3 | 0o2000000 | 0o4000,
            0,
        ): "socket(AF_NETLINK, SOCK_RAW|SOCK_CLOEXEC|SOCK_NONBLOCK, NETLINK_ROUTE) = 3",
        (17, 2, 0x300): "socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_ALL)) = 3",
        (1, 5, 0): "socket(AF_UNIX, SOCK_SEQPACKET, 0) = 3",
    }
    for args, text in cases.items():
        assert line(call(x86, mem, "socket", args, 3)) == text
    assert line(call(x86, mem, "socket", (77, 9, 5), -97)) == (
        "socket(0x4d /* AF_??? */, 0x9 /* SOCK_??? */, 5) = "
        "-1 EAFNOSUPPORT (Address family not supported by protocol)"
    )


def test_connect_bind_and_sockaddrs(x86: Decoder, mem: Mem) -> None:
    a = mem.put(sin(80, bytes([127, 0, 0, 1])))
    assert line(call(x86, mem, "connect", (3, a, 16), 0)) == (
        'connect(3, {sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("127.0.0.1")}, 16) = 0'
    )
    assert line(call(x86, mem, "bind", (8, a, 16), 0)) == (
        'bind(8, {sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("127.0.0.1")}, 16) = 0'
    )
    un = mem.put(struct.pack("<H", 1) + b"/run/x.sock".ljust(108, b"\0"))
    assert line(call(x86, mem, "connect", (17, un, 110), -2)) == (
        'connect(17, {sa_family=AF_UNIX, sun_path="/run/x.sock"}, 110) = -1 ENOENT (No such file or directory)'
    )
    abstract = mem.put(struct.pack("<H", 1) + b"\0abstract" + b"\0" * 99)
    assert line(call(x86, mem, "connect", (17, abstract, 11), -111)) == (
        'connect(17, {sa_family=AF_UNIX, sun_path=@"abstract"}, 11) = -1 ECONNREFUSED (Connection refused)'
    )
    lo6 = mem.put(sin6(443, bytes(15) + b"\x01"))
    assert line(call(x86, mem, "connect", (18, lo6, 28), 0)) == (
        "connect(18, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), "
        'inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, 28) = 0'
    )
    doc = mem.put(sin6(443, bytes.fromhex("20010db8000000000000000000000001"), flow=5, scope=2))
    x = mem.put(b"x")
    assert line(call(x86, mem, "sendto", (18, x, 1, 0, doc, 28), 1)) == (
        'sendto(18, "x", 1, 0, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(5), '
        'inet_pton(AF_INET6, "2001:db8::1", &sin6_addr), sin6_scope_id=2}, 28) = 1'
    )
    nl = mem.put(struct.pack("<HHII", 16, 0, 0, 0))
    assert (
        call(x86, mem, "bind", (3, nl, 12), 0).args
        == "3, {sa_family=AF_NETLINK, nl_pid=0, nl_groups=00000000}, 12"
    )
    assert call(x86, mem, "connect", (3, 0xBAD000, 16), -14).args == "3, 0xbad000, 16"


def test_accept_getsockname_recvfrom(x86: Decoder, mem: Mem) -> None:
    addr = mem.put(sin(50354, bytes([127, 0, 0, 1])))
    alen = mem.put(struct.pack("<I", 16))
    assert line(call(x86, mem, "accept4", (8, addr, alen, 0o2000000 | 0o4000), 16)) == (
        'accept4(8, {sa_family=AF_INET, sin_port=htons(50354), sin_addr=inet_addr("127.0.0.1")}, '
        "[16], SOCK_CLOEXEC|SOCK_NONBLOCK) = 16"
    )
    assert line(call(x86, mem, "getsockname", (8, addr, alen), 0)) == (
        'getsockname(8, {sa_family=AF_INET, sin_port=htons(50354), sin_addr=inet_addr("127.0.0.1")}, [16]) = 0'
    )
    assert line(call(x86, mem, "accept", (3, 0, 0), 4)) == "accept(3, NULL, NULL) = 4"
    assert line(call(x86, mem, "accept4", (3, addr, alen, 0), -11)) == (
        f"accept4(3, {addr:#x}, [16], 0) = -1 EAGAIN (Resource temporarily unavailable)"
    )


def test_recvfrom_length_changes(x86: Decoder, mem: Mem) -> None:
    class Shrinking(Mem):
        """The kernel writes 0 into *addrlen between entry and exit."""

    m = Shrinking()
    buf = m.put(b"ping" + bytes(252))
    addr = m.put(bytes(16))
    alen = m.put(struct.pack("<I", 16))
    nr = number_of("recvfrom", "x86_64")
    args = args6(16, buf, 256, 0x40, addr, alen)
    entry = x86.capture_entry(nr, args, PID, m)
    m.regions[alen] = struct.pack("<I", 0)
    exit_ = x86.capture_exit(nr, args, 4, PID, m)
    assert line(x86.format(nr, args, 4, entry, exit_)) == (
        f'recvfrom(16, "ping", 256, MSG_DONTWAIT, {addr:#x}, [16 => 0]) = 4'
    )
    ping = mem.put(b"ping")
    assert line(call(x86, mem, "sendto", (15, ping, 4, 0x4000, 0, 0), 4)) == (
        'sendto(15, "ping", 4, MSG_NOSIGNAL, NULL, 0) = 4'
    )


def msghdr(
    name: int, namelen: int, iov: int, iovlen: int, controllen: int = 0, flags: int = 0
) -> bytes:
    return struct.pack("<QI4xQQQQi4x", name, namelen, iov, iovlen, 0, controllen, flags)


def test_sendmsg_recvmsg(x86: Decoder, mem: Mem) -> None:
    pong = mem.put(b"pong")
    iov = mem.put(struct.pack("<QQ", pong, 4))
    hdr = mem.put(msghdr(0, 0, iov, 1))
    assert line(call(x86, mem, "sendmsg", (16, hdr, 0), 4)) == (
        'sendmsg(16, {msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base="pong", iov_len=4}], '
        "msg_iovlen=1, msg_controllen=0, msg_flags=0}, 0) = 4"
    )
    rbuf = mem.put(b"pong" + bytes(60))
    riov = mem.put(struct.pack("<QQ", rbuf, 64))
    rhdr = mem.put(msghdr(0, 0, riov, 1))
    assert line(call(x86, mem, "recvmsg", (15, rhdr, 0x40), 4)) == (
        'recvmsg(15, {msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base="pong", iov_len=64}], '
        "msg_iovlen=1, msg_controllen=0, msg_flags=0}, MSG_DONTWAIT) = 4"
    )
    name = mem.put(sin(53, bytes([10, 0, 0, 1])))
    nhdr = mem.put(msghdr(name, 16, iov, 1, controllen=32, flags=0x20))
    text = call(x86, mem, "recvmsg", (3, nhdr, 0), 4).args
    assert (
        'msg_name={sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.0.0.1")}' in text
    )
    assert "msg_controllen=32" in text and "msg_flags=MSG_TRUNC" in text
    assert line(call(x86, mem, "recvmsg", (3, rhdr, 0), -11)).startswith(
        f"recvmsg(3, {rhdr:#x}, 0) = -1 EAGAIN"
    )


def test_sockopts_listen_shutdown(x86: Decoder, mem: Mem) -> None:
    one = mem.put(struct.pack("<i", 1))
    assert (
        line(call(x86, mem, "setsockopt", (8, 1, 2, one, 4), 0))
        == "setsockopt(8, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0"
    )
    assert (
        line(call(x86, mem, "setsockopt", (15, 6, 1, one, 4), 0))
        == "setsockopt(15, SOL_TCP, TCP_NODELAY, [1], 4) = 0"
    )
    val = mem.put(struct.pack("<i", 131072))
    vlen = mem.put(struct.pack("<I", 4))
    assert line(call(x86, mem, "getsockopt", (15, 1, 8, val, vlen), 0)) == (
        "getsockopt(15, SOL_SOCKET, SO_RCVBUF, [131072], [4]) = 0"
    )
    linger = mem.put(struct.pack("<ii", 1, 0))
    assert (
        call(x86, mem, "setsockopt", (3, 1, 13, linger, 8), 0).args
        == "3, SOL_SOCKET, SO_LINGER, {l_onoff=1, l_linger=0}, 8"
    )
    assert line(call(x86, mem, "listen", (8, 128), 0)) == "listen(8, 128) = 0"
    assert line(call(x86, mem, "shutdown", (15, 1), 0)) == "shutdown(15, SHUT_WR) = 0"


# ============================================================================================
# misc decoders, -y, hot path
# ============================================================================================


def test_misc_common_calls(x86: Decoder, mem: Mem) -> None:
    rl = mem.put(struct.pack("<QQ", 8192 * 1024, U64))
    assert line(call(x86, mem, "prlimit64", (0, 3, 0, rl), 0)) == (
        "prlimit64(0, RLIMIT_STACK, NULL, {rlim_cur=8192*1024, rlim_max=RLIM64_INFINITY}) = 0"
    )
    rnd = mem.put(bytes.fromhex("edc3f100cb7d1332"))
    assert line(call(x86, mem, "getrandom", (rnd, 8, 1), 8)) == (
        'getrandom("\\xed\\xc3\\xf1\\x00\\xcb\\x7d\\x13\\x32", 8, GRND_NONBLOCK) = 8'
    )
    assert (
        line(call(x86, mem, "arch_prctl", (0x1002, 0x7FF3B4476740), 0))
        == "arch_prctl(ARCH_SET_FS, 0x7ff3b4476740) = 0"
    )
    assert (
        line(call(x86, mem, "set_robust_list", (0x7FF3B4476A20, 24), 0))
        == "set_robust_list(0x7ff3b4476a20, 24) = 0"
    )
    assert line(call(x86, mem, "rseq", (0x7FF3B4477060, 0x20, 0, 0x53053053), 0)) == (
        "rseq(0x7ff3b4477060, 0x20, 0, 0x53053053) = 0"
    )
    assert (
        line(call(x86, mem, "set_tid_address", (0x7FF3B4476A10,), 4106))
        == "set_tid_address(0x7ff3b4476a10) = 4106"
    )
    assert (
        line(call(x86, mem, "futex", (0x7F0000001000, 129, 1), 0))
        == "futex(0x7f0000001000, FUTEX_WAKE_PRIVATE, 1) = 0"
    )
    assert call(x86, mem, "futex", (0x7F0000001000, 393, 0, 0, 0, 0xFFFFFFFF), 0).args == (
        "0x7f0000001000, FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME, 0, NULL, FUTEX_BITSET_MATCH_ANY"
    )
    ts = mem.put(struct.pack("<qq", 1234, 5678))
    assert line(call(x86, mem, "clock_gettime", (1, ts), 0)) == (
        "clock_gettime(CLOCK_MONOTONIC, {tv_sec=1234, tv_nsec=5678}) = 0"
    )
    uts = mem.put(b"Linux".ljust(65, b"\0") + b"vm".ljust(65, b"\0") + bytes(260))
    assert (
        line(call(x86, mem, "uname", (uts,), 0))
        == 'uname({sysname="Linux", nodename="vm", ...}) = 0'
    )
    pfd = mem.put(struct.pack("<ihh", 3, 1, 0))
    assert (
        line(call(x86, mem, "poll", (pfd, 1, 5000), 1))
        == "poll([{fd=3, events=POLLIN}], 1, 5000) = 1"
    )


def test_every_syscall_has_a_signature() -> None:
    from sysspan.collector.decode import SIGNATURES

    for arch in ("x86_64", "aarch64"):
        missing = sorted(set(table(arch).values()) - set(SIGNATURES))
        assert not missing, (arch, missing)


def test_decode_fds(mem: Mem) -> None:
    links = {3: "/etc/hostname", 4: "/etc/passwd", -100: "/tmp/dec", 12: "/tmp/dec/#123 (deleted)"}
    asked: list[tuple[int, int]] = []

    def fd_path(pid: int, fd: int) -> str | None:
        asked.append((pid, fd))
        return links.get(fd)

    dec = Decoder("x86_64", decode_fds=True, fd_path=fd_path)
    buf = mem.put(b"vm\n" + bytes(10))
    d = call(dec, mem, "read", (3, buf, 4), 3)
    assert line(d) == 'read(3</etc/hostname>, "vm\\n", 4) = 3'
    assert d.path == "/etc/hostname"
    p = mem.cstr("/etc/passwd")
    assert line(call(dec, mem, "openat", (AT_FDCWD, p, 0), 4)) == (
        'openat(AT_FDCWD</tmp/dec>, "/etc/passwd", O_RDONLY) = 4</etc/passwd>'
    )
    assert (
        call(dec, mem, "openat", (AT_FDCWD, p, 0o20200002, 0o600), 12).ret
        == "12</tmp/dec/#123>(deleted)"
    )
    assert call(dec, mem, "close", (99,), 0).args == "99"  # unknown fd: plain number
    assert call(dec, mem, "fcntl", (3, 1030, 20), 4).ret == "4</etc/passwd>"
    assert call(dec, mem, "fcntl", (3, 3), 4).ret == "0x4 (flags O_RDONLY|0x4)"
    assert (PID, 3) in asked
    plain = Decoder("x86_64")
    assert plain.capture_entry(number_of("read", "x86_64"), args6(3, buf, 4), PID, mem) is None


def test_hot_path_returns_none_when_nothing_to_read(x86: Decoder) -> None:
    class Exploding:
        def read(self, pid: int, addr: int, size: int) -> bytes:
            raise AssertionError("must not read")

        def read_cstr(self, pid: int, addr: int, limit: int) -> bytes | None:
            raise AssertionError("must not read")

    boom = Exploding()
    for name in ("close", "getpid", "mmap", "munmap", "brk", "read", "fstat", "dup2", "lseek"):
        nr = number_of(name, "x86_64")
        assert x86.capture_entry(nr, args6(3, 0x1000, 10), PID, boom) is None, name
    for name in ("close", "write", "openat", "mmap", "exit_group"):
        nr = number_of(name, "x86_64")
        assert x86.capture_exit(nr, args6(3, 0x1000, 10), 0, PID, boom) is None, name
    # Failed calls never read outputs.
    for name in ("read", "fstat", "newfstatat", "pipe2", "wait4", "recvfrom"):
        nr = number_of(name, "x86_64")
        assert (
            x86.capture_exit(nr, args6(3, 0x1000, 0x2000, 0, 0x3000, 0x4000), -14, PID, boom)
            is None
        )
    # Numbers outside the table are cheap too.
    assert x86.capture_entry(100000, args6(), PID, boom) is None
    assert x86.capture_entry(-1, args6(), PID, boom) is None
    assert x86.capture_exit(100000, args6(), 0, PID, boom) is None


def test_reader_exceptions_degrade_to_addresses(x86: Decoder) -> None:
    class Broken:
        def read(self, pid: int, addr: int, size: int) -> bytes:
            raise OSError("process vanished")

        def read_cstr(self, pid: int, addr: int, limit: int) -> bytes | None:
            raise OSError("process vanished")

    nr = number_of("openat", "x86_64")
    args = args6(AT_FDCWD, 0x7000, 0)
    entry = x86.capture_entry(nr, args, PID, Broken())
    assert x86.format(nr, args, 3, entry, None).args == "AT_FDCWD, 0x7000, O_RDONLY"


# ============================================================================================
# fuzzing: format never raises
# ============================================================================================

_DECODERS = {
    ("x86_64", 32, False): Decoder("x86_64"),
    ("aarch64", 32, False): Decoder("aarch64"),
    ("x86_64", 3, True): Decoder(
        "x86_64", strsize=3, decode_fds=True, fd_path=lambda p, f: f"/fd/{f}"
    ),
    ("aarch64", 0, True): Decoder("aarch64", strsize=0, decode_fds=True, fd_path=lambda p, f: None),
}

_u64 = st.integers(min_value=0, max_value=U64)
_small = st.integers(min_value=0, max_value=4096)
_arg = st.one_of(
    _u64, _small, st.sampled_from([0, 0x10000, 0x10100, 0x10200, AT_FDCWD, 0xFFFFFFFF])
)


class RandomMem:
    """A reader whose memory at the few interesting addresses is random bytes."""

    def __init__(self, blobs: list[bytes]) -> None:
        self.blobs = blobs

    def _blob(self, addr: int) -> bytes:
        return self.blobs[(addr >> 8) % len(self.blobs)] if self.blobs else b""

    def read(self, pid: int, addr: int, size: int) -> bytes:
        return self._blob(addr)[: max(size, 0)]

    def read_cstr(self, pid: int, addr: int, limit: int) -> bytes | None:
        blob = self._blob(addr)
        if not blob:
            return None
        return blob.split(b"\0", 1)[0][:limit]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    key=st.sampled_from(sorted(_DECODERS)),
    nr=st.one_of(
        st.integers(min_value=0, max_value=460), st.integers(min_value=-5, max_value=1 << 40)
    ),
    args=st.tuples(_arg, _arg, _arg, _arg, _arg, _arg),
    rval=st.one_of(
        st.none(),
        st.integers(min_value=-4200, max_value=1 << 48),
        st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1),
    ),
    blobs=st.lists(st.binary(max_size=300), max_size=4),
)
def test_fuzz_capture_and_format_never_raise(
    key: tuple[str, int, bool], nr: int, args: tuple[int, ...], rval: int | None, blobs: list[bytes]
) -> None:
    dec = _DECODERS[key]
    reader = RandomMem(blobs)
    entry = dec.capture_entry(nr, args, PID, reader)
    exit_ = dec.capture_exit(nr, args, rval, PID, reader) if rval is not None else None
    pickle.dumps((entry, exit_))
    d = dec.format(nr, args, rval, entry, exit_)
    assert isinstance(d, Decoded)
    assert isinstance(d.name, str) and isinstance(d.args, str) and isinstance(d.ret, str)
    assert d.error is None or isinstance(d.error, str)
    assert d.path is None or isinstance(d.path, str)
    assert d.argv is None or all(isinstance(a, str) for a in d.argv)
    if rval is None:
        assert d.ret == "?"


_garbage = st.recursive(
    st.one_of(st.none(), st.integers(), st.binary(max_size=64), st.text(max_size=8), st.booleans()),
    lambda inner: st.tuples(inner, inner) | st.lists(inner, max_size=12).map(tuple),
    max_leaves=20,
)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(
    nr=st.integers(min_value=0, max_value=460),
    args=st.tuples(_arg, _arg, _arg, _arg, _arg, _arg),
    rval=st.one_of(st.none(), st.integers(min_value=-600, max_value=1 << 40)),
    entry=_garbage,
    exit_=_garbage,
)
def test_fuzz_format_survives_garbage_captures(
    nr: int, args: tuple[int, ...], rval: int | None, entry: object, exit_: object
) -> None:
    for dec in (_DECODERS[("x86_64", 32, False)], _DECODERS[("aarch64", 0, True)]):
        d = dec.format(nr, args, rval, entry, exit_)
        assert isinstance(d, Decoded) and isinstance(d.args, str)
