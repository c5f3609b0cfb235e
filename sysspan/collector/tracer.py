"""The ptrace stop loop.

One ``waitpid`` per stop, one ``PTRACE_GET_SYSCALL_INFO`` per syscall stop, and a tuple
handed to the ``Events`` receiver when a syscall completes. Nothing here knows about spans
or OTLP; decoding captures only the raw bytes a shown argument needs, while the tracee is
stopped, and leaves formatting to whoever consumes the events.
"""

from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING, Protocol

from sysspan.collector import _ptrace as pt
from sysspan.collector.procfs import proc_exe, proc_ids, read_cmdline
from sysspan.collector.seccomp import PreparedFilter
from sysspan.errors import PtraceDenied, SysspanError

if TYPE_CHECKING:  # pyelftools is only loaded when --source/-k asks for it
    from sysspan.collector.source import SourceCapture

GROUP_STOP_SIGNALS = frozenset({signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU})
SYSCALL_TRAP = signal.SIGTRAP | 0x80
_WALL = 0x40000000
_SIGN = 1 << 63
_WRAP = 1 << 64


class Capture(Protocol):
    """The decoder's hot-path half (see ``sysspan.collector.decode.Decoder``)."""

    def capture_entry(self, nr: int, args: tuple[int, ...], pid: int, reader: object) -> object: ...

    def capture_exit(
        self, nr: int, args: tuple[int, ...], rval: int, pid: int, reader: object
    ) -> object: ...


class Events(Protocol):
    """What the tracer reports. Times are epoch nanoseconds."""

    def process_start(self, tgid: int, parent_tgid: int, t: int, attached: bool) -> None: ...

    def process_exec(self, tgid: int, t: int, path: str, argv: list[str]) -> None: ...

    def syscall(
        self,
        tid: int,
        tgid: int,
        nr: int,
        args: tuple[int, ...],
        rval: int | None,
        t0: int,
        t1: int,
        ecap: object,
        xcap: object,
        pcs: tuple[int, ...] | None,
    ) -> None: ...

    def signal(self, tid: int, tgid: int, sig: int, t: int, info: tuple | None) -> None: ...

    def process_exit(self, tgid: int, t: int, status: int | None) -> None: ...


def ptrace_denied_message(err: OSError, what: str) -> str:
    return (
        f"cannot trace {what}: ptrace was refused ({os.strerror(err.errno or 1)}). "
        "In Docker add --cap-add SYS_PTRACE; on hosts with Yama set "
        "kernel.yama.ptrace_scope=0 (or run as root); or use --no-syscalls to trace without ptrace"
    )


class Tracer:
    """Runs the stop loop over one traced command (``spawn``) or attached process (``attach``)."""

    def __init__(
        self,
        events: Events,
        capture: Capture,
        *,
        follow: bool,
        traced: frozenset[int] | None = None,
        execve_nrs: frozenset[int] = frozenset(),
        seccomp: PreparedFilter | None = None,
        source: SourceCapture | None = None,
        ptrace: pt.Ptrace | None = None,
    ) -> None:
        self.events = events
        self.capture = capture
        self.follow = follow
        self.pt = ptrace or pt.Ptrace()
        # The syscall numbers to record; None means every syscall.
        self.traced = traced
        self.seccomp = seccomp
        # Source correlation (--source / -k): unwinds the stack at each traced entry. It
        # re-reads /proc/PID/maps when a pc falls outside the known mappings, so mmap
        # calls need no stop of their own.
        self.source = source
        self.seccomp_mode = False
        self.warnings: list[str] = []
        self._seccomp_status_fd = -1
        self.options = pt.PTRACE_O_TRACESYSGOOD | pt.PTRACE_O_TRACEEXEC
        if seccomp is not None:
            self.options |= pt.PTRACE_O_TRACESECCOMP
        # The seccomp filter is inherited by every descendant, and a SECCOMP_RET_TRACE
        # syscall fails with ENOSYS in a process nobody traces. So with the filter the
        # children are always followed; without -f they are only kept running, not
        # recorded (``recorded`` holds the process ids whose syscalls become events).
        if follow or seccomp is not None:
            self.options |= pt.PTRACE_O_TRACEFORK | pt.PTRACE_O_TRACEVFORK | pt.PTRACE_O_TRACECLONE
        self.recorded: set[int] | None = None if follow else set()
        self.tgid_of: dict[int, int] = {}  # tid -> tgid of every live tracee
        self.threads: dict[int, set[int]] = {}  # tgid -> live tids
        self.pending: dict[int, tuple] = {}  # tid -> (nr, args, t0, ecap) between entry and exit
        self.root_pid = 0
        self.root_status: int | None = None
        self.attached = False
        self.detaching = False
        self._pre_exec: set[int] = set()  # spawned child before its first execve
        self.stops = 0  # ptrace stops seen: the cost the kernel charged for this trace
        self._execve_nrs = execve_nrs

    # -- starting ---------------------------------------------------------------------------
    def spawn(self, path: str, argv: list[str], env: dict[str, str]) -> int:
        """Fork, let the child stop itself, seize it, then let it exec ``path``."""
        status_r = status_w = -1
        if self.seccomp is not None:
            status_r, status_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        pid = os.fork()
        if pid == 0:  # child: only async-signal-safe-ish work until exec
            try:
                for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM):
                    signal.signal(sig, signal.SIG_DFL)
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
        try:
            self.pt.seize(pid, self.options | pt.PTRACE_O_EXITKILL)
        except OSError as exc:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise PtraceDenied(ptrace_denied_message(exc, argv[0])) from None
        if self.seccomp is not None:
            os.close(status_w)
            self._seccomp_status_fd = status_r
            self.seccomp_mode = True
        self.root_pid = pid
        self._pre_exec.add(pid)
        self._add(pid, pid, os.getpid(), time.time_ns(), attached=False)
        os.kill(pid, signal.SIGCONT)
        return pid

    def attach(self, pid: int) -> None:
        """Seize every thread of ``pid`` (repeating until no new threads appear)."""
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            raise SysspanError(f"-p {pid}: no such process") from None
        except PermissionError:
            pass  # ptrace below gives the precise reason
        self.attached = True
        self.root_pid = pid
        now = time.time_ns()
        self.events.process_start(pid, pt.parent_pid(pid), now, True)
        self.threads[pid] = set()
        if self.recorded is not None:
            self.recorded.add(pid)
        seen: set[int] = set()
        while True:
            try:
                tids = {int(t) for t in os.listdir(f"/proc/{pid}/task")}
            except FileNotFoundError:
                raise SysspanError(f"-p {pid}: the process exited while attaching") from None
            new = tids - seen
            if not new:
                break
            for tid in sorted(new):
                try:
                    self.pt.seize(tid, self.options)
                except OSError as exc:
                    if exc.errno == 3 and tid != pid:  # thread exited meanwhile
                        continue
                    if not seen:
                        raise PtraceDenied(ptrace_denied_message(exc, f"process {pid}")) from None
                    continue
                self.pt.interrupt(tid)
                self.tgid_of[tid] = pid
                self.threads[pid].add(tid)
            seen |= new
        try:
            self.events.process_exec(pid, now, proc_exe(pid), read_cmdline(pid))
        except OSError:
            pass

    def _add(self, tid: int, tgid: int, parent_tgid: int, t: int, attached: bool) -> None:
        self.tgid_of[tid] = tgid
        if tgid not in self.threads:
            self.threads[tgid] = set()
            if self.recorded is not None:
                if self.recorded and tgid not in self.recorded:
                    self.threads[tgid].add(tid)
                    return  # followed only to keep it running under the seccomp filter
                self.recorded.add(tgid)
            self.events.process_start(tgid, parent_tgid, t, attached)
        self.threads[tgid].add(tid)

    def _adopt(self, tid: int, t: int, parent_tgid: int = 0) -> int:
        """Register a tracee seen for the first time (a new child's stop can arrive before
        its parent's fork event)."""
        tgid, ppid = proc_ids(tid)
        if not tgid:
            tgid, ppid = tid, parent_tgid
        self._add(tid, tgid, parent_tgid or ppid, t, attached=False)
        return tgid

    # -- control ----------------------------------------------------------------------------
    def request_detach(self) -> None:
        """Detach from every tracee at its next stop (``-p`` and Ctrl-C)."""
        self.detaching = True
        for tid in list(self.tgid_of):
            self.pt.interrupt(tid)

    def forward(self, sig: int) -> None:
        """Deliver ``sig`` to the traced command (Ctrl-C and friends)."""
        if self.root_pid and self.root_status is None:
            try:
                os.kill(self.root_pid, sig)
            except ProcessLookupError:
                pass

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> int | None:
        """Trace until no tracee is left; returns the root process's wait status (None if
        detached or not our child)."""
        pt_ = self.pt
        info = pt_.syscall_info
        pending = self.pending
        tgid_of = self.tgid_of
        events = self.events
        cap = self.capture
        traced = self.traced
        now = time.time_ns
        waitpid = os.waitpid
        pre_exec = self._pre_exec
        source = self.source
        recorded = self.recorded
        stops = 0
        while tgid_of:
            try:
                tid, status = waitpid(-1, _WALL)
            except ChildProcessError:
                break
            t = now()
            stops += 1
            self.stops = stops
            if status & 0xFF != 0x7F:
                self._gone(tid, status, t)
                continue
            sig = (status >> 8) & 0xFF
            event = status >> 16
            if sig == SYSCALL_TRAP or event == pt.PTRACE_EVENT_SECCOMP:
                if self.detaching:
                    self._detach(tid, 0)
                    continue
                si = info(tid)
                op = si[0]
                if op == 2:  # exit
                    entry = pending.pop(tid, None)
                    if entry is not None:
                        rval = si[4]
                        if rval & _SIGN:
                            rval -= _WRAP
                        nr, args, t0, ecap, pcs = entry
                        xcap = cap.capture_exit(nr, args, rval, tid, pt_)
                        tgid = tgid_of.get(tid) or self._adopt(tid, t)
                        events.syscall(tid, tgid, nr, args, rval, t0, t, ecap, xcap, pcs)
                    # seccomp mode: run freely until the next filtered syscall
                    (pt_.cont if self.seccomp_mode else pt_.syscall)(tid, 0)
                    continue
                # entry (op 1) or seccomp stop (op 3)
                nr = si[4]
                ours = False  # the execve sysspan's own forked child makes: no user stack
                if pre_exec and tid in pre_exec:
                    if nr not in self._execve_nrs:
                        self._resume(tid, 0)
                        continue
                    pre_exec.discard(tid)
                    ours = True
                if (traced is None or nr in traced) and (
                    recorded is None or tgid_of.get(tid) in recorded
                ):
                    args = si[5:11]
                    pcs = None
                    if source is not None and not ours:
                        pcs = source.capture(tgid_of.get(tid, tid), tid, (si[2], si[3]))
                    pending[tid] = (nr, args, t, cap.capture_entry(nr, args, tid, pt_), pcs)
                    pt_.syscall(tid, 0)  # always stop at this call's exit
                else:
                    self._resume(tid, 0)
                continue
            if event:
                self._event(tid, event, sig, t)
                continue
            # Signal-delivery stop: report it and pass the signal on.
            if self.detaching:
                self._detach(tid, sig)
                continue
            tgid = tgid_of.get(tid) or self._adopt(tid, t)
            if not (pre_exec and tid in pre_exec) and (recorded is None or tgid in recorded):
                events.signal(tid, tgid, sig, t, pt_.siginfo(tid))
            self._resume(tid, sig)
        return self.root_status

    def _resume(self, tid: int, sig: int) -> None:
        """PTRACE_SYSCALL while syscall stops are wanted for this thread; with the seccomp
        filter only a thread inside a traced call needs one (to see its exit)."""
        if self.seccomp_mode and tid not in self.pending:
            self.pt.cont(tid, sig)
        else:
            self.pt.syscall(tid, sig)

    def _event(self, tid: int, event: int, sig: int, t: int) -> None:
        pt_ = self.pt
        if tid not in self.tgid_of:
            self._adopt(tid, t)
        if event in (pt.PTRACE_EVENT_FORK, pt.PTRACE_EVENT_VFORK, pt.PTRACE_EVENT_CLONE):
            child = pt_.event_msg(tid)
            if child and child not in self.tgid_of:
                parent_tgid = self.tgid_of[tid]
                if event == pt.PTRACE_EVENT_CLONE:
                    ctgid, _ = proc_ids(child)
                    if ctgid == parent_tgid:
                        self.tgid_of[child] = parent_tgid
                        self.threads[parent_tgid].add(child)
                    else:
                        self._add(child, ctgid or child, parent_tgid, t, attached=False)
                else:
                    self._add(child, child, parent_tgid, t, attached=False)
        elif event == pt.PTRACE_EVENT_EXEC:
            tgid = self.tgid_of[tid]
            former = pt_.event_msg(tid)
            if former and former != tid:
                # A non-leader thread exec'd: it now carries the leader's tid and the
                # other threads are gone.
                entry = self.pending.pop(former, None)
                if entry is not None:
                    self.pending[tid] = entry
                for other in list(self.threads.get(tgid, ())):
                    if other != tid:
                        self.tgid_of.pop(other, None)
                        self.pending.pop(other, None)
                self.threads[tgid] = {tid}
            self._pre_exec.discard(tid)
            if self.recorded is not None and tgid not in self.recorded:
                self._resume(tid, 0)
                return
            if self.source is not None:
                self.source.on_exec(tgid)
            if self._seccomp_status_fd >= 0:
                self._check_seccomp()
            try:
                self.events.process_exec(tgid, t, proc_exe(tid), read_cmdline(tid))
            except OSError:
                pass
        elif event == pt.PTRACE_EVENT_STOP:
            if self.detaching:
                self._detach(tid, 0)
                return
            if sig in GROUP_STOP_SIGNALS:
                # Group-stop under PTRACE_SEIZE: stay stopped without swallowing SIGCONT.
                pt_.listen(tid)
                return
        if self.detaching:
            self._detach(tid, 0)
            return
        self._resume(tid, 0)

    def _check_seccomp(self) -> None:
        """The child wrote whether its filter went in before it exec'd; without it, fall
        back to stopping at every syscall."""
        fd, self._seccomp_status_fd = self._seccomp_status_fd, -1
        try:
            data = os.read(fd, 1)
        except BlockingIOError:
            data = b""
        finally:
            os.close(fd)
        if data != b"\0":
            err = data[0] if data else 0
            self.seccomp_mode = False
            reason = os.strerror(err) if err else "no status from the child"
            self.warnings.append(
                f"seccomp-bpf filter unavailable ({reason}); stopping at every syscall instead"
            )

    def _detach(self, tid: int, sig: int) -> None:
        self.pt.detach(tid, sig)
        self._forget(tid)

    def _forget(self, tid: int) -> int | None:
        tgid = self.tgid_of.pop(tid, None)
        self.pending.pop(tid, None)
        self.pt.forget(tid)
        if tgid is not None:
            members = self.threads.get(tgid)
            if members is not None:
                members.discard(tid)
        return tgid

    def _gone(self, tid: int, status: int, t: int) -> None:
        """A tracee exited or was killed."""
        entry = self.pending.get(tid)
        tgid = self.tgid_of.get(tid)
        if entry is not None and tgid is not None:
            # exit/exit_group (or a call interrupted by a fatal signal) never return.
            nr, args, t0, ecap, pcs = entry
            self.events.syscall(tid, tgid, nr, args, None, t0, t, ecap, None, pcs)
        self._forget(tid)
        if tid == self.root_pid and not self.attached:
            self.root_status = status
        if tgid is not None and tid == tgid:
            for other in list(self.threads.get(tgid, ())):
                self._forget(other)
            self.threads.pop(tgid, None)
            if self.recorded is not None and tgid not in self.recorded:
                return
            self.events.process_exit(tgid, t, status)
            if self.source is not None:
                self.source.release(tgid)
