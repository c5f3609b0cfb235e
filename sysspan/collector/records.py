"""The records a tracer backend hands to the span builder, one type per kind of event.

A backend (the compiled ptrace loop, or the eBPF backend's line parser) produces these; ``SpanBuilder`` consumes them.
Times are epoch nanoseconds. ``seq`` numbers come from one counter per trace that counts
up at every syscall entry, syscall exit and process event, so sorting by them gives the
order the tracer saw things in (what strace's ``<unfinished ...>`` / ``<... resumed>``
rendering needs); a ``Syscall`` carries both its entry (``seq0``) and exit (``seq1``).

The builder's own items on their way to the export thread (``SyscallItem``, ``LineEvent``,
``DecisionItem``, ``FLUSH``) live here too, so everything crossing a thread is typed.

The compiled extensions parse their binary records into these classes themselves
(``record_parser``); the layout is the C structs in ``_records.h``.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any, NamedTuple

    from sysspan.decisions.model import Decision

# Each record is declared twice: as a typing.NamedTuple for type checkers, and as the
# collections.namedtuple with the same fields and defaults that runs (typing.NamedTuple
# would import typing on every traced run). tests/unit/test_record_stubs.py keeps the two
# in step.
if TYPE_CHECKING:
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

else:
    ProcessStart = namedtuple("ProcessStart", "tgid parent_tgid t attached seq")
    ProcessExec = namedtuple("ProcessExec", "tgid tid t path argv seq")
    Syscall = namedtuple("Syscall", "tid tgid nr args rval t0 t1 seq0 seq1 ecap xcap pcs stderr",
                         defaults=(None,) * 4)
    Signal = namedtuple("Signal", "tid tgid sig t info seq")
    ProcessExit = namedtuple("ProcessExit", "tgid t status seq")
    ThreadExit = namedtuple("ThreadExit", "tid tgid t status seq execve_tid", defaults=(0,))


Record = ProcessStart | ProcessExec | Syscall | Signal | ProcessExit | ThreadExit


# -- builder → export thread ------------------------------------------------------------------
if TYPE_CHECKING:
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

else:
    SyscallItem = namedtuple("SyscallItem", "call parent span_seq")
    LineEvent = namedtuple("LineEvent", "tid text seq")
    DecisionItem = namedtuple("DecisionItem", "decision parent seq")


class Flush:
    """End of stream: release what the decision linker holds."""

    __slots__ = ()


FLUSH = Flush()


# -- the compiled loop's binary records -------------------------------------------------------
R_PAD, R_SYSCALL, R_START, R_EXEC, R_SIGNAL, R_EXIT = range(6)
F_RVAL, F_PY_ENTRY, F_PY_EXIT, F_OURS, F_TRUNCATED, F_PY_STACK = 1, 2, 4, 8, 16, 32
X_THREAD, X_SUPERSEDED = 1, 2  # R_EXIT flags: one thread ended; replaced by an execve
P_MEM, P_CSTR, P_STDERR, P_STACK = 0, 1, 2, 3



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


if TYPE_CHECKING:
    class RawSyscall(NamedTuple):
        """A syscall whose captures are still to be made: ``call`` without them, the loop's
        flags (which side Python captured at the stop) and the memory it read."""

        call: Syscall
        flags: int
        entry: Snapshot | None
        exit: Snapshot | None

else:
    RawSyscall = namedtuple("RawSyscall", "call flags entry exit")


def record_parser(module: Any) -> Callable[[bytes], list[RawSyscall | Record]]:
    """``module.parse_records`` (the C parser in ``_records.h`` that the stop loop and the
    libbpf loader both include), told once which classes to make. It reads one drained chunk
    and returns its records in the order they were written: a ``Syscall``, or a
    ``RawSyscall`` when the decoder still has captures to make (blobs, or a side Python
    captured at the stop), and the other kinds as they are."""
    setter = getattr(module, "set_record_types", None)
    if setter is None:
        raise ImportError(
            f"sysspan's compiled {module.__name__} does not match this version; "
            "rebuild it with pip install ."
        )
    setter(Syscall, RawSyscall, Snapshot, ProcessStart, ProcessExec, Signal, ProcessExit,
           ThreadExit)
    parse: Callable[[bytes], list[RawSyscall | Record]] = module.parse_records
    return parse
