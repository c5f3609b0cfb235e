"""Kinds for files: descriptors (with -y paths), paths and names, stat/statx, open flags/modes."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from sysspan.collector import constants as C
from sysspan.collector.decode.kinds.base import Kind, PlanOp, _Ctx, _FixedStruct, cstr_op, mem_op
from sysspan.collector.decode.reading import PATH_MAX, _read_exact
from sysspan.collector.decode.text import (
    _U32,
    _flags,
    _i32,
    _oct,
    _ptr,
    _text,
    _with_link,
    quote,
)

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

    from sysspan.collector.decode.decoder import Decoder
    from sysspan.collector.decode.reading import MemoryReader


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

    def plan(self, d: Decoder, i: int, at_exit: bool) -> tuple[PlanOp, ...] | None:
        return (cstr_op(i, PATH_MAX),)

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

    def plan(self, d: Decoder, i: int, at_exit: bool) -> tuple[PlanOp, ...] | None:
        return (cstr_op(i, PATH_MAX),)

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        return r.read_cstr(pid, args[i], PATH_MAX) if args[i] else None

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        return quote(xv) if isinstance(xv, bytes) else _ptr(c.args[i])


class _CStr(Kind):
    """A short NUL-terminated string (names, keys) shown with -s truncation."""

    has_entry = True

    def plan(self, d: Decoder, i: int, at_exit: bool) -> tuple[PlanOp, ...] | None:
        return (cstr_op(i, d.strsize + 1),)

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        return r.read_cstr(pid, args[i], d.strsize + 1) if args[i] else None

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        if not isinstance(ev, bytes):
            return _ptr(c.args[i])
        return c.dec.show_str(ev, len(ev))


class _Stat(Kind):
    """``struct stat`` (layout differs between x86_64 and aarch64), read at exit."""

    has_exit = True

    def plan(self, d: Decoder, i: int, at_exit: bool) -> tuple[PlanOp, ...] | None:
        return (mem_op(i, d.stat_layout[0]),)

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


class _Statx(_FixedStruct):
    """``struct statx``, read at exit."""

    size = 144

    def show(self, c: _Ctx, data: bytes) -> str:
        mask, attrs = struct.unpack_from("<I", data, 0)[0], struct.unpack_from("<Q", data, 8)[0]
        mode = struct.unpack_from("<H", data, 28)[0]
        size = struct.unpack_from("<Q", data, 40)[0]
        ftype = mode & C.S_IFMT
        if ftype in (0o020000, 0o060000):
            major, minor = struct.unpack_from("<II", data, 128)
            tail = f"stx_rdev_major={major}, stx_rdev_minor={minor}"
        else:
            tail = f"stx_size={size}"
        return (
            f"{{stx_mask={_flags(mask, C.STATX_MASK)}, "
            f"stx_attributes={_flags(attrs, C.STATX_ATTRS)}, "
            f"stx_mode={_mode_text(mode)}, {tail}, ...}}"
        )


class _IntPair(Kind):
    """``[3, 4]`` (pipe, pipe2, socketpair), read at exit (with -y: plus both fds' paths)."""

    has_exit = True

    def plan(self, d: Decoder, i: int, at_exit: bool) -> tuple[PlanOp, ...] | None:
        return None if d.decode_fds else (mem_op(i, 8),)

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


class _OpenHow(_FixedStruct):
    """openat2's ``struct open_how``, read at entry when its size (the next arg) covers it."""

    size = 24

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        return _read_exact(r, pid, args[i], 24) if args[i + 1] >= 24 else None

    def show(self, c: _Ctx, data: bytes) -> str:
        flags, mode, resolve = struct.unpack("<QQQ", data[:24])
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
