"""Kinds for descriptor control calls: fcntl (commands, locks, return values) and ioctl
(request names, int arguments, termios and winsize)."""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

from sysspan.collector import constants as C
from sysspan.collector.decode.kinds.base import Kind, _Ctx
from sysspan.collector.decode.kinds.files import _open_flags_text
from sysspan.collector.decode.kinds.signals import _signame
from sysspan.collector.decode.reading import _read_exact
from sysspan.collector.decode.text import _U32, _enum, _flags, _hex, _i32, _ptr

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

    from sysspan.collector.decode.decoder import Decoder
    from sysspan.collector.decode.reading import MemoryReader

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
_IOCTL_FD_ARG = frozenset({C.FICLONE})  # the argument is a descriptor, shown in decimal
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


def _read_ioctl_arg(
    r: MemoryReader, pid: int, addr: int, req: int, ints: frozenset[int], at_entry: bool
) -> bytes | None:
    """What request ``req`` passes at ``addr`` in this direction: an int (``ints``) or a
    struct of ``_IOCTL_STRUCTS`` read at entry (input) or at exit (output)."""
    if req in ints:
        return _read_exact(r, pid, addr, 4)
    spec = _IOCTL_STRUCTS.get(req)
    if spec is not None and spec[1] == at_entry:
        return _read_exact(r, pid, addr, spec[0])
    return None


class _IoctlArg(Kind):
    has_entry = True
    has_exit = True

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        return _read_ioctl_arg(r, pid, args[i], args[1] & _U32, _IOCTL_INT_IN, True)

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        return _read_ioctl_arg(r, pid, args[i], args[1] & _U32, _IOCTL_INT_OUT, False)

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        req = c.args[1] & _U32
        v = c.args[i]
        if req in _IOCTL_NO_ARG:
            return None
        if req in _IOCTL_FD_ARG:
            return str(_i32(v))
        data = ev if isinstance(ev, bytes) else xv if isinstance(xv, bytes) else None
        if data is not None:
            if (req in _IOCTL_INT_IN or req in _IOCTL_INT_OUT) and len(data) >= 4:
                return f"[{struct.unpack_from('<i', data)[0]}]"
            spec = _IOCTL_STRUCTS.get(req)
            if spec is not None and len(data) >= spec[0]:
                return spec[2](data)
        return _hex(v)
