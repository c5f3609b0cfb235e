"""W3C Baggage (https://www.w3.org/TR/baggage/): parse and format the ``baggage`` header.

An item is ``(key, value, properties)``: ``key`` is an RFC 7230 token, ``value`` is the
percent-decoded UTF-8 text, ``properties`` is the raw property list after the first ``;``
(``"p1;p2=v2"``, OWS around each property trimmed, ``""`` when none) kept opaque as the spec
says.

Limits: sysspan propagates at most 64 list members and 8192 bytes, the minimum the spec
requires every platform to carry.

Invalid input is handled member by member, never by raising: ``parse_baggage`` drops a
malformed member (bad key, bad character in the value or a property, bad percent-escape,
non-UTF-8 bytes) and any member past the limits, and keeps the rest.
``parse_baggage_counted`` returns the same items together with the number dropped, so the
caller can warn once ("BAGGAGE: 2 invalid members dropped"). ``format_baggage`` raises
``InvalidBaggage`` for an invalid key or property (a programming or usage error), and
silently leaves out whole members that would break the limits (the spec allows dropping
entries in any order).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_MEMBERS = 64
MAX_BYTES = 8192

BaggageItem = tuple[str, str, str]

_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_OCTETS_RE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*")
_BAD_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_OWS = " \t"


class InvalidBaggage(ValueError):
    """A baggage item cannot be formatted (invalid key or property)."""


def _decode_value(raw: str) -> str | None:
    """Percent-decode a value; None when it is not valid baggage octets or not UTF-8."""
    if not _OCTETS_RE.fullmatch(raw) or _BAD_ESCAPE_RE.search(raw):
        return None
    from urllib.parse import unquote_to_bytes  # imports ipaddress: only runs given baggage pay

    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return None


def _normalise_properties(raw_props: list[str]) -> str | None:
    """Properties trimmed of OWS and re-joined by ``;``; None when one is malformed."""
    out: list[str] = []
    for prop in raw_props:
        key, sep, value = prop.partition("=")
        key, value = key.strip(_OWS), value.strip(_OWS)
        if not _TOKEN_RE.fullmatch(key):
            return None
        if sep:
            if not _OCTETS_RE.fullmatch(value):
                return None
            out.append(f"{key}={value}")
        else:
            out.append(key)
    return ";".join(out)


def _parse_member(member: str) -> BaggageItem | None:
    head, *props = member.split(";")
    key, sep, raw_value = head.partition("=")
    key, raw_value = key.strip(_OWS), raw_value.strip(_OWS)
    if not sep or not _TOKEN_RE.fullmatch(key):
        return None
    value = _decode_value(raw_value)
    if value is None:
        return None
    properties = _normalise_properties(props)
    if properties is None:
        return None
    return key, value, properties


def parse_baggage_counted(header: str) -> tuple[list[BaggageItem], int]:
    """Parse a ``baggage`` header: the valid items in order, and how many members were
    dropped (malformed, or beyond 64 members / 8192 bytes). Empty members (``a=1,,b=2``)
    are ignored without being counted."""
    items: list[BaggageItem] = []
    dropped = 0
    used = 0
    for raw in header.split(","):
        member = raw.strip(_OWS)
        if not member:
            continue
        item = _parse_member(member)
        if item is None:
            dropped += 1
            continue
        cost = len(_format_item(item).encode()) + (1 if items else 0)
        if len(items) >= MAX_MEMBERS or used + cost > MAX_BYTES:
            dropped += 1
            continue
        items.append(item)
        used += cost
    return items, dropped


def parse_baggage(header: str) -> list[BaggageItem]:
    """The valid ``(key, value, properties)`` items of a ``baggage`` header; invalid
    members are dropped (see ``parse_baggage_counted`` for how many)."""
    return parse_baggage_counted(header)[0]


def _format_item(item: BaggageItem) -> str:
    from urllib.parse import quote

    key, value, properties = item
    text = f"{key}={quote(value, safe='')}"
    return f"{text};{properties}" if properties else text


def format_baggage(items: Iterable[tuple[str, str] | tuple[str, str, str]]) -> str:
    """Format items (``(key, value)`` or ``(key, value, properties)``) as a ``baggage``
    header, percent-encoding every value character outside ``A-Za-z0-9_.-~``.

    Raises ``InvalidBaggage`` for a key that is not an RFC 7230 token or malformed
    properties. A member that would take the header past 64 members or 8192 bytes is left
    out whole (later, smaller members may still fit).
    """
    parts: list[str] = []
    used = 0
    for entry in items:
        if len(entry) == 2:
            key, value = entry  # type: ignore[misc]
            properties = ""
        else:
            key, value, properties = entry  # type: ignore[misc]
        if not isinstance(key, str) or not _TOKEN_RE.fullmatch(key):
            raise InvalidBaggage(f"invalid baggage key {key!r}")
        if not isinstance(value, str):
            raise InvalidBaggage(f"baggage value for {key!r} must be a string")
        props = _normalise_properties(properties.split(";")) if properties else ""
        if props is None:
            raise InvalidBaggage(f"invalid baggage properties for {key!r}: {properties!r}")
        text = _format_item((key, value, props))
        cost = len(text.encode()) + (1 if parts else 0)
        if len(parts) >= MAX_MEMBERS or used + cost > MAX_BYTES:
            continue
        parts.append(text)
        used += cost
    return ",".join(parts)
