"""W3C Trace Context ``traceparent``: parse, validate and format (docs/architecture.md §6).

Parsing follows https://www.w3.org/TR/trace-context/ exactly, because a tracer that accepts
what other vendors reject (or the reverse) silently splits or merges traces:

- lowercase hex only; version ``ff`` is forbidden; all-zero trace or parent ids are invalid;
- version ``00`` is exactly 55 characters;
- a higher version is parsed by its 55-character ``00``-shaped prefix (anything after must
  start with ``-``) and is always re-emitted as version ``00``;
- flags are a bit field: bit 0x01 is *sampled*, bit 0x02 is Level 2's *random* trace id flag;
  unknown bits are kept on the parsed context but never emitted;
- leading and trailing optional whitespace (space, tab) is tolerated.

Also converts the AWS X-Ray header (``_X_AMZN_TRACE_ID``) to a W3C context, for Lambda.
"""

from __future__ import annotations

from sysspan.model import HexIds
from sysspan.plainrecord import FrozenRecord

TYPE_CHECKING = False

if TYPE_CHECKING:
    from sysspan.propagation.tracestate import TraceState

FLAG_SAMPLED = 0x01
FLAG_RANDOM = 0x02
#: The flags version 00 defines (Level 2); every other bit is dropped when emitting.
KNOWN_FLAGS = FLAG_SAMPLED | FLAG_RANDOM
#: Flags of a trace sysspan starts itself: sampled, and (Level 2) random, because
#: ``sysspan.ids.new_trace_id`` draws all 16 bytes from the OS's random source.
NEW_TRACE_FLAGS = FLAG_SAMPLED | FLAG_RANDOM

TRACEPARENT_LENGTH = 55  # "00-" + 32 + "-" + 16 + "-" + 2

_LOWER_HEX = frozenset("0123456789abcdef")
_ANY_HEX = frozenset("0123456789abcdefABCDEF")
_OWS = " \t"
_MAX_TRACE_ID = (1 << 128) - 1
_MAX_SPAN_ID = (1 << 64) - 1


class InvalidTraceContext(ValueError):
    """A traceparent or tracestate value breaks the W3C grammar; ``str(exc)`` is a short
    reason meant to be shown to the user ("version ff is invalid")."""


def _is_lower_hex(text: str) -> bool:
    return bool(text) and all(ch in _LOWER_HEX for ch in text)


def _check_hex(field: str, text: str, digits: int) -> None:
    """Raise with a precise reason unless ``text`` is exactly ``digits`` lowercase hex digits."""
    if len(text) != digits:
        raise InvalidTraceContext(f"{field} must be {digits} hex digits, got {len(text)}")
    if _is_lower_hex(text):
        return
    if all(ch in _ANY_HEX for ch in text):
        raise InvalidTraceContext(f"{field} must be lowercase hex")
    raise InvalidTraceContext(f"{field} must be {digits} lowercase hex digits")


class SpanContext(HexIds, FrozenRecord):
    """The part of a trace that crosses a process boundary.

    ``trace_id`` is the 128-bit trace id and ``span_id`` the 64-bit id of the span the next
    hop is a child of (the W3C "parent-id"), both as ints like ``sysspan.model.Span``.
    ``flags`` keeps every bit received; only the known ones (sampled, random) are emitted.
    ``remote`` is True for a context that came from outside this process.
    """

    __slots__ = _FIELDS = ("trace_id", "span_id", "flags", "tracestate", "remote")
    trace_id: int
    span_id: int
    flags: int
    tracestate: TraceState | None
    remote: bool

    def __init__(self, trace_id: int, span_id: int, flags: int = FLAG_SAMPLED,
                 tracestate: TraceState | None = None, remote: bool = True) -> None:
        if not isinstance(trace_id, int) or not 0 < trace_id <= _MAX_TRACE_ID:
            raise InvalidTraceContext("trace id must be a non-zero 128-bit integer")
        if not isinstance(span_id, int) or not 0 < span_id <= _MAX_SPAN_ID:
            raise InvalidTraceContext("span id must be a non-zero 64-bit integer")
        if not isinstance(flags, int) or not 0 <= flags <= 0xFF:
            raise InvalidTraceContext("trace flags must fit in 8 bits")
        self._set("trace_id", trace_id)
        self._set("span_id", span_id)
        self._set("flags", flags)
        self._set("tracestate", tracestate)
        self._set("remote", remote)

    @property
    def sampled(self) -> bool:
        """The caller may have recorded this trace (bit 0x01)."""
        return bool(self.flags & FLAG_SAMPLED)

    @property
    def random(self) -> bool:
        """Level 2: the trace id's right-most 7 bytes are random (bit 0x02)."""
        return bool(self.flags & FLAG_RANDOM)

    @property
    def traceparent(self) -> str:
        """The version-00 ``traceparent`` header value for this context."""
        return format_traceparent(self.trace_id, self.span_id, self.flags)

    def with_span_id(self, span_id: int) -> SpanContext:
        """The context to hand to a child: same trace, flags and tracestate, new parent span,
        and local (it was produced here)."""
        return self.replace(span_id=span_id, remote=False)


def format_traceparent(trace_id: int, span_id: int, flags: int = FLAG_SAMPLED) -> str:
    """Version-00 ``traceparent`` header: ``00-<32 hex>-<16 hex>-<2 hex>``.

    Unknown flag bits are dropped (the spec says they MUST be zero when sending); invalid ids
    raise ``InvalidTraceContext`` rather than producing a header every receiver would reject.
    """
    if not 0 < trace_id <= _MAX_TRACE_ID:
        raise InvalidTraceContext("trace id must be a non-zero 128-bit integer")
    if not 0 < span_id <= _MAX_SPAN_ID:
        raise InvalidTraceContext("span id must be a non-zero 64-bit integer")
    if not 0 <= flags <= 0xFF:
        raise InvalidTraceContext("trace flags must fit in 8 bits")
    return f"00-{trace_id:032x}-{span_id:016x}-{flags & KNOWN_FLAGS:02x}"


def _version_00_length_reason(value: str) -> str:
    """Why a version-00 value is not 55 characters, naming the field at fault when possible."""
    parts = value.split("-")
    if len(parts) == 4:
        for field, text, digits in (
            ("trace id", parts[1], 32),
            ("parent id", parts[2], 16),
            ("trace flags", parts[3], 2),
        ):
            if len(text) != digits:
                return f"{field} must be {digits} hex digits, got {len(text)}"
    return f"version 00 must be exactly {TRACEPARENT_LENGTH} characters, got {len(value)}"


def parse_traceparent(value: str) -> SpanContext:
    """Parse a ``traceparent`` header value into a remote ``SpanContext``.

    Raises ``InvalidTraceContext`` (a ``ValueError``) with a short reason for anything the
    W3C spec says to ignore; never any other exception for any string.
    """
    if not isinstance(value, str):
        raise InvalidTraceContext("traceparent must be a string")
    text = value.strip(_OWS)
    if not text:
        raise InvalidTraceContext("empty traceparent")
    if len(text) < 3 or text[2] != "-":
        raise InvalidTraceContext("version must be 2 hex digits followed by '-'")
    version = text[:2]
    _check_hex("version", version, 2)
    if version == "ff":
        raise InvalidTraceContext("version ff is invalid")
    if version == "00":
        if len(text) != TRACEPARENT_LENGTH:
            raise InvalidTraceContext(_version_00_length_reason(text))
    else:
        if len(text) < TRACEPARENT_LENGTH:
            raise InvalidTraceContext(
                f"version {version} must be at least {TRACEPARENT_LENGTH} characters, got {len(text)}"
            )
        if len(text) > TRACEPARENT_LENGTH and text[TRACEPARENT_LENGTH] != "-":
            raise InvalidTraceContext(f"version {version}: trace flags must be followed by '-'")
        text = text[:TRACEPARENT_LENGTH]
    if text[35] != "-" or text[52] != "-":
        raise InvalidTraceContext("fields must be separated by '-'")
    trace_hex, span_hex, flags_hex = text[3:35], text[36:52], text[53:55]
    _check_hex("trace id", trace_hex, 32)
    _check_hex("parent id", span_hex, 16)
    _check_hex("trace flags", flags_hex, 2)
    trace_id = int(trace_hex, 16)
    span_id = int(span_hex, 16)
    if trace_id == 0:
        raise InvalidTraceContext("all-zero trace id")
    if span_id == 0:
        raise InvalidTraceContext("all-zero parent id")
    return SpanContext(trace_id=trace_id, span_id=span_id, flags=int(flags_hex, 16), remote=True)


def xray_to_traceparent(header: str) -> SpanContext | None:
    """Convert an AWS X-Ray trace header (``_X_AMZN_TRACE_ID`` in Lambda) to a W3C context.

    ``Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1`` becomes
    trace id ``5759e988bd862e3fe1be46a994272793`` (epoch seconds + 24 hex digits), parent
    ``53995c3f42cd8ad8``, sampled. ``Sampled=1`` is the only value that sets the sampled flag.
    Returns None when the header has no usable Root and Parent (nothing to continue).
    """
    if not isinstance(header, str):
        return None
    fields: dict[str, str] = {}
    for item in header.split(";"):
        key, sep, val = item.partition("=")
        if sep:
            fields[key.strip(_OWS).lower()] = val.strip(_OWS)
    root = fields.get("root", "").lower()
    parent = fields.get("parent", "").lower()
    pieces = root.split("-")
    if len(pieces) != 3 or pieces[0] != "1":
        return None
    epoch, unique = pieces[1], pieces[2]
    if len(epoch) != 8 or len(unique) != 24 or not _is_lower_hex(epoch + unique):
        return None
    if len(parent) != 16 or not _is_lower_hex(parent):
        return None
    trace_id = int(epoch + unique, 16)
    span_id = int(parent, 16)
    if trace_id == 0 or span_id == 0:
        return None
    flags = FLAG_SAMPLED if fields.get("sampled") == "1" else 0
    return SpanContext(trace_id=trace_id, span_id=span_id, flags=flags, remote=True)
