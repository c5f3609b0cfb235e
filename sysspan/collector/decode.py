"""strace-style decoding of system call arguments and return values.

Why two phases: reading tracee memory must happen while the tracee is stopped (at syscall entry
for inputs, at exit for outputs), and that is the tracer's hot path. Turning what was read into
text can happen later, off the hot path, even in another thread. So the decoder:

- ``capture_entry`` / ``capture_exit``: a list lookup by syscall number; ``None`` when nothing
  needs reading (the common case), else a tuple of plain bytes/ints read through the tracer's
  ``MemoryReader``. Outputs are read only when the call succeeded.
- ``format``: a pure function of the raw registers, the return value and the captured tuples,
  producing strace's text (``openat(AT_FDCWD, "/etc/passwd", O_RDONLY|O_CLOEXEC) = 3``). It
  never raises: anything malformed degrades to strace's raw hex rendering.

Each syscall is described by a signature (a list of argument printers, see ``SIGNATURES``),
compiled once per architecture into per-number capture functions.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

from sysspan.collector import constants as C
from sysspan.collector.syscalls import ARCHES, table
from sysspan.errors import ConfigError

PATH_MAX = 4096
#: Longest single argv string the kernel accepts (MAX_ARG_STRLEN).
ARG_STRLEN_MAX = 131072
#: Upper bounds so a corrupt argv/envp array cannot make the tracer read forever.
ARGV_MAX_ITEMS = 65536
ARGV_MAX_BYTES = 4 * 1024 * 1024
ENVP_MAX_ITEMS = 1 << 20
#: Most elements read from an iovec / pollfd array.
ARRAY_MAX_ITEMS = 1024
SOCKADDR_MAX = 128
_U64 = (1 << 64) - 1
_U32 = (1 << 32) - 1
NUL = b"\0"


class MemoryReader(Protocol):
    """How the decoder reads tracee memory; implemented by the tracer (and by tests)."""

    def read(self, pid: int, addr: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``addr``; fewer (or b"") when memory faults."""
        ...

    def read_cstr(self, pid: int, addr: int, limit: int) -> bytes | None:
        """Bytes up to (not including) the first NUL, at most ``limit``; None on fault."""
        ...


class Decoded(NamedTuple):
    """One syscall rendered the way strace prints it, plus the facts spans need."""

    name: str
    args: str
    ret: str
    error: str | None
    path: str | None
    argv: list[str] | None


# ============================================================================================
# small formatting helpers
# ============================================================================================


def _i32(v: int) -> int:
    v &= _U32
    return v - (1 << 32) if v & 0x80000000 else v


def _s64(v: int) -> int:
    v &= _U64
    return v - (1 << 64) if v & (1 << 63) else v


def _hex(v: int) -> str:
    return "0" if v == 0 else f"{v:#x}"


def _ptr(v: int) -> str:
    return "NULL" if v == 0 else f"{v & _U64:#x}"


def _oct(v: int) -> str:
    """C's ``%#03o``: 0644, 000, 04755."""
    return ("0" + format(v, "o") if v else "0").rjust(3, "0")


def _flags(v: int, table_: C.Flags, zero: str = "0", unknown: str | None = None) -> str:
    """strace's printflags: names in table order, each consuming its bits, then leftover hex."""
    if v == 0:
        return zero
    names = []
    rest = v
    for value, name in table_:
        if value and rest & value == value:
            names.append(name)
            rest &= ~value
    if rest:
        if not names and unknown:
            return f"{rest:#x} /* {unknown} */"
        names.append(f"{rest:#x}")
    return "|".join(names)


def _enum(v: int, table_: dict[int, str], unknown: str) -> str:
    name = table_.get(v)
    if name is not None:
        return name
    return f"{v & _U64:#x} /* {unknown} */"


def _signame(sig: int) -> str:
    """``SIGTERM``, ``SIGRT_2``; decimal for numbers that are no signal (``0``, ``99``)."""
    name = C.SIGNALS.get(sig)
    if name is not None:
        return name
    if C.SIGRTMIN < sig <= C.NSIG:
        return f"SIGRT_{sig - C.SIGRTMIN}"
    return str(sig)


def _sigset_name(sig: int) -> str:
    if sig == C.SIGRTMIN:
        return "RTMIN"
    if sig > C.SIGRTMIN:
        return f"RT_{sig - C.SIGRTMIN}"
    return C.SIGNALS[sig][3:]


def _sigset(data: bytes) -> str:
    """``[INT TERM]``, or ``~[...]`` listing the unset signals when most are set."""
    bits = int.from_bytes(data[: C.SIGSET_SIZE].ljust(C.SIGSET_SIZE, b"\0"), "little")
    nbits = len(data[: C.SIGSET_SIZE]) * 8
    prefix = ""
    if bin(bits).count("1") > nbits // 2:
        prefix = "~"
        bits = ~bits & ((1 << nbits) - 1)
    names = [_sigset_name(i + 1) for i in range(nbits) if bits >> i & 1]
    return prefix + "[" + " ".join(names) + "]"


def _build_quote_tables() -> tuple[list[str], list[str]]:
    short, long = [], []
    special = {0x22: '\\"', 0x5C: "\\\\", 0x0C: "\\f", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t",
               0x0B: "\\v"}  # fmt: skip
    for c in range(256):
        if c in special:
            short.append(special[c])
            long.append(special[c])
        elif 0x20 <= c <= 0x7E:
            short.append(chr(c))
            long.append(chr(c))
        else:
            short.append(f"\\{c:o}")
            long.append(f"\\{c:03o}")
    return short, long


_Q_SHORT, _Q_LONG = _build_quote_tables()
_OCTAL_DIGITS = frozenset(b"01234567")
_PLAIN = frozenset(range(0x20, 0x7F)) - {0x22, 0x5C}


def quote(data: bytes) -> str:
    """Quote bytes the way strace does: C escapes, octal for other non-printables."""
    if _PLAIN.issuperset(data):
        return '"' + data.decode("ascii") + '"'
    out = []
    last = len(data) - 1
    for i, c in enumerate(data):
        if c in _PLAIN:
            out.append(chr(c))
        elif i < last and data[i + 1] in _OCTAL_DIGITS:
            out.append(_Q_LONG[c])
        else:
            out.append(_Q_SHORT[c])
    return '"' + "".join(out) + '"'


def quote_hex(data: bytes) -> str:
    """Quote with every byte as ``\\xNN`` (strace does this for random bytes)."""
    return '"' + "".join(f"\\x{c:02x}" for c in data) + '"'


def _text(data: bytes) -> str:
    return data.decode("utf-8", "backslashreplace")


# ============================================================================================
# errno / return values
# ============================================================================================


def errno_name(err: int) -> str:
    """Symbolic errno name (``ENOENT``) as strace prints it; ``E<n>`` when unknown."""
    name = C.ERRNO_PREFERRED.get(err) or C.KERNEL_ERRNOS.get(err) or errno.errorcode.get(err)
    return name or f"E{err}"


def format_error(err: int) -> tuple[str, str]:
    """(return text, errno name) for a failed call returning ``-err``."""
    name = errno_name(err)
    restart = C.RESTART_TEXT.get(err)
    if restart is not None:
        return f"? {name} ({restart})", name
    if err not in errno.errorcode and err not in C.KERNEL_ERRNOS:
        return f"-1 (errno {err})", name
    return f"-1 {name} ({os.strerror(err)})", name


def is_error(rval: int) -> bool:
    """True when a raw syscall return value encodes ``-errno`` (the kernel's -4095..-1)."""
    return -4096 < rval < 0


# ============================================================================================
# reading helpers used by captures (tolerant: never raise on short reads)
# ============================================================================================


def _read_exact(reader: MemoryReader, pid: int, addr: int, size: int) -> bytes | None:
    if addr == 0 or size < 0:
        return None
    if size == 0:
        return b""
    data = reader.read(pid, addr, size)
    if data is None or len(data) < size:
        return None
    return bytes(data[:size])


def _read_u32(reader: MemoryReader, pid: int, addr: int) -> int | None:
    data = _read_exact(reader, pid, addr, 4)
    return None if data is None else int.from_bytes(data, "little")


def _read_ptr_array(
    reader: MemoryReader, pid: int, addr: int, max_items: int
) -> tuple[list[int], bool] | None:
    """Pointers up to the terminating NULL: (pointers, complete). None if unreadable."""
    ptrs: list[int] = []
    chunk = 64
    while len(ptrs) < max_items:
        data = reader.read(pid, addr, chunk * 8)
        if not data or len(data) < 8:
            return (ptrs, False) if ptrs else None
        n = len(data) // 8
        for (p,) in struct.iter_unpack("<Q", data[: n * 8]):
            if p == 0:
                return ptrs, True
            ptrs.append(p)
            if len(ptrs) >= max_items:
                return ptrs, False
        addr += n * 8
    return ptrs, False


def _count_ptr_array(reader: MemoryReader, pid: int, addr: int) -> int | None:
    """Number of pointers before the NULL terminator, without reading what they point to."""
    count = 0
    while count < ENVP_MAX_ITEMS:
        data = reader.read(pid, addr, 512)
        if not data or len(data) < 8:
            return None
        n = len(data) // 8
        raw = data[: n * 8]
        # Find the first 8-byte-aligned zero word.
        for i in range(n):
            if raw[i * 8 : i * 8 + 8] == b"\0\0\0\0\0\0\0\0":
                return count + i
        count += n
        addr += n * 8
    return None


# ============================================================================================
# argument printers ("kinds")
# ============================================================================================


class _Ctx:
    """What a printer may look at while rendering one syscall."""

    __slots__ = ("dec", "args", "rval", "ok", "path", "argv", "fdlinks")

    def __init__(self, dec: Decoder, args: Sequence[int], rval: int | None) -> None:
        self.dec = dec
        self.args = args
        self.rval = rval
        self.ok = rval is not None and not is_error(rval)
        self.path: str | None = None
        self.argv: list[str] | None = None
        self.fdlinks: dict[int, str] = {}


EntryCap = Callable[["Decoder", Sequence[int], int, int, MemoryReader], Any]
ExitCap = Callable[["Decoder", Sequence[int], int, int, int, MemoryReader], Any]


class Kind:
    """Prints one argument (or, with ``width`` > 1, a run of arguments).

    ``entry``/``exit`` read memory at syscall entry/exit; ``render`` turns the register value
    and what was read into text (None to omit the argument, as strace does for unused ones).
    """

    width = 1
    fd_like = False

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        raise NotImplementedError

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        raise NotImplementedError

    has_entry = False
    has_exit = False

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        raise NotImplementedError


class _Simple(Kind):
    def __init__(self, fn: Callable[[int], str]) -> None:
        self.fn = fn

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        return self.fn(c.args[i])


class _ArchFlags(Kind):
    """Flags whose table depends on the architecture (PROT_*, MAP_*, O_*)."""

    def __init__(self, tables: dict[str, C.Flags], zero: str = "0") -> None:
        self.tables = tables
        self.zero = zero

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        return _flags(c.args[i] & _U32, self.tables[c.dec.arch], self.zero)


class _Fd(Kind):
    fd_like = True
    has_entry = True  # only compiled in when decoding fds (-y)

    def __init__(self, dirfd: bool = False) -> None:
        self.dirfd = dirfd

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        return d.fd_path(pid, _i32(args[i]))

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        fd = _i32(c.args[i])
        text = "AT_FDCWD" if self.dirfd and fd == C.AT_FDCWD else str(fd)
        if isinstance(ev, str):
            c.fdlinks.setdefault(i, ev)
        return _with_link(text, ev)


class _Path(Kind):
    """A NUL-terminated path read at entry; never cut by -s."""

    has_entry = True

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        addr = args[i]
        return None if addr == 0 else r.read_cstr(pid, addr, PATH_MAX)

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        if not isinstance(ev, bytes):
            return _ptr(c.args[i])
        if c.path is None:
            c.path = _text(ev)
        return quote(ev) + ("..." if len(ev) >= PATH_MAX else "")


class _OutPath(Kind):
    """A NUL-terminated path the kernel wrote (getcwd), read at exit."""

    has_exit = True

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        return r.read_cstr(pid, args[i], PATH_MAX) if args[i] else None

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        return quote(xv) if isinstance(xv, bytes) else _ptr(c.args[i])


class _CStr(Kind):
    """A short NUL-terminated string (names, keys) shown with -s truncation."""

    has_entry = True

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        return r.read_cstr(pid, args[i], d.strsize + 1) if args[i] else None

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        if not isinstance(ev, bytes):
            return _ptr(c.args[i])
        return c.dec.show_str(ev, len(ev))


class _Buf(Kind):
    """A data buffer: input (read at entry, length from arg ``n``) or output (at exit, ``rval``)."""

    def __init__(self, n: int, output: bool, as_hex: bool = False) -> None:
        self.n = n
        self.output = output
        self.as_hex = as_hex
        self.has_entry = not output
        self.has_exit = output

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        if not d.capture_data:
            return None
        return _read_exact(r, pid, args[i], min(args[self.n], d.strsize))

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        if not d.capture_data:
            return None
        return _read_exact(r, pid, args[i], min(rval, args[self.n], d.strsize))

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        data = xv if self.output else ev
        if not isinstance(data, bytes):
            return _ptr(c.args[i])
        total = (c.rval or 0) if self.output else c.args[self.n]
        if self.as_hex:
            return quote_hex(data[: c.dec.strsize]) + ("..." if total > c.dec.strsize else "")
        return c.dec.show_str(data, total)


class _ReadlinkBuf(_Buf):
    def __init__(self) -> None:
        super().__init__(n=2, output=True)

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        return _read_exact(r, pid, args[i], min(rval, d.strsize))


class _Iov(Kind):
    """``[{iov_base="..", iov_len=N}, ...]``: writev at entry, readv at exit (data up to rval)."""

    def __init__(self, n: int, output: bool) -> None:
        self.n = n
        self.output = output
        self.has_entry = not output
        self.has_exit = output

    def _capture(self, d: Decoder, addr: int, count: int, limit: int, pid: int, r: MemoryReader):
        count = min(count, ARRAY_MAX_ITEMS, d.strsize + 1)
        raw = _read_exact(r, pid, addr, count * 16)
        if raw is None:
            return None
        items = []
        remaining = limit
        for base, length in struct.iter_unpack("<QQ", raw):
            shown = min(length, remaining)
            remaining -= shown
            data = _read_exact(r, pid, base, min(shown, d.strsize)) if d.capture_data else None
            items.append((base, length, data, shown))
        return tuple(items)

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        return self._capture(d, args[i], _i32(args[self.n]), _U64, pid, r)

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        return self._capture(d, args[i], _i32(args[self.n]), rval, pid, r)

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        items = xv if self.output else ev
        if not isinstance(items, tuple):
            return _ptr(c.args[i])
        return c.dec.show_iov(items, _i32(c.args[self.n]))


class _Stat(Kind):
    """``struct stat`` (layout differs between x86_64 and aarch64), read at exit."""

    has_exit = True

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        return _read_exact(r, pid, args[i], d.stat_layout[0])

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        if not isinstance(xv, bytes) or len(xv) < c.dec.stat_layout[0]:
            return _ptr(c.args[i])
        _, mode_off, rdev_off, size_off = c.dec.stat_layout
        (mode,) = struct.unpack_from("<I", xv, mode_off)
        return _stat_text("st_", mode, struct.unpack_from("<q", xv, size_off)[0],
                          struct.unpack_from("<Q", xv, rdev_off)[0])  # fmt: skip


def _mode_text(mode: int) -> str:
    parts = []
    ftype = mode & C.S_IFMT
    if ftype:
        parts.append(C.S_IFMT_NAMES.get(ftype, f"{ftype:#o}"))
    for bit, name in ((C.S_ISUID, "S_ISUID"), (C.S_ISGID, "S_ISGID"), (C.S_ISVTX, "S_ISVTX")):
        if mode & bit:
            parts.append(name)
    parts.append(_oct(mode & 0o777))
    return "|".join(parts)


def _makedev(dev: int) -> str:
    major = ((dev >> 8) & 0xFFF) | ((dev >> 32) & ~0xFFF)
    minor = (dev & 0xFF) | ((dev >> 12) & ~0xFF)
    return f"makedev({major:#x}, {minor:#x})"


def _stat_text(prefix: str, mode: int, size: int, rdev: int) -> str:
    ftype = mode & C.S_IFMT
    is_dev = ftype in (0o020000, 0o060000)
    second = f"{prefix}rdev={_makedev(rdev)}" if is_dev else f"{prefix}size={size}"
    return f"{{{prefix}mode={_mode_text(mode)}, {second}, ...}}"


class _Statx(Kind):
    has_exit = True

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        return _read_exact(r, pid, args[i], 144)

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        if not isinstance(xv, bytes) or len(xv) < 144:
            return _ptr(c.args[i])
        mask, attrs = struct.unpack_from("<I", xv, 0)[0], struct.unpack_from("<Q", xv, 8)[0]
        mode = struct.unpack_from("<H", xv, 28)[0]
        size = struct.unpack_from("<Q", xv, 40)[0]
        ftype = mode & C.S_IFMT
        if ftype in (0o020000, 0o060000):
            major, minor = struct.unpack_from("<II", xv, 128)
            tail = f"stx_rdev_major={major}, stx_rdev_minor={minor}"
        else:
            tail = f"stx_size={size}"
        return (
            f"{{stx_mask={_flags(mask, C.STATX_MASK)}, "
            f"stx_attributes={_flags(attrs, C.STATX_ATTRS)}, "
            f"stx_mode={_mode_text(mode)}, {tail}, ...}}"
        )


class _StatxFlags(Kind):
    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        v = c.args[i] & _U32
        sync = v & 0x6000
        name = C.AT_STATX_SYNC_TYPES.get(sync, f"{sync:#x}")
        rest = v & ~0x6000
        return name if not rest else name + "|" + _flags(rest, C.AT_FLAGS)


class _IntPair(Kind):
    """``[3, 4]`` (pipe, pipe2, socketpair), read at exit (with -y: plus both fds' paths)."""

    has_exit = True

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        data = _read_exact(r, pid, args[i], 8)
        if data is None or not d.decode_fds:
            return data
        a, b = struct.unpack("<ii", data)
        return data, d.fd_path(pid, a), d.fd_path(pid, b)

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        links: tuple[Any, ...] = (None, None)
        if isinstance(xv, tuple) and len(xv) == 3:
            xv, links = xv[0], xv[1:]
        if not isinstance(xv, bytes) or len(xv) < 8:
            return _ptr(c.args[i])
        a, b = struct.unpack("<ii", xv[:8])
        return f"[{_with_link(str(a), links[0])}, {_with_link(str(b), links[1])}]"


def _with_link(text: str, link: object) -> str:
    """strace -y: ``3</etc/passwd>``; a deleted file keeps its marker outside: ``<..>(deleted)``."""
    if not isinstance(link, str):
        return text
    if link.endswith(" (deleted)"):
        return f"{text}<{link[:-10]}>(deleted)"
    return f"{text}<{link}>"


class _IntPtr(Kind):
    """``[N]``: an int the call reads (entry) or writes (exit)."""

    def __init__(self, output: bool) -> None:
        self.output = output
        self.has_entry = not output
        self.has_exit = output

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        return _read_exact(r, pid, args[i], 4)

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        return _read_exact(r, pid, args[i], 4)

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        data = xv if self.output else ev
        if not isinstance(data, bytes) or len(data) < 4:
            return _ptr(c.args[i])
        return f"[{struct.unpack('<i', data[:4])[0]}]"


# ---- open family ---------------------------------------------------------------------------


def _open_flags_text(v: int, arch: str, with_mode: bool = True) -> str:
    v &= _U32
    rest = _flags(v & ~3, C.OPEN_FLAGS[arch], zero="")
    if not with_mode:
        return rest or "0"
    acc = C.O_ACCMODE_NAMES[v & 3]
    return acc + ("|" + rest if rest else "")


class _OpenFlags(Kind):
    def __init__(self, with_mode: bool = True) -> None:
        self.with_mode = with_mode

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        return _open_flags_text(c.args[i], c.dec.arch, self.with_mode)


def _needs_mode(flags: int) -> bool:
    return bool(flags & C.O_CREAT or flags & C.__O_TMPFILE)


class _OpenMode(Kind):
    """The mode argument, shown only when the flags at arg ``n`` create a file."""

    def __init__(self, n: int) -> None:
        self.n = n

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        return _oct(c.args[i] & 0o7777) if _needs_mode(c.args[self.n]) else None


class _OpenHow(Kind):
    has_entry = True

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        return _read_exact(r, pid, args[i], 24) if args[i + 1] >= 24 else None

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        if not isinstance(ev, bytes) or len(ev) < 24:
            return _ptr(c.args[i])
        flags, mode, resolve = struct.unpack("<QQQ", ev[:24])
        parts = [f"flags={_open_flags_text(flags, c.dec.arch)}"]
        if mode or _needs_mode(flags):
            parts.append(f"mode={_oct(mode)}")
        if resolve:
            parts.append(f"resolve={_flags(resolve, C.RESOLVE_FLAGS)}")
        return "{" + ", ".join(parts) + "}"


class _AccessMode(Kind):
    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        v = c.args[i] & _U32
        if v == 0:
            return "F_OK"
        return _flags(v, C.ACCESS_MODES, unknown="?_OK")


class _FileMode(Kind):
    """mknod's mode: file type plus permissions (``S_IFCHR|0600``)."""

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        return _mode_text(c.args[i] & _U32)


# ---- memory ---------------------------------------------------------------------------------


class _MmapFlags(Kind):
    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        v = c.args[i] & _U32
        mtype = v & C.MAP_TYPE_MASK
        tname = C.MAP_TYPES.get(mtype, f"{mtype:#x} /* MAP_??? */")
        huge = (v >> C.MAP_HUGE_SHIFT) & C.MAP_HUGE_MASK
        rest = v & ~C.MAP_TYPE_MASK & ~(C.MAP_HUGE_MASK << C.MAP_HUGE_SHIFT)
        parts = [tname]
        if rest:
            parts.append(_flags(rest, C.MAP_FLAGS[c.dec.arch]))
        if huge:
            parts.append(f"{huge}<<MAP_HUGE_SHIFT")
        return "|".join(parts)


class _MremapNew(Kind):
    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        return _ptr(c.args[i]) if c.args[3] & C.MREMAP_FIXED else None


# ---- signals --------------------------------------------------------------------------------


class _Sigset(Kind):
    """A sigset_t pointer whose size is in arg ``n`` (read at entry or at exit)."""

    def __init__(self, n: int, output: bool) -> None:
        self.n = n
        self.output = output
        self.has_entry = not output
        self.has_exit = output

    def _read(self, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        if args[self.n] != C.SIGSET_SIZE:
            return None
        return _read_exact(r, pid, args[i], C.SIGSET_SIZE)

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        return self._read(args, i, pid, r)

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        return self._read(args, i, pid, r)

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        data = xv if self.output else ev
        if not isinstance(data, bytes) or len(data) < C.SIGSET_SIZE:
            return _ptr(c.args[i])
        return _sigset(data)


class _Sigaction(Kind):
    def __init__(self, output: bool) -> None:
        self.output = output
        self.has_entry = not output
        self.has_exit = output

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        return _read_exact(r, pid, args[i], 32)

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        return _read_exact(r, pid, args[i], 32)

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        data = xv if self.output else ev
        if not isinstance(data, bytes) or len(data) < 32:
            return _ptr(c.args[i])
        handler, flags, restorer = struct.unpack_from("<QQQ", data)
        text = (
            f"{{sa_handler={C.SIG_HANDLERS.get(handler) or _ptr(handler)}, "
            f"sa_mask={_sigset(data[24:32])}, sa_flags={_flags(flags, C.SA_FLAGS)}"
        )
        if flags & C.SA_RESTORER:
            text += f", sa_restorer={_ptr(restorer)}"
        return text + "}"


# ---- processes ------------------------------------------------------------------------------


class _Argv(Kind):
    """execve's argv, read in full at entry (strings shown cut to -s, at most -s elements)."""

    has_entry = True

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        if args[i] == 0:
            return None
        got = _read_ptr_array(r, pid, args[i], ARGV_MAX_ITEMS)
        if got is None:
            return None
        ptrs, complete = got
        items: list[bytes | int] = []
        budget = ARGV_MAX_BYTES
        for p in ptrs:
            s = r.read_cstr(pid, p, min(ARG_STRLEN_MAX, max(budget, 0))) if budget > 0 else None
            if s is None:
                items.append(p)
                if budget <= 0:
                    complete = False
                    break
            else:
                items.append(bytes(s))
                budget -= len(s) + 1
        return tuple(items), complete

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        if not (isinstance(ev, tuple) and len(ev) == 2 and isinstance(ev[0], tuple)):
            return _ptr(c.args[i])
        items, complete = ev
        c.argv = [_text(s) for s in items if isinstance(s, bytes)]
        strsize = c.dec.strsize
        shown = []
        for item in items[:strsize]:
            if isinstance(item, bytes):
                shown.append(c.dec.show_str(item, len(item)))
            else:
                shown.append(_ptr(item))
        if len(items) > strsize or not complete:
            shown.append("...")
        return "[" + ", ".join(shown) + "]"


class _Envp(Kind):
    """execve's envp: only counted, never read (environment values may hold secrets)."""

    has_entry = True

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        return _count_ptr_array(r, pid, args[i]) if args[i] else None

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        addr = c.args[i]
        if addr == 0:
            return "NULL"
        if isinstance(ev, int) and not isinstance(ev, bool):
            return f"{_ptr(addr)} /* {ev} vars */"
        return _ptr(addr)


def _clone_flags_text(flags: int, table_: C.Flags, with_signal: bool) -> str:
    sig = flags & C.CSIGNAL if with_signal else 0
    rest = flags & ~C.CSIGNAL if with_signal else flags
    text = _flags(rest, table_, zero="")
    if sig:
        text = f"{text}|{_signame(sig)}" if text else _signame(sig)
    return text or "0"


class _Clone(Kind):
    """clone(2): strace's named-argument form; the arg order differs per architecture."""

    width = 5
    has_exit = True

    @staticmethod
    def _slots(arch: str, args: Sequence[int]) -> tuple[int, int, int, int, int]:
        if arch == "aarch64":  # CLONE_BACKWARDS: flags, stack, parent_tid, tls, child_tid
            return args[0], args[1], args[2], args[4], args[3]
        return args[0], args[1], args[2], args[3], args[4]

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        flags, _, ptid, _, _ = self._slots(d.arch, args)
        if rval > 0 and flags & (C.CLONE_PARENT_SETTID | C.CLONE_PIDFD) and ptid:
            data = _read_exact(r, pid, ptid, 4)
            return None if data is None else struct.unpack("<i", data)[0]
        return None

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        flags, stack, ptid, ctid, tls = self._slots(c.dec.arch, c.args)
        parts = [
            f"child_stack={_ptr(stack)}",
            f"flags={_clone_flags_text(flags, C.CLONE_FLAGS, True)}",
        ]
        if flags & (C.CLONE_PARENT_SETTID | C.CLONE_PIDFD):
            label = "parent_tid" if flags & C.CLONE_PARENT_SETTID else "pidfd"
            parts.append(f"{label}=[{xv}]" if isinstance(xv, int) else f"{label}={_ptr(ptid)}")
        if flags & C.CLONE_SETTLS:
            parts.append(f"tls={_ptr(tls)}")
        if flags & (C.CLONE_CHILD_SETTID | C.CLONE_CHILD_CLEARTID):
            parts.append(f"child_tidptr={_ptr(ctid)}")
        return ", ".join(parts)


class _CloneArgs(Kind):
    """clone3's ``struct clone_args``, read at entry; the ids the kernel stored, at exit."""

    has_entry = True
    has_exit = True

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        if rval <= 0:
            return None
        head = _read_exact(r, pid, args[i], 32)
        if head is None:
            return None
        flags, pidfd, _, parent_tid = struct.unpack("<4Q", head)
        stored = []
        for bit, label, addr in ((C.CLONE_PIDFD, "pidfd", pidfd),
                                 (C.CLONE_PARENT_SETTID, "parent_tid", parent_tid)):  # fmt: skip
            if flags & bit and addr:
                data = _read_exact(r, pid, addr, 4)
                if data is not None:
                    stored.append((label, struct.unpack("<i", data)[0]))
        return tuple(stored)

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        size = min(args[i + 1], 88)
        return _read_exact(r, pid, args[i], size) if size >= 64 else None

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        if not isinstance(ev, bytes) or len(ev) < 64:
            return _ptr(c.args[i])
        data = ev.ljust(88, b"\0")
        (flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
         set_tid, set_tid_size, cgroup) = struct.unpack("<11Q", data[:88])  # fmt: skip
        parts = [f"flags={_clone_flags_text(flags, C.CLONE3_FLAGS, False)}"]
        if flags & C.CLONE_PIDFD:
            parts.append(f"pidfd={_ptr(pidfd)}")
        if flags & (C.CLONE_CHILD_SETTID | C.CLONE_CHILD_CLEARTID):
            parts.append(f"child_tid={_ptr(child_tid)}")
        if flags & C.CLONE_PARENT_SETTID:
            parts.append(f"parent_tid={_ptr(parent_tid)}")
        parts.append(f"exit_signal={_signame(exit_signal) if exit_signal < 65 else exit_signal}")
        parts.append(f"stack={_ptr(stack)}")
        parts.append(f"stack_size={_hex(stack_size)}")
        if flags & C.CLONE_SETTLS:
            parts.append(f"tls={_ptr(tls)}")
        if set_tid_size:
            parts.append(f"set_tid={_ptr(set_tid)}, set_tid_size={set_tid_size}")
        if flags & C.CLONE_INTO_CGROUP:
            parts.append(f"cgroup={cgroup}")
        text = "{" + ", ".join(parts) + "}"
        if isinstance(xv, tuple) and xv:
            text += " => {" + ", ".join(f"{label}=[{value}]" for label, value in xv) + "}"
        return text


def _wait_status(s: int) -> str:
    s &= _U32
    low = s & 0x7F
    if s == 0xFFFF:
        return "[{WIFCONTINUED(s)}]"
    if low == 0:
        text = f"{{WIFEXITED(s) && WEXITSTATUS(s) == {(s >> 8) & 0xFF}}}"
        rest = s & ~0xFFFF
    elif low == 0x7F:
        text = f"{{WIFSTOPPED(s) && WSTOPSIG(s) == {_signame((s >> 8) & 0xFF)}}}"
        event = s >> 16
        if event:
            name = C.PTRACE_EVENTS.get(event)
            return f"[{text}|{name} << 16]" if name else f"[{text}|{event:#x} << 16]"
        rest = 0
    else:
        core = " && WCOREDUMP(s)" if s & 0x80 else ""
        text = f"{{WIFSIGNALED(s) && WTERMSIG(s) == {_signame(low)}{core}}}"
        rest = s & ~0xFFFF
    return f"[{text}|{rest:#x}]" if rest else f"[{text}]"


class _WaitStatus(Kind):
    has_exit = True

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        if rval <= 0:
            return None
        data = _read_exact(r, pid, args[i], 4)
        return None if data is None else struct.unpack("<I", data)[0]

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        if isinstance(xv, int) and not isinstance(xv, bool):
            return _wait_status(xv)
        return _ptr(c.args[i])


class _Rusage(Kind):
    has_exit = True

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        return _read_exact(r, pid, args[i], 32)

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        if not isinstance(xv, bytes) or len(xv) < 32:
            return _ptr(c.args[i])
        us, uu, ss, su = struct.unpack("<qqqq", xv[:32])
        return (
            f"{{ru_utime={{tv_sec={us}, tv_usec={uu}}}, "
            f"ru_stime={{tv_sec={ss}, tv_usec={su}}}, ...}}"
        )


class _Signal(Kind):
    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        return _signame(_i32(c.args[i]))


# ---- network --------------------------------------------------------------------------------


def sockaddr_text(data: bytes) -> str | None:
    """strace's rendering of a sockaddr (None when too short to show anything)."""
    if len(data) < 2:
        return None
    family = struct.unpack_from("<H", data)[0]
    fam = C.ADDRESS_FAMILIES.get(family, f"{family:#x} /* AF_??? */")
    head = f"{{sa_family={fam}"
    if family == C.AF_UNIX:
        path = data[2:]
        if not path:
            return head + "}"
        if path[0] == 0:
            return f"{head}, sun_path=@{quote(path[1:])}}}"
        return f"{head}, sun_path={quote(path.split(NUL, 1)[0])}}}"
    if family == C.AF_INET and len(data) >= 8:
        port = struct.unpack_from(">H", data, 2)[0]
        addr = socket.inet_ntop(socket.AF_INET, data[4:8])
        return f'{head}, sin_port=htons({port}), sin_addr=inet_addr("{addr}")}}'
    if family == C.AF_INET6 and len(data) >= 24:
        port, flow = struct.unpack_from(">HI", data, 2)
        addr = socket.inet_ntop(socket.AF_INET6, data[8:24])
        text = (
            f"{head}, sin6_port=htons({port}), sin6_flowinfo=htonl({flow}), "
            f'inet_pton(AF_INET6, "{addr}", &sin6_addr)'
        )
        if len(data) >= 28:
            text += f", sin6_scope_id={struct.unpack_from('<I', data, 24)[0]}"
        return text + "}"
    if family == C.AF_NETLINK and len(data) >= 12:
        nl_pid, groups = struct.unpack_from("<II", data, 4)
        return f"{head}, nl_pid={nl_pid}, nl_groups={groups:08x}}}"
    if family == C.AF_PACKET and len(data) >= 8:
        proto = struct.unpack_from(">H", data, 2)[0]
        ifindex = struct.unpack_from("<i", data, 4)[0]
        pname = C.ETH_PROTOS.get(proto, f"{proto:#x}")
        return f"{head}, sll_protocol=htons({pname}), sll_ifindex={ifindex}, ...}}"
    return f"{head}, sa_data={quote(data[2:])}}}"


class _SockaddrIn(Kind):
    """A sockaddr the call reads (connect, bind, sendto); its length is arg ``n``."""

    has_entry = True

    def __init__(self, n: int) -> None:
        self.n = n

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        size = min(args[self.n] & _U32, SOCKADDR_MAX)
        return _read_exact(r, pid, args[i], size) if size else None

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        if c.args[i] == 0:
            return "NULL"
        text = sockaddr_text(ev) if isinstance(ev, bytes) else None
        return text or _ptr(c.args[i])


class _SockaddrOut(Kind):
    """A sockaddr the kernel fills (accept, getsockname, recvfrom); length pointer is arg ``n``."""

    has_exit = True

    def __init__(self, n: int) -> None:
        self.n = n

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        if not args[i] or not args[self.n]:
            return None
        length = _read_u32(r, pid, args[self.n])
        if not length:
            return None
        return _read_exact(r, pid, args[i], min(length, SOCKADDR_MAX))

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        if c.args[i] == 0:
            return "NULL"
        text = sockaddr_text(xv) if isinstance(xv, bytes) else None
        return text or _ptr(c.args[i])


class _Socklen(Kind):
    """A socklen_t pointer the kernel updates: ``[16]`` or ``[128 => 16]``."""

    has_entry = True
    has_exit = True

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        return _read_u32(r, pid, args[i])

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        return _read_u32(r, pid, args[i])

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        if c.args[i] == 0:
            return "NULL"
        before = ev if isinstance(ev, int) else None
        after = xv if isinstance(xv, int) else None
        if before is None and after is None:
            return _ptr(c.args[i])
        if before is None or after is None or before == after:
            return f"[{before if after is None else after}]"
        return f"[{before} => {after}]"


class _SocketProto(Kind):
    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        family = c.args[0] & _U32
        proto = _i32(c.args[i])
        if family in (C.AF_INET, C.AF_INET6):
            return C.IPPROTOS.get(proto, str(proto))
        if family == C.AF_NETLINK:
            return C.NETLINK_PROTOS.get(proto, str(proto))
        if family == C.AF_PACKET:
            be = socket.ntohs(proto & 0xFFFF)
            return f"htons({C.ETH_PROTOS.get(be, f'{be:#x}')})"
        return str(proto)


class _SocketType(Kind):
    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        v = c.args[i] & _U32
        base = v & 0xF
        name = C.SOCK_TYPES.get(base, f"{base:#x} /* SOCK_??? */")
        rest = v & ~0xF
        return name + ("|" + _flags(rest, C.SOCK_FLAGS) if rest else "")


class _SockoptName(Kind):
    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        level = _i32(c.args[1])
        opt = _i32(c.args[i])
        names = C.SOCKOPT_NAMES.get(level)
        if names is None:
            return str(opt)
        return names.get(opt, str(opt))


def _sockopt_value(data: bytes | None, level: int, opt: int) -> str | None:
    if data is None:
        return None
    if level == 1 and opt == C.SO_LINGER and len(data) >= 8:
        onoff, linger = struct.unpack_from("<ii", data)
        return f"{{l_onoff={onoff}, l_linger={linger}}}"
    if len(data) == 4:
        return f"[{struct.unpack('<i', data)[0]}]"
    return None


class _SockoptVal(Kind):
    """setsockopt's value (entry, length arg 4) or getsockopt's (exit, length pointer arg 4)."""

    def __init__(self, output: bool) -> None:
        self.output = output
        self.has_entry = not output
        self.has_exit = output

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        size = args[4] & _U32
        return _read_exact(r, pid, args[i], size) if size in (4, 8) else None

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        size = _read_u32(r, pid, args[4]) if args[4] else None
        return _read_exact(r, pid, args[i], size) if size in (4, 8) else None

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        data = xv if self.output else ev
        text = _sockopt_value(
            data if isinstance(data, bytes) else None, _i32(c.args[1]), _i32(c.args[2])
        )
        return text or _ptr(c.args[i])


class _Msghdr(Kind):
    """``struct msghdr``: sendmsg reads it at entry, recvmsg at exit (data limited to rval)."""

    def __init__(self, output: bool) -> None:
        self.output = output
        self.has_entry = not output
        self.has_exit = output

    def _capture(self, d: Decoder, addr: int, limit: int, pid: int, r: MemoryReader) -> Any:
        hdr = _read_exact(r, pid, addr, 56)
        if hdr is None:
            return None
        name, namelen, iov, iovlen, control, controllen, flags = struct.unpack("<QI4xQQQQi4x", hdr)
        name_data = None
        if name and namelen:
            name_data = _read_exact(r, pid, name, min(namelen, SOCKADDR_MAX))
        iovs = None
        if iov:
            iovs = _Iov(0, False)._capture(d, iov, min(iovlen, ARRAY_MAX_ITEMS), limit, pid, r)
        return (name, namelen, iov, iovlen, control, controllen, flags, name_data, iovs)

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        return self._capture(d, args[i], _U64, pid, r)

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        return self._capture(d, args[i], rval, pid, r)

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        cap = xv if self.output else ev
        if not (isinstance(cap, tuple) and len(cap) == 9):
            return _ptr(c.args[i])
        name, namelen, iov, iovlen, control, controllen, flags, name_data, iovs = cap
        if name == 0:
            name_text = "NULL"
        else:
            name_text = (sockaddr_text(name_data) if isinstance(name_data, bytes) else None) or (
                _ptr(name)
            )
        iov_text = c.dec.show_iov(iovs, iovlen) if isinstance(iovs, tuple) else _ptr(iov)
        parts = [f"msg_name={name_text}", f"msg_namelen={namelen}", f"msg_iov={iov_text}",
                 f"msg_iovlen={iovlen}"]  # fmt: skip
        if controllen:
            parts.append(f"msg_control={_ptr(control)}")
        parts.append(f"msg_controllen={controllen}")
        parts.append(f"msg_flags={_flags(flags & _U32, C.MSG_FLAGS)}")
        return "{" + ", ".join(parts) + "}"


# ---- descriptors ----------------------------------------------------------------------------

_FCNTL_NO_ARG = frozenset({1, 3, 9, 11, 1025, 1032, 1034})
_FCNTL_LOCKS = frozenset({5, 6, 7, 36, 37, 38})


class _FcntlArg(Kind):
    has_entry = True

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        if (args[1] & _U32) in _FCNTL_LOCKS:
            return _read_exact(r, pid, args[i], 32)
        return None

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        cmd = c.args[1] & _U32
        v = c.args[i]
        if cmd in _FCNTL_NO_ARG:
            return None
        if cmd in (0, 1030, 8, 1031):  # F_DUPFD, F_DUPFD_CLOEXEC, F_SETOWN, F_SETPIPE_SZ
            return str(_i32(v))
        if cmd == 2:
            return _flags(v & _U32, C.FD_FLAGS)
        if cmd == 4:
            return _open_flags_text(v, c.dec.arch)
        if cmd == 10:
            return _signame(_i32(v))
        if cmd == 1024:
            return _enum(v & _U32, C.LEASE_TYPES, "F_???")
        if cmd == 1026:
            return _flags(v & _U32, C.DN_FLAGS)
        if cmd == 1033:
            return _flags(v & _U32, C.F_SEALS)
        if cmd in _FCNTL_LOCKS:
            if isinstance(ev, bytes) and len(ev) >= 32:
                ltype, whence, start, length = struct.unpack_from("<hh4xqq", ev)
                return (
                    f"{{l_type={_enum(ltype, C.LEASE_TYPES, 'F_???')}, "
                    f"l_whence={_enum(whence, C.SEEK_WHENCE, 'SEEK_???')}, "
                    f"l_start={start}, l_len={length}}}"
                )
            return _ptr(v)
        if cmd in (15, 16):
            return _ptr(v)
        return _hex(v)


def _termios_text(data: bytes) -> str:
    iflag, oflag, cflag, lflag = struct.unpack_from("<IIII", data)
    ofields = [names.get(oflag & mask, f"{oflag & mask:#o}") for mask, names in C.TC_OFIELDS]
    field_mask = sum(mask for mask, _ in C.TC_OFIELDS)
    oflags = _flags(oflag & ~field_mask, C.TC_OFLAGS, zero="")
    speed = C.TC_SPEEDS.get(cflag & C.TC_CBAUD, f"{cflag & C.TC_CBAUD:#o}")
    cparts = [speed]
    ispeed = (cflag >> 16) & C.TC_CBAUD
    if ispeed:
        cparts.append(f"{C.TC_SPEEDS.get(ispeed, f'{ispeed:#o}')}<<IBSHIFT")
    cparts.append(C.TC_CSIZES[cflag & C.TC_CSIZE])
    crest = cflag & ~C.TC_CBAUD & ~C.TC_CSIZE & ~(C.TC_CBAUD << 16)
    if crest:
        cparts.append(_flags(crest, C.TC_CFLAGS))
    return (
        f"{{c_iflag={_flags(iflag, C.TC_IFLAGS)}, "
        f"c_oflag={'|'.join(ofields + ([oflags] if oflags else []))}, "
        f"c_cflag={'|'.join(cparts)}, c_lflag={_flags(lflag, C.TC_LFLAGS)}, ...}}"
    )


def _winsize_text(data: bytes) -> str:
    row, col, xp, yp = struct.unpack_from("<HHHH", data)
    return f"{{ws_row={row}, ws_col={col}, ws_xpixel={xp}, ws_ypixel={yp}}}"


_IOCTL_INT_OUT = frozenset({C.FIONREAD, C.TIOCGPGRP, C.TIOCOUTQ, C.TIOCGPTN, 0x5429, 0x5424})
_IOCTL_INT_IN = frozenset({C.FIONBIO, C.TIOCSPGRP, 0x5452, 0x40045431, 0x5423})
_IOCTL_NO_ARG = frozenset({0x5450, 0x5451})
# request -> (size, entry?, renderer)
_IOCTL_STRUCTS: dict[int, tuple[int, bool, Callable[[bytes], str]]] = {
    C.TIOCGWINSZ: (8, False, _winsize_text),
    C.TIOCSWINSZ: (8, True, _winsize_text),
    C.TCGETS: (36, False, _termios_text),
    0x5402: (36, True, _termios_text),
    0x5403: (36, True, _termios_text),
    0x5404: (36, True, _termios_text),
}


def ioctl_request_text(req: int) -> str:
    """Known ioctl name, else strace's ``_IOC(dir, type, nr, size)`` breakdown."""
    req &= _U32
    name = C.IOCTLS.get(req)
    if name is not None:
        return name
    direction = req >> 30
    size = (req >> 16) & 0x3FFF
    return f"_IOC({C.IOC_DIRS[direction]}, {_hex((req >> 8) & 0xFF)}, {_hex(req & 0xFF)}, {_hex(size)})"


class _IoctlReq(Kind):
    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        return ioctl_request_text(c.args[i])


class _IoctlArg(Kind):
    has_entry = True
    has_exit = True

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        req = args[1] & _U32
        if req in _IOCTL_INT_IN:
            return _read_exact(r, pid, args[i], 4)
        spec = _IOCTL_STRUCTS.get(req)
        if spec is not None and spec[1]:
            return _read_exact(r, pid, args[i], spec[0])
        return None

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        req = args[1] & _U32
        if req in _IOCTL_INT_OUT:
            return _read_exact(r, pid, args[i], 4)
        spec = _IOCTL_STRUCTS.get(req)
        if spec is not None and not spec[1]:
            return _read_exact(r, pid, args[i], spec[0])
        return None

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        req = c.args[1] & _U32
        v = c.args[i]
        if req in _IOCTL_NO_ARG:
            return None
        data = ev if isinstance(ev, bytes) else xv if isinstance(xv, bytes) else None
        if data is not None:
            if (req in _IOCTL_INT_IN or req in _IOCTL_INT_OUT) and len(data) >= 4:
                return f"[{struct.unpack_from('<i', data)[0]}]"
            spec = _IOCTL_STRUCTS.get(req)
            if spec is not None and len(data) >= spec[0]:
                return spec[2](data)
        return _hex(v)


# ---- time, limits, misc ---------------------------------------------------------------------


class _Timespec(Kind):
    def __init__(self, output: bool) -> None:
        self.output = output
        self.has_entry = not output
        self.has_exit = output

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        return _read_exact(r, pid, args[i], 16)

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        return _read_exact(r, pid, args[i], 16)

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        data = xv if self.output else ev
        if not isinstance(data, bytes) or len(data) < 16:
            return _ptr(c.args[i])
        sec, nsec = struct.unpack("<qq", data[:16])
        return f"{{tv_sec={sec}, tv_nsec={nsec}}}"


def _rlim_value(v: int, infinity: str) -> str:
    if v == _U64:
        return infinity
    if v and v % 1024 == 0:
        return f"{v // 1024}*1024"
    return str(v)


class _Rlimit(Kind):
    def __init__(self, output: bool, infinity: str) -> None:
        self.output = output
        self.infinity = infinity
        self.has_entry = not output
        self.has_exit = output

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        return _read_exact(r, pid, args[i], 16)

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        return _read_exact(r, pid, args[i], 16)

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        data = xv if self.output else ev
        if not isinstance(data, bytes) or len(data) < 16:
            return _ptr(c.args[i])
        cur, mx = struct.unpack("<QQ", data[:16])
        return (
            f"{{rlim_cur={_rlim_value(cur, self.infinity)}, "
            f"rlim_max={_rlim_value(mx, self.infinity)}}}"
        )


class _Uname(Kind):
    has_exit = True

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        return _read_exact(r, pid, args[i], 130)

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        if not isinstance(xv, bytes) or len(xv) < 130:
            return _ptr(c.args[i])
        sysname = xv[:65].split(b"\0", 1)[0]
        nodename = xv[65:130].split(b"\0", 1)[0]
        return f"{{sysname={quote(sysname)}, nodename={quote(nodename)}, ...}}"


class _Pollfds(Kind):
    """poll/ppoll's ``[{fd=3, events=POLLIN}]`` (count in arg ``n``), read at entry."""

    has_entry = True

    def __init__(self, n: int) -> None:
        self.n = n

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        count = min(args[self.n], ARRAY_MAX_ITEMS, d.strsize + 1)
        return _read_exact(r, pid, args[i], count * 8) if count else None

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        if not isinstance(ev, bytes) or not ev:
            return _ptr(c.args[i])
        items = []
        for k, (fd, events, _) in enumerate(struct.iter_unpack("<ihh", ev[: len(ev) // 8 * 8])):
            if k >= c.dec.strsize:
                items.append("...")
                break
            items.append(f"{{fd={fd}, events={_flags(events & 0xFFFF, C.POLL_EVENTS)}}}")
        if len(ev) // 8 < c.args[self.n] and "..." not in items:
            items.append("...")
        return "[" + ", ".join(items) + "]"


_FUTEX_WAITISH = frozenset({0, 6, 9, 11, 13})


class _Futex(Kind):
    """futex(2): which arguments strace shows depends on the operation."""

    width = 6

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        a = c.args
        op = a[1] & _U32
        cmd = op & ~(C.FUTEX_PRIVATE_FLAG | C.FUTEX_CLOCK_REALTIME)
        name = C.FUTEX_OPS.get(cmd)
        if name is None:
            return ", ".join([_ptr(a[0]), f"{op:#x} /* FUTEX_??? */"] + [_hex(x) for x in a[2:]])
        if op & C.FUTEX_PRIVATE_FLAG:
            name += "_PRIVATE"
        if op & C.FUTEX_CLOCK_REALTIME:
            name += "|FUTEX_CLOCK_REALTIME"
        val = str(a[2] & _U32)
        bitset = (
            "FUTEX_BITSET_MATCH_ANY"
            if a[5] & _U32 == C.FUTEX_BITSET_MATCH_ANY
            else _hex(a[5] & _U32)
        )
        head = [_ptr(a[0]), name]
        if cmd in (0,):
            rest = [val, _ptr(a[3])]
        elif cmd in (1, 2):
            rest = [val]
        elif cmd == 3:
            rest = [val, str(a[3] & _U32), _ptr(a[4])]
        elif cmd in (4, 12):
            rest = [val, str(a[3] & _U32), _ptr(a[4]), str(a[5] & _U32)]
        elif cmd == 5:
            rest = [val, str(a[3] & _U32), _ptr(a[4]), _hex(a[5] & _U32)]
        elif cmd in (6, 13):
            rest = [_ptr(a[3])]
        elif cmd in (7, 8):
            rest = []
        elif cmd == 9:
            rest = [val, _ptr(a[3]), bitset]
        elif cmd == 10:
            rest = [val, bitset]
        else:  # 11: FUTEX_WAIT_REQUEUE_PI
            rest = [val, _ptr(a[3]), _ptr(a[4])]
        return ", ".join(head + rest)


#: prctl options that take no argument / exactly one pointer argument.
_PRCTL_NO_ARG = frozenset({3, 7, 21, 39, 42})  # PR_GET_DUMPABLE, _KEEPCAPS, _SECCOMP, ...
_PRCTL_ONE_PTR = frozenset({2, 15, 16, 37, 40})  # PR_GET_PDEATHSIG, PR_SET/GET_NAME, ...


class _Prctl(Kind):
    """prctl(2): the option by name, then as many arguments as that option uses."""

    width = 5

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        a = c.args
        option = _i32(a[0])
        name = C.PRCTL_OPTIONS.get(option, f"{option & _U32:#x} /* PR_??? */")
        if option == 1:  # PR_SET_PDEATHSIG
            return f"{name}, {_signame(_i32(a[1]))}"
        if option in _PRCTL_NO_ARG:
            return name
        if option in _PRCTL_ONE_PTR:
            return f"{name}, {_ptr(a[1])}"
        return ", ".join([name] + [_hex(x) for x in a[1:5]])


class _Enum(Kind):
    def __init__(self, table_: dict[int, str], unknown: str, signed: bool = True) -> None:
        self.table = table_
        self.unknown = unknown
        self.signed = signed

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        v = _i32(c.args[i]) if self.signed else c.args[i] & _U32
        name = self.table.get(v)
        if name is not None:
            return name
        return f"{v & _U32:#x} /* {self.unknown} */"


class _FlagsK(Kind):
    def __init__(self, table_: C.Flags, zero: str = "0", mask: int = _U32) -> None:
        self.table = table_
        self.zero = zero
        self.mask = mask

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        return _flags(c.args[i] & self.mask, self.table, self.zero)


# ============================================================================================
# signatures: syscall name -> argument printers and return style
# ============================================================================================

_TOKENS: dict[str, Kind] = {
    "i": _Simple(lambda v: str(_i32(v))),
    "l": _Simple(lambda v: str(_s64(v))),
    "u": _Simple(lambda v: str(v & _U64)),
    "u32": _Simple(lambda v: str(v & _U32)),
    "x": _Simple(lambda v: _hex(v & _U64)),
    "p": _Simple(_ptr),
    "o": _Simple(lambda v: _oct(v & 0o7777)),
    "fd": _Fd(),
    "dfd": _Fd(dirfd=True),
    "path": _Path(),
    "opath": _OutPath(),
    "str": _CStr(),
    "stat": _Stat(),
    "statx": _Statx(),
    "statx_flags": _StatxFlags(),
    "fds2": _IntPair(),
    "sig": _Signal(),
    "oflags": _OpenFlags(),
    "oflags0": _OpenFlags(with_mode=False),
    "open_how": _OpenHow(),
    "amode": _AccessMode(),
    "fmode": _FileMode(),
    "atflags": _FlagsK(C.AT_FLAGS),
    "rmflags": _FlagsK(C.AT_REMOVEDIR_FLAGS),
    "prot": _ArchFlags(C.PROT_FLAGS, zero="PROT_NONE"),
    "mflags": _MmapFlags(),
    "mremap_new": _MremapNew(),
    "argv": _Argv(),
    "envp": _Envp(),
    "clone": _Clone(),
    "clone3": _CloneArgs(),
    "wstatus": _WaitStatus(),
    "rusage": _Rusage(),
    "sigact_in": _Sigaction(output=False),
    "sigact_out": _Sigaction(output=True),
    "sock_type": _SocketType(),
    "sock_proto": _SocketProto(),
    "sopt": _SockoptName(),
    "soptval_in": _SockoptVal(output=False),
    "soptval_out": _SockoptVal(output=True),
    "slen": _Socklen(),
    "msg_in": _Msghdr(output=False),
    "msg_out": _Msghdr(output=True),
    "fcntl_arg": _FcntlArg(),
    "ioctl_req": _IoctlReq(),
    "ioctl_arg": _IoctlArg(),
    "ts_in": _Timespec(output=False),
    "ts_out": _Timespec(output=True),
    "rlim_in": _Rlimit(output=False, infinity="RLIM_INFINITY"),
    "rlim_out": _Rlimit(output=True, infinity="RLIM_INFINITY"),
    "rlim64_in": _Rlimit(output=False, infinity="RLIM64_INFINITY"),
    "rlim64_out": _Rlimit(output=True, infinity="RLIM64_INFINITY"),
    "uname": _Uname(),
    "futex": _Futex(),
    "prctl": _Prctl(),
    "rlink": _ReadlinkBuf(),
    "int_out": _IntPtr(output=True),
    # enums
    "whence": _Enum(C.SEEK_WHENCE, "SEEK_???"),
    "fcntl_cmd": _Enum(C.FCNTL_CMDS, "F_???"),
    "sighow": _Enum(C.SIG_HOW, "SIG_???"),
    "af": _Enum(C.ADDRESS_FAMILIES, "AF_???"),
    "sol": _Enum({k: v for k, v in C.SOCKOPT_LEVELS.items()}, "SOL_???"),
    "shut": _Enum(C.SHUTDOWN_HOW, "SHUT_???"),
    "madv": _Enum(C.MADVISE, "MADV_???"),
    "rlimit": _Enum(C.RLIMITS, "RLIMIT_???"),
    "clock": _Enum(C.CLOCKS, "CLOCK_???"),
    "idtype": _Enum(C.IDTYPES, "P_???"),
    "epoll_op": _Enum(C.EPOLL_CTL_OPS, "EPOLL_CTL_???"),
    "fadv": _Enum(C.FADVISE, "POSIX_FADV_???"),
    "arch_prctl": _Enum(C.ARCH_PRCTL, "ARCH_???"),
    "rusage_who": _Enum(C.RUSAGE_WHO, "RUSAGE_???"),
    "prio_which": _Enum(C.PRIO_WHICH, "PRIO_???"),
    "sched": _Enum(C.SCHED_POLICIES, "SCHED_???"),
    "seccomp_op": _Enum(C.SECCOMP_OPS, "SECCOMP_???"),
    "ptrace_req": _Enum(C.PTRACE_REQUESTS, "PTRACE_???"),
    # flags
    "msgflags": _FlagsK(C.MSG_FLAGS),
    "mremap_flags": _FlagsK(C.MREMAP_FLAGS),
    "msync": _FlagsK(C.MSYNC_FLAGS),
    "mcl": _FlagsK(C.MLOCKALL_FLAGS),
    "woptions": _FlagsK(C.WAIT_OPTIONS),
    "flock": _FlagsK(C.FLOCK_OPS),
    "falloc": _FlagsK(C.FALLOC_FLAGS),
    "close_range": _FlagsK(C.CLOSE_RANGE_FLAGS),
    "efd": _FlagsK(C.EFD_FLAGS),
    "tfd": _FlagsK(C.TFD_FLAGS),
    "tfd_timer": _FlagsK(C.TFD_TIMER_FLAGS),
    "sfd": _FlagsK(C.SFD_FLAGS),
    "in_init": _FlagsK(C.IN_INIT_FLAGS),
    "in_events": _FlagsK(C.IN_EVENTS),
    "epoll_flags": _FlagsK(C.EPOLL_CREATE_FLAGS),
    "mfd": _FlagsK(C.MFD_FLAGS),
    "rename": _FlagsK(C.RENAME_FLAGS),
    "grnd": _FlagsK(C.GRND_FLAGS),
    "timer_abs": _FlagsK(C.TIMER_ABSTIME_FLAGS),
    "sock_flags": _FlagsK(C.SOCK_FLAGS),
    "splice": _FlagsK(C.SPLICE_FLAGS),
    "umount": _FlagsK(C.UMOUNT_FLAGS),
    "clone_flags": _FlagsK(C.CLONE_FLAGS, mask=_U64),
    "statx_mask": _FlagsK(C.STATX_MASK),
}


def _param_kind(token: str) -> Kind:
    """Tokens with a numeric parameter, e.g. ``wbuf:2`` (buffer whose length is arg 2)."""
    name, _, num = token.partition(":")
    n = int(num)
    factories: dict[str, Callable[[int], Kind]] = {
        "wbuf": lambda n: _Buf(n, output=False),
        "rbuf": lambda n: _Buf(n, output=True),
        "hbuf": lambda n: _Buf(n, output=True, as_hex=True),
        "iov_in": lambda n: _Iov(n, output=False),
        "iov_out": lambda n: _Iov(n, output=True),
        "sigset_in": lambda n: _Sigset(n, output=False),
        "sigset_out": lambda n: _Sigset(n, output=True),
        "sa_in": _SockaddrIn,
        "sa_out": _SockaddrOut,
        "omode": _OpenMode,
        "pollfds": _Pollfds,
    }
    return factories[name](n)


#: name -> (argument tokens, return style). Return styles: d (decimal), x (hex), o (octal),
#: fd (a new descriptor; shown with its path under -y), fcntl (F_GETFL & co. decode flags).
SIGNATURES: dict[str, tuple[str, str]] = {
    "read": ("fd rbuf:2 u", "d"),
    "write": ("fd wbuf:2 u", "d"),
    "open": ("path oflags omode:1", "fd"),
    "close": ("fd", "d"),
    "stat": ("path stat", "d"),
    "fstat": ("fd stat", "d"),
    "lstat": ("path stat", "d"),
    "poll": ("pollfds:1 u i", "d"),
    "lseek": ("fd l whence", "d"),
    "mmap": ("p u prot mflags fd x", "x"),
    "mprotect": ("p u prot", "d"),
    "munmap": ("p u", "d"),
    "brk": ("p", "x"),
    "rt_sigaction": ("sig sigact_in sigact_out u", "d"),
    "rt_sigprocmask": ("sighow sigset_in:3 sigset_out:3 u", "d"),
    "rt_sigreturn": ("", "d"),
    "ioctl": ("fd ioctl_req ioctl_arg", "d"),
    "pread64": ("fd rbuf:2 u l", "d"),
    "pwrite64": ("fd wbuf:2 u l", "d"),
    "readv": ("fd iov_out:2 i", "d"),
    "writev": ("fd iov_in:2 i", "d"),
    "access": ("path amode", "d"),
    "pipe": ("fds2", "d"),
    "select": ("i p p p p", "d"),
    "sched_yield": ("", "d"),
    "mremap": ("p u u mremap_flags mremap_new", "x"),
    "msync": ("p u msync", "d"),
    "mincore": ("p u p", "d"),
    "madvise": ("p u madv", "d"),
    "shmget": ("x u x", "d"),
    "shmat": ("i p x", "x"),
    "shmctl": ("i x p", "d"),
    "dup": ("fd", "fd"),
    "dup2": ("fd fd", "fd"),
    "pause": ("", "d"),
    "nanosleep": ("ts_in p", "d"),
    "getitimer": ("i p", "d"),
    "alarm": ("u32", "d"),
    "setitimer": ("i p p", "d"),
    "getpid": ("", "d"),
    "sendfile": ("fd fd p u", "d"),
    "socket": ("af sock_type sock_proto", "fd"),
    "connect": ("fd sa_in:2 u32", "d"),
    "accept": ("fd sa_out:2 slen", "fd"),
    "sendto": ("fd wbuf:2 u msgflags sa_in:5 u32", "d"),
    "recvfrom": ("fd rbuf:2 u msgflags sa_out:5 slen", "d"),
    "sendmsg": ("fd msg_in msgflags", "d"),
    "recvmsg": ("fd msg_out msgflags", "d"),
    "shutdown": ("fd shut", "d"),
    "bind": ("fd sa_in:2 u32", "d"),
    "listen": ("fd i", "d"),
    "getsockname": ("fd sa_out:2 slen", "d"),
    "getpeername": ("fd sa_out:2 slen", "d"),
    "socketpair": ("af sock_type sock_proto fds2", "d"),
    "setsockopt": ("fd sol sopt soptval_in u32", "d"),
    "getsockopt": ("fd sol sopt soptval_out slen", "d"),
    "clone": ("clone", "d"),
    "fork": ("", "d"),
    "vfork": ("", "d"),
    "execve": ("path argv envp", "d"),
    "exit": ("i", "d"),
    "wait4": ("i wstatus woptions rusage", "d"),
    "kill": ("i sig", "d"),
    "uname": ("uname", "d"),
    "semget": ("x i x", "d"),
    "semop": ("i p u", "d"),
    "semctl": ("i i x p", "d"),
    "shmdt": ("p", "d"),
    "msgget": ("x x", "d"),
    "msgsnd": ("i p u x", "d"),
    "msgrcv": ("i p u l x", "d"),
    "msgctl": ("i x p", "d"),
    "fcntl": ("fd fcntl_cmd fcntl_arg", "fcntl"),
    "flock": ("fd flock", "d"),
    "fsync": ("fd", "d"),
    "fdatasync": ("fd", "d"),
    "truncate": ("path l", "d"),
    "ftruncate": ("fd l", "d"),
    "getdents": ("fd p u", "d"),
    "getcwd": ("opath u", "d"),
    "chdir": ("path", "d"),
    "fchdir": ("fd", "d"),
    "rename": ("path path", "d"),
    "mkdir": ("path o", "d"),
    "rmdir": ("path", "d"),
    "creat": ("path o", "fd"),
    "link": ("path path", "d"),
    "unlink": ("path", "d"),
    "symlink": ("path path", "d"),
    "readlink": ("path rlink u", "d"),
    "chmod": ("path o", "d"),
    "fchmod": ("fd o", "d"),
    "chown": ("path i i", "d"),
    "fchown": ("fd i i", "d"),
    "lchown": ("path i i", "d"),
    "umask": ("o", "o"),
    "gettimeofday": ("p p", "d"),
    "getrlimit": ("rlimit rlim_out", "d"),
    "getrusage": ("rusage_who rusage", "d"),
    "sysinfo": ("p", "d"),
    "times": ("p", "d"),
    "ptrace": ("ptrace_req i p p", "d"),
    "getuid": ("", "d"),
    "syslog": ("i p i", "d"),
    "getgid": ("", "d"),
    "setuid": ("i", "d"),
    "setgid": ("i", "d"),
    "geteuid": ("", "d"),
    "getegid": ("", "d"),
    "setpgid": ("i i", "d"),
    "getppid": ("", "d"),
    "getpgrp": ("", "d"),
    "setsid": ("", "d"),
    "setreuid": ("i i", "d"),
    "setregid": ("i i", "d"),
    "getgroups": ("i p", "d"),
    "setgroups": ("i p", "d"),
    "setresuid": ("i i i", "d"),
    "getresuid": ("p p p", "d"),
    "setresgid": ("i i i", "d"),
    "getresgid": ("p p p", "d"),
    "getpgid": ("i", "d"),
    "setfsuid": ("i", "d"),
    "setfsgid": ("i", "d"),
    "getsid": ("i", "d"),
    "capget": ("p p", "d"),
    "capset": ("p p", "d"),
    "rt_sigpending": ("sigset_out:1 u", "d"),
    "rt_sigtimedwait": ("sigset_in:3 p p u", "d"),
    "rt_sigqueueinfo": ("i sig p", "d"),
    "rt_sigsuspend": ("sigset_in:1 u", "d"),
    "sigaltstack": ("p p", "d"),
    "utime": ("path p", "d"),
    "mknod": ("path fmode x", "d"),
    "uselib": ("path", "d"),
    "personality": ("x", "x"),
    "ustat": ("x p", "d"),
    "statfs": ("path p", "d"),
    "fstatfs": ("fd p", "d"),
    "sysfs": ("i x x", "d"),
    "getpriority": ("prio_which i", "d"),
    "setpriority": ("prio_which i i", "d"),
    "sched_setparam": ("i p", "d"),
    "sched_getparam": ("i p", "d"),
    "sched_setscheduler": ("i sched p", "d"),
    "sched_getscheduler": ("i", "d"),
    "sched_get_priority_max": ("sched", "d"),
    "sched_get_priority_min": ("sched", "d"),
    "sched_rr_get_interval": ("i p", "d"),
    "mlock": ("p u", "d"),
    "munlock": ("p u", "d"),
    "mlockall": ("mcl", "d"),
    "munlockall": ("", "d"),
    "vhangup": ("", "d"),
    "modify_ldt": ("i p u", "d"),
    "pivot_root": ("path path", "d"),
    "_sysctl": ("p", "d"),
    "prctl": ("prctl", "d"),
    "arch_prctl": ("arch_prctl x", "d"),
    "adjtimex": ("p", "d"),
    "setrlimit": ("rlimit rlim_in", "d"),
    "chroot": ("path", "d"),
    "sync": ("", "d"),
    "acct": ("path", "d"),
    "settimeofday": ("p p", "d"),
    "mount": ("str path str x p", "d"),
    "umount2": ("path umount", "d"),
    "swapon": ("path x", "d"),
    "swapoff": ("path", "d"),
    "reboot": ("x x x p", "d"),
    "sethostname": ("wbuf:1 u", "d"),
    "setdomainname": ("wbuf:1 u", "d"),
    "iopl": ("i", "d"),
    "ioperm": ("x x i", "d"),
    "create_module": ("str u", "d"),
    "init_module": ("p u str", "d"),
    "delete_module": ("str x", "d"),
    "get_kernel_syms": ("p", "d"),
    "query_module": ("str i p u p", "d"),
    "quotactl": ("x path i p", "d"),
    "nfsservctl": ("i p p", "d"),
    "getpmsg": ("x x x x x", "d"),
    "putpmsg": ("x x x x x", "d"),
    "afs_syscall": ("x x x x x", "d"),
    "tuxcall": ("x x x", "d"),
    "security": ("x x x", "d"),
    "gettid": ("", "d"),
    "readahead": ("fd l u", "d"),
    "setxattr": ("path str p u x", "d"),
    "lsetxattr": ("path str p u x", "d"),
    "fsetxattr": ("fd str p u x", "d"),
    "getxattr": ("path str p u", "d"),
    "lgetxattr": ("path str p u", "d"),
    "fgetxattr": ("fd str p u", "d"),
    "listxattr": ("path p u", "d"),
    "llistxattr": ("path p u", "d"),
    "flistxattr": ("fd p u", "d"),
    "removexattr": ("path str", "d"),
    "lremovexattr": ("path str", "d"),
    "fremovexattr": ("fd str", "d"),
    "tkill": ("i sig", "d"),
    "time": ("p", "d"),
    "futex": ("futex", "d"),
    "sched_setaffinity": ("i u p", "d"),
    "sched_getaffinity": ("i u p", "d"),
    "set_thread_area": ("p", "d"),
    "io_setup": ("u p", "d"),
    "io_destroy": ("x", "d"),
    "io_getevents": ("x l l p p", "d"),
    "io_submit": ("x l p", "d"),
    "io_cancel": ("x p p", "d"),
    "get_thread_area": ("p", "d"),
    "lookup_dcookie": ("x p u", "d"),
    "epoll_create": ("i", "fd"),
    "epoll_ctl_old": ("x x x x", "d"),
    "epoll_wait_old": ("x x x x", "d"),
    "remap_file_pages": ("p u x u x", "d"),
    "getdents64": ("fd p u", "d"),
    "set_tid_address": ("p", "d"),
    "restart_syscall": ("", "d"),
    "semtimedop": ("i p u p", "d"),
    "fadvise64": ("fd l u fadv", "d"),
    "timer_create": ("clock p p", "d"),
    "timer_settime": ("i timer_abs p p", "d"),
    "timer_gettime": ("i p", "d"),
    "timer_getoverrun": ("i", "d"),
    "timer_delete": ("i", "d"),
    "clock_settime": ("clock ts_in", "d"),
    "clock_gettime": ("clock ts_out", "d"),
    "clock_getres": ("clock ts_out", "d"),
    "clock_nanosleep": ("clock timer_abs ts_in p", "d"),
    "exit_group": ("i", "d"),
    "epoll_wait": ("fd p i i", "d"),
    "epoll_ctl": ("fd epoll_op fd p", "d"),
    "tgkill": ("i i sig", "d"),
    "utimes": ("path p", "d"),
    "vserver": ("x x x x x", "d"),
    "mbind": ("p u x p u x", "d"),
    "set_mempolicy": ("x p u", "d"),
    "get_mempolicy": ("p p u p x", "d"),
    "mq_open": ("str oflags o p", "fd"),
    "mq_unlink": ("str", "d"),
    "mq_timedsend": ("fd p u u p", "d"),
    "mq_timedreceive": ("fd p u p p", "d"),
    "mq_notify": ("fd p", "d"),
    "mq_getsetattr": ("fd p p", "d"),
    "kexec_load": ("x u p x", "d"),
    "waitid": ("idtype i p woptions rusage", "d"),
    "add_key": ("str str p u i", "d"),
    "request_key": ("str str str i", "d"),
    "keyctl": ("x x x x x", "d"),
    "ioprio_set": ("i i x", "d"),
    "ioprio_get": ("i i", "d"),
    "inotify_init": ("", "fd"),
    "inotify_add_watch": ("fd path in_events", "d"),
    "inotify_rm_watch": ("fd i", "d"),
    "migrate_pages": ("i u p p", "d"),
    "openat": ("dfd path oflags omode:2", "fd"),
    "mkdirat": ("dfd path o", "d"),
    "mknodat": ("dfd path fmode x", "d"),
    "fchownat": ("dfd path i i atflags", "d"),
    "futimesat": ("dfd path p", "d"),
    "newfstatat": ("dfd path stat atflags", "d"),
    "unlinkat": ("dfd path rmflags", "d"),
    "renameat": ("dfd path dfd path", "d"),
    "linkat": ("dfd path dfd path atflags", "d"),
    "symlinkat": ("path dfd path", "d"),
    "readlinkat": ("dfd path rlink u", "d"),
    "fchmodat": ("dfd path o", "d"),
    "faccessat": ("dfd path amode", "d"),
    "pselect6": ("i p p p p p", "d"),
    "ppoll": ("pollfds:1 u p p u", "d"),
    "unshare": ("clone_flags", "d"),
    "set_robust_list": ("p u", "d"),
    "get_robust_list": ("i p p", "d"),
    "splice": ("fd p fd p u splice", "d"),
    "tee": ("fd fd u splice", "d"),
    "sync_file_range": ("fd l l x", "d"),
    "vmsplice": ("fd p u splice", "d"),
    "move_pages": ("i u p p p x", "d"),
    "utimensat": ("dfd path p atflags", "d"),
    "epoll_pwait": ("fd p i i sigset_in:5 u", "d"),
    "signalfd": ("fd sigset_in:2 u", "fd"),
    "timerfd_create": ("clock tfd", "fd"),
    "eventfd": ("u32", "fd"),
    "fallocate": ("fd falloc l l", "d"),
    "timerfd_settime": ("fd tfd_timer p p", "d"),
    "timerfd_gettime": ("fd p", "d"),
    "accept4": ("fd sa_out:2 slen sock_flags", "fd"),
    "signalfd4": ("fd sigset_in:2 u sfd", "fd"),
    "eventfd2": ("u32 efd", "fd"),
    "epoll_create1": ("epoll_flags", "fd"),
    "dup3": ("fd fd oflags0", "fd"),
    "pipe2": ("fds2 oflags0", "d"),
    "inotify_init1": ("in_init", "fd"),
    "preadv": ("fd iov_out:2 i l", "d"),
    "pwritev": ("fd iov_in:2 i l", "d"),
    "rt_tgsigqueueinfo": ("i i sig p", "d"),
    "perf_event_open": ("p i i i x", "fd"),
    "recvmmsg": ("fd p u msgflags p", "d"),
    "fanotify_init": ("x x", "fd"),
    "fanotify_mark": ("fd x x dfd path", "d"),
    "prlimit64": ("i rlimit rlim64_in rlim64_out", "d"),
    "name_to_handle_at": ("dfd path p p atflags", "d"),
    "open_by_handle_at": ("fd p oflags", "fd"),
    "clock_adjtime": ("clock p", "d"),
    "syncfs": ("fd", "d"),
    "sendmmsg": ("fd p u msgflags", "d"),
    "setns": ("fd clone_flags", "d"),
    "getcpu": ("p p p", "d"),
    "process_vm_readv": ("i p u p u x", "d"),
    "process_vm_writev": ("i p u p u x", "d"),
    "kcmp": ("i i i x x", "d"),
    "finit_module": ("fd str x", "d"),
    "sched_setattr": ("i p x", "d"),
    "sched_getattr": ("i p u x", "d"),
    "renameat2": ("dfd path dfd path rename", "d"),
    "seccomp": ("seccomp_op x p", "d"),
    "getrandom": ("hbuf:1 u grnd", "d"),
    "memfd_create": ("str mfd", "fd"),
    "kexec_file_load": ("fd fd u str x", "d"),
    "bpf": ("i p u", "d"),
    "execveat": ("dfd path argv envp atflags", "d"),
    "userfaultfd": ("oflags0", "fd"),
    "membarrier": ("x x x", "d"),
    "mlock2": ("p u x", "d"),
    "copy_file_range": ("fd p fd p u x", "d"),
    "preadv2": ("fd iov_out:2 i l x", "d"),
    "pwritev2": ("fd iov_in:2 i l x", "d"),
    "pkey_mprotect": ("p u prot i", "d"),
    "pkey_alloc": ("x x", "d"),
    "pkey_free": ("i", "d"),
    "statx": ("dfd path statx_flags statx_mask statx", "d"),
    "io_pgetevents": ("x l l p p p", "d"),
    "rseq": ("x x x x", "d"),
    "pidfd_send_signal": ("fd sig p x", "d"),
    "io_uring_setup": ("u32 p", "fd"),
    "io_uring_enter": ("fd u32 u32 x p u", "d"),
    "io_uring_register": ("fd u32 p u32", "d"),
    "open_tree": ("dfd path x", "fd"),
    "move_mount": ("dfd path dfd path x", "d"),
    "fsopen": ("str x", "fd"),
    "fsconfig": ("fd u32 str p i", "d"),
    "fsmount": ("fd x x", "fd"),
    "fspick": ("dfd path x", "fd"),
    "pidfd_open": ("i x", "fd"),
    "clone3": ("clone3 u", "d"),
    "close_range": ("u32 u32 close_range", "d"),
    "openat2": ("dfd path open_how u", "fd"),
    "pidfd_getfd": ("fd fd x", "fd"),
    "faccessat2": ("dfd path amode atflags", "d"),
    "process_madvise": ("fd p u madv x", "d"),
    "epoll_pwait2": ("fd p i p sigset_in:5 u", "d"),
    "mount_setattr": ("dfd path atflags p u", "d"),
    "quotactl_fd": ("fd x i p", "d"),
    "landlock_create_ruleset": ("p u x", "fd"),
    "landlock_add_rule": ("fd x p x", "d"),
    "landlock_restrict_self": ("fd x", "d"),
    "memfd_secret": ("x", "fd"),
    "process_mrelease": ("fd x", "d"),
    "futex_waitv": ("p u x p i", "d"),
    "set_mempolicy_home_node": ("u u u x", "d"),
    # aarch64 (asm-generic) spellings
    "sync_file_range2": ("fd x l l", "d"),
}


def _kinds_for(signature: str) -> list[tuple[int, Kind]]:
    kinds: list[tuple[int, Kind]] = []
    i = 0
    for token in signature.split():
        kind = _TOKENS.get(token) or _param_kind(token)
        kinds.append((i, kind))
        i += kind.width
    return kinds


class _Spec(NamedTuple):
    name: str
    kinds: tuple[tuple[int, Kind], ...]
    ret: str
    entry_pos: tuple[int | None, ...]  # per kind: index into the entry tuple
    exit_pos: tuple[int | None, ...]
    ret_link_pos: int | None  # index of the returned fd's path in the exit tuple (-y)


# ============================================================================================
# the decoder
# ============================================================================================


def _proc_fd_path(pid: int, fd: int) -> str | None:
    """What /proc says an fd (or AT_FDCWD) of ``pid`` refers to, for strace's -y."""
    where = f"/proc/{pid}/cwd" if fd == C.AT_FDCWD else f"/proc/{pid}/fd/{fd}"
    if fd < 0 and fd != C.AT_FDCWD:
        return None
    try:
        return _text(os.readlink(os.fsencode(where)))
    except OSError:
        return None


class Decoder:
    """Decodes syscalls of one architecture into strace-like text.

    ``strsize`` is strace's ``-s`` (data shown per buffer/string); ``decode_fds`` is ``-y``
    (show the path behind each descriptor, looked up with ``fd_path(pid, fd)``, by default from
    /proc at capture time). ``capture_data=False`` never reads the contents of data buffers
    (read/write/send/recv payloads, iovecs): they show as their address and length, so no
    payload reaches a trace unless asked for (DESIGN §10), and no memory read is paid for it.
    """

    def __init__(
        self,
        arch: str,
        strsize: int = 32,
        decode_fds: bool = False,
        *,
        fd_path: Callable[[int, int], str | None] | None = None,
        capture_data: bool = True,
    ) -> None:
        if arch not in ARCHES:
            raise ConfigError(
                f"unknown architecture {arch!r} (expected one of: {', '.join(ARCHES)})"
            )
        if strsize < 0:
            raise ConfigError(f"-s: string size must be >= 0, got {strsize}")
        self.arch = arch
        self.strsize = strsize
        self.capture_data = capture_data
        self.decode_fds = decode_fds
        self.fd_path = fd_path or _proc_fd_path
        # struct stat: (size, st_mode offset, st_rdev offset, st_size offset)
        self.stat_layout = (144, 24, 40, 48) if arch == "x86_64" else (128, 16, 32, 48)
        self._table = table(arch)
        size = max(self._table, default=-1) + 1
        self._specs: list[_Spec | None] = [None] * size
        self._entry: list[Callable[..., Any] | None] = [None] * size
        self._exit: list[Callable[..., Any] | None] = [None] * size
        self._n = size
        for nr, name in self._table.items():
            sig = SIGNATURES.get(name)
            if sig is None:
                continue
            spec, entry_fn, exit_fn = self._compile(name, sig)
            self._specs[nr] = spec
            self._entry[nr] = entry_fn
            self._exit[nr] = exit_fn

    # ---- compilation ---------------------------------------------------------------------

    def _compile(self, name: str, sig: tuple[str, str]) -> tuple[_Spec, Any, Any]:
        kinds = _kinds_for(sig[0])
        ret = sig[1]
        entry_caps: list[tuple[int, Callable[..., Any]]] = []
        exit_caps: list[tuple[int, Callable[..., Any]]] = []
        entry_pos: list[int | None] = []
        exit_pos: list[int | None] = []
        for i, kind in kinds:
            want_entry = kind.has_entry and (self.decode_fds or not kind.fd_like)
            if want_entry:
                entry_pos.append(len(entry_caps))
                entry_caps.append((i, kind.entry))
            else:
                entry_pos.append(None)
            if kind.has_exit:
                exit_pos.append(len(exit_caps))
                exit_caps.append((i, kind.exit))
            else:
                exit_pos.append(None)
        ret_link_pos = None
        if self.decode_fds and ret in ("fd", "fcntl"):
            ret_link_pos = len(exit_caps)
            exit_caps.append((-1, _ret_fd_link if ret == "fd" else _ret_fcntl_link))
        spec = _Spec(name, tuple(kinds), ret, tuple(entry_pos), tuple(exit_pos), ret_link_pos)
        return spec, _make_entry(self, entry_caps), _make_exit(self, exit_caps)

    # ---- hot path ------------------------------------------------------------------------

    def capture_entry(
        self, nr: int, args: tuple[int, ...], pid: int, reader: MemoryReader
    ) -> object | None:
        """Read what this syscall's inputs point to; None when nothing needs reading."""
        if 0 <= nr < self._n:
            fn = self._entry[nr]
            if fn is not None:
                return fn(args, pid, reader)
        return None

    def capture_exit(
        self, nr: int, args: tuple[int, ...], rval: int, pid: int, reader: MemoryReader
    ) -> object | None:
        """Read what a successful syscall wrote; None when it failed or wrote nothing we show."""
        if 0 <= nr < self._n:
            fn = self._exit[nr]
            if fn is not None and not -4096 < rval < 0:
                return fn(args, rval, pid, reader)
        return None

    # ---- formatting ----------------------------------------------------------------------

    def name(self, nr: int) -> str:
        """The syscall's name, or strace's ``syscall_0x1f4`` for numbers the table lacks."""
        name = self._table.get(nr)
        return name if name is not None else f"syscall_{nr & _U64:#x}"

    def format(
        self,
        nr: int,
        args: tuple[int, ...],
        rval: int | None,
        entry: object | None,
        exit: object | None,
    ) -> Decoded:
        """Render one syscall; a pure function of its inputs that never raises."""
        try:
            args = tuple(int(a) & _U64 for a in args[:6]) + (0,) * max(0, 6 - len(args))
        except (TypeError, ValueError):
            args = (0,) * 6
        if rval is not None and not isinstance(rval, int):
            rval = None
        spec = self._specs[nr] if isinstance(nr, int) and 0 <= nr < self._n else None
        try:
            if spec is None:
                return self._format_raw(nr, args, rval, 6)
            return self._format_spec(spec, args, rval, entry, exit)
        except Exception:  # noqa: BLE001 - the decoder must never take the tracer down
            nargs = 6 if spec is None else _nargs(spec)
            return self._format_raw(nr, args, rval, nargs)

    def _format_raw(self, nr: int, args: Sequence[int], rval: int | None, nargs: int) -> Decoded:
        ret, error = self._ret_text(rval, "d", None)
        return Decoded(
            self.name(nr) if isinstance(nr, int) else "syscall_?",
            ", ".join(_hex(a) for a in args[:nargs]),
            ret,
            error,
            None,
            None,
        )

    def _format_spec(
        self, spec: _Spec, args: Sequence[int], rval: int | None, entry: object, exit: object
    ) -> Decoded:
        ctx = _Ctx(self, args, rval)
        ent = entry if isinstance(entry, tuple) else ()
        ext = exit if isinstance(exit, tuple) and ctx.ok else ()
        parts = []
        for (i, kind), ep, xp in zip(spec.kinds, spec.entry_pos, spec.exit_pos, strict=True):
            ev = ent[ep] if ep is not None and ep < len(ent) else None
            xv = ext[xp] if xp is not None and xp < len(ext) else None
            text = kind.render(ctx, i, ev, xv)
            if text is not None:
                parts.append(text)
        link = None
        if spec.ret_link_pos is not None and spec.ret_link_pos < len(ext):
            link = ext[spec.ret_link_pos]
        ret, error = self._ret_text(rval, spec.ret, args, link)
        path = ctx.path
        if path is None and ctx.fdlinks:
            first = ctx.fdlinks[min(ctx.fdlinks)]
            path = first if first.startswith("/") else None
        return Decoded(spec.name, ", ".join(parts), ret, error, path, ctx.argv)

    def _ret_text(
        self, rval: int | None, style: str, args: Sequence[int] | None, link: object = None
    ) -> tuple[str, str | None]:
        if rval is None:
            return "?", None
        if is_error(rval):
            return format_error(-rval)
        if style == "x":
            return _hex(rval & _U64), None
        if style == "o":
            return _oct(rval), None
        if style == "fd":
            return _with_link(str(rval), link), None
        if style == "fcntl" and args is not None:
            cmd = args[1] & _U32
            if cmd in (0, 1030):  # F_DUPFD, F_DUPFD_CLOEXEC return a new descriptor
                return _with_link(str(rval), link), None
            return _fcntl_ret(cmd, rval, self.arch), None
        return str(rval), None

    # ---- shared renderers used by the kinds --------------------------------------------

    def show_str(self, data: bytes, total: int) -> str:
        """Quote up to ``strsize`` bytes, adding ``...`` when ``total`` is longer."""
        s = self.strsize
        return quote(data[:s]) + ("..." if total > s else "")

    def show_iov(self, items: tuple, count: int) -> str:
        out = []
        for k, item in enumerate(items):
            if k >= self.strsize:
                out.append("...")
                break
            base, length, data, shown = item
            text = self.show_str(data, shown) if isinstance(data, bytes) else _ptr(base)
            out.append(f"{{iov_base={text}, iov_len={length}}}")
        else:
            if len(items) < count:
                out.append("...")
        return "[" + ", ".join(out) + "]"


def _nargs(spec: _Spec) -> int:
    if not spec.kinds:
        return 0
    i, kind = spec.kinds[-1]
    return min(6, i + kind.width)


def _fcntl_ret(cmd: int, rval: int, arch: str) -> str:
    if cmd == 1:  # F_GETFD
        return f"{_hex(rval)} (flags FD_CLOEXEC)" if rval & 1 else _hex(rval)
    if cmd == 3:  # F_GETFL
        return f"{_hex(rval)} (flags {_open_flags_text(rval, arch)})"
    if cmd == 1034:  # F_GET_SEALS
        return f"{_hex(rval)} (seals {_flags(rval, C.F_SEALS)})" if rval else "0"
    if cmd == 1025:  # F_GETLEASE
        return f"{rval} ({C.LEASE_TYPES.get(rval, '?')})" if rval in C.LEASE_TYPES else str(rval)
    if cmd == 11:  # F_GETSIG
        return f"{rval} ({_signame(rval)})" if rval else "0"
    return str(rval)


def _ret_fd_link(
    d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
) -> str | None:
    return d.fd_path(pid, rval) if rval >= 0 else None


def _ret_fcntl_link(
    d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
) -> str | None:
    if rval < 0 or (args[1] & _U32) not in (0, 1030):  # only F_DUPFD{,_CLOEXEC} return an fd
        return None
    return d.fd_path(pid, rval)


def _make_entry(
    dec: Decoder, caps: list[tuple[int, Callable[..., Any]]]
) -> Callable[..., Any] | None:
    if not caps:
        return None
    frozen = tuple(caps)

    def run(args: Sequence[int], pid: int, reader: MemoryReader) -> tuple[Any, ...]:
        out = []
        for i, fn in frozen:
            try:
                out.append(fn(dec, args, i, pid, reader))
            except Exception:  # noqa: BLE001 - a vanished tracee or odd reader: show the address
                out.append(None)
        return tuple(out)

    return run


def _make_exit(
    dec: Decoder, caps: list[tuple[int, Callable[..., Any]]]
) -> Callable[..., Any] | None:
    if not caps:
        return None
    frozen = tuple(caps)

    def run(args: Sequence[int], rval: int, pid: int, reader: MemoryReader) -> tuple[Any, ...]:
        out = []
        for i, fn in frozen:
            try:
                out.append(fn(dec, args, i, rval, pid, reader))
            except Exception:  # noqa: BLE001
                out.append(None)
        return tuple(out)

    return run
