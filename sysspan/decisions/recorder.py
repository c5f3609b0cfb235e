"""Tracer-side glue for decisions: where they come from during a trace run and how they
enter the span stream.

* the ring (``SYSSPAN_DECISION_RING``) or the pipe (``SYSSPAN_DECISION_FD``): its reader
  thread appends admitted decisions to a deque that the tracer thread drains at its next
  event (and, for the ring, after draining it at each process exit), so decisions enter
  the stream *after* the syscalls that happened inside them (which the tracer emitted
  first);
* the stderr protocol: at the exit of a ``write(2, ...)`` the builder hands the bytes the
  tracee wrote to ``feed_stderr`` while the tracee is still stopped;
* ``--no-syscalls``: no tracer thread, so channel decisions go straight to ``direct``.

Every decision passes the one ``DecisionGate`` (sampling, circuit breaker, exact counts).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from sysspan.decisions.model import Decision
from sysspan.decisions.sampling import DecisionGate

TYPE_CHECKING = False

if TYPE_CHECKING:  # loaded at a process's first write to fd 2 (never by --no-syscalls)
    from sysspan.decisions.stderr_protocol import StderrDecoder

STDERR_READ_MAX = 65536


class DecisionRecorder:
    def __init__(self, gate: DecisionGate, write_nrs: frozenset[int] = frozenset()) -> None:
        self.gate = gate
        self.write_nrs = write_nrs
        self.pending: deque[Decision] = deque()
        self.direct: Callable[[Decision], None] | None = None
        # takes what a polled source (the ring) holds now, so a process's decisions are in
        # ``pending`` before its exit is handled and they can still find its span
        self.sync: Callable[[], object] | None = None
        self._stderr: dict[int, StderrDecoder] = {}

    def on_channel(self, decision: Decision) -> None:
        """Channel reader thread: the gate has already admitted ``decision``."""
        if self.direct is not None:
            self.direct(decision)
        else:
            self.pending.append(decision)

    def feed_stderr(self, data: bytes, t_ns: int, tgid: int, tid: int) -> None:
        """Tracer thread: bytes a process wrote to fd 2."""
        dec = self._stderr.get(tgid) or self._decoder(tgid)
        self._admit(dec.feed(data, t_ns, tgid, tid), t_ns, dec)

    def feed_stderr_gap(
        self, tail: bytes, t_ns: int, tgid: int, tid: int, until_newline: bool = True
    ) -> None:
        """Tracer thread: bytes of one write to fd 2 were skipped; ``tail`` is what followed
        them in the same write (``until_newline=False``: nothing did, the rest of the write
        was skipped)."""
        dec = self._stderr.get(tgid) or self._decoder(tgid)
        dec.gap(until_newline)
        self._admit(dec.feed(tail, t_ns, tgid, tid), t_ns, dec)

    def _decoder(self, tgid: int) -> StderrDecoder:
        from sysspan.decisions.stderr_protocol import StderrDecoder

        dec = self._stderr[tgid] = StderrDecoder()
        return dec

    def process_exit(self, tgid: int, t_ns: int) -> None:
        """Decisions a process left open end with it."""
        if self.sync is not None:
            self.sync()
        dec = self._stderr.pop(tgid, None)
        if dec is not None:
            self._admit(dec.flush(t_ns), t_ns, dec)

    def _admit(self, decisions: list[Decision], t_ns: int, dec: StderrDecoder) -> None:
        if dec.malformed:
            self.gate.note_malformed(dec.malformed)
            dec.malformed = 0
        for d in decisions:
            if self.gate.admit(t_ns):
                self.pending.append(d)

    def finish(self, t_ns: int) -> None:
        for tgid in list(self._stderr):
            self.process_exit(tgid, t_ns)
