"""Kinds for arrays the kernel fills at exit and strace summarises: directory entries
(getdents64's ``/* N entries */``) and CPU masks (sched_getaffinity's ``[0 1]``)."""

from __future__ import annotations

from collections.abc import Sequence

from sysspan.collector.decode.kinds.base import _Ctx, _Directed
from sysspan.collector.decode.reading import _read_exact
from sysspan.collector.decode.text import _ptr

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

    from sysspan.collector.decode.decoder import Decoder
    from sysspan.collector.decode.reading import MemoryReader

#: Most bytes of directory entries read to count them (a getdents64 buffer is 32 KiB in glibc).
DIRENTS_MAX_BYTES = 1 << 20
#: Most bytes of a CPU mask read (8192 CPUs).
CPUMASK_MAX_BYTES = 1024


def count_dirents(data: bytes) -> int | None:
    """Entries in a getdents64 buffer (each ``struct linux_dirent64`` says its length at
    byte 16); None when a length is impossible."""
    n = pos = 0
    while pos < len(data):
        if pos + 18 > len(data):
            return None
        reclen = int.from_bytes(data[pos + 16 : pos + 18], "little")
        if reclen < 19:
            return None
        pos += reclen
        n += 1
    return n if pos == len(data) else None


class _Dirents(_Directed):
    """getdents64's buffer: shown as its address and the number of entries the call wrote."""

    def __init__(self) -> None:
        super().__init__(output=True)

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        if rval > DIRENTS_MAX_BYTES:
            return None
        data = _read_exact(r, pid, args[i], rval)
        return None if data is None else count_dirents(data)

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        if not isinstance(xv, int):
            return _ptr(c.args[i])
        return f"{_ptr(c.args[i])} /* {xv} entries */"


class _CpuMask(_Directed):
    """sched_getaffinity's mask: the CPUs set in the ``rval`` bytes the call wrote."""

    def __init__(self) -> None:
        super().__init__(output=True)

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        return _read_exact(r, pid, args[i], min(rval, CPUMASK_MAX_BYTES))

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        if not isinstance(xv, bytes):
            return _ptr(c.args[i])
        bits = int.from_bytes(xv, "little")
        return "[" + " ".join(str(k) for k in range(len(xv) * 8) if bits >> k & 1) + "]"
