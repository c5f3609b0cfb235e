"""How the decoder reads tracee memory: the reader protocol, read limits, tolerant helpers.

The helpers never raise on short reads: a fault or a short read gives None (or what was read
so far), and the argument then shows as its address.
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False

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


if TYPE_CHECKING:  # an interface for mypy; readers implement it without subclassing
    from typing import Protocol

    class MemoryReader(Protocol):
        """How the decoder reads tracee memory; implemented by the tracer (and by tests)."""

        def read(self, pid: int, addr: int, size: int) -> bytes:
            """Up to ``size`` bytes at ``addr``; fewer (or b"") when memory faults."""
            ...

        def read_cstr(self, pid: int, addr: int, limit: int) -> bytes | None:
            """Bytes up to (not including) the first NUL, at most ``limit``; None on fault."""
            ...


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


def _read_i32(reader: MemoryReader, pid: int, addr: int) -> int | None:
    data = _read_exact(reader, pid, addr, 4)
    return None if data is None else int.from_bytes(data, "little", signed=True)


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
