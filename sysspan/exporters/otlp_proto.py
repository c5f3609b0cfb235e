"""A direct OTLP protobuf encoder: sysspan spans → ``ExportTraceServiceRequest`` bytes.

Going through the generated message classes builds one message object per attribute;
writing the wire format directly, with the encodings of repeated key/value pairs cached,
spares that (``bench/bench_export.py`` measures the whole export path against the
OpenTelemetry SDK's). The output is what the official classes serialise for the same
content (proto3: default values are omitted, fields in number order); the test suite
decodes it with ``opentelemetry-proto``, compares every field and checks that re-serialising
gives the same bytes.

Field numbers follow opentelemetry/proto/trace/v1/trace.proto and common/v1/common.proto.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Iterable

from sysspan.model import ResourceSpans, Span, SyscallSpan

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

_pack_q = struct.Struct("<Q").pack
# tag + 8-byte id (ids are big-endian byte strings on the wire); tag+time, tag+time
_pack_tag_id = struct.Struct(">HQ").pack
_pack_id = struct.Struct(">Q").pack
_pack_times = struct.Struct("<BQBQ").pack
_pack_d = struct.Struct("<d").pack
_pack_i = struct.Struct("<I").pack

_VARINT_CACHE = [bytes([i]) for i in range(128)]
_KIND = [b"\x30" + bytes([k]) for k in range(6)]


def varint(n: int) -> bytes:
    """Base-128 varint; negative numbers as 64-bit two's complement (int64 semantics)."""
    if 0 <= n < 128:
        return _VARINT_CACHE[n]
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _ld(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field."""
    return tag + varint(len(payload)) + payload


def _utf8(text: str) -> bytes:
    # Paths and argv from the tracee may carry undecodable bytes (surrogateescape);
    # protobuf strings must be valid UTF-8.
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace")


def clean_text(text: str) -> str:
    """``text`` as valid UTF-8 (lone surrogates escaped, as :func:`_utf8` writes them)."""
    return text if text.isascii() else _utf8(text).decode("utf-8")


def any_value(value: Any) -> bytes:
    """Encoded ``AnyValue`` message body."""
    if isinstance(value, str):
        return _ld(b"\x0a", _utf8(value))
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + varint(value)
    if isinstance(value, float):
        return b"\x21" + _pack_d(value)
    if isinstance(value, (list, tuple)):
        return _ld(b"\x2a", b"".join(_ld(b"\x0a", any_value(v)) for v in value))
    if isinstance(value, dict):
        return _ld(b"\x32", b"".join(_ld(b"\x0a", key_value(k, v)) for k, v in value.items()))
    if isinstance(value, (bytes, bytearray)):
        return _ld(b"\x3a", bytes(value))
    if value is None:
        return b""
    return _ld(b"\x0a", _utf8(str(value)))


def key_value(key: str, value: Any) -> bytes:
    """Encoded ``KeyValue`` message body."""
    return _ld(b"\x0a", _utf8(key)) + _ld(b"\x12", any_value(value))


class ProtoEncoder:
    """Encodes spans with a bounded cache of attribute encodings.

    Syscall spans repeat the same ``syscall.name``, ``thread.id`` and even whole argument
    strings (``read(0, "\\0", 1)`` two million times), so most attributes are one dict lookup.
    The cache is cleared when it reaches ``cache_size`` entries: memory stays flat.
    """

    def __init__(
        self, cache_size: int = 65536, remote_parent_ids: Collection[int] | None = None
    ) -> None:
        """With ``remote_parent_ids`` the span flags carry OTLP's "has is-remote" bit on every
        span and "is remote" on spans whose parent is one of those ids (the incoming
        traceparent); without it, ``Span.flags`` is written unchanged."""
        self._remote = remote_parent_ids
        self._kv: dict[tuple[str, Any], bytes] = {}
        self._cache_size = cache_size
        self._trace_ids: dict[int, bytes] = {}
        self._names: dict[tuple[str, str], tuple[bytes, bytes]] = {}
        # id(shape) -> (shape, trace id, trace state, flags, {(has parent, remote parent):
        # the span's field bytes around its ids and times, length prefix included})
        self._shaped: dict[int, tuple[object, int, str, int, dict[tuple[bool, bool], tuple[bytes, bytes, bytes, bytes]]]] = {}
        # id(span) -> (span, its encoding): spans sized by span_kept() before request()
        # writes them, so each is encoded once (the span is kept so its id stays its own).
        self._kept: dict[int, tuple[Span, bytes]] = {}

    def _attr(self, key: str, value: Any) -> bytes:
        if type(value) is list:
            return _ld(b"\x4a", key_value(key, value))
        k = (key, value)
        enc = self._kv.get(k)
        if enc is None:
            enc = _ld(b"\x4a", key_value(key, value))
            if len(self._kv) >= self._cache_size:
                self._kv.clear()
            self._kv[k] = enc
        return enc

    def _trace_id(self, trace_id: int) -> bytes:
        enc = self._trace_ids.get(trace_id)
        if enc is None:
            if len(self._trace_ids) > 1024:
                self._trace_ids.clear()
            enc = self._trace_ids[trace_id] = b"\x0a\x10" + trace_id.to_bytes(16, "big")
        return enc

    def span(self, s: Span) -> bytes:
        """Encoded ``Span`` message body (fields in number order, defaults omitted)."""
        trace = self._trace_ids.get(s.trace_id) or self._trace_id(s.trace_id)
        head = self._names.get((s.name, s.trace_state))
        if head is None:
            head = self._name_head(s.name, s.trace_state)
        state, name = head
        parts = [trace, _pack_tag_id(0x1208, s.span_id), state]
        if s.parent_id:
            parts.append(_pack_tag_id(0x2208, s.parent_id))
        parts.append(name)
        if s.kind:
            parts.append(_KIND[s.kind])
        start, end = s.start_ns, s.end_ns
        if start and end:
            parts.append(_pack_times(0x39, start, 0x41, end))
        elif start:
            parts.append(b"\x39" + _pack_q(start))
        elif end:
            parts.append(b"\x41" + _pack_q(end))
        cache = self._kv
        for item in s.attributes.items():
            try:
                enc = cache.get(item)
            except TypeError:  # list values are not hashable (and not cached)
                enc = None
            if enc is None:
                enc = self._attr(*item)
            parts.append(enc)
        for ev in s.events:
            body = b""
            if ev.time_ns:
                body += b"\x09" + _pack_q(ev.time_ns)
            if ev.name:
                body += _ld(b"\x12", _utf8(ev.name))
            for key, value in ev.attributes.items():
                body += _ld(b"\x1a", key_value(key, value))
            parts.append(_ld(b"\x5a", body))
        # status is always present, as the SDK and the generated classes write it
        status = b""
        if s.status_message:
            status += _ld(b"\x12", _utf8(s.status_message))
        if s.status:
            status += b"\x18" + varint(int(s.status))
        parts.append(_ld(b"\x7a", status))
        flags = s.flags
        if self._remote is not None:
            flags |= 0x300 if s.parent_id in self._remote else 0x100
        if flags:
            parts.append(b"\x85\x01")
            parts.append(_pack_i(flags))
        return b"".join(parts)

    def span_kept(self, s: Span) -> bytes:
        """:meth:`span`, remembered until :meth:`request` writes ``s`` or :meth:`discard`
        drops it. ``s`` must not change in between."""
        enc = self.span(s)
        self._kept[id(s)] = (s, enc)
        return enc

    def discard(self, spans: Iterable[Span] | None = None) -> None:
        """Forget what :meth:`span_kept` remembered for ``spans`` (all of it when None)."""
        if spans is None:
            self._kept.clear()
            return
        kept = self._kept
        for s in spans:
            kept.pop(id(s), None)

    def _name_head(self, name: str, trace_state: str) -> tuple[bytes, bytes]:
        """(trace_state field, name field) encodings, cached: both repeat across spans."""
        head = (
            _ld(b"\x1a", _utf8(trace_state)) if trace_state else b"",
            _ld(b"\x2a", _utf8(name)) if name else b"",
        )
        if len(self._names) >= 4096:
            self._names.clear()
        self._names[(name, trace_state)] = head
        return head

    def resource_spans(self, batch: ResourceSpans) -> bytes:
        """Encoded ``ResourceSpans`` (one resource, one scope)."""
        resource = b"".join(_ld(b"\x0a", key_value(k, v)) for k, v in batch.resource.items())
        scope = b""
        if batch.scope_name:
            scope += _ld(b"\x0a", _utf8(batch.scope_name))
        if batch.scope_version:
            scope += _ld(b"\x12", _utf8(batch.scope_version))
        scope_spans = _ld(b"\x0a", scope) + self._spans(batch.spans)
        return _ld(b"\x0a", resource) + _ld(b"\x12", scope_spans)

    def _spans(self, spans: list[Span]) -> bytes:
        """The ``spans`` fields of one ``ScopeSpans``. A syscall span whose shape was seen
        before differs from the others of its shape only in ids and times, which have fixed
        sizes: the bytes around them, length prefix included, are encoded once per shape.
        This loop is the encoder's hot path, so that case is handled inline."""
        parts: list[bytes] = []
        append = parts.append
        shaped = self._shaped
        remote = self._remote
        span = self.span
        join = b"".join  # one copy, where + would make one per piece
        kept = self._kept
        for s in spans:
            if kept:
                # sized by span_kept(): its bytes are already made
                hit = kept.pop(id(s), None)
                if hit is not None and hit[0] is s:
                    append(b"\x12" + varint(len(hit[1])) + hit[1])
                    continue
            start, end = s.start_ns, s.end_ns
            if type(s) is not SyscallSpan or s.key is None or s.events or not (start and end):
                body = span(s)
                append(b"\x12" + varint(len(body)) + body)
                continue
            shape = s.key
            done = shaped.get(id(shape))
            if done is None or done[0] is not shape or done[1:4] != (s.trace_id, s.trace_state, s.flags):
                done = self._shape_entry(s)
            parent = s.parent_id
            key = (parent != 0, remote is not None and parent in remote)
            around = done[4].get(key) or self._shape_parts(s, done[4], key)
            if parent:
                append(join((around[0], _pack_id(s.span_id), around[1], _pack_id(parent),
                             around[2], _pack_times(0x39, start, 0x41, end), around[3])))
            else:
                append(join((around[0], _pack_id(s.span_id), around[1], around[2],
                             _pack_times(0x39, start, 0x41, end), around[3])))
        return b"".join(parts)

    def _shape_entry(
        self, s: SyscallSpan
    ) -> tuple[object, int, str, int, dict[tuple[bool, bool], tuple[bytes, bytes, bytes, bytes]]]:
        if len(self._shaped) >= 8192:
            self._shaped.clear()
        done: tuple[object, int, str, int, dict[tuple[bool, bool], tuple[bytes, bytes, bytes, bytes]]]
        done = (s.key, s.trace_id, s.trace_state, s.flags, {})
        self._shaped[id(s.key)] = done
        return done

    def _shape_parts(
        self, s: Span, variants: dict[tuple[bool, bool], tuple[bytes, bytes, bytes, bytes]],
        key: tuple[bool, bool],
    ) -> tuple[bytes, bytes, bytes, bytes]:
        """Cut ``span(s)`` around its span id, parent id and times: the encoding is the
        general one, only reused."""
        body = self.span(s)
        at = body.index(_pack_tag_id(0x1208, s.span_id), 18) + 2  # after the trace id
        head, rest = body[:at], body[at + 8 :]
        if s.parent_id:
            pid = _pack_tag_id(0x2208, s.parent_id)
            cut = rest.index(pid) + 2
            mid, rest = rest[:cut], rest[cut + 8 :]
        else:
            mid = b""
        times = _pack_times(0x39, s.start_ns, 0x41, s.end_ns)
        cut = rest.index(times)
        around = (b"\x12" + varint(len(body)) + head, mid, rest[:cut], rest[cut + len(times) :])
        variants[key] = around
        return around

    def request(self, batches: ResourceSpans | Iterable[ResourceSpans]) -> bytes:
        """Serialized ``ExportTraceServiceRequest``."""
        if isinstance(batches, ResourceSpans):
            batches = [batches]
        return b"".join(_ld(b"\x0a", self.resource_spans(b)) for b in batches)
