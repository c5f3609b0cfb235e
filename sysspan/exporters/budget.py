"""The span budget: which syscall spans a backend receives, and exact summaries of the rest.

A build traced with ``-f`` makes hundreds of thousands of syscall spans in one trace;
Tempo rejects a trace over 5 MB by default and Jaeger's UI gives up long before a million
spans. ``BudgetSink`` sits in front of a sink (the OTLP one by default) and lets through:

- every span that is not a syscall span (run, process with its exec/signal events,
  decisions), process spans carrying the exact ``-c`` summary of their syscalls
  (``summaries.py``);
- at most ``limit`` syscall spans, and no more than ``max_bytes`` encoded for the whole
  trace, chosen by priority:

  0. the first failure of each (syscall, errno) in the run; syscalls inside a decision;
  1. the first failure of each (process, syscall, errno); the first call of each
     (process, syscall);
  2. the ``slowest`` slowest calls of each syscall name;
  3. further failures, round-robin: the n-th failure of a (process, syscall, errno) ranks
     with the n-th of every other kind, so 30,000 ENOENT probes of include paths take
     their turn like everything else;
  4. further successful calls, round-robin over (process, syscall) the same way.

Memory is bounded: candidates live in one heap of ``limit`` entries (the worst candidate
on top, replaced when a better one arrives) plus ``slowest`` per syscall name; the exact
counters are per process and released with its span. Tiers 0 and 1 are final when they
arrive, so they go out during the run while half the budget (spans and bytes) lasts; the
other candidates are sent when the sink closes, because whether a span is among the slowest
is known only at the end.

Why process spans wait: a syscall span can reach the sink after its process span (the
decision linker holds syscall spans for a moment), and the summary must include it. A
process span is released once a syscall span that started after the process ended has
arrived (everything of that process has passed by then), or at the end.

Modes (``--syscall-spans``): ``budget`` as above, ``errors`` every failed syscall and no
other, ``none`` no syscall spans; in each, the summaries. ``all`` needs no BudgetSink.
"""

from __future__ import annotations

import heapq

from sysspan.exporters.base import SinkReport
from sysspan.exporters.otlp_proto import ProtoEncoder, key_value
from sysspan.exporters.span_policy import DEFAULT_LIMIT, MODES
from sysspan.exporters.summaries import CallSummary, summary_attributes
from sysspan.model import Span

TYPE_CHECKING = False

if TYPE_CHECKING:
    from sysspan.exporters.base import Sink

# Tempo's default max_bytes_per_trace is 5 MB; stay under 4 MB (spans, and the resource
# every request repeats), with a little room for estimates.
DEFAULT_MAX_BYTES = 4_000_000 - 16_000
DEFAULT_SLOWEST = 8
# Requests sent at the end are cut at this many encoded bytes: few round trips, and well
# under the 4 MiB a gRPC server accepts by default.
_REQUEST_BYTES = 1_000_000
_PER_SPAN_FRAMING = 3
_SMALLEST_SPAN = 80  # ids, times, name, status: no syscall span encodes in fewer bytes  # the ScopeSpans field tag and length prefix around each span


class _Owner:
    """A process span (or the run span) and the exact counters of the syscalls under it."""

    __slots__ = ("calls", "decisions", "span")

    def __init__(self) -> None:
        self.calls: dict[str, CallSummary] = {}
        self.decisions: list[int] = []
        self.span: Span | None = None


class _Tally:
    """What the closing line reports."""

    __slots__ = ("seen", "errors", "kinds", "decision_children", "kept", "kept_errors",
                 "kept_kinds", "kept_decision", "cut_by_bytes")

    def __init__(self) -> None:
        self.seen = 0
        self.errors = 0
        self.kinds: set[tuple[str, str]] = set()
        self.decision_children = 0
        self.kept = 0
        self.kept_errors = 0
        self.kept_kinds: set[tuple[str, str]] = set()
        self.kept_decision = 0
        self.cut_by_bytes = 0


class BudgetSink:
    """Wraps ``inner``: passes non-syscall spans through, syscall spans by ``mode``."""

    def __init__(
        self,
        inner: Sink,
        *,
        run_span_id: int,
        mode: str = "budget",
        limit: int = DEFAULT_LIMIT,
        max_bytes: int = DEFAULT_MAX_BYTES,
        slowest: int = DEFAULT_SLOWEST,
    ) -> None:
        if mode not in MODES or mode == "all":
            raise ValueError(f"BudgetSink mode must be budget, errors or none, not {mode!r}")
        self.inner = inner
        self.name = str(getattr(inner, "name", "") or type(inner).__name__)
        self.mode = mode
        self.limit = max(0, limit)
        self.max_bytes = max_bytes
        self.slowest = max(0, slowest) if limit else 0
        self.run_span_id = run_span_id
        self._owners: dict[int, _Owner] = {}
        self._decision_owner: dict[int, int] = {}
        self._pending: list[tuple[int, int, Span]] = []  # (end_ns, span_id, process span)
        self._first_kinds: set[tuple[str, str]] = set()
        # (priority key, inside a decision, span); keys are unique (arrival order is in them)
        self._heap: list[tuple[tuple[int, int, int], bool, Span]] = []
        self._released: set[int] = set()
        self._slow: dict[str, list[tuple[int, int, Span]]] = {}
        self._arrival = 0
        self._run_span: Span | None = None
        self._bytes = 0
        shared = getattr(inner, "encoder", None)
        if isinstance(shared, ProtoEncoder):
            # The inner sink's own encoder: a kept span is sized by the very bytes the sink
            # sends, and encoded once.
            self._encoder = shared
            self._size_of = shared.span_kept
        else:
            self._encoder = ProtoEncoder()
            self._size_of = self._encoder.span
        resource = getattr(inner, "resource", None) or {}
        self._request_overhead = 64 + sum(
            len(key_value(k, v)) + 3 for k, v in resource.items()
        )
        self.tally = _Tally()
        # Half the budget may go out during the run (first occurrences, see _syscall).
        self._early_left = self.limit // 2
        self._early_bytes_left = max_bytes // 2
        self._early_ids: set[int] = set()
        self.inner_pending: list[Span] = []

    # -- the sink contract --------------------------------------------------------------------

    def export(self, spans: list[Span]) -> None:
        out: list[Span] = []
        pending = self._pending
        for span in spans:
            attrs = span.attributes
            name = attrs.get("syscall.name")
            if name is None:
                self._other(span, out)
                continue
            if pending and span.start_ns > pending[0][0]:
                self._release_until(span.start_ns, out)
            self._syscall(span, str(name), attrs.get("error.type"), out)
        if out:
            self._count(out)
        if self.inner_pending:
            out += self.inner_pending  # sized when they were picked or released
            self.inner_pending = []
        if out:
            self._export(out)

    def close(self) -> SinkReport:
        out: list[Span] = []
        self._release_until(None, out)
        out += self.inner_pending  # counted when released
        self.inner_pending = []
        if self._run_span is not None:
            run = self._run_span
            owner = self._owners.pop(self.run_span_id, None)
            if owner is not None and owner.calls:
                run.attributes.update(summary_attributes(owner.calls))
            self._count([run])
            out.append(run)
        for owner_id in list(self._owners):  # owners whose span never came (lost processes)
            self._owners.pop(owner_id)
        if out:
            self._export(out)
        chosen = self._choose()
        batch: list[Span] = []
        batch_bytes = 0
        for span, size in chosen:  # sized in _choose
            if batch and batch_bytes + size > _REQUEST_BYTES:
                self._export(batch)
                batch, batch_bytes = [], 0
            batch.append(span)
            batch_bytes += size
        if batch:
            self._export(batch)
        self._encoder.discard()  # sized, but did not fit
        report = self.inner.close()
        report.messages.append(self.closing_line())
        return report

    # -- spans that are not syscalls ------------------------------------------------------------

    def _other(self, span: Span, out: list[Span]) -> None:
        if span.span_id == self.run_span_id:
            self._run_span = span  # sent last, with the summary of syscalls no process owns
            return
        if "process.parent_pid" in span.attributes:
            owner = self._owners.get(span.span_id)
            if owner is None:
                owner = self._owners[span.span_id] = _Owner()
            owner.span = span
            heapq.heappush(self._pending, (span.end_ns, span.span_id, span))
            return
        # A decision: the syscalls it adopts arrive after it and count towards its process.
        parent = self._decision_owner.get(span.parent_id, span.parent_id)
        self._decision_owner[span.span_id] = parent
        owner = self._owners.get(parent)
        if owner is None:
            owner = self._owners[parent] = _Owner()
        owner.decisions.append(span.span_id)
        out.append(span)

    def _release_until(self, t: int | None, out: list[Span]) -> None:
        """Send the process spans that ended before ``t`` (all of them when None) with their
        summaries."""
        pending = self._pending
        while pending and (t is None or pending[0][0] < t):
            _, span_id, span = heapq.heappop(pending)
            owner = self._owners.pop(span_id, None)
            self._released.add(span_id)
            if owner is not None:
                if owner.calls:
                    span.attributes.update(summary_attributes(owner.calls))
                for decision in owner.decisions:
                    self._decision_owner.pop(decision, None)
            size = len(self._size_of(span)) + _PER_SPAN_FRAMING
            self._bytes += size
            self.inner_pending.append(span)

    # -- syscall spans ----------------------------------------------------------------------

    def _syscall(self, span: Span, name: str, errno: object, out: list[Span]) -> None:
        tally = self.tally
        tally.seen += 1
        parent = span.parent_id
        owner_id = self._decision_owner.get(parent)
        in_decision = owner_id is not None
        if owner_id is None:
            owner_id = parent
        owner = self._owners.get(owner_id)
        if owner is None:
            if owner_id in self._released:
                # the process span went out already (a straggler): the run span's summary
                # takes it, so the totals still add up.
                owner_id = self.run_span_id
            owner = self._owners.get(owner_id)
            if owner is None:
                owner = self._owners[owner_id] = _Owner()
        calls = owner.calls.get(name)
        if calls is None:
            calls = owner.calls[name] = CallSummary()
        duration = span.end_ns - span.start_ns
        err = errno if isinstance(errno, str) else None
        rank = calls.add(duration, err)
        if err is not None:
            tally.errors += 1
            kind = (name, err)
            tally.kinds.add(kind)
        if in_decision:
            tally.decision_children += 1
        mode = self.mode
        if mode == "none":
            return
        if mode == "errors":
            if err is not None:
                self._keep_now(span, name, err, in_decision)
                out.append(span)
            return
        # budget
        self._arrival += 1
        if err is not None:
            if kind not in self._first_kinds:
                self._first_kinds.add(kind)
                tier = 0
            else:
                tier = 1 if rank == 0 else 3
        else:
            tier = 1 if rank == 0 else 4
        if in_decision:
            tier = 0
        if tier <= 1 and self._early_left > 0:
            # A first occurrence is kept whatever comes later, as long as the reserve for
            # them lasts: send it now instead of holding it to the end.
            size = len(self._size_of(span)) + _PER_SPAN_FRAMING
            if size <= self._early_bytes_left:
                self._early_left -= 1
                self._early_bytes_left -= size
                self._bytes += size
                self._early_ids.add(span.span_id)
                self._keep_now(span, name, err, in_decision)
                self.inner_pending.append(span)
                return
        # Inlined (this runs for every syscall span): offer the span to the candidate heap,
        # then to the slowest of its name.
        arrival = self._arrival
        key = (-tier, -rank, -arrival)
        heap = self._heap
        if len(heap) < self.limit - len(self._early_ids):
            heapq.heappush(heap, (key, in_decision, span))
        elif heap and key > heap[0][0]:
            heapq.heapreplace(heap, (key, in_decision, span))
        if self.slowest:
            slow = self._slow.get(name)
            if slow is None:
                slow = self._slow[name] = []
            if len(slow) < self.slowest:
                heapq.heappush(slow, (duration, arrival, span))
            elif duration > slow[0][0]:
                heapq.heapreplace(slow, (duration, arrival, span))

    def _keep_now(self, span: Span, name: str, err: str | None, in_decision: bool) -> None:
        tally = self.tally
        tally.kept += 1
        if err is not None:
            tally.kept_errors += 1
            tally.kept_kinds.add((name, err))
        if in_decision:
            tally.kept_decision += 1

    def _choose(self) -> list[tuple[Span, int]]:
        """The syscall spans sent at the end: the heap's best, plus the slowest per name,
        best first, cut to ``limit`` spans and the bytes left."""
        if self.mode != "budget":
            return []
        best: dict[int, tuple[tuple[int, int, int], bool, Span]] = {}
        for item in self._heap:
            best[id(item[2])] = item
        early = self._early_ids
        for slow in self._slow.values():
            for _duration, arrival, span in slow:
                if span.span_id in early:
                    continue
                key = (-2, 0, -arrival)
                have = best.get(id(span))
                if have is None or have[0] < key:
                    best[id(span)] = (key, False if have is None else have[1], span)
        ranked = sorted(best.values(), key=lambda item: item[0], reverse=True)
        chosen: list[tuple[Span, int]] = []
        room = self.max_bytes - self._bytes
        size_of = self._size_of
        limit = self.limit - len(early)
        for index, (_key, in_decision, span) in enumerate(ranked):
            if len(chosen) >= limit:
                break
            if room < _SMALLEST_SPAN:  # full: the rest cannot fit, spare encoding them
                self.tally.cut_by_bytes += min(len(ranked) - index, limit - len(chosen))
                break
            size = len(size_of(span)) + _PER_SPAN_FRAMING
            if size > room:
                self.tally.cut_by_bytes += 1
                continue
            room -= size
            self._bytes += size
            chosen.append((span, size))
            err = span.attributes.get("error.type")
            self._keep_now(
                span,
                str(span.attributes.get("syscall.name")),
                err if isinstance(err, str) else None,
                in_decision,
            )
        chosen.sort(key=lambda item: item[0].start_ns)
        self._heap.clear()
        self._slow.clear()
        return chosen

    def _count(self, spans: list[Span]) -> None:
        size_of = self._size_of
        self._bytes += sum(len(size_of(s)) + _PER_SPAN_FRAMING for s in spans)

    def _export(self, spans: list[Span]) -> None:
        # every request repeats the resource and scope
        self._bytes += self._request_overhead
        self.inner.export(spans)

    # -- the closing line -----------------------------------------------------------------------

    def closing_line(self) -> str:
        t = self.tally
        what = f"kept {t.kept:,} of {t.seen:,} syscall spans for {self.name}"
        if self.mode == "none":
            detail = "none by --syscall-spans none"
        elif self.mode == "errors":
            detail = f"every one of the {t.errors:,} errors"
        else:
            kinds = len(t.kinds)
            kept_kinds = len(t.kept_kinds)
            errs = (
                f"all {t.errors:,} errors"
                if t.kept_errors == t.errors
                else f"{t.kept_errors:,} of {t.errors:,} errors"
            )
            every = "every" if kept_kinds == kinds else f"{kept_kinds} of {kinds}"
            detail = (
                f"{errs} ({every} syscall×errno kind), the {self.slowest} slowest of each "
                f"syscall, the first of each syscall per process"
            )
            if t.decision_children:
                detail += f", {t.kept_decision:,} inside decisions"
            if t.cut_by_bytes:
                detail += f"; {t.cut_by_bytes:,} more did not fit in {self.max_bytes:,} bytes"
        return (
            f"{what}: {detail}; the rest is summarised exactly on the process spans "
            f"(syscall.summary.*); --syscall-spans all sends every one"
        )
