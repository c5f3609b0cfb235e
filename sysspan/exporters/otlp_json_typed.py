"""OTLP JSON lines decoded into typed structs, for the reader whose time is per span
(``sysspan report``'s aggregation pass).

``msgspec`` parses a line straight into the slotted structs below and checks the type of
every field while it parses, in C; what is left to do in Python per span is what no type
says (id lengths, enum values, integer text). The structs accept exactly what
:func:`sysspan.exporters.otlp_json_fast._record` accepts, or less: anything they refuse
goes to that reader, and from there to the validating decoder, which has the last word.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, Struct

from sysspan.exporters.otlp_json import _any
from sysspan.exporters.otlp_json_fast import _ERROR, _KINDS, _STATUSES, SpanRecord, _attrs

# orjson, the other fast reader, refuses integers beyond 64 bits (msgspec takes them).
_INT_MIN = -(2**63)
_INT_END = 2**64


class Value(Struct, forbid_unknown_fields=True):
    """One ``AnyValue``; a key of another name is for the validating decoder to judge."""

    stringValue: Any = UNSET
    intValue: Any = UNSET
    boolValue: Any = UNSET
    doubleValue: Any = UNSET
    arrayValue: Any = UNSET
    kvlistValue: Any = UNSET
    bytesValue: Any = UNSET


_VALUE_FIELDS = Value.__struct_fields__


class KeyValue(Struct):
    key: str
    value: Value


class Status(Struct):
    code: int | None = None
    message: str = ""


class TypedSpan(Struct):
    traceId: str
    spanId: str
    kind: int
    startTimeUnixNano: str
    endTimeUnixNano: str
    parentSpanId: str | None = None
    name: str = ""
    attributes: list[KeyValue] | None = None
    status: Status | None = None
    flags: int = 0
    traceState: str = ""
    events: Any = UNSET


class Scope(Struct):
    name: str | None = None
    version: str | None = None


class ScopeSpans(Struct):
    scope: Scope | None = None
    spans: list[TypedSpan] | None = None


class Resource(Struct):
    attributes: list[KeyValue] | None = None


class TypedResourceSpans(Struct):
    resource: Resource | None = None
    scopeSpans: list[ScopeSpans] | None = None


class Request(Struct):
    resourceSpans: list[TypedResourceSpans]


_decoder = msgspec.json.Decoder(Request)


def decode_request(raw: bytes) -> Request | None:
    """The typed request of one line; None when a field has another type or the line is
    not JSON (the caller then reads it another way)."""
    try:
        return _decoder.decode(raw)
    except msgspec.DecodeError:
        return None


def typed_attrs(items: list[KeyValue] | None) -> dict[str, Any]:
    """An attribute list as ``_attrs`` of the fast reader decodes it."""
    out: dict[str, Any] = {}
    if items is None:
        return out
    for kv in items:
        value = kv.value
        text = value.stringValue
        if type(text) is str:
            out[kv.key] = text
            continue
        number = value.intValue
        if type(number) is str and text is UNSET:
            out[kv.key] = int(number)
        else:
            out[kv.key] = _any({f: getattr(value, f) for f in _VALUE_FIELDS if getattr(value, f) is not UNSET})
    return out


def scope_spans(request: Request) -> list[tuple[Any, list[TypedSpan]]]:
    """``(resource service.name or None, spans)`` per scope of a request."""
    out = []
    for rs in request.resourceSpans:
        service = typed_attrs(rs.resource.attributes).get("service.name") if rs.resource else None
        for ss in rs.scopeSpans or ():
            out.append((service, ss.spans or []))
    return out


def typed_records(spans: list[TypedSpan]) -> list[SpanRecord]:
    """The :data:`SpanRecord` of each typed span, with the checks no type makes, up to
    the first span that fails one (where ``_record`` would refuse it): the list is
    shorter than ``spans`` then."""
    out: list[SpanRecord] = []
    append = out.append
    # Ids repeat from span to span (one trace, a few parents): parse each text once.
    tid_text, trace_id = "", 0
    pid_text: str | None = ""
    parent = 0
    try:
        for span in spans:
            tid = span.traceId
            sid = span.spanId
            pid = span.parentSpanId
            if len(sid) != 16 or span.events is not UNSET:
                break
            if tid != tid_text:
                if len(tid) != 32:
                    break
                trace_id = int(tid, 16)
                tid_text = tid
            if pid != pid_text:
                if not pid:
                    parent = 0
                elif len(pid) == 16:
                    parent = int(pid, 16)
                else:
                    break
                pid_text = pid
            span_id = int(sid, 16)
            if not trace_id or not span_id or span.kind not in _KINDS or not _INT_MIN <= span.flags < _INT_END:
                break
            failed = False
            status = span.status
            if status is not None and status.code is not None:
                if status.code not in _STATUSES:
                    break
                failed = status.code == _ERROR
            append((
                trace_id,
                span_id,
                parent,
                span.name,
                int(span.startTimeUnixNano),
                int(span.endTimeUnixNano),
                failed,
                typed_attrs(span.attributes),
            ))
    except Exception:  # noqa: BLE001 - bad integer text, an odd attribute value: refused
        pass
    return out


def typed_span_records(raw: bytes) -> list[tuple[Any, list[SpanRecord]]] | None:
    """What :func:`sysspan.exporters.otlp_json_fast.span_records` gives for one line,
    read through the typed structs; None where they refuse any of it."""
    request = decode_request(raw)
    if request is None:
        return None
    try:
        scopes = scope_spans(request)
    except Exception:  # noqa: BLE001 - an odd resource attribute: refused
        return None
    out = []
    for service, spans in scopes:
        records = typed_records(spans)
        if len(records) < len(spans):
            return None
        out.append((service, records))
    return out


# What ``stats`` reads: ids, names and a few attributes; the rest of a span is skipped
# unparsed into Python objects, as the orjson reader leaves it unchecked.
class _FactAttribute(Struct):
    key: Any
    value: Any = UNSET


class _FactSpan(Struct):
    traceId: str
    name: str
    attributes: list[_FactAttribute] | None = None


class _FactScope(Struct):
    spans: list[_FactSpan]


class _FactResource(Struct):
    scopeSpans: list[_FactScope]


class _FactRequest(Struct):
    resourceSpans: list[_FactResource]


_fact_decoder = msgspec.json.Decoder(_FactRequest)


def typed_span_facts(raw: bytes, wanted: frozenset[str]) -> list[tuple[int, str, dict[str, Any]]] | None:
    """What :func:`sysspan.exporters.otlp_json_fast.span_facts` gives for one line, read
    through typed structs; None where they refuse the line (the caller then asks
    ``span_facts``)."""
    try:
        request = _fact_decoder.decode(raw)
        out = []
        seen = ""
        trace_id = 0
        for rs in request.resourceSpans:
            for ss in rs.scopeSpans:
                for span in ss.spans:
                    tid = span.traceId
                    if tid != seen:  # one trace id for a run of spans, nearly always
                        if len(tid) != 32:
                            return None
                        trace_id = int(tid, 16)
                        seen = tid
                    picked: dict[str, Any] = {}
                    for kv in span.attributes or ():
                        key = kv.key
                        if key in wanted:
                            text = kv.value.get("stringValue")
                            picked[key] = text if type(text) is str else _attrs([{"key": key, "value": kv.value}])[key]
                    out.append((trace_id, span.name, picked))
        return out
    except Exception:  # noqa: BLE001 - unusual shape: the caller reads the line another way
        return None
