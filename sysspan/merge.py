"""Join traces recorded in different places (laptop, CI runner, container, Lambda) into one.

Why this exists: one trace id crosses several machines, and each machine writes its own
OTLP JSON lines file. ``merge`` puts them back together:

* **de-duplication** by ``(trace id, span id)``: span ids are deterministic (docs/architecture.md §5), so
  a re-sent batch or a file given twice carries the same ids; the first copy is kept;
* **missing parents**: spans whose parent span is in none of the inputs (a hop that was
  not recorded, or a file that was not given) are reported;
* **causal order**: parents are written before their children (a depth-first walk of each
  trace), never by timestamps, which lie when clocks disagree;
* **clock skew**: every parent/child pair whose two spans come from different files is a
  constraint on the offset between the two files' clocks. A child cannot start before its
  parent, and a synchronous child ends before its parent does; the smallest shift that
  satisfies every pair is the estimate ("b.jsonl runs 10.000 s behind a.jsonl"). With
  ``fix_skew`` each file's timestamps are shifted onto the first file's clock.

The merge steps (``deduplicate``, ``causal_order``, ``estimate_skew``, ``merge_spans``) take
and return spans; ``read_sources``/``merge_files`` read the input files and ``write_merged``
writes the result (``merge_stream`` does the same from a span index, for large inputs);
``sysspan.commands.merge`` parses the command line and prints the report.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sysspan.errors import TraceFileError
from sysspan.exporters.otlp_json import encode_line_bytes
from sysspan.model import ResourceSpans, Span, SpanEvent
from sysspan.tracefile import iter_trace_file

#: Spans per output line (one ``ExportTraceServiceRequest`` each).
LINE_SPANS = 512


@dataclass(slots=True)
class Entry:
    """One span with where it came from: ``source`` is the index of its input file."""

    span: Span
    source: int
    resource: dict
    scope_name: str
    scope_version: str


@dataclass(slots=True)
class Orphan:
    """A span whose parent is not in any input."""

    span: Span
    source: int


@dataclass(slots=True)
class Skew:
    """The clock offset between two sources, from their cross-source parent/child pairs.

    ``offset_ns`` is how far the clock of ``source`` is *ahead* of the clock of
    ``reference`` (negative: behind): subtracting it from ``source``'s timestamps puts them
    on ``reference``'s clock. ``low_ns``/``high_ns`` bound every offset consistent with the
    pairs (``None``: unbounded on that side); ``offset_ns`` is the one closest to zero, so
    0 means "no evidence of skew". ``consistent`` is False when no single offset fits every
    pair (the start constraints are then trusted alone: asynchronous children may outlive
    their parents, but no child starts before its parent).
    """

    reference: int
    source: int
    offset_ns: int
    low_ns: int | None
    high_ns: int | None
    pairs: int
    consistent: bool = True


@dataclass
class MergeResult:
    """What :func:`merge_spans` found; ``entries`` are in causal order."""

    sources: list[str]
    entries: list[Entry]
    spans_in: int = 0
    duplicates: int = 0
    conflicting_duplicates: int = 0
    orphans: list[Orphan] = field(default_factory=list)
    cycles: int = 0
    skews: list[Skew] = field(default_factory=list)
    shifts_ns: dict[int, int] = field(default_factory=dict)
    traces: int = 0


# --------------------------------------------------------------------------- reading


def _resource_key(resource: dict) -> str:
    return json.dumps(resource, sort_keys=True, default=repr)


def read_sources(paths: Sequence[str]) -> tuple[list[Entry], int]:
    """Every span of every file as an :class:`Entry` (file order kept), and the count.

    Equal resources share one dict, so the output groups them again.
    """
    entries: list[Entry] = []
    resources: dict[str, dict] = {}
    for index, path in enumerate(paths):
        for batch in iter_trace_file(path):
            key = _resource_key(batch.resource)
            resource = resources.setdefault(key, batch.resource)
            for span in batch.spans:
                entries.append(Entry(span, index, resource, batch.scope_name, batch.scope_version))
    return entries, len(entries)


# --------------------------------------------------------------------------- de-duplication


def _same(a: Span, b: Span) -> bool:
    """Equal copies? (Index entries of a streaming merge compare a digest of the attributes.)"""
    return (
        a.parent_id == b.parent_id
        and a.name == b.name
        and a.start_ns == b.start_ns
        and a.end_ns == b.end_ns
        and (a.digest == b.digest if hasattr(a, "digest") else a.attributes == b.attributes)  # type: ignore[attr-defined]
    )


def deduplicate(entries: Iterable[Entry]) -> tuple[dict[tuple[int, int], Entry], int, int]:
    """Unique spans by ``(trace id, span id)`` (first copy wins), the number of duplicates
    dropped, and how many of those differed from the kept copy."""
    unique: dict[tuple[int, int], Entry] = {}
    duplicates = conflicting = 0
    for entry in entries:
        key = (entry.span.trace_id, entry.span.span_id)
        kept = unique.get(key)
        if kept is None:
            unique[key] = entry
            continue
        duplicates += 1
        if not _same(kept.span, entry.span):
            conflicting += 1
    return unique, duplicates, conflicting


# --------------------------------------------------------------------------- causal order


def causal_order(unique: dict[tuple[int, int], Entry]) -> tuple[list[Entry], list[Orphan], int]:
    """Depth-first pre-order of every trace: each span after its parent.

    Roots are spans without a parent and spans whose parent is missing (orphans); roots
    and siblings are taken in start-time order only to make the output stable, the order
    itself is causal. Spans caught in a parent cycle (malformed input) are appended at the
    end; their number is returned.
    """
    children: dict[tuple[int, int], list[Entry]] = defaultdict(list)
    roots: list[Entry] = []
    orphans: list[Orphan] = []
    for (trace_id, _span_id), entry in unique.items():
        parent = entry.span.parent_id
        if parent and (trace_id, parent) in unique:
            children[(trace_id, parent)].append(entry)
        else:
            roots.append(entry)
            if parent:
                orphans.append(Orphan(entry.span, entry.source))

    def order_key(e: Entry) -> tuple[int, int]:
        return (e.span.start_ns, e.span.span_id)

    # Traces in order of their earliest root; roots of one trace together.
    first_start: dict[int, int] = {}
    for entry in roots:
        tid = entry.span.trace_id
        if tid not in first_start or entry.span.start_ns < first_start[tid]:
            first_start[tid] = entry.span.start_ns
    roots.sort(key=lambda e: (first_start[e.span.trace_id], e.span.trace_id, *order_key(e)))

    # Each span has one parent, so the walks from the roots are trees: no span is reached
    # twice and no "seen" set (one more entry per span) is needed. What no walk reaches
    # hangs in a parent cycle.
    out: list[Entry] = []
    for root in roots:
        stack = [root]
        while stack:
            entry = stack.pop()
            out.append(entry)
            kids = children.pop((entry.span.trace_id, entry.span.span_id), None)
            if kids:
                stack.extend(sorted(kids, key=order_key, reverse=True))
    cycles = 0
    if len(out) < len(unique):
        reached = {id(e) for e in out}
        for entry in unique.values():
            if id(entry) not in reached:
                out.append(entry)
                cycles += 1
    return out, orphans, cycles


# --------------------------------------------------------------------------- clock skew


@dataclass(slots=True)
class _Bounds:
    """Constraints on d = clock(b) - clock(a) for one ordered source pair (a < b)."""

    start_high: int | None = None  # from "child starts after parent starts"
    start_low: int | None = None
    end_low: int | None = None  # from "child ends before parent ends"
    end_high: int | None = None
    pairs: int = 0

    def upper(self, kind: str, value: int) -> None:
        attr = f"{kind}_high"
        current = getattr(self, attr)
        setattr(self, attr, value if current is None else min(current, value))

    def lower(self, kind: str, value: int) -> None:
        attr = f"{kind}_low"
        current = getattr(self, attr)
        setattr(self, attr, value if current is None else max(current, value))


def _closest_to_zero(low: int | None, high: int | None) -> int:
    if high is not None and high < 0:
        return high
    if low is not None and low > 0:
        return low
    return 0


def _combine(*bounds: int | None, pick) -> int | None:
    values = [b for b in bounds if b is not None]
    return pick(values) if values else None


def estimate_skew(unique: dict[tuple[int, int], Entry]) -> list[Skew]:
    """One :class:`Skew` per pair of sources linked by at least one parent/child pair.

    For a child in source *b* under a parent in source *a*, with d = clock(b) - clock(a):
    the child starts after its parent, so d <= child.start - parent.start; a synchronous
    child ends before its parent, so d >= child.end - parent.end. A child longer than its
    parent cannot be synchronous and gives no end constraint.
    """
    bounds: dict[tuple[int, int], _Bounds] = {}
    for (trace_id, _sid), entry in unique.items():
        child = entry.span
        if not child.parent_id:
            continue
        parent_entry = unique.get((trace_id, child.parent_id))
        if parent_entry is None or parent_entry.source == entry.source:
            continue
        parent = parent_entry.span
        a, b = parent_entry.source, entry.source
        fits = child.end_ns - child.start_ns <= parent.end_ns - parent.start_ns
        if a < b:  # d = clock(child) - clock(parent)
            pair = bounds.setdefault((a, b), _Bounds())
            pair.upper("start", child.start_ns - parent.start_ns)
            if fits:
                pair.lower("end", child.end_ns - parent.end_ns)
        else:  # d = clock(parent) - clock(child): the same constraints, negated
            pair = bounds.setdefault((b, a), _Bounds())
            pair.lower("start", parent.start_ns - child.start_ns)
            if fits:
                pair.upper("end", parent.end_ns - child.end_ns)
        pair.pairs += 1

    skews: list[Skew] = []
    for (a, b), pair in sorted(bounds.items()):
        low = _combine(pair.start_low, pair.end_low, pick=max)
        high = _combine(pair.start_high, pair.end_high, pick=min)
        consistent = low is None or high is None or low <= high
        if not consistent:
            # Trust "no child starts before its parent" alone.
            low, high = pair.start_low, pair.start_high
            if low is not None and high is not None and low > high:
                low = high = None  # contradictory even so: no estimate
        skews.append(
            Skew(
                reference=a,
                source=b,
                offset_ns=_closest_to_zero(low, high),
                low_ns=low,
                high_ns=high,
                pairs=pair.pairs,
                consistent=consistent,
            )
        )
    return skews


def source_shifts(skews: Sequence[Skew], reference: int = 0) -> dict[int, int]:
    """Offset of each source's clock relative to ``reference``'s (``offset`` to subtract),
    walking the pair estimates breadth-first from ``reference``. Sources not linked to it
    are left out (they cannot be placed)."""
    graph: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for s in skews:
        graph[s.reference].append((s.source, s.offset_ns))
        graph[s.source].append((s.reference, -s.offset_ns))
    shifts = {reference: 0}
    queue = deque([reference])
    while queue:
        node = queue.popleft()
        for other, offset in graph[node]:
            if other not in shifts:
                shifts[other] = shifts[node] + offset
                queue.append(other)
    return shifts


def _shift_span(span: Span, delta: int) -> Span:
    return Span(
        trace_id=span.trace_id,
        span_id=span.span_id,
        parent_id=span.parent_id,
        name=span.name,
        start_ns=span.start_ns - delta,
        end_ns=span.end_ns - delta,
        kind=span.kind,
        attributes=span.attributes,
        status=span.status,
        status_message=span.status_message,
        events=[SpanEvent(e.name, e.time_ns - delta, e.attributes) for e in span.events],
        trace_state=span.trace_state,
        flags=span.flags,
    )


# --------------------------------------------------------------------------- all together


def merge_spans(
    entries: list[Entry], sources: list[str], *, fix_skew: bool = False, shift: bool = True
) -> MergeResult:
    """De-duplicate, order causally and estimate skew; shift timestamps when ``fix_skew``
    (in ``entries`` when ``shift``, else only in ``shifts_ns``, for whoever reads the spans
    back)."""
    unique, duplicates, conflicting = deduplicate(entries)
    skews = estimate_skew(unique)
    shifts: dict[int, int] = {}
    if fix_skew and skews:
        shifts = {k: v for k, v in source_shifts(skews).items() if v}
        for key, entry in unique.items() if shift else ():
            delta = shifts.get(entry.source)
            if delta:
                unique[key] = Entry(
                    _shift_span(entry.span, delta),
                    entry.source,
                    entry.resource,
                    entry.scope_name,
                    entry.scope_version,
                )
    ordered, orphans, cycles = causal_order(unique)
    return MergeResult(
        sources=list(sources),
        entries=ordered,
        spans_in=len(entries),
        duplicates=duplicates,
        conflicting_duplicates=conflicting,
        orphans=orphans,
        cycles=cycles,
        skews=skews,
        shifts_ns=shifts,
        traces=len({e.span.trace_id for e in ordered}),
    )


def merge_files(paths: Sequence[str], *, fix_skew: bool = False) -> MergeResult:
    """:func:`merge_spans` over OTLP JSON lines files (``TraceFileError`` names a bad one)."""
    entries, _count = read_sources(paths)
    return merge_spans(entries, list(paths), fix_skew=fix_skew)


def batches_of(entries: Iterable[Entry], line_spans: int = LINE_SPANS) -> Iterable[list[ResourceSpans]]:
    """Output lines in order: consecutive spans sharing resource and scope become one
    ``ResourceSpans``; a line holds at most ``line_spans`` spans."""
    line: list[ResourceSpans] = []
    count = 0
    for entry in entries:
        last = line[-1] if line else None
        if (
            last is not None
            and last.resource is entry.resource
            and last.scope_name == entry.scope_name
            and last.scope_version == entry.scope_version
        ):
            last.spans.append(entry.span)
        else:
            line.append(ResourceSpans(entry.resource, [entry.span], entry.scope_name, entry.scope_version))
        count += 1
        if count >= line_spans:
            yield line
            line, count = [], 0
    if line:
        yield line


def write_merged(path: str, entries: Iterable[Entry]) -> None:
    """Write ``entries`` as OTLP JSON lines, atomically (the output may be one of the
    inputs: it is replaced only once everything is written)."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    except OSError as exc:
        raise TraceFileError(f"{path}: cannot write: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            for line in batches_of(entries):
                fh.write(encode_line_bytes(line))
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise TraceFileError(f"{path}: cannot write: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------- reporting


def _seconds(ns: int) -> str:
    return f"{abs(ns) / 1e9:.3f} s"


def describe_skew(skew: Skew, sources: Sequence[str]) -> str:
    """One line: "b.jsonl runs 10.000 s behind a.jsonl (...)"."""
    a = os.path.basename(sources[skew.reference])
    b = os.path.basename(sources[skew.source])
    pairs = f"{skew.pairs} parent/child pair{'s' if skew.pairs != 1 else ''}"
    if skew.low_ns is None and skew.high_ns is None:
        return f"{b} vs {a}: no consistent clock offset ({pairs} contradict each other)"
    if skew.offset_ns == 0:
        text = f"{b} and {a}: no clock skew detected"
    else:
        where = "behind" if skew.offset_ns < 0 else "ahead of"
        text = f"{b} runs {_seconds(skew.offset_ns)} {where} {a}"
    low = "-inf" if skew.low_ns is None else f"{skew.low_ns / 1e9:+.3f}"
    high = "+inf" if skew.high_ns is None else f"{skew.high_ns / 1e9:+.3f}"
    note = "" if skew.consistent else "; some children outlive their parents, start times used alone"
    return f"{text} (from {pairs}; consistent offsets {low}..{high} s{note})"
