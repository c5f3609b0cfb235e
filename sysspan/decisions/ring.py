"""The shared-memory decision ring: sysspan's side (create, drain on a thread, count, remove).

sysspan creates a file in ``$XDG_RUNTIME_DIR`` (else ``/dev/shm``, else the temporary
directory), mode 0600, and names it in the one variable ``SYSSPAN_DECISION_RING``. Writers
(the Python API through ``sysspan.decisions._ring``, C/C++/Rust through
``include/sysspan_decisions.h``) map it on their first decision, reserve a slot with a
compare-and-swap, fill it and commit it; no descriptor is inherited and no syscall is made
per decision. The layout and the protocol are in ``docs/decision-ring.md``.

The reader never blocks a writer and is never blocked by one: a slot reserved and not
committed is given up after :data:`STUCK_BOUND_S` (at once when the pid that reserved it
is gone, and at :meth:`DecisionRing.close`) and counted as ``abandoned``; a slot whose
contents make no sense (a hostile or buggy writer) is counted as malformed and skipped.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import mmap
import os
import struct
import threading
import time
from collections.abc import Callable, Mapping

from sysspan.decisions.delivery import DecisionDelivery
from sysspan.decisions.model import Decision
from sysspan.decisions.sampling import DecisionGate

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

__all__ = ["ENV_RING", "DecisionRing", "decode_payload", "open_ring", "ring_dir"]

ENV_RING = "SYSSPAN_DECISION_RING"
MAGIC = b"SYSSPDR1"
VERSION = 2  # 2: sequence words stored relative to the slot's index
HEADER_SIZE = 4096
SLOT_SIZE = 512
SLOT_COUNT = 8192  # 4 MiB: about 8 ms of a Python writer at full speed, far more when sampled
SLOT_PAYLOAD = 56

H_HEAD, H_FULL, H_SKIPPED, H_TAIL = 64, 128, 136, 192
STUCK_BOUND_S = 1.0  # a reserved slot not committed for this long is given up
# An idle reader at 10 ms wake-ups cost ~5.6 ms CPU a second (under load); at the rate
# limit's 10,000/s, 25 ms is 250 records, far below the ring's 8,192 slots.
_IDLE_MIN_S, _IDLE_MAX_S = 0.0005, 0.025
_U64 = (1 << 64) - 1
_U32 = 0xFFFFFFFF


def ring_dir(env: Mapping[str, str] | None = None) -> str:
    """Where the ring file goes: ``$XDG_RUNTIME_DIR``, ``/dev/shm`` or the temp directory
    (the first that is a writable directory)."""
    where: Mapping[str, str] = os.environ if env is None else env
    for cand in (where.get("XDG_RUNTIME_DIR", ""), "/dev/shm"):
        if cand and os.path.isdir(cand) and os.access(cand, os.W_OK | os.X_OK):
            return cand
    import tempfile  # rarely reached; its import is a cost every run would pay

    return tempfile.gettempdir()


_unpack: Callable[[bytes], Any] | None = None  # _ring.unpack, once the extension is loaded


def _load_unpack() -> Callable[[bytes], Any]:
    # looked up once: decode_payload runs for every record, and an import statement there
    # cost about as much as the decoding
    global _unpack
    from sysspan.decisions import _ring

    _unpack = _ring.unpack
    return _ring.unpack


def decode_payload(payload: bytes | None) -> tuple[str, str, str, Any, Any] | None:
    """``[category, name, file, input, result]`` from a slot's msgpack payload, or None when
    it is not that (never raises)."""
    if payload is None:
        return None
    try:  # the common types here: importing msgpack costs sysspan 5-15 ms
        value = (_unpack or _load_unpack())(payload)
    except Exception:  # noqa: BLE001 - out of memory: msgpack may know better
        value = NotImplemented
    if value is NotImplemented:
        import msgpack

        try:
            value = msgpack.unpackb(payload, raw=False, strict_map_key=False, use_list=True)
        except Exception:  # noqa: BLE001 - hostile bytes: msgpack raises several kinds
            return None
    if type(value) is not list or len(value) < 5:
        return None
    category, name, file, input_, result = value[:5]
    if type(category) is not str or type(name) is not str or not category or not name:
        return None
    if file is None:
        file = ""
    if type(file) is not str:
        return None
    return category, name, file, input_, result


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _pid_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (absent, or a zombie waiting to be reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return True
    state = stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3]
    return state in (b"Z", b"X")


class DecisionRing(DecisionDelivery):
    """The ring file plus the thread that drains it. Create it with :func:`open_ring`.

    ``env()``      ``{"SYSSPAN_DECISION_RING": path}`` for the traced command
    ``close()``    after the command has exited: final drain, counters, file removed
    ``received``   records decoded; ``skipped`` decisions writers sampled away;
    ``full``       decisions writers could not place (ring full); ``abandoned`` slots
                   reserved and never committed; ``malformed`` records that did not decode
                   or failed their checksum (also added to the gate's ``malformed``)

    ``on_decision(decision)`` runs on the reader thread for every decision the gate admits.
    ``sample_ratio`` (default: the gate's) and the gate's rate limit are written into the
    header, where writers read them: both are applied in the writer.
    """

    def __init__(
        self,
        on_decision: Callable[[Decision], None] | None = None,
        *,
        gate: DecisionGate | None = None,
        sample_ratio: float | None = None,
        slot_count: int = SLOT_COUNT,
        slot_size: int = SLOT_SIZE,
        directory: str | None = None,
        stuck_bound_s: float = STUCK_BOUND_S,
    ) -> None:
        from sysspan.decisions import _ring

        if slot_count < 2 or slot_count & (slot_count - 1) or slot_size < 128 or slot_size & (slot_size - 1):
            raise ValueError("slot_count and slot_size must be powers of two (slot_size >= 128)")
        self._ops = _ring
        super().__init__(on_decision, gate)
        if sample_ratio is None:
            sample_ratio = gate.sampler.ratio if gate is not None else 1.0
        self.sample_ratio = sample_ratio
        rate = gate.limiter.per_second if gate is not None and gate.limiter.per_second > 0 else 0
        self.geometry = (HEADER_SIZE, slot_size, slot_count)
        self.size = HEADER_SIZE + slot_size * slot_count
        self.stuck_bound_s = stuck_bound_s
        self.full = self.abandoned = 0
        self.path = os.path.join(
            directory or ring_dir(), f"sysspan-decisions-{os.getpid()}-{os.urandom(6).hex()}"
        )
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            os.ftruncate(fd, self.size)
            self._mm = mmap.mmap(fd, self.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError:
            os.close(fd)
            os.unlink(self.path)
            raise
        os.close(fd)
        self._remove_at_exit = functools.partial(_remove, self.path)
        atexit.register(self._remove_at_exit)  # also when the run ends in an exception
        mm = self._mm
        # The slots stay as ftruncate left them: zero is "free for the first lap" (sequence
        # words are stored minus the slot's index), so no slot page is touched before a
        # writer uses it; writing every slot's word cost a page fault per 4 KiB page.
        struct.pack_into("<8sIIIIdI", mm, 0, MAGIC, VERSION, HEADER_SIZE, slot_size, slot_count, float(sample_ratio), min(rate, _U32))
        self._tail = 0
        self._stuck_pos = -1
        self._stuck_since = 0.0
        self._closed = False
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the reader thread and drain() (tracer thread)
        self._thread = threading.Thread(target=self._run, name="sysspan-decision-ring", daemon=True)
        self._thread.start()

    # -- public ---------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        return {ENV_RING: self.path}

    def drain(self) -> int:
        """Take what is committed now, from any thread (the tracer before a process exit)."""
        with self._lock:
            return 0 if self._closed else self._drain(closing=False)

    def close_child_end(self) -> None:
        """Nothing to close: writers inherit no descriptor (the pipe's counterpart)."""

    def attributes(self) -> dict[str, int]:
        """Run span attributes: ``decision.ring.full`` (decisions writers found no free slot
        for) and ``decision.ring.abandoned`` (slots reserved and never committed, e.g. a
        writer killed mid-write). Both are also in ``decision.dropped``."""
        return {"decision.ring.full": self.full, "decision.ring.abandoned": self.abandoned}

    def close(self) -> None:
        """Stop the thread, take what is committed, give up the rest, count, remove the file."""
        if self._closed:
            return
        self._stop.set()
        self._thread.join()
        with self._lock:
            self._closed = True
            self._drain(closing=True)
        load = self._ops.load
        self.full = load(self._mm, H_FULL)
        header_skipped = load(self._mm, H_SKIPPED)
        self._skipped(header_skipped)
        if self.gate is not None:
            self.gate.note_skipped(self.full + self.abandoned)
        _remove(self.path)
        atexit.unregister(self._remove_at_exit)
        self._mm.close()

    def __enter__(self) -> DecisionRing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reader ---------------------------------------------------------------------------
    def _run(self) -> None:
        # Back to a short sleep only when a drain took a good part of the ring: writers held
        # to the rate limit leave a few records per wake-up, and waking every _IDLE_MIN_S
        # for them (as after any record, before) cost more CPU than the records themselves.
        busy = self.geometry[2] // 8
        idle = _IDLE_MIN_S
        while not self._stop.is_set():
            with self._lock:
                moved = self._drain(closing=False)
            if moved >= busy:
                idle = _IDLE_MIN_S
                continue
            self._stop.wait(idle)
            idle = min(idle * 2, _IDLE_MAX_S)

    def _drain(self, *, closing: bool) -> int:
        """Take committed records in order, at most one lap; returns how many slots moved on."""
        take, load = self._ops.take, self._ops.load
        mm = self._mm
        hs, ss, count = self.geometry
        pos = self._tail
        moved = 0
        while moved < count:
            got = take(mm, pos, hs, ss, count)
            if type(got) is tuple:
                self._record(got)
            elif not self._unblock(pos, got, load(mm, H_HEAD), closing):
                break
            pos = (pos + 1) & _U64
            moved += 1
        if moved:
            self._tail = pos
            self._ops.store(mm, H_TAIL, pos)
        return moved

    def _unblock(self, pos: int, seq: int, head: int, closing: bool) -> bool:
        """The slot at ``pos`` holds no committed record (its sequence word is ``seq``).
        True when the reader may move past it (it was given up and counted)."""
        hs, ss, count = self.geometry
        reserved = 0 < ((head - pos) & _U64) < (1 << 63)
        if seq == pos and not reserved:
            return False  # empty: nothing written yet
        if not closing and not self._stuck_long(pos, seq):
            return False
        if seq == pos:
            if self._ops.skip(self._mm, pos, hs, ss, count, seq):
                self.abandoned += 1
                return True
            return False  # committed just now: take it next time
        # Garbage in the sequence word: skip the slot, or when no writer is at this
        # position yet, hand it back to the writers as free.
        if not reserved:
            self._ops.skip(self._mm, pos - count, hs, ss, count, seq)
            return False
        self._ops.skip(self._mm, pos, hs, ss, count, seq)
        self._malformed(1)
        return True

    def _stuck_long(self, pos: int, seq: int) -> bool:
        now = time.monotonic()
        if self._stuck_pos != pos:
            self._stuck_pos, self._stuck_since = pos, now
            return False
        if now - self._stuck_since >= self.stuck_bound_s:
            return True
        if seq != pos:
            return False
        hs, ss, count = self.geometry
        owner = self._ops.owner(self._mm, pos, hs, ss, count)
        return bool(owner) and _pid_gone(owner)

    def _record(self, got: tuple) -> None:
        start, end, skipped, pid, tid, line, column, payload, ok = got
        decoded = decode_payload(payload) if ok else None
        if decoded is None:
            self._malformed(1)
            return
        category, name, file, input_, result = decoded
        self._skipped(skipped)
        t_ns = time.time_ns()
        if not start:
            start = t_ns
        decision = Decision(category, name, input_, result, file, line, column, start, max(start, end), pid, tid)
        self._deliver(decision, t_ns, True)


def open_ring(
    on_decision: Callable[[Decision], None] | None = None,
    *,
    gate: DecisionGate | None = None,
    sample_ratio: float | None = None,
    **kwargs: Any,
) -> DecisionRing:
    """Create the ring file and start its reader thread (see :class:`DecisionRing`)."""
    return DecisionRing(on_decision, gate=gate, sample_ratio=sample_ratio, **kwargs)
