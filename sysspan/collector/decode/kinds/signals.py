"""Kinds for signals: signal numbers and names, sigset_t, struct sigaction."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sysspan.collector import constants as C
from sysspan.collector.decode.kinds.base import Kind, _Ctx, _FixedStruct
from sysspan.collector.decode.reading import MemoryReader, _read_exact
from sysspan.collector.decode.text import _flags, _i32, _ptr

if TYPE_CHECKING:
    from sysspan.collector.decode.decoder import Decoder


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


class _Signal(Kind):
    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        return _signame(_i32(c.args[i]))


class _Sigset(_FixedStruct):
    """A sigset_t pointer whose size is in arg ``n`` (read at entry or at exit)."""

    size = C.SIGSET_SIZE

    def __init__(self, n: int, output: bool) -> None:
        super().__init__(output)
        self.n = n

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        if args[self.n] != C.SIGSET_SIZE:
            return None
        return _read_exact(r, pid, args[i], C.SIGSET_SIZE)

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        return self.entry(d, args, i, pid, r)

    def show(self, c: _Ctx, data: bytes) -> str:
        return _sigset(data)


class _Sigaction(_FixedStruct):
    """``struct sigaction``: the new action (entry) or the old one (exit)."""

    size = 32

    def show(self, c: _Ctx, data: bytes) -> str:
        handler, flags, restorer = struct.unpack_from("<QQQ", data)
        text = (
            f"{{sa_handler={C.SIG_HANDLERS.get(handler) or _ptr(handler)}, "
            f"sa_mask={_sigset(data[24:32])}, sa_flags={_flags(flags, C.SA_FLAGS)}"
        )
        if flags & C.SA_RESTORER:
            text += f", sa_restorer={_ptr(restorer)}"
        return text + "}"
