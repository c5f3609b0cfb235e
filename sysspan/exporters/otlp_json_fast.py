"""The fast path of reading OTLP JSON lines: what ``merge``, ``replay`` and ``report
--perfetto`` spend their time on, and what ``stats`` and ``report``'s aggregation fall back
to for a line the typed structs of :mod:`sysspan.exporters.otlp_json_typed` refuse.

sysspan's own files (and the Collector's) hold one shape of span over and over; this
decoder handles that shape with as few checks and calls per span as possible and hands
anything else (another encoding of ids, events, odd types, invalid JSON) to the validating
decoder in :mod:`sysspan.exporters.otlp_json`, which gives the same result or the error
message. Both must agree on every line they both accept; the tests compare them.

``orjson`` parses these lines about twice as fast as the standard library; a line it
rejects (NaN literals, lone surrogate escapes, integers beyond 64 bits) goes to ``json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from sysspan.exporters.otlp_json import _any, _decode_span, decode_line
from sysspan.model import ResourceSpans, Span, SpanKind, StatusCode

_loads: Callable[[bytes], Any]
try:
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - orjson is a dependency; stay correct without it
    _loads = json.loads

_KINDS = {k.value: k for k in SpanKind}
_STATUSES = {c.value: c for c in StatusCode}
_UNSET = StatusCode.UNSET


class _Unusual(Exception):
    """This line needs the validating decoder."""


def decode_line_fast(raw: bytes, lineno: int | None = None, path: str | None = None) -> list[ResourceSpans]:
    """``decode_line`` for one raw line; same result, same errors."""
    try:
        return _request(_loads(raw))
    except Exception:  # noqa: BLE001 - anything unusual: the validating decoder decides
        pass
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    return decode_line(text, lineno, path)


def _attrs(items: Any) -> dict[str, Any]:
    if type(items) is not list:
        raise _Unusual
    out: dict[str, Any] = {}
    for kv in items:
        key = kv["key"]
        if type(key) is not str:
            raise _Unusual
        value = kv["value"]
        text = value.get("stringValue")
        if type(text) is str:
            out[key] = text
            continue
        number = value.get("intValue")
        if type(number) is str and text is None and "stringValue" not in value:
            out[key] = int(number)
        else:
            out[key] = _any(value)
    return out


def _span(obj: dict) -> Span:
    if type(obj) is not dict or "events" in obj:
        return _decode_span(obj)
    trace_id, span_id, parent, name, start, end, _failed, attrs = _record(obj)
    # _record checked these fields; only their values are read here.
    status = obj.get("status")
    code = _UNSET
    message = ""
    if status:
        raw_code = status.get("code")
        if raw_code is not None:
            code = _STATUSES[raw_code]
        message = status.get("message", "")
    return Span(
        trace_id, span_id, parent, name, start, end, _KINDS[obj["kind"]], attrs, code,
        message, [], obj.get("traceState", ""), obj.get("flags", 0),
    )  # fmt: skip


def _field(obj: dict, name: str, typ: type, default: Any) -> Any:
    """``obj[name]`` when it has type ``typ``, ``default`` when absent or null."""
    value = obj.get(name)
    if value is None:
        return default
    if type(value) is not typ:
        raise _Unusual
    return value


def _scopes(doc: Any) -> Iterator[tuple[dict[str, Any], str, str, list]]:
    """``(resource attributes, scope name, scope version, raw spans)`` per scope of a
    decoded line, the resource's attributes one dict shared by its scopes; raises
    ``_Unusual`` at the first part of anything but the usual shape."""
    if type(doc) is not dict or type(doc.get("resourceSpans")) is not list:
        raise _Unusual
    for rs in doc["resourceSpans"]:
        if type(rs) is not dict:
            raise _Unusual
        resource = rs.get("resource") or {}
        if type(resource) is not dict:
            raise _Unusual
        attrs = _attrs(_field(resource, "attributes", list, []))
        for ss in _field(rs, "scopeSpans", list, []):
            if type(ss) is not dict:
                raise _Unusual
            scope = ss.get("scope") or {}
            if type(scope) is not dict:
                raise _Unusual
            spans = _field(ss, "spans", list, [])
            yield attrs, _field(scope, "name", str, ""), _field(scope, "version", str, ""), spans


def _request(doc: Any) -> list[ResourceSpans]:
    return [
        ResourceSpans(dict(attrs), [_span(s) for s in spans], name, version)
        for attrs, name, version, spans in _scopes(doc)
    ]


def pick_attrs(items: Any, wanted: frozenset[str]) -> dict[str, Any]:
    """The attributes named in ``wanted`` of a raw attribute list, decoded as
    :func:`_attrs` decodes them; the others are neither decoded nor checked."""
    out: dict[str, Any] = {}
    for kv in items or ():
        key = kv["key"]
        if key in wanted:
            text = kv["value"].get("stringValue")
            out[key] = text if type(text) is str else _attrs([kv])[key]
    return out


def span_facts(raw: bytes, wanted: frozenset[str]) -> list[tuple[int, str, dict[str, Any]]] | None:
    """``(trace id, name, attributes named in wanted)`` for every span of one raw line,
    without building spans. Only the fields read are checked; None when the line is
    anything but the usual shape (the caller then decodes it fully)."""
    try:
        doc = _loads(raw)
        if type(doc) is not dict:
            return None
        out = []
        for rs in doc["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:
                    tid = span["traceId"]
                    name = span["name"]
                    if type(tid) is not str or len(tid) != 32 or type(name) is not str:
                        return None
                    out.append((int(tid, 16), name, pick_attrs(span.get("attributes"), wanted)))
        return out
    except Exception:  # noqa: BLE001 - unusual shape: the caller decodes the line fully
        return None


#: What the report code needs of a span: ``(trace id, span id, parent id, name, start ns,
#: end ns, status is ERROR, attributes)``; no Span object, no enums.
SpanRecord = tuple[int, int, int, str, int, int, bool, dict[str, Any]]
_ERROR = StatusCode.ERROR.value


def _record(obj: dict) -> SpanRecord:
    """The fields of ``_span`` as a :data:`SpanRecord`, with the same checks (anything
    ``_span`` would hand to the validating decoder raises)."""
    if type(obj) is not dict or "events" in obj:
        raise _Unusual
    tid = obj["traceId"]
    sid = obj["spanId"]
    pid = obj.get("parentSpanId")
    name = obj.get("name", "")
    start = obj.get("startTimeUnixNano")
    end = obj.get("endTimeUnixNano")
    if (
        type(tid) is not str
        or len(tid) != 32
        or type(sid) is not str
        or len(sid) != 16
        or type(name) is not str
        or type(start) is not str
        or type(end) is not str
    ):
        raise _Unusual
    if pid is None or pid == "":
        parent = 0
    elif type(pid) is str and len(pid) == 16:
        parent = int(pid, 16)
    else:
        raise _Unusual
    trace_id = int(tid, 16)
    span_id = int(sid, 16)
    if not trace_id or not span_id:
        raise _Unusual
    kind = obj.get("kind")
    if type(kind) is not int or kind not in _KINDS:
        raise _Unusual
    if type(obj.get("flags", 0)) is not int or type(obj.get("traceState", "")) is not str:
        raise _Unusual
    status = obj.get("status")
    failed = False
    if status:
        if type(status) is not dict:
            raise _Unusual
        raw_code = status.get("code")
        if raw_code is not None:
            if type(raw_code) is not int or raw_code not in _STATUSES:
                raise _Unusual
            failed = raw_code == _ERROR
        if type(status.get("message", "")) is not str:
            raise _Unusual
    attributes = obj.get("attributes")
    return (
        trace_id,
        span_id,
        parent,
        name,
        int(start),
        int(end),
        failed,
        _attrs(attributes) if attributes is not None else {},
    )


def span_records(raw: bytes) -> list[tuple[Any, list[SpanRecord]]] | None:
    """``(resource service.name or None, records)`` per scope of one raw line, as
    :func:`decode_line_fast` would decode it but without Span objects; None when the line
    is anything but the usual shape (the caller then decodes it with
    :func:`decode_line_fast`, which also gives the error of a bad line)."""
    try:
        return [
            (attrs.get("service.name"), [_record(s) for s in spans])
            for attrs, _name, _version, spans in _scopes(_loads(raw))
        ]
    except Exception:  # noqa: BLE001 - unusual shape: the caller decodes the line fully
        return None
