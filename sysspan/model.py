"""The span model: the one contract between the collector and the exporters.

Plain slotted records, no behaviour beyond convenience accessors, so that every sink (the
JSONL file, OTLP over gRPC or HTTP) takes the same data and nothing in the collector knows
about OTLP.
"""

from __future__ import annotations

from enum import IntEnum

from sysspan.plainrecord import Record
from sysspan.span_roles import role_of

AttrValue = str | bool | int | float | list
Attributes = dict[str, AttrValue]


class SpanKind(IntEnum):
    """OTLP ``Span.SpanKind`` numbering, so the values go on the wire unchanged."""

    UNSPECIFIED = 0
    INTERNAL = 1
    SERVER = 2
    CLIENT = 3
    PRODUCER = 4
    CONSUMER = 5


class StatusCode(IntEnum):
    """OTLP ``Status.StatusCode`` numbering."""

    UNSET = 0
    OK = 1
    ERROR = 2


class SpanEvent(Record):
    __slots__ = _FIELDS = ("name", "time_ns", "attributes")

    def __init__(self, name: str, time_ns: int, attributes: Attributes | None = None) -> None:
        self.name = name
        self.time_ns = time_ns
        self.attributes: Attributes = {} if attributes is None else attributes


class HexIds:
    """``trace_id_hex`` and ``span_id_hex`` of a record with int ``trace_id`` and
    ``span_id``: the lowercase, zero-padded forms OTLP/JSON and ``traceparent`` use."""

    __slots__ = ()
    trace_id: int
    span_id: int

    @property
    def trace_id_hex(self) -> str:
        return f"{self.trace_id:032x}"

    @property
    def span_id_hex(self) -> str:
        return f"{self.span_id:016x}"


class Span(HexIds, Record):
    """One finished span. Ids are integers (u64 span ids, u128 trace id) so hashing is cheap.

    ``parent_id`` 0 is a root; ``flags`` are the W3C trace flags (bit 0 = sampled).
    ``key`` is what the span shares with other spans of its subclass (:class:`SyscallSpan`,
    :class:`DecisionSpan`), None for a plain span: encoders cache their output per key, by
    identity, so the shared part must not change after the span was made. ``key`` takes no
    part in equality or ``repr``."""

    _FIELDS = ("trace_id", "span_id", "parent_id", "name", "start_ns", "end_ns", "kind",
               "attributes", "status", "status_message", "events", "trace_state", "flags")
    __slots__ = (*_FIELDS, "key")

    def __init__(
        self,
        trace_id: int,
        span_id: int,
        parent_id: int,
        name: str,
        start_ns: int,
        end_ns: int,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes | None = None,
        status: StatusCode = StatusCode.UNSET,
        status_message: str = "",
        events: list[SpanEvent] | None = None,
        trace_state: str = "",
        flags: int = 1,
        key: object = None,
    ) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_id = parent_id
        self.name = name
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.kind = kind
        self.attributes: Attributes = {} if attributes is None else attributes
        self.status = status
        self.status_message = status_message
        self.events: list[SpanEvent] = [] if events is None else events
        self.trace_state = trace_state
        self.flags = flags
        self.key = key

    @property
    def parent_id_hex(self) -> str:
        return f"{self.parent_id:016x}" if self.parent_id else ""

    @property
    def role(self) -> str:
        """run / process / syscall / decision / step (:mod:`sysspan.span_roles`), or
        ``other``. Stored as the ``sysspan.span.role`` attribute, so every encoder writes
        it and every reader gets it back."""
        return role_of(self.attributes)


class SyscallSpan(Span):
    """A syscall span that shares its name, kind, attributes and status with every other
    span of the same shape, its ``key`` (the builder makes one shape per distinct call of a
    thread: a loop repeats the same call). Encoders may cache their output per shape, so a
    span's attributes must not change after it was made; ids, times and the parent may."""

    __slots__ = ()


class ResourceSpans(Record):
    """Spans that share one resource, as one ``ResourceSpans`` entry of an OTLP request."""

    __slots__ = _FIELDS = ("resource", "spans", "scope_name", "scope_version")

    def __init__(self, resource: Attributes, spans: list[Span], scope_name: str = "sysspan",
                 scope_version: str = "") -> None:
        self.resource = resource
        self.spans = spans
        self.scope_name = scope_name
        self.scope_version = scope_version


class DecisionSpan(Span):
    """A decision span whose attributes are those of its site, its ``key`` (every decision
    of the same category, name, source location, process and thread, with or without a
    result) plus ``decision.input`` and ``decision.result``. Encoders may cache the site's
    part of their output, so only those two attributes may differ between spans of one
    site."""

    __slots__ = ()
