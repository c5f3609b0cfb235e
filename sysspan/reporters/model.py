"""The :class:`Report`: everything the renderers (HTML, folded stacks, Perfetto) draw from,
as typed records. Times are integers in ns since the epoch unless a name says otherwise."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Counts",
    "DecisionStats",
    "Node",
    "Report",
    "SlowDecision",
    "SlowSyscall",
    "SyscallStats",
    "Timeline",
]


@dataclass(slots=True)
class Counts:
    spans: int = 0
    runs: int = 0
    processes: int = 0
    syscalls: int = 0
    #: Failed syscalls (an ``error.type``, or status ERROR).
    errors: int = 0
    decisions: int = 0
    #: Spans of no role the report draws (pipeline steps, other writers' spans).
    other: int = 0
    #: Spans of any role with status ERROR.
    failed_spans: int = 0
    #: Distinct trace ids (at least this many beyond the aggregator's cap).
    traces: int = 0


@dataclass(slots=True)
class Node:
    """One row of the process tree: a run, a process, or a placeholder (``kind`` "unknown")
    for a parent span that never appeared. ``index``/``parent`` are positions in
    :attr:`Report.nodes` (-1: a root); ``syscalls``... count what hangs under it directly or
    through its decisions."""

    kind: str
    span_id: str  # 16 hex digits
    name: str
    pid: Any
    ppid: Any
    exe: str
    argv: str
    exit_code: Any
    error: str
    start: int
    end: int
    index: int
    parent: int
    depth: int
    #: The node's frame in folded stacks (its name without ``;``).
    frame: str
    syscalls: int = 0
    syscall_ns: int = 0
    errors: int = 0
    tids: int = 0
    first_syscall: int = 0
    last_syscall: int = 0


@dataclass(slots=True)
class SyscallStats:
    """Latency of one syscall name over the whole report (quantiles estimated, the rest exact)."""

    name: str
    cls: str  # colour class, :mod:`sysspan.reporters.syscall_classes`
    count: int
    total_ns: int
    mean_ns: int
    min_ns: int
    p50_ns: int
    p90_ns: int
    p99_ns: int
    max_ns: int
    errors: dict[str, int]  # error name -> count, most frequent first
    error_count: int


@dataclass(slots=True)
class SlowSyscall:
    """One of the slowest individual syscalls."""

    name: str
    cls: str
    dur_ns: int
    start_ns: int
    args: str
    ret: Any  # syscall.return, None when absent
    error: str
    pid: Any
    process: str
    tid: Any
    path: str
    function: str
    file: str
    line: Any
    stack: str


@dataclass(slots=True)
class DecisionStats:
    """One decision (by id) over the whole report."""

    key: str
    category: str
    name: str
    file: str
    line: Any
    count: int
    total_ns: int
    max_ns: int
    mean_ns: int
    syscalls: int
    syscall_ns: int
    syscall_errors: int
    results: dict[str, int]  # result text -> count, the most frequent few
    input: str
    result: str


@dataclass(slots=True)
class SlowDecision:
    """One of the slowest individual decision instances."""

    name: str
    id: str
    dur_ns: int
    start_ns: int
    syscalls: int
    syscall_ns: int
    syscall_errors: int
    input: str
    result: str
    file: str
    line: Any
    pid: Any
    process: str


@dataclass(slots=True)
class Timeline:
    """Syscall time on one grid: bin ``b`` covers ``[origin + b*width, origin + (b+1)*width)``."""

    origin: int
    width: int
    nbins: int
    classes: list[str]
    #: node index -> sorted ``[bin, ns per class..., failed count]`` rows
    bins: dict[int, list[list[int]]]
    #: ``(start, dur, name, node index, tid, error)`` per syscall; None when there were too many
    exact: list[tuple] | None
    #: ``(start, dur, name, node index)`` per decision; None when there were too many
    decisions: list[tuple] | None


@dataclass(slots=True)
class Report:
    """Everything the renderers need. Syscalls, timeline bins and exact intervals refer to
    :attr:`nodes` by index."""

    files: list[str]
    counts: Counts
    start_ns: int
    end_ns: int
    trace_ids: list[str]
    services: list[str]
    syscalls: list[SyscallStats]
    nodes: list[Node]
    slowest: list[SlowSyscall]
    decisions: list[DecisionStats]
    slowest_decisions: list[SlowDecision]
    folded: dict[tuple[str, ...], list]  # frames -> [count, ns, kinds]; kinds: one letter
    # per frame: P process, D decision, S source stack frame, Y the syscall (last frame)
    has_stacks: bool
    timeline: Timeline
    notes: list[str] = field(default_factory=list)
    #: span id -> pid of every run and process span
    pids: dict[int, int] = field(default_factory=dict)
    #: decision span id -> its parent span id, to find the process a decision belongs to
    decision_parents: dict[int, int] = field(default_factory=dict)

    @property
    def syscall_ns(self) -> int:
        return sum(row.total_ns for row in self.syscalls)

    def pid_of(self, span_id: int) -> int | None:
        """pid of the process (or run) that the span ``span_id`` is, or is under through
        decisions: where a syscall whose parent is ``span_id`` ran."""
        hops = 0
        while span_id in self.decision_parents and hops < 64:
            span_id = self.decision_parents[span_id]
            hops += 1
        return self.pids.get(span_id)
