"""The ``Decision`` record every input produces, and its conversion to a span (docs/architecture.md §4).

All four inputs (stderr protocol, decision channel, ``.ruchy`` files, Python API) produce
the same plain :class:`Decision`; :func:`decision_span` turns one into the span a user sees
in Jaeger or Tempo, and :func:`span_to_decision` reads it back from a trace file (for
``sysspan decisions manifest/top/export``).

:class:`DecisionLinker` is the piece that makes "this inline decision caused these reads"
visible: it holds syscall spans back for a short, bounded window so that a timed decision,
which is only reported once it has ended, can still adopt the syscalls its thread made
inside it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from operator import attrgetter

from sysspan.ids import decision_id
from sysspan.model import DecisionSpan, Span, SpanKind, StatusCode
from sysspan.plainrecord import Record
from sysspan.redact import redact
from sysspan.span_roles import DECISION, ROLE_KEY

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "Decision",
    "DecisionLinker",
    "cached_decision_id",
    "decision_attributes",
    "decision_span",
    "is_decision_span",
    "json_text",
    "span_to_decision",
]


@lru_cache(maxsize=16384)
def cached_decision_id(category: str, name: str, file: str, line: int) -> int:
    """:func:`sysspan.ids.decision_id`, memoised: a program has few decision sites but may
    report each one millions of times, and the FNV loop is pure Python."""
    return decision_id(category, name, file, line)


class Decision(Record):
    """One recorded decision.

    ``input`` / ``result`` are JSON-able values (``result`` None = no result reported).
    ``file`` / ``line`` / ``column`` locate the decision in source ("" / 0 when unknown;
    ``column`` 0 = unknown). ``start_ns`` / ``end_ns`` are Unix-epoch nanoseconds; an instant
    decision has ``end_ns == start_ns``. ``pid`` / ``tid`` say who recorded it (``tid`` 0 =
    unknown).
    """

    __slots__ = _FIELDS = ("category", "name", "input", "result", "file", "line", "column",
                           "start_ns", "end_ns", "pid", "tid")

    def __init__(self, category: str, name: str, input: Any = None, result: Any = None,  # noqa: A002
                 file: str = "", line: int = 0, column: int = 0, start_ns: int = 0,
                 end_ns: int = 0, pid: int = 0, tid: int = 0) -> None:
        self.category = category
        self.name = name
        self.input = input
        self.result = result
        self.file = file
        self.line = line
        self.column = column
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.pid = pid
        self.tid = tid

    @property
    def id(self) -> int:
        """The FNV-1a 64 decision id over ``category::name::file::`` + ``line`` (u32 LE)."""
        return cached_decision_id(self.category, self.name, self.file, self.line)

    @property
    def id_hex(self) -> str:
        """``id`` as 16 lowercase hex digits (the ``decision.id`` attribute)."""
        return f"{self.id:016x}"

    @property
    def qualified_name(self) -> str:
        """``category::name``, the span name."""
        return f"{self.category}::{self.name}"

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_ns - self.start_ns)


def json_text(value: Any) -> str:
    """Compact JSON for an attribute value; never raises (unserialisable parts become
    their ``repr``, a self-referencing structure becomes its ``repr`` as a JSON string)."""
    import json  # not at the top: decisions with plain values (and runs without any) need none

    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=repr)
    except (ValueError, TypeError, RecursionError):
        return json.dumps(repr(value), ensure_ascii=False)


# JSON text of these can hold no secret (digits, true, false, null): the redaction's
# regular expressions, most of a decision span's cost, are skipped for them.
_PLAIN_JSON = {type(None): lambda _v: "null", bool: lambda v: "true" if v else "false", int: int.__repr__}


def _attr_text(value: Any) -> str:
    plain = _PLAIN_JSON.get(type(value))
    return plain(value) if plain is not None else redact(json_text(value))


def decision_attributes(decision: Decision) -> dict[str, Any]:
    """The attributes of a decision span (also used by the Python API's SDK mode):
    ``decision.id`` (16 lowercase hex), ``decision.category``, ``decision.name``,
    ``decision.input`` (JSON text), ``decision.result`` (JSON text, only when a result was
    reported), ``code.file.path`` / ``code.line.number`` (when known), ``code.column.number``
    (when nonzero), ``process.pid`` (when known), ``thread.id`` (when known) and
    ``sysspan.span.role`` (``decision``)."""
    attrs: dict[str, Any] = {
        "decision.id": decision.id_hex,
        "decision.category": decision.category,
        "decision.name": decision.name,
        "decision.input": _attr_text(decision.input),
        ROLE_KEY: DECISION,
    }
    if decision.result is not None:
        attrs["decision.result"] = _attr_text(decision.result)
    if decision.file:
        attrs["code.file.path"] = decision.file
    if decision.line:
        attrs["code.line.number"] = decision.line
    if decision.column:
        attrs["code.column.number"] = decision.column
    if decision.pid:
        attrs["process.pid"] = decision.pid
    if decision.tid:
        attrs["thread.id"] = decision.tid
    return attrs


def decision_span(
    decision: Decision,
    *,
    trace_id: int,
    span_id: int,
    parent_id: int,
    trace_state: str = "",
    flags: int = 1,
) -> Span:
    """The decision span of docs/architecture.md §4: name ``category::name``, kind INTERNAL, real
    start/end (equal for an instant decision), attributes from :func:`decision_attributes`.

    ``parent_id`` is the span of the process that recorded the decision (the builder knows
    it from ``decision.pid``); ``trace_state`` / ``flags`` as on the run's other spans.
    """
    d = decision
    start = d.start_ns
    end = d.end_ns if d.end_ns >= start else start
    result = d.result
    key = (d.category, d.name, d.file, d.line, d.column, d.pid, d.tid, result is None)
    site = _SITES.get(key)
    if site is None:
        if len(_SITES) >= _SITES_MAX:
            _SITES.clear()
        site = _SITES[key] = (decision_attributes(d), d.qualified_name)
    # the site's attributes in their order; only input and result are this decision's own
    # (_attr_text inlined, and the span built from positional arguments: this runs once
    # for every decision span of a run)
    attrs = site[0].copy()
    value = d.input
    plain = _PLAIN_JSON.get(type(value))
    attrs["decision.input"] = plain(value) if plain is not None else redact(json_text(value))
    if result is not None:
        plain = _PLAIN_JSON.get(type(result))
        attrs["decision.result"] = plain(result) if plain is not None else redact(json_text(result))
    return DecisionSpan(trace_id, span_id, parent_id, site[1], start, end, _INTERNAL, attrs,
                        _UNSET, "", None, trace_state, flags, site)


_INTERNAL, _UNSET = SpanKind.INTERNAL, StatusCode.UNSET

# decision site -> (its decision spans' attributes, name): one shared object per site, so
# that encoders can also cache per site (by identity)
_SITES: dict[tuple, tuple[dict[str, Any], str]] = {}
_SITES_MAX = 4096


def is_decision_span(span: Span) -> bool:
    return "decision.id" in span.attributes


def _loads(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text


def _int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def span_to_decision(span: Span) -> Decision | None:
    """The :class:`Decision` behind a decision span (None for any other span).

    Category and name come from the attributes, falling back to splitting the span name
    at its first ``::``; input/result are decoded from their JSON text.
    """
    attrs = span.attributes
    if "decision.id" not in attrs:
        return None
    category = attrs.get("decision.category")
    name = attrs.get("decision.name")
    if not isinstance(category, str) or not isinstance(name, str):
        category, _, name = span.name.partition("::")
    result_text = attrs.get("decision.result")
    return Decision(
        category=category,
        name=name,
        input=_loads(attrs.get("decision.input")),
        result=_loads(result_text) if result_text is not None else None,
        file=str(attrs.get("code.file.path", "") or ""),
        line=_int(attrs.get("code.line.number", 0)),
        column=_int(attrs.get("code.column.number", 0)),
        start_ns=span.start_ns,
        end_ns=span.end_ns,
        pid=_int(attrs.get("process.pid", 0)),
        tid=_int(attrs.get("thread.id", 0)),
    )


_start_ns = attrgetter("start_ns")


class DecisionLinker:
    """Parents syscall spans under the timed decision of the same thread that contains them.

    Why a buffer: syscall spans are finished at syscall exit, but a timed decision (Python
    API ``with d.decision(...)``, a stderr ``[DECISION]`` closed by ``[RESULT]``) is only
    known once it has ended. So syscall spans pass through here and wait at most
    ``max_delay_ns`` (or until ``max_spans`` are waiting) before ``emit`` is called; a decision
    arriving in time adopts every waiting syscall span of its thread that lies inside
    ``[start_ns, end_ns]`` and has not been adopted yet. Decisions end inner-first, so the
    innermost decision wins. Memory is bounded by ``max_spans``.

    Counters: ``adopted`` syscall spans re-parented; ``late`` decisions whose window
    reaches back before what was already emitted (some children may keep their process
    parent). Not thread-safe: call it from the tracer thread only.
    """

    __slots__ = ("emit", "emit_all", "max_spans", "max_delay_ns", "_spans", "_tids", "_head",
                 "_adopted", "_emitted_until", "adopted", "late")

    def __init__(
        self,
        emit: Callable[[Span], None],
        *,
        max_spans: int = 65536,
        max_delay_ns: int = 2_000_000_000,
        emit_all: Callable[[list[Span]], None] | None = None,
    ) -> None:
        self.emit = emit
        # Hands over released spans a list at a time (the builder's out.extend): a trace
        # releases every syscall span it makes, so this is per-span work saved.
        self.emit_all = emit_all
        self.max_spans = max(1, max_spans)
        self.max_delay_ns = max_delay_ns
        # Waiting spans and their threads, in arrival (= syscall exit) order, from _head on.
        # Lists with a moving head rather than a deque of entries: spans arrive and leave a
        # batch at a time, and slicing a list releases a batch without a Python-level loop.
        self._spans: list[Span] = []
        self._tids: list[int] = []
        self._head = 0
        self._adopted: set[int] = set()  # id() of waiting spans adopted by a decision
        self._emitted_until = 0  # latest start_ns of a span already emitted
        self.adopted = 0
        self.late = 0

    def syscall(self, span: Span, tid: int) -> None:
        """A finished syscall span of thread ``tid``; emitted later (or now, if the buffer is full)."""
        self._spans.append(span)
        self._tids.append(tid)
        self._release(span.end_ns - self.max_delay_ns)

    def syscalls(self, spans: list[Span], tids: list[int]) -> None:
        """``syscall`` for each of ``spans`` (``tids[i]`` the thread of ``spans[i]``), in order."""
        if spans:
            self._spans += spans
            self._tids += tids
            self._release(spans[-1].end_ns - self.max_delay_ns)

    def _release(self, horizon: int) -> None:
        """Emit the oldest waiting spans beyond ``max_spans``, then those that ended before
        ``horizon``."""
        spans = self._spans
        head = self._head
        cut = max(head, len(spans) - self.max_spans)
        n = len(spans)
        while cut < n and spans[cut].end_ns < horizon:
            cut += 1
        if cut > head:
            self._emit_range(head, cut)

    def _emit_range(self, head: int, cut: int) -> None:
        spans = self._spans
        out = spans[head:cut]
        self._head = cut
        latest = max(map(_start_ns, out))
        if latest > self._emitted_until:
            self._emitted_until = latest
        if self._adopted:
            self._adopted.difference_update(map(id, out))
        if cut * 2 >= len(spans):  # drop the emitted prefix now and then, not per span
            del spans[:cut]
            del self._tids[:cut]
            self._head = 0
        if self.emit_all is not None:
            self.emit_all(out)
        else:
            for span in out:
                self.emit(span)

    def decision(self, decision_span_: Span, tid: int) -> int:
        """Adopt the waiting syscall spans of ``tid`` inside the decision span's interval,
        then emit the decision span. Returns how many syscall spans were adopted."""
        start, end = decision_span_.start_ns, decision_span_.end_ns
        adopted = 0
        if end > start and tid:
            if start <= self._emitted_until:
                self.late += 1
            parent = decision_span_.span_id
            spans, tids, taken = self._spans, self._tids, self._adopted
            for i in range(len(spans) - 1, self._head - 1, -1):
                span = spans[i]
                if span.end_ns < start:
                    break
                if (
                    tids[i] == tid
                    and span.start_ns >= start
                    and span.end_ns <= end
                    and id(span) not in taken
                ):
                    span.parent_id = parent
                    taken.add(id(span))
                    adopted += 1
        self.adopted += adopted
        self.emit(decision_span_)
        return adopted

    def flush(self) -> None:
        """Emit every waiting span (at the end of the run)."""
        if len(self._spans) > self._head:
            self._emit_range(self._head, len(self._spans))

    def __len__(self) -> int:
        return len(self._spans) - self._head
