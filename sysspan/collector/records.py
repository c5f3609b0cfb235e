"""The records a tracer backend hands to the span builder, one type per kind of event.

A backend (the compiled ptrace loop, or the eBPF backend's line parser) produces these; ``SpanBuilder`` consumes them.
Times are epoch nanoseconds. ``seq`` numbers come from one counter per trace that counts
up at every syscall entry, syscall exit and process event, so sorting by them gives the
order the tracer saw things in (what strace's ``<unfinished ...>`` / ``<... resumed>``
rendering needs); a ``Syscall`` carries both its entry (``seq0``) and exit (``seq1``).

The builder's own items on their way to the export thread (``SyscallItem``, ``LineEvent``,
``DecisionItem``, ``FLUSH``) live here too, so everything crossing a thread is typed.

``parse_records`` reads the compiled loop's binary records; their layout is the C structs
in ``_stoploop.c`` (sizes are checked against the module's constants at import).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from sysspan.decisions.model import Decision


class ProcessStart(NamedTuple):
    tgid: int
    parent_tgid: int
    t: int
    attached: bool
    seq: int


class ProcessExec(NamedTuple):
    """``tid`` is the thread that called execve (not the leader when a thread exec'd)."""

    tgid: int
    tid: int
    t: int
    path: str
    argv: list[str]
    seq: int


class Syscall(NamedTuple):
    """One completed (or never-returning: ``rval`` None) syscall of thread ``tid``.

    ``ecap``/``xcap`` are what the decoder captured at entry/exit, ``pcs`` the stack
    (``--source``/``-k``), ``stderr`` the bytes a ``write(2, ...)`` carried (for the
    decision protocol on stderr)."""

    tid: int
    tgid: int
    nr: int
    args: tuple[int, ...]
    rval: int | None
    t0: int
    t1: int
    seq0: int
    seq1: int
    ecap: object = None
    xcap: object = None
    pcs: tuple[int, ...] | None = None
    stderr: bytes | None = None


class Signal(NamedTuple):
    """A signal delivered to ``tid``; ``info`` is (si_signo, si_code, si_pid, si_uid,
    si_status, si_utime, si_stime), the last three meaningful for SIGCHLD only."""

    tid: int
    tgid: int
    sig: int
    t: int
    info: tuple[int, ...] | None
    seq: int


class ProcessExit(NamedTuple):
    tgid: int
    t: int
    status: int | None
    seq: int


class ThreadExit(NamedTuple):
    """One thread of a traced process ended (the process's own end is ``ProcessExit``):
    ``status`` as wait reported it, or, when another thread's execve replaced this one (the
    leader), ``execve_tid`` is the thread that called execve."""

    tid: int
    tgid: int
    t: int
    status: int | None
    seq: int
    execve_tid: int = 0


Record = ProcessStart | ProcessExec | Syscall | Signal | ProcessExit | ThreadExit


# -- builder → export thread ------------------------------------------------------------------
class SyscallItem(NamedTuple):
    """A syscall on its way to becoming a span (``parent`` 0: only its line is written)."""

    call: Syscall
    parent: int
    span_seq: int


class LineEvent(NamedTuple):
    """A signal/exit line, kept in order with the syscall lines; ``text`` None: a record
    that prints nothing took stop number ``seq`` (the ``-f -o`` order needs every one)."""

    tid: int
    text: str | None
    seq: int


class DecisionItem(NamedTuple):
    """A decision in the span stream, with its parent resolved on the builder's thread."""

    decision: Decision
    parent: int
    seq: int


class Flush:
    """End of stream: release what the decision linker holds."""

    __slots__ = ()


FLUSH = Flush()


# -- the compiled loop's binary records -------------------------------------------------------
R_PAD, R_SYSCALL, R_START, R_EXEC, R_SIGNAL, R_EXIT = range(6)
F_RVAL, F_PY_ENTRY, F_PY_EXIT, F_OURS, F_TRUNCATED, F_PY_STACK = 1, 2, 4, 8, 16, 32
X_THREAD, X_SUPERSEDED = 1, 2  # R_EXIT flags: one thread ended; replaced by an execve
P_MEM, P_CSTR, P_STDERR = 0, 1, 2
_PY = F_PY_ENTRY | F_PY_EXIT | F_PY_STACK

_HDR = struct.Struct("<IHHii")
_SYSCALL = struct.Struct("<IHHiiq6Qq6QiI")
_BLOB = struct.Struct("<QIBBBB")
_START = struct.Struct("<IHHiiQQii")
_EXEC = struct.Struct("<IHHiiQQiIII")
_SIGNAL = struct.Struct("<IHHiiQQiiiiIiqq")
_EXIT = struct.Struct("<IHHiiQQii")
_SIGN = 1 << 63
_WRAP = 1 << 64


class Snapshot:
    """Tracee memory as the loop read it at one stop, served through the decoder's
    ``MemoryReader`` interface so the decoder's capture functions run unchanged."""

    __slots__ = ("mem", "cstr")

    def __init__(self) -> None:
        self.mem: dict[int, bytes] = {}
        self.cstr: dict[int, bytes] = {}

    def read(self, pid: int, addr: int, size: int) -> bytes:
        data = self.mem.get(addr)
        return data[:size] if data is not None else b""

    def read_cstr(self, pid: int, addr: int, limit: int) -> bytes | None:
        data = self.cstr.get(addr)
        return data[:limit] if data is not None else None


class RawSyscall(NamedTuple):
    """A syscall whose captures are still to be made: ``call`` without them, the loop's
    flags (which side Python captured at the stop) and the memory it read."""

    call: Syscall
    flags: int
    entry: Snapshot | None
    exit: Snapshot | None


def parse_records(buf: bytes) -> list[RawSyscall | Record]:
    """The records in one ``Loop.drain()`` chunk, in the order they were written."""
    out: list[RawSyscall | Record] = []
    append = out.append
    off = 0
    end = len(buf)
    hdr = _HDR.unpack_from
    syscall = _SYSCALL.unpack_from
    new = tuple.__new__  # Syscall(...) without its Python-level __new__: the hot path
    while off < end:
        if buf[off + 4] == R_SYSCALL:  # the kind's low byte (little endian)
            (size, _, flags, tid, tgid, nr, a0, a1, a2, a3, a4, a5, rval, t0, t1, seq0, seq1,
             _ip, _sp, caller, nblobs) = syscall(buf, off)
            rv: int | None = rval if flags & F_RVAL else None
            if not nblobs and not flags & _PY:
                # nothing for the decoder to capture: the final record right away
                append(new(Syscall, (caller or tid, tgid, nr, (a0, a1, a2, a3, a4, a5), rv,
                                     t0, t1, seq0, seq1, None, None, None, None)))
                off += size
                continue
            entry = exit_ = None
            stderr = None
            pos = off + _SYSCALL.size
            for _ in range(nblobs):
                addr, length, at_exit, op, _fault, _ = _BLOB.unpack_from(buf, pos)
                pos += _BLOB.size
                data = buf[pos : pos + length]
                pos += (length + 7) & ~7
                if op == P_STDERR:
                    stderr = data
                    continue
                if at_exit:
                    snap = exit_ = exit_ or Snapshot()
                else:
                    snap = entry = entry or Snapshot()
                (snap.cstr if op == P_CSTR else snap.mem)[addr] = data
            call = Syscall(caller or tid, tgid, nr, (a0, a1, a2, a3, a4, a5), rv, t0, t1,
                           seq0, seq1, stderr=stderr)
            out.append(RawSyscall(call, flags, entry, exit_))
            off += size
            continue
        size, kind, flags, tid, tgid = hdr(buf, off)
        if kind == R_START:
            _, _, _, _, tgid, t, seq, parent, attached = _START.unpack_from(buf, off)
            out.append(ProcessStart(tgid, parent, t, bool(attached), seq))
        elif kind == R_EXEC:
            _, _, _, _, _, t, seq, caller, plen, alen, _ = _EXEC.unpack_from(buf, off)
            pos = off + _EXEC.size
            path = buf[pos : pos + plen].decode("utf-8", "surrogateescape")
            raw = buf[pos + plen : pos + plen + alen]
            argv = [p.decode("utf-8", "replace") for p in raw.rstrip(b"\0").split(b"\0")] if raw else []
            out.append(ProcessExec(tgid, caller or tid, t, path, argv, seq))
        elif kind == R_SIGNAL:
            (_, _, _, _, _, t, seq, sig, has_info, code, spid, suid, status, utime,
             stime) = _SIGNAL.unpack_from(buf, off)  # fmt: skip
            info = (sig, code, spid, suid, status, utime, stime) if has_info else None
            out.append(Signal(tid, tgid, sig, t, info, seq))
        elif kind == R_EXIT:
            _, _, _, _, _, t, seq, status, has_status = _EXIT.unpack_from(buf, off)
            if flags & X_SUPERSEDED:
                out.append(ThreadExit(tid, tgid, t, None, seq, status))
            elif flags & X_THREAD:
                out.append(ThreadExit(tid, tgid, t, status if has_status else None, seq))
            else:
                out.append(ProcessExit(tgid, t, status if has_status else None, seq))
        off += size
    return out


def check_layout(module: object) -> None:
    """Fail loudly when the compiled module and these formats disagree (a stale build)."""
    want = {
        "SYSCALL_SIZE": _SYSCALL.size,
        "BLOB_SIZE": _BLOB.size,
        "START_SIZE": _START.size,
        "EXEC_SIZE": _EXEC.size,
        "SIGNAL_SIZE": _SIGNAL.size,
        "EXIT_SIZE": _EXIT.size,
    }
    for name, size in want.items():
        if getattr(module, name, None) != size:
            raise ImportError(
                f"sysspan's compiled {getattr(module, '__name__', 'module')} does not match "
                f"this version ({name}); "
                "rebuild it with pip install ."
            )
