"""The span builder: turns tracer events into spans (docs/architecture.md §4).

run span (remote parent or root)
  └─ process span per traced process, parented by the process tree
       └─ syscall span per completed syscall (entry → exit), thread.id = the calling thread
"""

from __future__ import annotations

import os
import signal as _signal
from collections.abc import Callable

from sysspan.collector.records import (
    FLUSH,
    DecisionItem,
    Flush,
    LineEvent,
    ProcessExec,
    ProcessExit,
    ProcessStart,
    Record,
    Signal,
    Syscall,
    SyscallItem,
    ThreadExit,
)
from sysspan.decisions.model import Decision, DecisionLinker, decision_span
from sysspan.decisions.recorder import DecisionRecorder
from sysspan.ids import SpanIds
from sysspan.model import Span, SpanEvent, SpanKind, StatusCode, SyscallSpan
from sysspan.redact import redact
from sysspan.span_roles import PROCESS, ROLE_KEY, SYSCALL

TYPE_CHECKING = False

if TYPE_CHECKING:  # annotations only: these pull in pyelftools and msgpack
    from sysspan.collector.decode import Decoded
    from sysspan.collector.source import SourceCapture
    from sysspan.decisions.ruchy import DecisionWriter


_FORMAT_CACHE_MAX = 4096
# exited processes whose span ids are kept for their late decisions
_EXITED_MAX = 4096


def signal_name(sig: int) -> str:
    try:
        return _signal.Signals(sig).name
    except ValueError:
        if _signal.SIGRTMIN <= sig <= _signal.SIGRTMAX:
            return f"SIGRT_{sig - _signal.SIGRTMIN}"
        return f"SIG{sig}"


def mark_exit(span: Span, status: int | None, code: int | None, *, nonzero_is_error: bool) -> None:
    """The one mapping from a wait status to a span: ``process.exit.code``, and the error
    status for a death by signal (and, with ``nonzero_is_error``, for a non-zero exit)."""
    attrs = span.attributes
    if code is not None:
        attrs["process.exit.code"] = code
    if status is not None and os.WIFSIGNALED(status):
        sig = signal_name(os.WTERMSIG(status))
        attrs["error.type"] = sig
        span.status = StatusCode.ERROR
        span.status_message = f"killed by {sig}"
    elif code and nonzero_is_error:
        attrs["error.type"] = str(code)
        span.status = StatusCode.ERROR
        span.status_message = f"exited with status {code}"


def exit_code_of(status: int | None) -> int | None:
    """Shell convention: the exit code, or 128+N when killed by signal N."""
    if status is None:
        return None
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return None


def _exit_text(status: int | None) -> str | None:
    """strace's line for a wait status (None: no line)."""
    if status is None:
        return None
    if os.WIFSIGNALED(status):
        return f"+++ killed by {signal_name(os.WTERMSIG(status))} +++"
    if os.WIFEXITED(status):
        return f"+++ exited with {os.WEXITSTATUS(status)} +++"
    return None


# Plain slotted classes rather than dataclasses: building a dataclass costs every start-up
# about a millisecond.
class SyscallStat:
    """The exact counters of one syscall number (the -c table)."""

    __slots__ = ("calls", "errors", "total_ns")

    def __init__(self, calls: int = 0, errors: int = 0, total_ns: int = 0) -> None:
        self.calls = calls
        self.errors = errors
        self.total_ns = total_ns

    def __repr__(self) -> str:
        return f"SyscallStat(calls={self.calls}, errors={self.errors}, total_ns={self.total_ns})"


class _Proc:
    __slots__ = ("span_id", "parent_span_id", "ppid", "start_ns", "name", "exe", "argv",
                 "events", "attached")

    def __init__(self, *, span_id: int, parent_span_id: int, ppid: int, start_ns: int,
                 name: str, exe: str = "", argv: list[str] | None = None,
                 attached: bool = False) -> None:
        self.span_id = span_id
        self.parent_span_id = parent_span_id
        self.ppid = ppid
        self.start_ns = start_ns
        self.name = name
        self.exe = exe
        self.argv: list[str] = argv if argv is not None else []
        self.events: list[SpanEvent] = []
        self.attached = attached


class _Shape:
    """What the spans of one distinct syscall of one thread share (see ``SyscallSpan``)."""

    __slots__ = ("decoded", "typed", "name", "attrs", "status", "message")

    def __init__(self, decoded: Decoded, typed: dict | None, name: str, attrs: dict,
                 status: StatusCode, message: str) -> None:
        self.decoded = decoded
        self.typed = typed
        self.name = name
        self.attrs = attrs
        self.status = status
        self.message = message


_INTERNAL = SpanKind.INTERNAL


def _syscall_attrs(d: Decoded, tid: int, rval: int | None, typed: dict | None) -> dict:
    """A syscall span's attributes before the stack's and ``error.type``."""
    attrs: dict = {
        "syscall.name": d.name, "syscall.args": d.args, "thread.id": tid, ROLE_KEY: SYSCALL
    }
    if rval is not None:
        attrs["syscall.return"] = rval
    if d.path is not None:
        attrs["file.path"] = d.path
    if typed:
        attrs.update(typed)
    return attrs


def _pass_on(linker: DecisionLinker | None, spans: list[Span], tids: list[int], out: list[Span]) -> None:
    """Syscall spans to the decision linker, or straight out when there is none."""
    if linker is not None:
        linker.syscalls(spans, tids)
    else:
        out.extend(spans)


class SpanBuilder:
    """Consumes the tracer's records (``handle``).

    Process and run spans are emitted as ``Span`` objects; syscalls are emitted as
    ``SyscallItem``s that ``materialize`` turns into spans (and ``line(...)`` text) on the
    export thread, so the thread feeding the builder never formats anything.

    ``typed`` (see ``collector/decode/typed.py``) adds the typed argument attributes to
    syscall spans and hands them to ``line`` too.
    """


    def __init__(
        self,
        *,
        trace_id: int,
        run_span_id: int,
        ids: SpanIds,
        format_call: Callable[..., Decoded],
        emit: Callable[[object], None],
        emit_all: Callable[[list], None] | None = None,
        line: Callable[..., None] | None = None,
        line_event: Callable[[int, str | None, int], None] | None = None,
        trace_flags: int = 1,
        trace_state: str = "",
        max_events_per_process: int = 128,
        gate: Callable[[int], bool] | None = None,
        source: SourceCapture | None = None,
        line_stack: Callable[[list[str]], None] | None = None,
        decisions: DecisionRecorder | None = None,
        decision_writer: DecisionWriter | None = None,
        typed: Callable[..., dict | None] | None = None,
        typed_stateless: Callable[[int], bool] | None = None,
    ) -> None:
        self.trace_id = trace_id
        self.run_span_id = run_span_id
        self.ids = ids
        self.format_call = format_call
        self.emit = emit
        # emit for a list of items in order (Pipeline.emit_all): one call per chunk of records
        self.emit_all = emit_all or self._emit_each
        self.line = line
        self.line_event = line_event
        self.flags = trace_flags
        self.trace_state = trace_state
        self.max_events = max_events_per_process
        self.gate = gate  # sampling / rate limit: gate(t_ns) -> keep the span?
        self.source = source  # symbolises captured stacks (code.* attributes)
        self.line_stack = line_stack or (lambda _lines: None)
        self.decisions = decisions  # decision sources (channel, stderr protocol) and gate
        self.decision_writer = decision_writer  # --decisions-out
        self.typed = typed  # typed argument attributes (collector/decode/typed.py)
        # which syscalls' typed attributes may be reused (None: none of them)
        self.typed_stateless = typed_stateless
        self._linker: DecisionLinker | None = None
        self.procs: dict[int, _Proc] = {}
        # span ids of processes that have exited, for their decisions that reach the builder
        # later (read from the ring after the exit was handled, or held back behind another
        # process's later decision); bounded, oldest first out
        self._exited: dict[int, int] = {}
        self.stats: dict[int, SyscallStat] = {}
        self.seq = 0
        self.syscall_count = 0
        self.syscalls_dropped = 0
        self.process_count = 0
        self.spans_emitted = 0
        self.root_tgid = 0
        self._formatted: dict[tuple, Decoded] = {}  # export thread only
        self._shapes: dict[tuple, _Shape | None] = {}  # export thread only
        self._handlers: dict[type, Callable] = {
            Syscall: self.syscall,  # handle_all takes these inline
            ProcessStart: self.process_start,
            ProcessExec: self.process_exec,
            Signal: self.signal,
            ProcessExit: self.process_exit,
            ThreadExit: self.thread_exit,
        }
        if decisions is not None:
            self.link_decisions()

    # -- records ---------------------------------------------------------------------------
    def handle(self, rec: Record) -> None:
        """Take one record from the tracer."""
        self._handlers[type(rec)](rec)

    def handle_all(self, records: list[Record]) -> None:
        """``handle`` for each of ``records`` in order. The drain thread calls this once per
        chunk of the loop's ring, so the syscall hot path (exact counters, the sampling gate,
        one item to the pipeline) runs inline; decoding and span construction happen in
        ``materialize`` on the export thread."""
        handlers = self._handlers
        stats = self.stats
        procs = self.procs
        emit_all = self.emit_all
        items: list = []  # this chunk's syscall items, emitted together
        push = items.append
        gate = self.gate
        dr = self.decisions
        pending = dr.pending if dr is not None else None
        lines = self.line is not None
        run_span_id = self.run_span_id
        new = tuple.__new__
        calls = 0
        seq = self.seq  # self.seq again before anything else may use it
        # the parent of the last process's syscalls: a chunk is mostly one process's calls
        last_tgid = -1
        last_parent = 0
        try:
            for rec in records:
                if type(rec) is not Syscall:
                    if items:
                        emit_all(items)
                        items.clear()
                    self.seq = seq
                    handlers[type(rec)](rec)
                    seq = self.seq
                    last_tgid = -1
                    continue
                calls += 1
                tid, tgid, nr, _args, rval, t0, t1, _s0, _s1, _e, _x, _p, stderr = rec
                stat = stats.get(nr)
                if stat is None:
                    stat = stats[nr] = SyscallStat()
                stat.calls += 1
                stat.total_ns += t1 - t0
                if rval is not None and -4096 < rval < 0:
                    stat.errors += 1
                if gate is not None and not gate(t1):
                    self.syscalls_dropped += 1
                    parent = 0  # no span; with -o the line is still written
                elif tgid == last_tgid:
                    parent = last_parent
                else:
                    proc = procs.get(tgid)
                    parent = last_parent = proc.span_id if proc else run_span_id
                    last_tgid = tgid
                if parent or lines:
                    seq += 1
                    # SyscallItem(...) without the Python-level __new__ of a NamedTuple
                    push(new(SyscallItem, (rec, parent, seq)))
                if stderr and dr is not None:
                    dr.feed_stderr(stderr, t1, tgid, tid)
                    if rval is not None and rval > len(stderr):
                        # The loop keeps the head of a huge write only: the line across
                        # the cut and the rest of that write are lost (counted
                        # malformed); parsing resumes with the next write.
                        dr.feed_stderr_gap(b"", t1, tgid, tid, until_newline=False)
                if pending:
                    if items:
                        emit_all(items)
                        items.clear()
                    self.seq = seq
                    self.drain_decisions(t1)
                    seq = self.seq
                    last_tgid = -1
        finally:
            if items:
                emit_all(items)
            self.seq = seq
            self.syscall_count += calls

    def _emit_each(self, items: list) -> None:
        for item in items:
            self.emit(item)

    def process_start(self, rec: ProcessStart) -> None:
        tgid, parent_tgid, t, attached = rec.tgid, rec.parent_tgid, rec.t, rec.attached
        parent = self.procs.get(parent_tgid)
        self.seq += 1
        proc = _Proc(
            span_id=self.ids.make(tgid, -1, self.seq),
            parent_span_id=parent.span_id if parent else self.run_span_id,
            ppid=parent_tgid,
            start_ns=t,
            name=parent.name if parent else str(tgid),
            exe=parent.exe if parent else "",
            argv=list(parent.argv) if parent else [],
            attached=attached,
        )
        if not self.procs and not self.root_tgid:
            self.root_tgid = tgid
        if self.line_event is not None:
            self._line_event(tgid, None, rec.seq)
        self.procs[tgid] = proc
        self._exited.pop(tgid, None)  # the pid was reused
        self.process_count += 1

    def process_exec(self, rec: ProcessExec) -> None:
        tgid, t, path, argv = rec.tgid, rec.t, rec.path, rec.argv
        if self.line_event is not None:
            self._line_event(tgid, None, rec.seq)
        proc = self.procs.get(tgid)
        if proc is None:
            return
        if proc.exe and proc.exe != path and len(proc.events) < self.max_events:
            proc.events.append(SpanEvent("exec", t, {"process.executable.path": path}))
        proc.exe = path
        proc.name = os.path.basename(path) or path
        proc.argv = redact(argv)

    def syscall(self, rec: Syscall) -> None:
        """One syscall record (see ``handle_all``)."""
        self.handle_all([rec])

    def drain_decisions(self, upto: int | None = None) -> None:
        """Move admitted decisions into the span stream, each parented by the span of the
        process that recorded it. With ``upto``, only those made by then: records reach
        the builder a little after they happen, decisions over the channel in real time,
        and a decision must not overtake the records before it (its process's start)."""
        pending = self.decisions.pending if self.decisions is not None else None
        while pending:
            if upto is not None:
                d = pending[0]
                if max(d.start_ns, d.end_ns) > upto:
                    return
            self.emit_decision(pending.popleft())

    def emit_decision(self, d: Decision) -> None:
        proc = self.procs.get(d.pid)
        parent = proc.span_id if proc else self._exited.get(d.pid, self.run_span_id)
        self.seq += 1
        self.emit(DecisionItem(d, parent, self.seq))

    def materialize(self, batch: list) -> list[Span]:
        """Export thread: syscall items and queued text lines → spans (and lines)."""
        out: list[Span] = []
        linker = self._linker
        if linker is not None:
            linker.emit = out.append
            linker.emit_all = out.extend
        # Syscall spans (and their threads) collect here and go to the linker together, at
        # the next item that is not a syscall and at the end of the batch.
        spans: list[Span] = []
        tids: list[int] = []
        fmt = self._format
        formatted = self._formatted
        line = self.line
        pack, digest, nonce, seed = self.ids.parts()  # ids.make, inlined below
        trace_id = self.trace_id
        trace_state = self.trace_state
        flags = self.flags
        shapes = self._shapes
        source = self.source
        if len(shapes) >= _FORMAT_CACHE_MAX:
            shapes.clear()
        for item in batch:
            kind = type(item)
            if kind is not SyscallItem:
                if spans:
                    _pass_on(linker, spans, tids, out)
                    spans = []
                    tids = []
                if kind is Span:
                    out.append(item)
                elif kind is LineEvent:  # a signal/exit line, in order with the syscalls
                    if self.line_event is not None:
                        self.line_event(item.tid, item.text, item.seq)
                elif kind is DecisionItem:
                    linker = self._decision_span(item, out)
                elif kind is Flush and linker is not None:
                    linker.flush()
                continue
            call, parent, seq = item
            tid, tgid, nr, args, rval, t0, t1, s0, s1, ecap, xcap, pcs, _err = call
            # A captured stack is part of the call: the same pcs name the same source line
            # as long as the process runs the same image.
            stack_key = (pcs, tgid, source.generation(tgid)) if pcs and source is not None else ()
            if not pcs or stack_key:
                # The same call of the same thread again: everything but ids and times is
                # what it was last time (None: this call's attributes cannot be reused).
                shape_key = (tid, nr, args, rval, ecap, xcap, *stack_key)
                try:
                    shape = shapes[shape_key]
                except KeyError:
                    shape = shapes[shape_key] = self._shape(shape_key, tgid)
                except TypeError:  # an unhashable capture (argv lists)
                    shape = None
                if shape is not None:
                    if line is not None:
                        line(tid, t0, t1, s0, s1, shape.decoded, shape.typed)
                        if pcs and source is not None and source.full_stack:
                            self.line_stack(source.stack_lines(tgid, pcs))
                    if not parent:
                        continue
                    spans.append(SyscallSpan(trace_id, digest(pack(nonce, tgid, tid, seq), seed) or 1,
                                             parent, shape.name, t0, t1, _INTERNAL, shape.attrs,
                                             shape.status, shape.message, [], trace_state, flags,
                                             shape))
                    tids.append(tid)
                    continue
            # Loops repeat the same call (same registers, same bytes read) over and over;
            # formatting is a pure function of these, so each distinct one is done once.
            key = (nr, args, rval, ecap, xcap)
            try:
                d = formatted[key]
            except KeyError:
                d = fmt(*key)
                if len(formatted) >= _FORMAT_CACHE_MAX:
                    formatted.clear()
                formatted[key] = d
            except TypeError:  # an unhashable capture (argv lists)
                d = fmt(*key)
            typed = self.typed(tgid, nr, args, rval, ecap, xcap) if self.typed is not None else None
            if line is not None:
                line(tid, t0, t1, s0, s1, d, typed)
                if pcs and self.source is not None and self.source.full_stack:
                    self.line_stack(self.source.stack_lines(tgid, pcs))
            if not parent:
                continue
            attrs = _syscall_attrs(d, tid, rval, typed)
            if pcs and self.source is not None:
                attrs.update(self.source.attributes(tgid, pcs))
            span = Span(trace_id, digest(pack(nonce, tgid, tid, seq), seed) or 1, parent, d.name,
                        t0, t1, SpanKind.INTERNAL, attrs)
            span.trace_state = trace_state
            span.flags = flags
            if d.error:
                attrs["error.type"] = d.error
                span.status = StatusCode.ERROR
                span.status_message = d.ret
            spans.append(span)
            tids.append(tid)
        if spans:
            _pass_on(linker, spans, tids, out)
        self.spans_emitted += len(out)
        return out

    def _format(
        self, nr: int, args: tuple[int, ...], rval: int | None, ecap: object, xcap: object
    ) -> Decoded:
        """strace's text of a call; execve/execveat argv can carry secrets (spans and -o)."""
        d = self.format_call(nr, args, rval, ecap, xcap)
        if d.argv is not None:
            d = d._replace(args=redact(d.args))
        return d

    def _shape(self, key: tuple, tgid: int) -> _Shape | None:
        """What every span of one distinct call shares, or None when a span of it needs
        the full path (its typed attributes depend on calls before it)."""
        tid, nr, args, rval, ecap, xcap = key[:6]
        if self.typed is not None and (self.typed_stateless is None or not self.typed_stateless(nr)):
            return None
        d = self._format(nr, args, rval, ecap, xcap)
        typed = self.typed(tgid, nr, args, rval, ecap, xcap) if self.typed is not None else None
        attrs = _syscall_attrs(d, tid, rval, typed)
        if len(key) > 6 and self.source is not None:  # with the stack (pcs) it was captured at
            attrs.update(self.source.attributes(tgid, key[6]))
        if d.error:
            attrs["error.type"] = d.error
            return _Shape(d, typed, d.name, attrs, StatusCode.ERROR, d.ret)
        return _Shape(d, typed, d.name, attrs, StatusCode.UNSET, "")

    def _decision_span(self, item: DecisionItem, out: list[Span]) -> DecisionLinker:
        """Export thread: the decision span, handed to the linker that adopts the syscall
        spans of its thread inside it."""
        d = item.decision
        span = decision_span(
            d,
            trace_id=self.trace_id,
            span_id=self.ids.make(d.pid, d.tid, item.seq),
            parent_id=item.parent,
            trace_state=self.trace_state,
            flags=self.flags,
        )
        if self.decision_writer is not None:
            self.decision_writer.add(d)
        if self._linker is None:
            self._linker = DecisionLinker(out.append, max_spans=8192, emit_all=out.extend)
        self._linker.decision(span, d.tid)
        return self._linker

    def link_decisions(self) -> None:
        """Hold syscall spans briefly (at most 8192 of them, 2 s of trace time) so that a
        timed decision reported after it ended can adopt the syscalls inside it. Enabled
        from the start when decisions can arrive: the first decision may reach sysspan
        after syscalls it contains were already on their way."""
        if self._linker is None:
            self._linker = DecisionLinker(lambda _span: None, max_spans=8192)

    def stats_by_name(self, name_of: Callable[[int], str]) -> dict[str, SyscallStat]:
        """The exact per-syscall counters (the -c table), keyed by name."""
        merged: dict[str, SyscallStat] = {}
        for nr, stat in self.stats.items():
            name = name_of(nr)
            acc = merged.setdefault(name, SyscallStat())
            acc.calls += stat.calls
            acc.errors += stat.errors
            acc.total_ns += stat.total_ns
        return merged

    def _line_event(self, tid: int, text: str | None, seq: int) -> None:
        """Signal and exit lines go through the pipeline so they stay in order with the
        syscall lines that the export thread writes."""
        self.emit(LineEvent(tid, text, seq))

    def signal(self, rec: Signal) -> None:
        tid, tgid, sig, t, info = rec.tid, rec.tgid, rec.sig, rec.t, rec.info
        name = signal_name(sig)
        if self.line_event is not None:
            # the decode package is not loaded by runs that decode no syscall (--no-syscalls)
            from sysspan.collector.decode.kinds.signals import siginfo_text

            detail = siginfo_text(info) if info is not None else f"{{si_signo={name}}}"
            self._line_event(tid, f"--- {name} {detail} ---", rec.seq)
        proc = self.procs.get(tgid)
        if proc is not None and len(proc.events) < self.max_events:
            attrs: dict = {"signal.name": name, "signal.number": sig, "thread.id": tid}
            if info is not None and info[2]:
                attrs["signal.sender_pid"] = info[2]
            proc.events.append(SpanEvent("signal", t, attrs))

    def process_exit(self, rec: ProcessExit) -> None:
        tgid, t, status = rec.tgid, rec.t, rec.status
        if self.decisions is not None:
            self.decisions.process_exit(tgid, t)
            self.drain_decisions(t)
        proc = self.procs.pop(tgid, None)
        if proc is not None and self.decisions is not None:
            exited = self._exited
            if len(exited) >= _EXITED_MAX:
                del exited[next(iter(exited))]
            exited[tgid] = proc.span_id
        if self.line_event is not None:
            self._line_event(tgid, _exit_text(status), rec.seq)
        if proc is not None:
            self._finish_process(tgid, proc, t, status)

    def thread_exit(self, rec: ThreadExit) -> None:
        """A thread's end is a line only (strace prints one per thread); its process's span
        ends with the process."""
        if self.line_event is None:
            return
        if rec.execve_tid:
            text: str | None = f"+++ superseded by execve in pid {rec.execve_tid} +++"
        else:
            text = _exit_text(rec.status)
        self._line_event(rec.tid, text, rec.seq)

    # -- finishing -------------------------------------------------------------------------
    def _finish_process(self, tgid: int, proc: _Proc, t: int, status: int | None) -> None:
        attrs: dict = {"process.pid": tgid, "process.parent_pid": proc.ppid, ROLE_KEY: PROCESS}
        if proc.exe:
            attrs["process.executable.path"] = proc.exe
            attrs["process.executable.name"] = proc.name
        if proc.argv:
            attrs["process.command_args"] = proc.argv
        span = Span(
            trace_id=self.trace_id,
            span_id=proc.span_id,
            parent_id=proc.parent_span_id,
            name=proc.name,
            start_ns=proc.start_ns,
            end_ns=t,
            attributes=attrs,
            events=proc.events,
            trace_state=self.trace_state,
            flags=self.flags,
        )
        mark_exit(span, status, exit_code_of(status), nonzero_is_error=False)
        if proc.attached:
            attrs["sysspan.attached"] = True
        self.spans_emitted += 1
        self.emit(span)

    def finish(self, t: int) -> None:
        """End the spans of processes still open (detach, or tracees we lost), hand over the
        last decisions and release the syscall spans a decision linker still holds."""
        if self.decisions is not None:
            self.decisions.finish(t)
            self.drain_decisions()
        for tgid, proc in list(self.procs.items()):
            self.procs.pop(tgid)
            self._finish_process(tgid, proc, t, None)
        self.emit(FLUSH)

    def root_name(self) -> str:
        proc = self.procs.get(self.root_tgid)
        return proc.name if proc else ""
