"""The tracer: the compiled stop loop on this thread, record decoding on another.

``Loop`` (``_stoploop.c``) owns every ptrace request, so it runs on the thread that seized
the tracees (the caller of ``spawn``/``attach`` and ``run``), without the GIL. It writes
binary records into a bounded ring; a drain thread here turns them into the typed records
of ``sysspan.collector.records`` and hands them to the consumer (the span builder). When the
consumer falls behind, the loop waits: nothing is dropped and memory stays bounded by the
ring.

What the decoder needs from tracee memory is read by the loop itself, following plans the
decoder compiles (``Decoder.plans``); the decoder's capture functions then run on the drain
thread against that snapshot. Syscalls whose reads depend on other reads (argv, iovecs,
msghdr) and the stack capture of ``--source``/``-k`` instead call back into Python while
the tracee is stopped: a stack is only readable then, and walking it needs the unwinder's
caches of mappings and call frame information, which live in Python. Copying a bounded
stack snapshot per syscall into the record would free the stop from the GIL, but an
unwinder that works from copies is a rewrite of its own; the callback keeps ``--source``
exactly as correct as before, and costs nothing when it is off. A ``--source`` call site the
unwinder found once on its one-read path is then answered by the loop alone (``_sites.h``).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

from sysspan.collector import _stoploop
from sysspan.collector.records import (
    F_OURS,
    F_PY_ENTRY,
    F_PY_EXIT,
    F_PY_STACK,
    F_TRUNCATED,
    RawSyscall,
    Syscall,
    record_parser,
)
from sysspan.errors import PtraceDenied, SysspanError
from sysspan.relayed_signals import child_default_signals, relayed_signals_blocked

TYPE_CHECKING = False

if TYPE_CHECKING:  # pyelftools is only loaded when --source/-k asks for it
    from typing import Any

    from sysspan.collector.decode import Decoder
    from sysspan.collector.seccomp import PreparedFilter
    from sysspan.collector.source import SourceCapture

parse_records = record_parser(_stoploop)
_new = tuple.__new__

PTRACE_O_TRACESYSGOOD = 0x1
PTRACE_O_TRACEFORK = 0x2
PTRACE_O_TRACEVFORK = 0x4
PTRACE_O_TRACECLONE = 0x8
PTRACE_O_TRACEEXEC = 0x10
PTRACE_O_TRACESECCOMP = 0x80
H_ENTRY, H_EXIT, H_EXEC, H_GONE = 1, 2, 3, 4
#: The ring between the loop and the drain thread. Records are ~150 bytes, so this holds
#: tens of thousands of syscalls: enough to ride out an export hiccup, small enough to
#: keep memory flat.
RING_BYTES = 4 << 20


class NativeReader:
    """The decoder's ``MemoryReader`` over process_vm_readv, for the stops Python handles."""

    def read(self, pid: int, addr: int, size: int) -> bytes:
        return _stoploop.read_mem(pid, addr, size)

    def read_cstr(self, pid: int, addr: int, limit: int) -> bytes | None:
        return _stoploop.read_cstr(pid, addr, limit)


def ptrace_denied_message(err: OSError, what: str) -> str:
    return (
        f"cannot trace {what}: ptrace was refused ({os.strerror(err.errno or 1)}). "
        "In Docker add --cap-add SYS_PTRACE; on hosts with Yama set "
        "kernel.yama.ptrace_scope=0 (or run as root); or use --no-syscalls to trace without ptrace"
    )


class Tracer:
    """Traces one spawned command (``spawn``) or attached process (``attach``); ``run``
    feeds every record to ``consume`` on the drain thread, in the order they happened."""

    def __init__(
        self,
        decoder: Decoder,
        *,
        follow: bool,
        traced: frozenset[int] | None = None,
        execve_nrs: frozenset[int] = frozenset(),
        seccomp: PreparedFilter | None = None,
        source: SourceCapture | None = None,
        stderr_nrs: frozenset[int] = frozenset(),
        stderr_max: int = 0,
        ring_bytes: int = RING_BYTES,
    ) -> None:
        self.decoder = decoder
        self.follow = follow
        self.traced = traced
        self.execve_nrs = execve_nrs
        self.seccomp = seccomp
        self.source = source
        self.ring_bytes = ring_bytes
        self.plans = decoder.plans(stderr_nrs, stderr_max)
        self.options = PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACEEXEC
        if seccomp is not None:
            self.options |= PTRACE_O_TRACESECCOMP
        # The seccomp filter is inherited by every descendant, and a SECCOMP_RET_TRACE
        # syscall fails with ENOSYS in a process nobody traces. So with the filter the
        # children are always followed; without -f they are only kept running, not recorded.
        if follow or seccomp is not None:
            self.options |= PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE
        self.warnings: list[str] = []
        self.loop: _stoploop.Loop | None = None
        self.root_pid = 0
        self.attached = False
        self.detaching = False
        self.stats: dict[str, int] = {}
        self._reader = NativeReader()
        # What Python captured while a tracee was stopped, by the call's entry seq.
        self._at_entry: dict[int, tuple[object, tuple[int, ...] | None]] = {}
        self._at_exit: dict[int, object] = {}
        self._drain_error: BaseException | None = None
        self._truncated = 0  # syscalls whose reads did not fit in one record

    @property
    def stops(self) -> int:
        """ptrace stops seen: the cost the kernel charged for this trace."""
        return self.stats.get("stops", 0)

    @property
    def seccomp_mode(self) -> bool:
        return bool(self.stats.get("seccomp_mode", 0))

    def _make_loop(self, seccomp_fd: int) -> _stoploop.Loop:
        self.loop = _stoploop.Loop(
            ring_bytes=self.ring_bytes,
            options=self.options,
            follow=self.follow,
            traced=self.traced,
            execve_nrs=self.execve_nrs,
            plans=self.plans,
            hook=self._hook,
            hook_source=self.source is not None,
            seccomp_fd=seccomp_fd,
        )
        if self.source is not None:
            self.source.use_loop(self.loop)
        return self.loop

    # -- starting ---------------------------------------------------------------------------
    def spawn(self, path: str, argv: list[str], env: dict[str, str]) -> int:
        """Fork, let the child stop itself, seize it, then let it exec ``path``."""
        status_r = status_w = -1
        if self.seccomp is not None:
            status_r, status_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        pid = os.fork()
        if pid == 0:  # child: only async-signal-safe-ish work until exec
            try:
                for sig in child_default_signals():
                    signal.signal(sig, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_SETMASK, ())
                os.kill(os.getpid(), signal.SIGSTOP)
                if self.seccomp is not None:
                    # Traced by now, so RET_TRACE cannot hit a tracer-less ENOSYS.
                    err = self.seccomp.install()
                    os.write(status_w, bytes([min(err, 255)]))
                os.execve(path, argv, env)
            except OSError as exc:
                os.write(2, f"sysspan: {argv[0]}: {exc.strerror}\n".encode())
            finally:
                os._exit(127)
        _, status = os.waitpid(pid, os.WUNTRACED)
        if not os.WIFSTOPPED(status):
            raise SysspanError(f"{argv[0]}: the child exited before it could be traced")
        if status_w >= 0:
            os.close(status_w)
        loop = self._make_loop(status_r)
        try:
            loop.spawned(pid, time.time_ns())
        except OSError as exc:
            loop.finish()
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise PtraceDenied(ptrace_denied_message(exc, argv[0])) from None
        self.root_pid = pid
        return pid

    def attach(self, pid: int) -> None:
        """Seize every thread of ``pid`` (repeating until no new threads appear)."""
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            raise SysspanError(f"-p {pid}: no such process") from None
        except PermissionError:
            pass  # ptrace below gives the precise reason
        from sysspan.collector.procfs import proc_ids

        self.attached = True
        self.root_pid = pid
        loop = self._make_loop(-1)
        try:
            loop.attach(pid, proc_ids(pid)[1], time.time_ns())
        except FileNotFoundError:
            loop.finish()
            raise SysspanError(f"-p {pid}: the process exited while attaching") from None
        except OSError as exc:
            loop.finish()
            raise PtraceDenied(ptrace_denied_message(exc, f"process {pid}")) from None

    # -- control ----------------------------------------------------------------------------
    def request_detach(self) -> None:
        """Detach from every tracee at its next stop (``-p`` and Ctrl-C)."""
        self.detaching = True
        if self.loop is not None:
            self.loop.request_detach()

    def forward(self, sig: int) -> None:
        """Deliver ``sig`` to the traced command (Ctrl-C and friends)."""
        if self.loop is not None:
            self.loop.forward(sig)

    # -- running ----------------------------------------------------------------------------
    def run(self, consume: Callable[[Any], None], *, batch: bool = False) -> int | None:
        """Trace until no tracee is left, feeding ``consume`` on the drain thread each
        record (with ``batch``: each list of records, one per chunk of the ring); returns
        the root process's wait status (None if detached or not our child)."""
        loop = self.loop
        if loop is None:
            raise SysspanError("nothing to trace: spawn or attach first")
        with relayed_signals_blocked():
            drain = threading.Thread(
                target=self._drain, args=(loop, consume, batch), name="sysspan-drain", daemon=True
            )
            drain.start()
        try:
            status = loop.run()
        finally:
            drain.join()
            self.stats = loop.stats()
        if self._drain_error is not None:
            raise SysspanError(f"decoding the trace failed: {self._drain_error!r}")
        if self._truncated:
            self.warnings.append(
                f"{self._truncated} syscalls had more argument data than one record holds"
                f" ({self.ring_bytes // 4} bytes); what did not fit shows as addresses"
            )
        if self.stats.get("ptrace_errors", 0):
            self.warnings.append(
                f"{self.stats['ptrace_errors']} ptrace requests failed unexpectedly;"
                " the trace may miss stops"
            )
        if self.stats.get("seccomp_failed_errno", -1) >= 0:
            err = self.stats["seccomp_failed_errno"]
            reason = os.strerror(err) if err else "no status from the child"
            self.warnings.append(
                f"seccomp-bpf filter unavailable ({reason}); stopping at every syscall instead"
            )
        return status

    def _drain(self, loop: _stoploop.Loop, consume: Callable[[Any], None], batch: bool) -> None:
        complete = self._complete
        try:
            while True:
                chunk = loop.drain()
                if chunk is None:
                    return
                records = parse_records(chunk)
                if batch:
                    consume([complete(r) if type(r) is RawSyscall else r for r in records])
                    continue
                for rec in records:
                    if type(rec) is RawSyscall:
                        rec = complete(rec)
                    consume(rec)
        except BaseException as exc:  # noqa: BLE001 - reported by run() on the main thread
            self._drain_error = exc
            loop.abandon()

    def _complete(self, raw: RawSyscall) -> Syscall:
        """The decoder's captures for one syscall: from the loop's snapshot, or what Python
        captured at the stop."""
        call, flags, entry, exit_ = raw
        if flags & F_TRUNCATED:
            self._truncated += 1
        nr, args, tid, rval = call.nr, call.args, call.tid, call.rval
        dec = self.decoder
        ecap = xcap = None
        pcs = call.pcs  # a call site the loop answered itself
        if flags & (F_PY_ENTRY | F_PY_STACK):
            ecap, caught = self._at_entry.pop(call.seq0, (None, None))
            if flags & F_PY_STACK:
                pcs = caught
        if not flags & F_PY_ENTRY and entry is not None:
            ecap = dec.capture_entry(nr, args, tid, entry)
        if flags & F_PY_EXIT:
            xcap = self._at_exit.pop(call.seq0, None)
        elif exit_ is not None and rval is not None:
            xcap = dec.capture_exit(nr, args, rval, tid, exit_)
        # call._replace(...) without namedtuple's generic _make: once per record
        return _new(Syscall, (*call[:9], ecap, xcap, pcs, call[12]))

    def _hook(
        self,
        what: int,
        tid: int,
        tgid: int,
        nr: int,
        args: tuple[int, ...],
        rval: int,
        ip: int,
        sp: int,
        seq0: int,
        flags: int,
    ) -> None:
        """Python's part of a stop, while the tracee is stopped (see the module doc)."""
        if what == H_ENTRY:
            ecap = None
            if flags & F_PY_ENTRY:
                ecap = self.decoder.capture_entry(nr, args, tid, self._reader)
            pcs = None
            if flags & F_PY_STACK and self.source is not None and not flags & F_OURS:
                pcs = self.source.capture(tgid, tid, (ip, sp))
            self._at_entry[seq0] = (ecap, pcs)
        elif what == H_EXIT:
            self._at_exit[seq0] = self.decoder.capture_exit(nr, args, rval, tid, self._reader)
        elif self.source is not None:
            if what == H_EXEC:
                self.source.on_exec(tgid)
            elif what == H_GONE:
                self.source.release(tgid)
