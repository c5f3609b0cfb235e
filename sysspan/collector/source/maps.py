"""Memory maps of traced processes (``/proc/PID/maps``), cached per process.

The unwinder needs, for any code address, which file backs it and where that file was
loaded (the load bias of a PIE executable or a shared library). Reading and parsing the
maps file costs tens of microseconds, so it is read once per process and kept until the
tracer says the address space changed (``invalidate`` on exec and after a file mmap).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from operator import itemgetter

TYPE_CHECKING = False

__all__ = [
    "Mapping",
    "MapsCache",
    "is_system_path",
    "parse_maps",
    "read_code_maps",
    "read_maps",
    "segment_delta",
]


class Mapping(tuple):
    """One line of ``/proc/PID/maps``: (start, end, perms, offset, dev, inode, path), path ""
    for anonymous memory and "[vdso]", "[stack]", ... for special mappings. A tuple subclass
    written out, not a NamedTuple, whose class creation was a tenth of ``--source``'s
    start-up imports; the fields are C-level getters all the same (``itemgetter``)."""

    __slots__ = ()

    def __new__(
        cls, start: int, end: int, perms: str, offset: int, dev: str, inode: int, path: str
    ) -> Mapping:
        return tuple.__new__(cls, (start, end, perms, offset, dev, inode, path))

    if TYPE_CHECKING:
        start: int
        end: int
        perms: str
        offset: int
        dev: str
        inode: int
        path: str
    else:
        start = property(itemgetter(0))
        end = property(itemgetter(1))
        perms = property(itemgetter(2))
        offset = property(itemgetter(3))
        dev = property(itemgetter(4))
        inode = property(itemgetter(5))
        path = property(itemgetter(6))

    @property
    def executable(self) -> bool:
        return "x" in self[2]

    @property
    def deleted(self) -> bool:
        return self[6].endswith(" (deleted)")


def parse_maps(text: str, code_only: bool = False) -> list[Mapping]:
    """Parse the text of a maps file into mappings sorted by start address (``code_only``:
    the executable ones only).

    Lines look like ``55d0c0a00000-55d0c0a02000 r-xp 00001000 08:01 1234  /usr/bin/true``;
    the path is optional and may contain spaces (everything after the inode column).
    """
    out: list[Mapping] = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5 or code_only and "x" not in parts[1]:
            continue
        try:
            lo, _, hi = parts[0].partition("-")
            start = int(lo, 16)
            end = int(hi, 16)
            offset = int(parts[2], 16)
            inode = int(parts[4])
        except ValueError:
            continue
        path = parts[5].strip() if len(parts) > 5 else ""
        out.append(Mapping(start, end, parts[1], offset, parts[3], inode, path))
    out.sort(key=lambda m: m.start)
    return out


def read_maps(pid: int, code_only: bool = False) -> list[Mapping]:
    """The current mappings of ``pid`` ([] when the process is gone); ``code_only``: the
    executable ones."""
    try:
        with open(f"/proc/{pid}/maps", "rb") as fh:
            data = fh.read()
    except OSError:
        return []
    return parse_maps(data.decode("utf-8", "surrogateescape"), code_only)


def read_code_maps(pid: int) -> list[Mapping]:
    """The executable mappings of ``pid``: all the unwinder looks addresses up in."""
    return read_maps(pid, True)


def segment_delta(offset: int, loads: Sequence[tuple[int, ...]], page: int = 4096) -> int:
    """``p_vaddr - p_offset`` of the PT_LOAD segment a code mapping at file ``offset`` shows.

    ``loads`` holds ``(p_offset, p_vaddr, p_filesz[, p_flags])`` per PT_LOAD. A code address
    ``pc`` in the mapping then has the ELF virtual address ``pc - start + offset + delta``:
    the load bias computation, right for PIE and non-PIE executables, shared libraries and
    the vdso. The kernel maps each segment from its page-aligned file offset, so the segment
    whose aligned offset equals the mapping's is the one shown, even when segments share a
    file page (lld and rustc layouts); of two starting in the same page, the executable one.
    """
    exact = [seg for seg in loads if seg[0] - (seg[0] % page) == offset]
    if len(exact) > 1:
        exact = [seg for seg in exact if len(seg) > 3 and seg[3] & 1] or exact
    if exact:
        return exact[0][1] - exact[0][0]
    best = None
    for seg in loads:
        p_offset, p_vaddr, p_filesz = seg[0], seg[1], seg[2]
        if p_offset - (p_offset % page) <= offset < p_offset + max(p_filesz, 1):
            best = p_vaddr - p_offset  # the last (highest) segment containing the offset
    if best is not None:
        return best
    if loads:
        return loads[0][1] - loads[0][0]
    return 0


# The C runtime, the dynamic loader and the vdso: frames in these are how a syscall is made,
# not where the program asked for it, so the "site" is the first frame outside them.
_SYSTEM_LIBS = frozenset((
    "c", "pthread", "dl", "rt", "m", "resolv", "util", "nsl", "anl", "stdc++", "gcc_s", "c++",
    "c++abi", "unwind",
))
_VERSION_CHARS = frozenset("0123456789.")
# file name -> _is_system_name's answer: a run meets a handful of files, again and again
_SYSTEM_NAMES: dict[str, bool] = {}


def _versioned(rest: str) -> bool:
    return all(ch in _VERSION_CHARS for ch in rest)


def _so_then_version(name: str, start: int) -> bool:
    """Whether ``name`` has ``.so`` at or after ``start`` followed only by digits and dots."""
    core = name.rstrip("0123456789.")
    return core.endswith(".so") and len(core) - 3 >= start


def _is_system_name(base: str) -> bool:
    """String tests, not a regular expression, because this runs on every ``--source`` run
    and compiling the expression was a measurable part of its start-up. The names:
    ``ld-linux*.so*``, ``ld64.so*``, ``ld-musl-*.so*``, ``ld-VERSION.so``, ``libc.musl-*.so*``,
    and ``libNAME[-VERSION].so[.VERSION]`` for the C and C++ runtimes in ``_SYSTEM_LIBS``."""
    if base.startswith("ld"):
        if base.startswith("ld-linux"):
            return _so_then_version(base, 8)
        if base.startswith("ld64.so"):
            return _versioned(base[7:])
        if base.startswith("ld-musl-"):
            return _so_then_version(base, 8)
        if base.startswith("ld-") and base.endswith(".so"):
            mid = base[3:-3]
            return bool(mid) and _versioned(mid)
        return False
    if not base.startswith("lib"):
        return False
    if base.startswith("libc.musl-"):
        return _so_then_version(base, 10)
    at = base.find(".so")
    while at != -1:
        head, tail = base[3:at], base[at + 3 :]
        if not tail or (tail[0] == "." and len(tail) > 1 and _versioned(tail[1:])):
            name, dash, version = head.partition("-")
            if name in _SYSTEM_LIBS and (not dash or (version and _versioned(version))):
                return True
        at = base.find(".so", at + 1)
    return False


def is_system_path(path: str) -> bool:
    """True for libc, libpthread, ld.so, the C++ runtime and the vdso."""
    if path.startswith("["):
        return path in ("[vdso]", "[vsyscall]")
    base = path.rsplit("/", 1)[-1]
    if base.endswith(" (deleted)"):
        base = base[: -len(" (deleted)")]
    known = _SYSTEM_NAMES.get(base)
    if known is None:
        known = _SYSTEM_NAMES[base] = _is_system_name(base)
    return known


class _Table:
    __slots__ = ("starts", "maps")

    def __init__(self, maps: list[Mapping]) -> None:
        self.maps = maps
        self.starts = [m.start for m in maps]


class MapsCache:
    """Per-process mappings, read lazily and kept until ``invalidate``. The default reader
    keeps code mappings only (a lookup elsewhere is as good as unmapped to the unwinder);
    half the parsing of a maps file."""

    def __init__(self, reader=read_code_maps) -> None:
        self._tables: dict[int, _Table] = {}
        self._reader = reader
        self.reads = 0  # how many times a maps file was read (tests and benchmarks)

    def _load(self, pid: int) -> _Table:
        table = _Table(self._reader(pid))
        self.reads += 1
        self._tables[pid] = table
        return table

    def mappings(self, pid: int) -> list[Mapping]:
        table = self._tables.get(pid)
        if table is None:
            table = self._load(pid)
        return table.maps

    def lookup(self, pid: int, addr: int) -> Mapping | None:
        """The mapping containing ``addr`` in ``pid`` (None if unmapped)."""
        table = self._tables.get(pid)
        if table is None:
            table = self._load(pid)
        # bisect_right by hand: importing bisect (a shared object of its own) cost more than
        # the few lookups of a run whose captures the stop loop answers.
        starts = table.starts
        lo, hi = 0, len(starts)
        while lo < hi:
            mid = (lo + hi) >> 1
            if addr < starts[mid]:
                hi = mid
            else:
                lo = mid + 1
        if lo:
            m = table.maps[lo - 1]
            if addr < m[1]:
                return m
        return None

    def is_loaded(self, pid: int) -> bool:
        return pid in self._tables

    def reload(self, pid: int) -> None:
        self._load(pid)

    def invalidate(self, pid: int) -> None:
        """Forget what is known of ``pid``: after exec, or when mmap added a file."""
        self._tables.pop(pid, None)

    def mapping_path(self, pid: int, m: Mapping) -> str:
        """A path the tracer can open for mapping ``m``: the file itself, else through the
        process's root (another mount namespace) or ``map_files`` (deleted files)."""
        path = m.path
        if m.deleted:
            return f"/proc/{pid}/map_files/{m.start:x}-{m.end:x}"
        if os.path.exists(path):
            return path
        alt = f"/proc/{pid}/root{path}"
        if os.path.exists(alt):
            return alt
        return f"/proc/{pid}/map_files/{m.start:x}-{m.end:x}"
