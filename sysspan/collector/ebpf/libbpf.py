"""The eBPF backend through libbpf: sysspan's own BPF programs (``sysspan.bpf.c``), loaded by
the ``_bpf`` extension, write the ptrace loop's binary records into one BPF ring buffer.

Start-up is a load and a few attaches (tens of milliseconds, where bpftrace compiles its
program for about two seconds), and a record is parsed by the same C parser as the
ptrace loop's are: no text on the way. Process handling (the spawned child waiting on a pipe
until the probes are attached, reaping, ``-p``) is ``EbpfTracer``'s.

Ending a run needs no marker: a process's exit record is written before its parent can reap
it, so once sysspan has reaped everything, draining the ring until it is empty reads every
record. A record the full ring could not take is counted in the kernel (the ``lost`` map):
syscalls apart from the other records, so spans + lost = syscalls exactly.
"""

from __future__ import annotations

import os
import struct
import sys
import threading
import time
from collections.abc import Callable

from sysspan.collector.ebpf import preflight
from sysspan.collector.ebpf.tracefs import Target, syscall_fields
from sysspan.collector.ebpf.tracer import (
    BUFFER_BUDGET,
    EbpfTracer,
    _yield_cpu,
    buffer_pages_setting,
)
from sysspan.collector.records import (
    P_CSTR,
    P_MEM,
    ProcessStart,
    RawSyscall,
    Record,
    Snapshot,
    Syscall,
    record_parser,
)
from sysspan.collector.syscalls import table
from sysspan.errors import EbpfUnavailable, SysspanError
from sysspan.relayed_signals import child_default_signals

TYPE_CHECKING = False

if TYPE_CHECKING:  # annotations only: typing is not imported on a traced run
    from typing import Any

try:
    from sysspan.collector.ebpf import _bpf
except ImportError:  # built only where clang, bpftool and libbpf-dev were at install time
    _bpf = None  # type: ignore[assignment]
else:
    parse_records = record_parser(_bpf)

#: Keep in step with sysspan.bpf.c.
MAX_READS = 6
OP_SLOTS = 8
PLANS_MAX = 1024
F_ENTRY_ONLY = 64
NO_SYSCALL = 0xFFFFFFFF
_CONFIG = struct.Struct("<QIIIIIIIxxxx")
_PLAN = struct.Struct("<II")
_OP = struct.Struct("<bbbbbbxxIIQ")
_KEY = struct.Struct("<I")
#: fentry/fexit program pairs in sysspan.bpf.c (FENTRY_SLOTS)
FENTRY_SLOTS = 32
#: The kernel function of syscall NAME is PREFIX + NAME (the wrapper taking the user's pt_regs).
SYSCALL_PREFIX = {"x86_64": "__x64_sys_", "aarch64": "__arm64_sys_"}
#: How long one drain call waits for records before the reader looks at its stop flag.
DRAIN_WAIT_MS = 20
#: With a selection, records wake the reader once the ring is this full (a fraction of it),
#: and a record waits at most WAKE_WAIT_MS to be read: it is not looked at every few ms.
WAKE_FRACTION = 4
WAKE_WAIT_MS = 100
PAGE = 4096
#: Entries of the traced and inflight hash maps when any number of processes or threads can
#: be traced (sysspan.bpf.c's own size)
MAP_ENTRIES = 65536


def available() -> bool:
    """Whether the libbpf loader was built into this installation."""
    return _bpf is not None


def ring_bytes(selected: bool) -> int:
    """The ring buffer's size: SYSSPAN_EBPF_BUFFER_PAGES pages (a power of two), or else
    BUFFER_BUDGET (256 MiB: a backlog of 1.8 million syscalls while sysspan's niced reader
    waits for the CPU), 2 MiB for a ``-e trace=`` selection. The kernel allocates and zeroes
    the whole ring at start-up (about 0.17 ms of CPU per MiB here), which a short filtered run
    would mostly pay for; a selection of the busiest syscalls outruns the reader with 32 MiB
    too (read and write of dd bs=1 lost over a third), so it needs the setting either way.
    A burst beyond the ring is counted as lost, never silent."""
    pages = buffer_pages_setting()
    if pages is None:
        return BUFFER_BUDGET // 128 if selected else BUFFER_BUDGET
    return pages * PAGE


def map_sizes(target: Target) -> dict[str, int]:
    """Entries of the hash maps for whom ``target`` says to trace: the traced processes (one
    without -f) and the threads inside a syscall (one for a spawned command without -f).
    MAP_ENTRIES otherwise; the kernel allocates a map's buckets whole at load."""
    return {"traced": MAP_ENTRIES if target.follow else 1,
            "inflight": 1 if target.thread_only else MAP_ENTRIES}


def _debug(message: str) -> None:
    """A line for SYSSPAN_EBPF_DEBUG (why a probe took the slower way)."""
    if os.environ.get("SYSSPAN_EBPF_DEBUG"):
        sys.stderr.write(f"sysspan ebpf: {message}\n")


def _pack_plan(plan: tuple | None, nargs: int) -> bytes:
    """A decoder plan entry as the BPF program's ``struct ss_plan``. A side that needs Python
    at a stop is left out (its arguments show as addresses, as strace shows what it does not
    decode); so is the stderr copy, which only the ptrace backend makes."""
    ops: list[bytes] = []
    if plan is not None:
        entry_ops, entry_py, exit_ops, exit_py = plan
        for side, py, at_exit in ((entry_ops, entry_py, 0), (exit_ops, exit_py, 1)):
            if py:
                continue
            for arg, op, cap, len_arg, flags, mult, cond_arg, cond_val in side:
                if op not in (P_MEM, P_CSTR) or len(ops) == MAX_READS:
                    continue
                ops.append(_OP.pack(arg, op, len_arg, flags, cond_arg, at_exit, mult,
                                    min(cap, 0xFFFFFFFF), cond_val & 0xFFFFFFFFFFFFFFFF))
    pad = _OP.size * (OP_SLOTS - len(ops))
    return _PLAN.pack(len(ops), nargs) + b"".join(ops) + b"\0" * pad


class LibbpfTracer(EbpfTracer):
    """``EbpfTracer`` with sysspan's own BPF programs in place of bpftrace."""

    batched = True

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._session: Any = None
        self._done = threading.Event()
        self._entries: dict[int, Snapshot] = {}
        self._missing: list[str] = []
        self._config: tuple[int, ...] = ()
        #: syscall number -> fentry slot, for the selected syscalls whose programs loaded
        self._slots: dict[int, int] = {}
        self._sizes: dict[str, int] = {}
        self._enter = "sys_enter"
        self._unused: list[str] = []
        self._ring = 0
        self._drain_wait_ms = DRAIN_WAIT_MS

    def _preflight(self) -> str:
        preflight.check_privileges()
        preflight.check_btf()
        preflight.ensure_tracefs()
        return ""

    # -- the kernel side -------------------------------------------------------------------
    def _start_kernel(self, target: Target) -> None:
        assert _bpf is not None
        names = table(self.arch)
        ring = self._ring = ring_bytes(self.traced is not None)
        session = None
        nrs = self._fentry_candidates(names) if self.traced is not None else []
        self._sizes = map_sizes(target)
        # only the programs this run attaches are loaded: each is verified at load
        argv = self.traced is None or any(nr in self.traced for nr in self.execve_argv)
        self._enter = "sys_enter" if argv else "sys_enter_plain"
        self._unused = ["sys_enter_plain" if argv else "sys_enter",
                        *(() if target.follow else ("newtask",))]
        if nrs:
            session = self._load_with_fentry(ring, nrs, names)
        if session is None:
            try:
                session = _bpf.Session(ring, (), self._sizes, self._unused)
            except OSError as exc:
                raise EbpfUnavailable(f"--backend ebpf: {exc}; {preflight.ALTERNATIVE}") from None
        self._session = session
        try:
            self._configure(session, target, names)
        except OSError as exc:
            raise EbpfUnavailable(f"--backend ebpf: {exc}; {preflight.ALTERNATIVE}") from None

    def _fentry_candidates(self, names: dict[int, str]) -> list[int]:
        """The selected syscalls to trace by fentry/fexit (no syscall tracepoint enabled, so
        the traced program's other syscalls keep the kernel's fast path); [] with the reason
        in the debug log when this kernel cannot."""
        # Opt-in until it has run on a kernel that loads BPF tracing programs: the machines
        # this is tested on refuse them (lockdown), so only the tracepoint path is proven.
        if os.environ.get("SYSSPAN_EBPF_FENTRY", "") != "1":
            _debug("fentry/fexit not asked for (SYSSPAN_EBPF_FENTRY=1): using syscall tracepoints")
            return []
        if self.arch not in SYSCALL_PREFIX:
            _debug(f"no fentry targets known on {self.arch}: using syscall tracepoints")
            return []
        assert _bpf is not None
        if not _bpf.fentry_supported():
            _debug("this kernel refuses BPF tracing (fentry) programs: using syscall tracepoints")
            return []
        assert self.traced is not None
        return sorted(nr for nr in self.traced if nr in names)[:FENTRY_SLOTS]

    def _load_with_fentry(self, ring: int, nrs: list[int], names: dict[int, str]) -> Any:
        """The programs loaded with a fentry/fexit pair per syscall in ``nrs``; when that load
        fails, again with only the syscalls whose functions are in the kernel's BTF; None when
        that fails too (the caller loads without fentry)."""
        assert _bpf is not None
        prefix = SYSCALL_PREFIX[self.arch]
        try:
            session = _bpf.Session(ring, [prefix + names[nr] for nr in nrs], self._sizes,
                                   self._unused)
        except OSError as exc:
            found = _bpf.btf_functions([prefix + names[nr] for nr in nrs])
            absent = [names[nr] for nr, ok in zip(nrs, found, strict=True) if not ok]
            _debug(f"loading fentry programs failed ({exc}); not in the kernel's BTF: "
                   f"{', '.join(absent) or 'none'}")
            nrs = [nr for nr, ok in zip(nrs, found, strict=True) if ok]
            if not absent or not nrs:
                return None
            try:
                session = _bpf.Session(ring, [prefix + names[nr] for nr in nrs], self._sizes,
                                   self._unused)
            except OSError as exc2:
                _debug(f"fentry unavailable, using syscall tracepoints: {exc2}")
                return None
        self._slots = {nr: slot for slot, nr in enumerate(nrs)}
        return session

    def _configure(self, session: Any, target: Target, names: dict[int, str]) -> None:
        execve = {names[nr]: nr for nr in self.execve_argv}
        offset = time.time_ns() - time.monotonic_ns()
        # a full trace is a steady stream, which the reader polls for; a selection's records
        # wake it once the ring is WAKE_FRACTION full (and it looks every WAKE_WAIT_MS)
        wake_at = 0 if self.traced is None else self._ring // WAKE_FRACTION
        self._config = (offset, target.root, int(target.follow), int(target.thread_only),
                        execve.get("execve", NO_SYSCALL), execve.get("execveat", NO_SYSCALL),
                        wake_at)
        session.update("cfg", _KEY.pack(0), _CONFIG.pack(*self._config, 0))
        if wake_at:
            session.wait_for_wakeups()
            self._drain_wait_ms = WAKE_WAIT_MS
        session.update("seqno", _KEY.pack(0), struct.pack("<Q", 1))  # 0: the root's start
        session.update("traced", _KEY.pack(target.root), b"\1")
        plans = self._plans
        if self.traced is None:
            for nr, plan in enumerate(plans[:PLANS_MAX]):
                if plan is not None:
                    session.update("plans", _KEY.pack(nr), _pack_plan(plan, 6))
            session.attach("sys_enter", "raw_syscalls", "sys_enter")
            session.attach("sys_exit", "raw_syscalls", "sys_exit")
        else:
            fields = {nr: syscall_fields(names[nr]) for nr in self.traced if nr in names}
            fentry = {nr: slot for nr, slot in self._slots.items() if self._attach_fentry(nr, slot)}
            chosen = sorted(nr for nr in self.traced
                            if nr in fentry or fields.get(nr) is not None)
            self._missing = sorted(names.get(nr, str(nr)) for nr in self.traced if nr not in chosen)
            if not chosen:
                raise EbpfUnavailable(
                    f"-e trace=: this kernel has no tracepoints for {', '.join(self._missing)}; "
                    "use --backend ptrace"
                )
            for nr in chosen:
                # the arguments past the syscall's own show as 0, as its tracepoint record has
                # none (the tracefs format names them, whether the tracepoint is used or not)
                own = fields.get(nr)
                nargs = 6 if own is None else len(own)
                plan = plans[nr] if nr < len(plans) else None
                if nr < PLANS_MAX:
                    session.update("plans", _KEY.pack(nr), _pack_plan(plan, nargs))
                if nr in fentry:
                    continue
                session.attach(self._enter, "syscalls", f"sys_enter_{names[nr]}")
                session.attach("sys_exit", "syscalls", f"sys_exit_{names[nr]}")
        if target.follow:
            session.attach("newtask", "task", "task_newtask")
        session.attach("exec", "sched", "sched_process_exec")
        session.attach("proc_exit", "sched", "sched_process_exit")
        session.attach("sig_deliver", "signal", "signal_deliver")

    def _attach_fentry(self, nr: int, slot: int) -> bool:
        """Attach the slot's fentry/fexit pair to syscall ``nr``'s function; False (the reason
        in the debug log) when the kernel refuses, and its tracepoints are used instead."""
        session = self._session
        session.update("slot_nr", _KEY.pack(slot), _KEY.pack(nr))
        try:
            session.attach_fentry(slot)
        except OSError as exc:
            _debug(f"syscall {nr}: fentry not attached, using its tracepoints: {exc}")
            return False
        return True

    def _wait_ready(self) -> None:
        """Attaching returned: every probe is in place."""

    def _fork_paused(self, path: str, argv: list[str], env: dict[str, str], go_r: int,
                     go_w: int) -> int:
        """As ``EbpfTracer``'s, forked in C without Python's heap: a Python fork leaves every
        page of sysspan write-protected, and each page written until its exit then faults
        (about 2 ms of a short run)."""
        assert _bpf is not None
        fs = os.fsencode
        return _bpf.spawn_paused(fs(path), [fs(a) for a in argv],
                                 [fs(k) + b"=" + fs(v) for k, v in env.items()],
                                 go_r, go_w, [int(s) for s in child_default_signals()])

    # -- running ---------------------------------------------------------------------------
    def run(self, consume: Callable[[Any], None], *, batch: bool = False) -> int | None:
        """Run until the traced processes are gone; returns the root's wait status. With
        ``batch``, ``consume`` takes each drained chunk's records as one list."""
        session = self._session
        if session is None:
            raise SysspanError("nothing to trace: spawn or attach first")
        if self._missing:
            self.warnings.append(
                f"-e trace=: no tracepoints here for {', '.join(self._missing)}; not traced"
            )
        root = ProcessStart(self.root_pid, 0 if self.attached else os.getpid(), self._start_ns,
                            self.attached, 0)
        if batch:
            consume([root])
        else:
            consume(root)
        _yield_cpu()
        reader = threading.Thread(target=self._drain_ring, args=(session, consume, batch),
                                  name="sysspan-ebpf", daemon=True)
        reader.start()
        status: int | None = None
        try:
            status = self._until_gone(0)
        finally:
            # stop recording, then leave the slow detaching to a process that outlives this one
            session.update("cfg", _KEY.pack(0), _CONFIG.pack(*self._config, 1))
            try:
                session.handoff()
            except OSError:
                session.detach()
            self._done.set()
            session.interrupt()  # a drain waiting for records would hold the join until its timeout
            reader.join()
            lost = session.percpu_sum("lost", 0)
            other = session.percpu_sum("lost", 1)
            self._cleanup()
        self.lost = lost
        self.stats = {"lost": lost, "lost_other": other}
        if other:
            self.warnings.append(
                f"{other} process events (fork, exec, exit, signal) were lost: the eBPF ring "
                "buffer was full"
            )
        if self._error is not None:
            raise SysspanError(f"decoding the trace failed: {self._error!r}")
        return status

    def _drain_ring(self, session: Any, consume: Callable[[Any], None], batch: bool) -> None:
        """Drain the ring until the run is over and the ring is empty."""
        complete = self._complete_raw
        entries = self._entries
        execve = self.execve_argv
        try:
            while True:
                done = self._done.is_set()
                chunk = session.drain(0 if done else self._drain_wait_ms)
                if not chunk:
                    if done:
                        return
                    continue
                records: list[Record] = []
                append = records.append
                for rec in parse_records(chunk):
                    if type(rec) is RawSyscall:
                        done_call = complete(rec)
                        if done_call is not None:
                            append(done_call)
                    elif type(rec) is Syscall and entries and rec.nr in execve:
                        append(self._with_entry(rec, None))
                    else:
                        append(rec)  # type: ignore[arg-type]  # not a RawSyscall here
                if batch:
                    consume(records)
                    continue
                for rec in records:
                    consume(rec)
        except BaseException as exc:  # noqa: BLE001 - reported by run()
            self._error = exc

    def _complete_raw(self, raw: RawSyscall) -> Syscall | None:
        """The decoder's captures from the memory the BPF program read; an entry-only record
        (execve's path and argv) waits for its call's record."""
        call, flags, entry, exit_ = raw
        if flags & F_ENTRY_ONLY:
            if entry is not None:
                self._entries[call.tid] = entry
            return None
        return self._with_entry(call, entry, exit_)

    def _with_entry(self, call: Syscall, entry: Snapshot | None,
                    exit_: Snapshot | None = None) -> Syscall:
        nr, args, tid, rval = call.nr, call.args, call.tid, call.rval
        if nr in self.execve_argv:
            entry = self._entries.pop(tid, None) or entry
        dec = self.decoder
        ecap = dec.capture_entry(nr, args, tid, entry) if entry is not None else None
        xcap = None
        if exit_ is not None and rval is not None:
            xcap = dec.capture_exit(nr, args, rval, tid, exit_)
        return call._replace(ecap=ecap, xcap=xcap)

def new_tracer(decoder: Any, **kw: Any) -> EbpfTracer:
    """The libbpf tracer where its loader was built, else the bpftrace one;
    SYSSPAN_EBPF_BPFTRACE=1 chooses bpftrace."""
    forced = os.environ.get("SYSSPAN_EBPF_BPFTRACE", "") not in ("", "0")
    if available() and not forced:
        return LibbpfTracer(decoder, **kw)
    import shutil  # bpftrace's side only: the libbpf path never loads it

    if not forced and shutil.which("bpftrace") is None:
        raise EbpfUnavailable(
            "--backend ebpf needs sysspan's libbpf loader, which this installation lacks "
            "(apt-get install clang bpftool libbpf-dev, then reinstall sysspan), or bpftrace "
            f"(apt-get install bpftrace); {preflight.ALTERNATIVE}"
        )
    return EbpfTracer(decoder, **kw)
