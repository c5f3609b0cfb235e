"""Kinds for time and waiting: timespecs (sleeps, clocks), poll's pollfd array, futex."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from sysspan.collector import constants as C
from sysspan.collector.decode.kinds.base import Kind, PlanOp, _Ctx, _FixedStruct, mem_op
from sysspan.collector.decode.reading import ARRAY_MAX_ITEMS, _read_exact
from sysspan.collector.decode.text import _U32, _flags, _hex, _ptr

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

    from sysspan.collector.decode.decoder import Decoder
    from sysspan.collector.decode.reading import MemoryReader


class _Timespec(_FixedStruct):
    """``struct timespec``: a time the call takes (entry) or returns (exit)."""

    size = 16

    def show(self, c: _Ctx, data: bytes) -> str:
        sec, nsec = struct.unpack("<qq", data[:16])
        return f"{{tv_sec={sec}, tv_nsec={nsec}}}"


#: Errors with which a sleep returns early, having written the time it had left.
_INTERRUPTED = frozenset({4, 512, 514, 516})  # EINTR, ERESTARTSYS, ERESTARTNOHAND, ERESTART_RESTARTBLOCK


class _Remaining(_Timespec):
    """A sleep's ``rem``: what the kernel writes when a signal cuts the sleep short, so it is
    read after the call fails with an interruption (and shown as an address otherwise)."""

    exit_on_error = True

    def __init__(self) -> None:
        super().__init__(output=True)

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        if -rval not in _INTERRUPTED:
            return None
        return _read_exact(r, pid, args[i], self.size)


def timeval_pair(data: bytes, first: str, second: str) -> str:
    """Two ``struct timeval`` at the start of ``data``, named as strace names the fields:
    ``first={tv_sec=0, tv_usec=5}, second={...}``."""
    s1, u1, s2, u2 = struct.unpack("<qqqq", data[:32])
    return f"{first}={{tv_sec={s1}, tv_usec={u1}}}, {second}={{tv_sec={s2}, tv_usec={u2}}}"


class _Itimerval(_FixedStruct):
    """``struct itimerval``: the new timer (entry) or the old one (exit)."""

    size = 32

    def show(self, c: _Ctx, data: bytes) -> str:
        return "{" + timeval_pair(data, "it_interval", "it_value") + "}"


class _Pollfds(Kind):
    """poll/ppoll's ``[{fd=3, events=POLLIN}]`` (count in arg ``n``), read at entry."""

    has_entry = True

    def __init__(self, n: int) -> None:
        self.n = n

    def plan(self, d: Decoder, i: int, at_exit: bool) -> tuple[PlanOp, ...] | None:
        return (mem_op(i, min(ARRAY_MAX_ITEMS, d.strsize + 1), self.n, mult=8),)

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
