"""OTLP/JSON: the text form of ``ExportTraceServiceRequest`` written by the OpenTelemetry
Collector's file exporter (one request per line), and :func:`from_proto`, which reads a
decoded protobuf request (what the Lambda extension's receiver gets) into the same records.

Why a hand-written encoder: the embedded default sink writes every span through
:func:`encode_line`, so it is built from f-strings and the C string escaper instead of
``json.dumps`` over nested dicts (several times faster). The rules are the OTLP/JSON ones:

* lowerCamelCase field names; enums as integers;
* ``traceId`` / ``spanId`` / ``parentSpanId`` as lowercase hex (not protobuf's base64);
* 64-bit integers (times, ``intValue``) as decimal strings; doubles as numbers, with
  ``"NaN"`` / ``"Infinity"`` / ``"-Infinity"`` strings for non-finite values;
* fields holding their default value (empty ``parentSpanId``, ``traceState``, zero ``flags``,
  empty attribute lists) are omitted, as protobuf's JSON printer and the Collector do.

:func:`decode_line` is lenient where files written by other tools differ: numbers given as
JSON numbers, ids in base64, enums by name, ``kvlistValue`` / ``bytesValue`` attributes, and
lines that carry metrics or logs (they yield no spans).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from enum import IntEnum

# json, base64 and binascii are imported where a trace file is read or a bytes value
# written: writing spans needs only the escaper, and importing the json package (its
# decoder and scanner too) was a visible part of every traced command's start
try:  # the C escaper (UTF-8 kept as is), what json.encoder.encode_basestring is
    from _json import encode_basestring as _esc
except ImportError:  # pragma: no cover - CPython always has _json
    from json.encoder import encode_basestring as _esc

from sysspan.errors import TraceFileError
from sysspan.model import (
    DecisionSpan,
    ResourceSpans,
    Span,
    SpanEvent,
    SpanKind,
    StatusCode,
    SyscallSpan,
)

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

__all__ = ["decode_line", "encode_line", "from_proto"]

# --------------------------------------------------------------------------- encoding

# '{"key":"syscall.name","value":' for every attribute key seen so far: keys repeat on every
# span, so escaping each once saves a call per attribute. Bounded so odd data cannot grow it.
_KEY_PREFIX: dict[str, str] = {}
_KEY_PREFIX_MAX = 4096


def _key_prefix(key: str) -> str:
    prefix = _KEY_PREFIX.get(key)
    if prefix is None:
        prefix = '{"key":' + _esc(key) + ',"value":'
        if len(_KEY_PREFIX) < _KEY_PREFIX_MAX:
            _KEY_PREFIX[key] = prefix
    return prefix


def _double(value: float) -> str:
    if math.isfinite(value):
        return repr(value)
    if value != value:  # NaN
        return '"NaN"'
    return '"Infinity"' if value > 0 else '"-Infinity"'


def _value(value: Any) -> str:
    """One ``AnyValue`` object. Never raises: an unknown type is written as its ``str()``."""
    kind = type(value)
    if kind is str:
        return '{"stringValue":' + _esc(value) + "}"
    if kind is int:
        return '{"intValue":"' + str(value) + '"}'
    if kind is bool:
        return '{"boolValue":true}' if value else '{"boolValue":false}'
    if kind is float:
        return '{"doubleValue":' + _double(value) + "}"
    if kind is list or kind is tuple:
        return '{"arrayValue":{"values":[' + ",".join([_value(v) for v in value]) + "]}}"
    if value is None:
        return "{}"
    if isinstance(value, bool):
        return '{"boolValue":true}' if value else '{"boolValue":false}'
    if isinstance(value, int):  # IntEnum and friends
        return '{"intValue":"' + str(int(value)) + '"}'
    if isinstance(value, float):
        return '{"doubleValue":' + _double(float(value)) + "}"
    if isinstance(value, str):
        return '{"stringValue":' + _esc(str(value)) + "}"
    if isinstance(value, dict):
        return '{"kvlistValue":{"values":[' + _attr_items(value) + "]}}"
    if isinstance(value, (bytes, bytearray)):
        import base64

        return '{"bytesValue":"' + base64.b64encode(bytes(value)).decode("ascii") + '"}'
    if isinstance(value, (list, tuple, set, frozenset)):
        return '{"arrayValue":{"values":[' + ",".join([_value(v) for v in value]) + "]}}"
    return '{"stringValue":' + _esc(str(value)) + "}"


_ATTRS_DONE: dict[tuple, str] = {}
_ATTRS_DONE_MAX = 4096


def _attr_items(attrs: dict[str, Any]) -> str:
    # A trace repeats the same attributes (a loop's syscalls differ only in ids and times),
    # so each distinct set is encoded once. The types are part of the key (True == 1), and
    # floats stay out (-0.0 == 0.0).
    types = tuple(map(type, attrs.values()))
    if float in types:
        return _encode_attr_items(attrs)
    try:
        key = (tuple(attrs.items()), types)
        done = _ATTRS_DONE.get(key)
    except TypeError:  # an unhashable value (a list)
        return _encode_attr_items(attrs)
    if done is None:
        done = _encode_attr_items(attrs)
        if len(_ATTRS_DONE) >= _ATTRS_DONE_MAX:
            _ATTRS_DONE.clear()
        _ATTRS_DONE[key] = done
    return done


def _encode_attr_items(attrs: dict[str, Any]) -> str:
    # The two common cases are inlined: a function call per attribute is a third of the cost.
    parts: list[str] = []
    append = parts.append
    for key, value in attrs.items():
        prefix = _KEY_PREFIX.get(key) or _key_prefix(key)
        kind = type(value)
        if kind is str:
            append(prefix + '{"stringValue":' + _esc(value) + "}}")
        elif kind is int:
            append(f'{prefix}{{"intValue":"{value}"}}}}')
        else:
            append(prefix + _value(value) + "}")
    return ",".join(parts)


def _span(span: Span) -> str:
    if type(span) is DecisionSpan and span.key is not None and not span.events:
        return _decision_span(span)
    out = f'{{"traceId":"{span.trace_id:032x}","spanId":"{span.span_id:016x}"'
    if span.trace_state:
        out += ',"traceState":' + _esc(span.trace_state)
    if span.parent_id:
        out += f',"parentSpanId":"{span.parent_id:016x}"'
    if span.flags:
        out += f',"flags":{int(span.flags)}'
    out += f'{_name_kind(span)}{int(span.start_ns)}","endTimeUnixNano":"{int(span.end_ns)}"'
    if span.attributes:
        out += ',"attributes":[' + _attr_items(span.attributes) + "]"
    if span.events:
        events = []
        for ev in span.events:
            text = f'{{"timeUnixNano":"{int(ev.time_ns)}","name":{_esc(ev.name)}'
            if ev.attributes:
                text += ',"attributes":[' + _attr_items(ev.attributes) + "]"
            events.append(text + "}")
        out += ',"events":[' + ",".join(events) + "]"
    return out + _status(span)


def _name_kind(span: Span) -> str:
    """From the name up to the start time's opening quote."""
    return f',"name":{_esc(span.name)},"kind":{int(span.kind)},"startTimeUnixNano":"'


def _status(span: Span) -> str:
    """The status object and the span's closing brace."""
    if span.status:
        if span.status_message:
            return f',"status":{{"message":{_esc(span.status_message)},"code":{int(span.status)}}}}}'
        return f',"status":{{"code":{int(span.status)}}}}}'
    if span.status_message:
        return f',"status":{{"message":{_esc(span.status_message)}}}}}'
    return ',"status":{}}'


# shape id -> (shape, trace id, trace state, flags, the text before the span id; with a
# parent: between the span id and the parent, after the parent up to the start time;
# without: after the span id up to the start time; after the end time): what a SyscallSpan
# shares with the spans of its shape (and run), encoded once. The shape is kept so that its
# id is not reused while cached.
_SHAPED: dict[int, tuple[object, int, str, int, str, str, str, str, str]] = {}
_SHAPED_MAX = 8192


def _spans(spans: list[Span]) -> str:
    """The spans of one scope, comma-separated. A syscall span whose shape was seen before
    needs only its ids and times written: this loop is the encoder's hot path, so that case
    is handled inline rather than by a call per span."""
    parts: list[str] = []
    append = parts.append
    shaped = _SHAPED
    for span in spans:
        if type(span) is not SyscallSpan or span.key is None or span.events:
            append(_span(span))
            continue
        shape = span.key
        done = shaped.get(id(shape))
        if done is None or done[0] is not shape or done[1:4] != (span.trace_id, span.trace_state, span.flags):
            done = _shape_parts(span)
        # ids as 16 hex digits: to_bytes().hex() is about twice as fast as format(id, "016x")
        parent = span.parent_id
        if parent:
            append(f'{done[4]}{span.span_id.to_bytes(8, "big").hex()}{done[5]}'
                   f'{parent.to_bytes(8, "big").hex()}{done[6]}{span.start_ns}'
                   f'","endTimeUnixNano":"{span.end_ns}"{done[8]}')
        else:
            append(f'{done[4]}{span.span_id.to_bytes(8, "big").hex()}{done[7]}{span.start_ns}'
                   f'","endTimeUnixNano":"{span.end_ns}"{done[8]}')
    return ",".join(parts)


def _shape_parts(span: SyscallSpan) -> tuple[object, int, str, int, str, str, str, str, str]:
    state = ',"traceState":' + _esc(span.trace_state) if span.trace_state else ""
    flags = f',"flags":{int(span.flags)}' if span.flags else ""
    # _encode_attr_items, not _attr_items: a shape is encoded once, so caching its
    # attributes again would only cost a key of every item
    attrs = ',"attributes":[' + _encode_attr_items(span.attributes) + "]" if span.attributes else ""
    to_start = flags + _name_kind(span)
    done = (
        span.key, span.trace_id, span.trace_state, span.flags,
        f'{{"traceId":"{span.trace_id:032x}","spanId":"', '"' + state + ',"parentSpanId":"',
        '"' + to_start, '"' + state + to_start, attrs + _status(span),
    )
    if len(_SHAPED) >= _SHAPED_MAX:
        _SHAPED.clear()
    _SHAPED[id(span.key)] = done
    return done


# site -> (site, trace id, trace state, flags, the text before the span id, between it and
# the parent, after the parent up to the start time, the attribute keys whose values vary
# (decision.input, decision.result, in their order), the attribute text around them): what
# a DecisionSpan shares with the other decisions of its site, encoded once.
_SITED: dict[int, tuple[object, int, str, int, str, str, str, tuple[str, ...], list[str]]] = {}
_SITED_MAX = 4096
_VARYING = ("decision.input", "decision.result")
_HOLE = "\x00"  # never in encoded JSON text (control characters are escaped)


def _decision_span(span: DecisionSpan) -> str:
    """``_span`` for a decision span: what its site shares is cached, only ids, times,
    input and result are encoded."""
    site = span.key
    done = _SITED.get(id(site))
    if (
        done is None
        or done[0] is not site
        or done[1] != span.trace_id
        or done[2] != span.trace_state
        or done[3] != span.flags
    ):
        done = _site_parts(span)
    attrs = span.attributes
    holes, parts = done[7], done[8]
    # ids as in _spans; the holes hold JSON text (strings) unless someone changed them
    parent = span.parent_id
    out = (f'{done[4]}{span.span_id.to_bytes(8, "big").hex()}{done[5]},"parentSpanId":"'
           f'{parent.to_bytes(8, "big").hex()}"{done[6]}' if parent else
           f'{done[4]}{span.span_id.to_bytes(8, "big").hex()}{done[5]}{done[6]}')
    out += f'{span.start_ns}","endTimeUnixNano":"{span.end_ns}"{parts[0]}'
    i = 1
    for key in holes:
        value = attrs[key]
        out += ('{"stringValue":' + _esc(value) + "}" if type(value) is str else _value(value)) + parts[i]
        i += 1
    if span.status or span.status_message:
        return out + _status(span)
    return out + ',"status":{}}'


def _site_parts(span: DecisionSpan) -> tuple[object, int, str, int, str, str, str, tuple[str, ...], list[str]]:
    texts = []
    for key, value in span.attributes.items():
        prefix = _KEY_PREFIX.get(key) or _key_prefix(key)
        texts.append(prefix + (_HOLE if key in _VARYING else _value(value)) + "}")
    holes = tuple(key for key in span.attributes if key in _VARYING)
    attrs = ',"attributes":[' + ",".join(texts) + "]" if texts else ""
    state = ',"traceState":' + _esc(span.trace_state) if span.trace_state else ""
    flags = f',"flags":{int(span.flags)}' if span.flags else ""
    done = (
        span.key, span.trace_id, span.trace_state, span.flags,
        f'{{"traceId":"{span.trace_id:032x}","spanId":"', '"' + state, flags + _name_kind(span),
        holes, attrs.split(_HOLE),
    )
    if len(_SITED) >= _SITED_MAX:
        _SITED.clear()
    _SITED[id(span.key)] = done
    return done


def _resource_spans(batch: ResourceSpans) -> str:
    scope = '{"name":' + _esc(batch.scope_name)
    if batch.scope_version:
        scope += ',"version":' + _esc(batch.scope_version)
    return (
        '{"resource":{"attributes":['
        + _attr_items(batch.resource)
        + ']},"scopeSpans":[{"scope":'
        + scope
        + '},"spans":['
        + _spans(batch.spans)
        + "]}]}"
    )


def encode_line(batch: ResourceSpans | Iterable[ResourceSpans]) -> str:
    """One ``ExportTraceServiceRequest`` as one line of OTLP/JSON (no trailing newline).

    Takes one ``ResourceSpans`` or several (each becomes one ``resourceSpans`` entry with
    one ``scopeSpans``). Strings are written as UTF-8; a lone surrogate (from a
    ``surrogateescape``-decoded path) survives in the returned ``str`` and should be written
    with ``errors="backslashreplace"``, which keeps the line valid JSON and lossless.
    """
    batches = [batch] if isinstance(batch, ResourceSpans) else batch
    return '{"resourceSpans":[' + ",".join([_resource_spans(b) for b in batches]) + "]}"


def encode_line_bytes(batch: ResourceSpans | Iterable[ResourceSpans]) -> bytes:
    """:func:`encode_line` plus newline, as the bytes written to files and HTTP bodies."""
    return (encode_line(batch) + "\n").encode("utf-8", "backslashreplace")


# --------------------------------------------------------------------------- decoding


class _Shape(ValueError):
    """Raised inside the decoder; turned into TraceFileError with the location."""


def _where(path: str | None, lineno: int | None) -> str:
    if path is not None and lineno is not None:
        return f"{path}:{lineno}: "
    if path is not None:
        return f"{path}: "
    if lineno is not None:
        return f"line {lineno}: "
    return ""


def _id(value: Any, nbytes: int, field: str) -> int:
    """Hex (OTLP/JSON), base64 (protobuf's canonical JSON) or, leniently, an integer."""
    if value is None or value == "":
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value < 1 << (8 * nbytes):
            return value
        raise _Shape(f"{field} {value} out of range")
    if isinstance(value, str):
        if len(value) == 2 * nbytes:
            try:
                return int(value, 16)
            except ValueError:
                pass
        import base64

        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError:  # binascii.Error too
            raw = b""
        if len(raw) == nbytes:
            return int.from_bytes(raw, "big")
    raise _Shape(f"{field} must be {2 * nbytes} hex digits, got {value!r}")


def _int(value: Any, field: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        raise _Shape(f"{field} must be an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise _Shape(f"{field} must be an integer, got {value!r}")


def _enum(value: Any, enum: type[IntEnum], prefix: str, field: str) -> Any:
    if value is None:
        return enum(0)
    if isinstance(value, str) and not value.isdigit():
        name = value[len(prefix) :] if value.startswith(prefix) else value
        try:
            return enum[name]
        except KeyError:
            raise _Shape(f"{field}: unknown value {value!r}") from None
    number = _int(value, field)
    try:
        return enum(number)
    except ValueError:
        raise _Shape(f"{field}: unknown value {value!r}") from None


def _any(value: Any) -> Any:
    if not isinstance(value, dict):
        raise _Shape(f"attribute value must be an object, got {value!r}")
    if "stringValue" in value:
        text = value["stringValue"]
        if not isinstance(text, str):
            raise _Shape(f"stringValue must be a string, got {text!r}")
        return text
    if "intValue" in value:
        return _int(value["intValue"], "intValue")
    if "boolValue" in value:
        flag = value["boolValue"]
        if not isinstance(flag, bool):
            raise _Shape(f"boolValue must be true or false, got {flag!r}")
        return flag
    if "doubleValue" in value:
        number = value["doubleValue"]
        if isinstance(number, bool) or not isinstance(number, (int, float, str)):
            raise _Shape(f"doubleValue must be a number, got {number!r}")
        try:
            return float(number)
        except ValueError:
            raise _Shape(f"doubleValue must be a number, got {number!r}") from None
    if "arrayValue" in value:
        return [_any(v) for v in _list(value["arrayValue"], "values")]
    if "kvlistValue" in value:
        return _attributes(_list(value["kvlistValue"], "values"))
    if "bytesValue" in value:
        import base64

        try:
            return base64.b64decode(value["bytesValue"], validate=True)
        except (ValueError, TypeError):  # binascii.Error is a ValueError
            raise _Shape(f"bytesValue must be base64, got {value['bytesValue']!r}") from None
    return None


def _list(obj: Any, field: str) -> list:
    if not isinstance(obj, dict):
        raise _Shape(f"expected an object holding {field!r}, got {obj!r}")
    items = obj.get(field)
    if items is None:
        return []
    if not isinstance(items, list):
        raise _Shape(f"{field} must be a list")
    return items


def _attributes(items: list) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for kv in items:
        if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
            raise _Shape(f"attribute must be {{key, value}}, got {kv!r}")
        attrs[kv["key"]] = _any(kv.get("value", {}))
    return attrs


def _str(value: Any, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Shape(f"{field} must be a string, got {value!r}")
    return value


def _decode_span(obj: Any) -> Span:
    if not isinstance(obj, dict):
        raise _Shape(f"span must be an object, got {obj!r}")
    trace_id = _id(obj.get("traceId"), 16, "traceId")
    span_id = _id(obj.get("spanId"), 8, "spanId")
    if not trace_id or not span_id:
        raise _Shape(f"span {obj.get('name')!r} has no traceId/spanId")
    status = obj.get("status") or {}
    if not isinstance(status, dict):
        raise _Shape("status must be an object")
    events = []
    for ev in _list(obj, "events"):
        if not isinstance(ev, dict):
            raise _Shape("event must be an object")
        events.append(
            SpanEvent(
                name=_str(ev.get("name"), "event name"),
                time_ns=_int(ev.get("timeUnixNano"), "timeUnixNano"),
                attributes=_attributes(_list(ev, "attributes")),
            )
        )
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=_id(obj.get("parentSpanId"), 8, "parentSpanId"),
        name=_str(obj.get("name"), "name"),
        start_ns=_int(obj.get("startTimeUnixNano"), "startTimeUnixNano"),
        end_ns=_int(obj.get("endTimeUnixNano"), "endTimeUnixNano"),
        kind=_enum(obj.get("kind"), SpanKind, "SPAN_KIND_", "kind"),
        attributes=_attributes(_list(obj, "attributes")),
        status=_enum(status.get("code"), StatusCode, "STATUS_CODE_", "status.code"),
        status_message=_str(status.get("message"), "status.message"),
        events=events,
        trace_state=_str(obj.get("traceState"), "traceState"),
        flags=_int(obj.get("flags"), "flags"),
    )


def _decode_request(doc: Any) -> list[ResourceSpans]:
    if not isinstance(doc, dict):
        raise _Shape("expected a JSON object (one ExportTraceServiceRequest per line)")
    if "resourceSpans" not in doc:
        if "resourceMetrics" in doc or "resourceLogs" in doc or "resourceProfiles" in doc:
            return []  # a Collector file may interleave other signals: no spans here
        raise _Shape("not an OTLP trace request: no 'resourceSpans'")
    result: list[ResourceSpans] = []
    for rs in _list(doc, "resourceSpans"):
        if not isinstance(rs, dict):
            raise _Shape("resourceSpans entry must be an object")
        resource = rs.get("resource") or {}
        attrs = _attributes(_list(resource, "attributes"))
        for ss in _list(rs, "scopeSpans"):
            if not isinstance(ss, dict):
                raise _Shape("scopeSpans entry must be an object")
            scope = ss.get("scope") or {}
            if not isinstance(scope, dict):
                raise _Shape("scope must be an object")
            result.append(
                ResourceSpans(
                    resource=dict(attrs),
                    spans=[_decode_span(s) for s in _list(ss, "spans")],
                    scope_name=_str(scope.get("name"), "scope.name"),
                    scope_version=_str(scope.get("version"), "scope.version"),
                )
            )
    return result


def decode_line(
    line: str | bytes, lineno: int | None = None, path: str | None = None
) -> list[ResourceSpans]:
    """Parse one line of OTLP/JSON into ``ResourceSpans`` (one per resource and scope).

    Raises ``TraceFileError`` naming ``path:lineno`` (when given) and what was wrong.
    """
    import json

    try:
        doc = json.loads(line)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise TraceFileError(f"{_where(path, lineno)}not valid JSON ({exc})") from None
    except RecursionError:
        raise TraceFileError(f"{_where(path, lineno)}JSON nested too deeply") from None
    try:
        return _decode_request(doc)
    except _Shape as exc:
        raise TraceFileError(f"{_where(path, lineno)}{exc}") from None
    except RecursionError:
        raise TraceFileError(f"{_where(path, lineno)}attribute values nested too deeply") from None


# --------------------------------------------------------------------------- protobuf


def _from_any(pb: Any) -> Any:
    which = pb.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_from_any(v) for v in pb.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _from_any(kv.value) for kv in pb.kvlist_value.values}
    return getattr(pb, which)


def _from_attrs(repeated: Any) -> dict[str, Any]:
    return {kv.key: _from_any(kv.value) for kv in repeated}


def _enum_or_int(enum: type, value: int) -> Any:
    try:
        return enum(value)
    except ValueError:
        return value


def from_proto(req: Any) -> list[ResourceSpans]:
    """``ResourceSpans`` records (one per resource and scope) from an ``ExportTraceServiceRequest``."""
    result: list[ResourceSpans] = []
    for rs in req.resource_spans:
        resource = _from_attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            spans = [
                Span(
                    trace_id=int.from_bytes(pb.trace_id, "big"),
                    span_id=int.from_bytes(pb.span_id, "big"),
                    parent_id=int.from_bytes(pb.parent_span_id, "big"),
                    name=pb.name,
                    start_ns=pb.start_time_unix_nano,
                    end_ns=pb.end_time_unix_nano,
                    kind=_enum_or_int(SpanKind, pb.kind),
                    attributes=_from_attrs(pb.attributes),
                    status=_enum_or_int(StatusCode, pb.status.code),
                    status_message=pb.status.message,
                    events=[
                        SpanEvent(ev.name, ev.time_unix_nano, _from_attrs(ev.attributes))
                        for ev in pb.events
                    ],
                    trace_state=pb.trace_state,
                    flags=pb.flags,
                )
                for pb in ss.spans
            ]
            result.append(
                ResourceSpans(
                    resource=dict(resource),
                    spans=spans,
                    scope_name=ss.scope.name,
                    scope_version=ss.scope.version,
                )
            )
    return result
