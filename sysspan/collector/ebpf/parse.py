"""bpftrace's output lines (see ``program``) turned into the tracer records the span builder
takes, in time order.

Lines come in the order bpftrace read its per-CPU buffers, so a child's first syscalls can
arrive before the fork that made it. Records wait in a list and leave it in time order once
they are ``REORDER_NS`` older than the newest line seen (and all of them at the end).
"""

from __future__ import annotations

import bisect
import struct
import threading
from collections.abc import Callable, Sequence

from sysspan.collector.ebpf.program import ARGV_ITEMS, STRLEN, Read
from sysspan.collector.records import (
    ProcessExec,
    ProcessExit,
    ProcessStart,
    Record,
    Signal,
    Snapshot,
    Syscall,
)

REORDER_NS = 250_000_000
Blob = bytes | list[str]
_AFTER = float("inf")  # sorts after every record with the same time


class LineParser:
    """Feeds records to ``consume``; ``lost`` counts the events bpftrace reported lost."""

    def __init__(
        self,
        decoder,  # noqa: ANN001 - sysspan.collector.decode.Decoder (loaded lazily)
        reads: Sequence[tuple[Read, ...] | None],
        offset_ns: int,
        consume: Callable[[Record], None],
        execve_argv: dict[int, int],
    ) -> None:
        self.decoder = decoder
        self.execve_argv = execve_argv
        self.reads = reads
        self.offset = offset_ns
        self.consume = consume
        self.lost = 0
        self.unparsed = 0
        self._pending: list[tuple[int, int, Record]] = []
        self._batch: list[tuple[int, int, Record]] = []
        self._n = 0
        self._newest = 0
        # per thread, the reads of its coming S line: bytes (M) or a string's lines (P)
        self._blobs: dict[int, dict[int, Blob]] = {}
        self._argv: dict[int, dict[int, tuple[int, list[str]]]] = {}
        self._last_text: list[str] | None = None
        #: CPUs whose end marker (a Z line) has been read
        self.synced: set[int] = set()
        self.synced_changed = threading.Event()

    # -- input ---------------------------------------------------------------------------
    def feed(self, lines: list[str]) -> None:
        """Whole lines (bytes decoded with surrogateescape, so paths keep their bytes)."""
        # The common line (a syscall with no memory reads) takes the inlined path: this loop
        # is what the backend costs per syscall in Python.
        blobs = self._blobs
        special = self.execve_argv
        off = self.offset
        batch: list[tuple[int, int, Record]] = []
        self._batch = batch
        append = batch.append
        n = self._n
        newest = self._newest
        for text in lines:
            if text[:2] == "S ":
                _, tid, tgid, nr, ret, t0, t1, a0, a1, a2, a3, a4, a5 = text.split(" ")
                itid = int(tid)
                inr = int(nr)
                if not (blobs and itid in blobs) and inr not in special:
                    t0i = int(t0) + off
                    t1i = int(t1) + off
                    n += 1
                    args = (int(a0), int(a1), int(a2), int(a3), int(a4), int(a5))
                    append((t1i, n, Syscall(itid, int(tgid), inr, args, int(ret), t0i, t1i, t0i, t1i)))
                    if t1i > newest:
                        newest = t1i
                    self._last_text = None
                    continue
            self._n = n
            self._newest = newest
            try:
                self._line(text)
            except (ValueError, IndexError):
                # a string argument holding a newline continues on the next line
                if self._last_text is not None:
                    self._last_text.append(text)
                else:
                    self.unparsed += 1
            n = self._n
            newest = self._newest
        self._n = n
        self._newest = newest
        self._release(self._newest - REORDER_NS)

    def finish(self) -> None:
        self._release(None)

    def _push(self, t: int, rec: Record) -> None:
        self._n += 1
        self._batch.append((t, self._n, rec))
        if t > self._newest:
            self._newest = t

    def _release(self, upto: int | None) -> None:
        # The new lines are mostly in order already (one CPU's run at a time), so sorting
        # them is about linear; the held-back ones are only sorted again when they overlap.
        pending = self._pending
        batch = self._batch
        if batch:
            batch.sort()
            overlap = pending and batch[0] < pending[-1]
            pending.extend(batch)
            batch.clear()
            if overlap:
                pending.sort()
        if not pending:
            return
        end = len(pending) if upto is None else bisect.bisect_right(pending, (upto, _AFTER))
        consume = self.consume
        for item in pending[:end]:
            consume(item[2])
        del pending[:end]

    # -- one line --------------------------------------------------------------------------
    def _line(self, text: str) -> None:
        kind = text[:2]
        if kind == "S ":
            self._last_text = None
            f = text.split(" ")
            self._syscall(int(f[1]), int(f[2]), int(f[3]), tuple(map(int, f[7:13])), int(f[4]),
                          int(f[5]), int(f[6]))
        elif kind == "P ":
            _, tid, k, s = text.split(" ", 3)
            parts = [s]
            self._blobs.setdefault(int(tid), {})[int(k)] = parts
            self._last_text = parts
        elif kind == "M ":
            self._last_text = None
            _, tid, k, hexdata = text.split(" ", 3)
            self._blobs.setdefault(int(tid), {})[int(k)] = bytes.fromhex(hexdata)
        elif kind == "U ":
            self._last_text = None
            f = text.split(" ")
            args = tuple(map(int, f[6:12]))
            self._syscall(int(f[1]), int(f[2]), int(f[3]), args, None, int(f[4]), int(f[5]))
        elif kind == "A ":
            _, tid, i, ptr, s = text.split(" ", 4)
            parts = [s]
            items = self._argv.setdefault(int(tid), {})
            if i == "-1":
                items.clear()
            items[int(i)] = (int(ptr), parts)
            self._last_text = parts
        elif kind == "F ":
            self._last_text = None
            _, child, parent, t = text.split(" ")
            tt = int(t) + self.offset
            self._push(tt, ProcessStart(int(child), int(parent), tt, False, tt))
        elif kind == "E ":
            _, tid, tgid, t, path = text.split(" ", 4)
            tt = int(t) + self.offset
            items = self._argv.get(int(tid), {})
            argv = [_joined(items[i][1]).decode("utf-8", "replace") for i in sorted(items) if i >= 0]
            self._last_text = None
            self._push(tt, ProcessExec(int(tgid), int(tid), tt, path, argv, tt))
        elif kind == "X ":
            self._last_text = None
            _, tgid, t, status = text.split(" ")
            tt = int(t) + self.offset
            self._push(tt, ProcessExit(int(tgid), tt, int(status), tt + 1))
        elif kind == "G ":
            self._last_text = None
            _, tid, tgid, t, sig, _code = text.split(" ")
            tt = int(t) + self.offset
            self._push(tt, Signal(int(tid), int(tgid), int(sig), tt, None, tt))
        elif text.startswith("Lost "):
            self._last_text = None
            self.lost += int(text.split()[1])
        elif kind == "Z ":
            self._last_text = None
            _, pid, cpu, _ = text.split(" ", 3)
            if pid != "0":  # getpgid(0) calls only wait for the probes
                self.synced.add(int(cpu))
                self.synced_changed.set()
        elif text.startswith("Attaching ") or not text:
            self._last_text = None
        else:
            raise ValueError(text)

    def _syscall(
        self, tid: int, tgid: int, nr: int, args: tuple[int, ...], ret: int | None, t0: int, t1: int
    ) -> None:
        blobs = self._blobs.pop(tid, None)
        entry = exit_ = None
        if blobs:
            reads = self.reads[nr] if nr < len(self.reads) else None
            if reads:
                entry, exit_ = _snapshots(reads, args, blobs)
        elif nr in self.execve_argv:
            entry = self._argv_snapshot(tid, args, self.execve_argv[nr])
        dec = self.decoder
        ecap = dec.capture_entry(nr, args, tid, entry) if entry is not None else None
        xcap = None
        if exit_ is not None and ret is not None:
            xcap = dec.capture_exit(nr, args, ret, tid, exit_)
        t0 += self.offset
        t1 += self.offset
        self._push(t1, Syscall(tid, tgid, nr, args, ret, t0, t1, t0, t1, ecap, xcap))

    def _argv_snapshot(self, tid: int, args: tuple[int, ...], argi: int) -> Snapshot | None:
        """execve's path and argv as read at its entry, where the decoder will look."""
        items = self._argv.pop(tid, None)
        if not items:
            return None
        snap = Snapshot()
        path = items.get(-1)
        if path is not None:
            _put_cstr(snap, path[0], _joined(path[1]))
        ptrs = []
        i = 0
        while i in items:
            ptr, parts = items[i]
            ptrs.append(ptr)
            _put_cstr(snap, ptr, _joined(parts))
            i += 1
        if ptrs:
            snap.mem[args[argi]] = argv_array(ptrs, complete=len(ptrs) < ARGV_ITEMS)
        return snap if ptrs or path else None


def _joined(parts: Blob) -> bytes:
    if isinstance(parts, list):
        return "\n".join(parts).encode("utf-8", "surrogateescape")
    return parts


def _put_cstr(snap: Snapshot, addr: int, data: bytes) -> None:
    # bpftrace cuts strings at STRLEN - 1 bytes without saying so: such a string may be
    # longer, so it is left out and shows as its address rather than shortened.
    if len(data) < STRLEN - 1:
        snap.cstr[addr] = data


def _snapshots(
    reads: tuple[Read, ...], args: tuple[int, ...], blobs: dict[int, Blob]
) -> tuple[Snapshot | None, Snapshot | None]:
    entry = exit_ = None
    for k, r in enumerate(reads):
        data = blobs.get(k)
        if data is None:
            continue
        if r.at_exit:
            snap = exit_ = exit_ or Snapshot()
        else:
            snap = entry = entry or Snapshot()
        addr = args[r.arg]
        if r.cstr:
            _put_cstr(snap, addr, _joined(data))
        else:
            snap.mem[addr] = _joined(data)
    return entry, exit_


def argv_array(ptrs: list[int], complete: bool) -> bytes:
    """A pointer array as it sits in memory (NULL-terminated when all of it was read)."""
    tail = (0,) if complete else ()
    return struct.pack(f"<{len(ptrs) + len(tail)}Q", *ptrs, *tail)
