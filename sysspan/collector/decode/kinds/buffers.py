"""Kinds for data the call moves: buffers, iovec arrays, an int behind a pointer.

Payload contents (read/write buffers, iovec data) are read only when the decoder was built with
``capture_data=True``; otherwise they show as their address and length.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from sysspan.collector.decode.kinds.base import (
    PLAN_RVAL,
    PlanOp,
    _Ctx,
    _Directed,
    _FixedStruct,
    _TransferLimited,
    mem_op,
)
from sysspan.collector.decode.reading import ARRAY_MAX_ITEMS, _read_exact
from sysspan.collector.decode.text import _i32, _ptr, quote_hex

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

    from sysspan.collector.decode.decoder import Decoder
    from sysspan.collector.decode.reading import MemoryReader


class _Buf(_Directed):
    """A data buffer: input (read at entry, length from arg ``n``) or output (at exit, ``rval``)."""

    def __init__(self, n: int, output: bool, as_hex: bool = False) -> None:
        super().__init__(output)
        self.n = n
        self.as_hex = as_hex

    def plan(self, d: Decoder, i: int, at_exit: bool) -> tuple[PlanOp, ...] | None:
        if not d.capture_data:
            return ()
        return (mem_op(i, d.strsize, self.n, PLAN_RVAL if at_exit else 0),)

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
    """readlink's result: a path, not payload, so read even without ``capture_data``."""

    def __init__(self) -> None:
        super().__init__(n=2, output=True)

    def plan(self, d: Decoder, i: int, at_exit: bool) -> tuple[PlanOp, ...] | None:
        return (mem_op(i, d.strsize, -1, PLAN_RVAL),)

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        return _read_exact(r, pid, args[i], min(rval, d.strsize))


def _read_iov(d: Decoder, addr: int, count: int, limit: int, pid: int, r: MemoryReader) -> Any:
    """``count`` iovecs at ``addr`` as (base, len, data, shown) items, data up to ``limit``
    bytes in all (iovec data only with ``capture_data``); None when the array is unreadable."""
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


class _Iov(_TransferLimited):
    """``[{iov_base="..", iov_len=N}, ...]``: writev at entry, readv at exit (data up to rval)."""

    def __init__(self, n: int, output: bool) -> None:
        super().__init__(output)
        self.n = n

    def _capture(
        self, d: Decoder, args: Sequence[int], i: int, limit: int, pid: int, r: MemoryReader
    ) -> Any:
        return _read_iov(d, args[i], _i32(args[self.n]), limit, pid, r)

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        items = xv if self.output else ev
        if not isinstance(items, tuple):
            return _ptr(c.args[i])
        return c.dec.show_iov(items, _i32(c.args[self.n]))


class _IntPtr(_FixedStruct):
    """``[N]``: an int the call reads (entry) or writes (exit)."""

    size = 4

    def show(self, c: _Ctx, data: bytes) -> str:
        return f"[{struct.unpack('<i', data[:4])[0]}]"
