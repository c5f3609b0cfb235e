"""The span model: the one contract between the collector and the exporters.

Plain slotted records, no behaviour beyond convenience accessors, so that every sink
(JSONL, OTLP, console, summary, HTML) takes the same data and nothing in the collector
knows about OTLP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

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


@dataclass(slots=True)
class SpanEvent:
    name: str
    time_ns: int
    attributes: Attributes = field(default_factory=dict)


@dataclass(slots=True)
class Span:
    """One finished span. Ids are integers (u64 span ids, u128 trace id) so hashing is cheap."""

    trace_id: int
    span_id: int
    parent_id: int  # 0 = root
    name: str
    start_ns: int
    end_ns: int
    kind: SpanKind = SpanKind.INTERNAL
    attributes: Attributes = field(default_factory=dict)
    status: StatusCode = StatusCode.UNSET
    status_message: str = ""
    events: list[SpanEvent] = field(default_factory=list)
    trace_state: str = ""
    flags: int = 1  # W3C trace flags; bit 0 = sampled

    @property
    def trace_id_hex(self) -> str:
        return f"{self.trace_id:032x}"

    @property
    def span_id_hex(self) -> str:
        return f"{self.span_id:016x}"

    @property
    def parent_id_hex(self) -> str:
        return f"{self.parent_id:016x}" if self.parent_id else ""

    @property
    def role(self) -> str:
        """run / process / syscall / decision / step (:mod:`sysspan.span_roles`), or
        ``other``. Stored as the ``sysspan.span.role`` attribute, so every encoder writes
        it and every reader gets it back."""
        return role_of(self.attributes)


@dataclass(slots=True)
class SyscallSpan(Span):
    """A syscall span that shares its name, kind, attributes and status with every other
    span of the same ``shape`` (the builder makes one shape per distinct call of a thread:
    a loop repeats the same call). Encoders may cache their output per shape, so a span's
    attributes must not change after it was made; ids, times and the parent may."""

    shape: object = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class ResourceSpans:
    """Spans that share one resource, as one ``ResourceSpans`` entry of an OTLP request."""

    resource: Attributes
    spans: list[Span]
    scope_name: str = "sysspan"
    scope_version: str = ""
