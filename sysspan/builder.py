"""The span builder: turns tracer events into spans (DESIGN §4).

run span (remote parent or root)
  └─ process span per traced process, parented by the process tree
       └─ syscall span per completed syscall (entry → exit), thread.id = the calling thread
"""

from __future__ import annotations

import os
import signal as _signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sysspan.collector.decode.kinds.signals import siginfo_text
from sysspan.decisions.record import Decision, DecisionLinker, decision_span
from sysspan.decisions.recorder import STDERR_READ_MAX, DecisionRecorder
from sysspan.ids import SpanIds
from sysspan.model import Span, SpanEvent, SpanKind, StatusCode
from sysspan.redact import redact_argv, redact_text
from sysspan.span_roles import PROCESS, ROLE_KEY, SYSCALL

if TYPE_CHECKING:  # annotations only: these pull in pyelftools and msgpack
    from sysspan.collector.decode import Decoded, MemoryReader
    from sysspan.collector.source import SourceCapture
    from sysspan.decisions.ruchy import DecisionWriter


def signal_name(sig: int) -> str:
    try:
        return _signal.Signals(sig).name
    except ValueError:
        if _signal.SIGRTMIN <= sig <= _signal.SIGRTMAX:
            return f"SIGRT_{sig - _signal.SIGRTMIN}"
        return f"SIG{sig}"


def exit_code_of(status: int | None) -> int | None:
    """Shell convention: the exit code, or 128+N when killed by signal N."""
    if status is None:
        return None
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return None


_FLUSH = object()  # end of stream: release what the decision linker holds


class _DecisionItem:
    """A decision in the span stream, with its parent resolved on the tracer thread."""

    __slots__ = ("decision", "parent", "seq")

    def __init__(self, decision: Decision, parent: int, seq: int) -> None:
        self.decision = decision
        self.parent = parent
        self.seq = seq


@dataclass(slots=True)
class SyscallStat:
    calls: int = 0
    errors: int = 0
    total_ns: int = 0


@dataclass(slots=True)
class _Proc:
    span_id: int
    parent_span_id: int
    ppid: int
    start_ns: int
    name: str
    exe: str = ""
    argv: list[str] = field(default_factory=list)
    events: list[SpanEvent] = field(default_factory=list)
    attached: bool = False


class SpanBuilder:
    """Implements the tracer's ``Events``.

    Process and run spans are emitted as ``Span`` objects; syscalls are emitted as raw tuples
    that ``materialize`` turns into spans (and ``line(...)`` text) on the export thread, so
    the tracer thread never formats anything.
    """

    def __init__(
        self,
        *,
        trace_id: int,
        run_span_id: int,
        ids: SpanIds,
        format_call: Callable[..., Decoded],
        emit: Callable[[Span], None] | None,
        line: Callable[[int, int, int, int, Decoded], None] | None = None,
        line_event: Callable[[int, str], None] | None = None,
        trace_flags: int = 1,
        trace_state: str = "",
        max_events_per_process: int = 128,
        gate: Callable[[int], bool] | None = None,
        source: SourceCapture | None = None,
        line_stack: Callable[[list[str]], None] | None = None,
        decisions: DecisionRecorder | None = None,
        reader: MemoryReader | None = None,
        decision_writer: DecisionWriter | None = None,
    ) -> None:
        self.trace_id = trace_id
        self.run_span_id = run_span_id
        self.ids = ids
        self.format_call = format_call
        self.emit = emit
        self.line = line
        self.line_event = line_event
        self.flags = trace_flags
        self.trace_state = trace_state
        self.max_events = max_events_per_process
        self.gate = gate  # sampling / rate limit: gate(t_ns) -> keep the span?
        self.source = source  # symbolises captured stacks (code.* attributes)
        self.line_stack = line_stack or (lambda _lines: None)
        self.decisions = decisions  # decision sources (channel, stderr protocol) and gate
        self.reader = reader  # tracee memory, for the stderr decision protocol
        self.decision_writer = decision_writer  # --decisions-out
        self.decision_count = 0
        self._linker: DecisionLinker | None = None
        self.procs: dict[int, _Proc] = {}
        self.stats: dict[int, SyscallStat] = {}
        self.seq = 0
        self.syscall_count = 0
        self.syscalls_dropped = 0
        self.process_count = 0
        self.spans_emitted = 0
        self.root_tgid = 0

    # -- Events ----------------------------------------------------------------------------
    def process_start(self, tgid: int, parent_tgid: int, t: int, attached: bool) -> None:
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
        self.procs[tgid] = proc
        self.process_count += 1

    def process_exec(self, tgid: int, t: int, path: str, argv: list[str]) -> None:
        proc = self.procs.get(tgid)
        if proc is None:
            return
        if proc.exe and proc.exe != path and len(proc.events) < self.max_events:
            proc.events.append(SpanEvent("exec", t, {"process.executable.path": path}))
        proc.exe = path
        proc.name = os.path.basename(path) or path
        proc.argv = redact_argv(argv)

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
        pcs: tuple[int, ...] | None = None,
    ) -> None:
        """Hot path (tracer thread): exact counters, the sampling gate, then one tuple to the
        pipeline. Decoding and span construction happen in ``materialize`` on the export
        thread."""
        self.syscall_count += 1
        stat = self.stats.get(nr)
        if stat is None:
            stat = self.stats[nr] = SyscallStat()
        stat.calls += 1
        stat.total_ns += t1 - t0
        if rval is not None and -4096 < rval < 0:
            stat.errors += 1
        if self.emit is None:
            return
        gate = self.gate
        if gate is not None and not gate(t1):
            self.syscalls_dropped += 1
            parent = 0  # no span; with -o the line is still written
        else:
            proc = self.procs.get(tgid)
            parent = proc.span_id if proc else self.run_span_id
        if parent or self.line is not None:
            self.seq += 1
            self.emit((tid, tgid, nr, args, rval, t0, t1, ecap, xcap, parent, self.seq, pcs))
        dr = self.decisions
        if dr is not None:
            if nr in dr.write_nrs and args[0] == 2 and rval and rval > 0 and self.reader is not None:
                data = self.reader.read(tid, args[1], min(rval, STDERR_READ_MAX))
                if data:
                    dr.feed_stderr(data, t1, tgid, tid)
            if dr.pending:
                self.drain_decisions()

    def drain_decisions(self) -> None:
        """Tracer thread: move admitted decisions into the span stream, each parented by the
        span of the process that recorded it."""
        pending = self.decisions.pending if self.decisions is not None else None
        while pending:
            self.emit_decision(pending.popleft())

    def emit_decision(self, d: Decision) -> None:
        proc = self.procs.get(d.pid)
        self.seq += 1
        self.decision_count += 1
        self.emit(_DecisionItem(d, proc.span_id if proc else self.run_span_id, self.seq))

    def materialize(self, batch: list) -> list[Span]:
        """Export thread: raw syscall tuples and queued text lines → spans (and lines)."""
        out: list[Span] = []
        linker = self._linker
        if linker is not None:
            linker.emit = out.append
        fmt = self.format_call
        line = self.line
        make_id = self.ids.make
        trace_id = self.trace_id
        trace_state = self.trace_state
        flags = self.flags
        for item in batch:
            if type(item) is Span:
                out.append(item)
                continue
            if type(item) is str:  # a signal/exit line, kept in order with the syscalls
                if self.line_event is not None:
                    tid, _, text = item.partition("\0")
                    self.line_event(int(tid), text)
                continue
            if type(item) is _DecisionItem:
                linker = self._decision_span(item, out)
                continue
            if item is _FLUSH:
                if linker is not None:
                    linker.flush()
                continue
            tid, tgid, nr, args, rval, t0, t1, ecap, xcap, parent, seq, pcs = item
            d = fmt(nr, args, rval, ecap, xcap)
            if line is not None:
                line(tid, t0, t1, 0, d)
                if pcs and self.source is not None and self.source.full_stack:
                    self.line_stack(self.source.stack_lines(tgid, pcs))
            if not parent:
                continue
            attrs: dict = {
                "syscall.name": d.name,
                "syscall.args": redact_text(d.args) if d.argv is not None else d.args,
                "thread.id": tid,
                ROLE_KEY: SYSCALL,
            }
            if rval is not None:
                attrs["syscall.return"] = rval
            if d.path is not None:
                attrs["file.path"] = d.path
            if pcs and self.source is not None:
                attrs.update(self.source.attributes(tgid, pcs))
            span = Span(trace_id, make_id(tgid, tid, seq), parent, d.name, t0, t1, SpanKind.INTERNAL, attrs)
            span.trace_state = trace_state
            span.flags = flags
            if d.error:
                attrs["error.type"] = d.error
                span.status = StatusCode.ERROR
                span.status_message = d.ret
            if linker is not None:
                linker.syscall(span, tid)
            else:
                out.append(span)
        self.spans_emitted += len(out)
        return out

    def _decision_span(self, item: _DecisionItem, out: list[Span]) -> DecisionLinker:
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
            self._linker = DecisionLinker(out.append, max_spans=8192)
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

    def _line_event(self, tid: int, text: str) -> None:
        """Signal and exit lines go through the pipeline so they stay in order with the
        syscall lines that the export thread writes."""
        if self.emit is not None:
            self.emit(f"{tid}\0{text}")
        elif self.line_event is not None:
            self.line_event(tid, text)

    def signal(self, tid: int, tgid: int, sig: int, t: int, info: tuple | None) -> None:
        name = signal_name(sig)
        if self.line_event is not None:
            detail = siginfo_text(info) if info is not None else f"{{si_signo={name}}}"
            self._line_event(tid, f"--- {name} {detail} ---")
        proc = self.procs.get(tgid)
        if proc is not None and len(proc.events) < self.max_events:
            attrs: dict = {"signal.name": name, "signal.number": sig, "thread.id": tid}
            if info is not None and info[2]:
                attrs["signal.sender_pid"] = info[2]
            proc.events.append(SpanEvent("signal", t, attrs))

    def process_exit(self, tgid: int, t: int, status: int | None) -> None:
        if self.decisions is not None and self.emit is not None:
            self.decisions.process_exit(tgid, t)
            self.drain_decisions()
        proc = self.procs.pop(tgid, None)
        if self.line_event is not None and status is not None:
            if os.WIFSIGNALED(status):
                self._line_event(tgid, f"+++ killed by {signal_name(os.WTERMSIG(status))} +++")
            elif os.WIFEXITED(status):
                self._line_event(tgid, f"+++ exited with {os.WEXITSTATUS(status)} +++")
        if proc is not None:
            self._finish_process(tgid, proc, t, status)

    # -- finishing -------------------------------------------------------------------------
    def _finish_process(self, tgid: int, proc: _Proc, t: int, status: int | None) -> None:
        if self.emit is None:
            return
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
        code = exit_code_of(status)
        if code is not None:
            attrs["process.exit.code"] = code
        if status is not None and os.WIFSIGNALED(status):
            attrs["error.type"] = signal_name(os.WTERMSIG(status))
            span.status = StatusCode.ERROR
            span.status_message = f"killed by {attrs['error.type']}"
        if proc.attached:
            attrs["sysspan.attached"] = True
        self.spans_emitted += 1
        self.emit(span)

    def finish(self, t: int) -> None:
        """End the spans of processes still open (detach, or tracees we lost), hand over the
        last decisions and release the syscall spans a decision linker still holds."""
        if self.decisions is not None and self.emit is not None:
            self.decisions.finish(t)
            self.drain_decisions()
        for tgid, proc in list(self.procs.items()):
            self.procs.pop(tgid)
            self._finish_process(tgid, proc, t, None)
        if self.emit is not None:
            self.emit(_FLUSH)

    def root_name(self) -> str:
        proc = self.procs.get(self.root_tgid)
        return proc.name if proc else ""
