"""W3C Trace Context ``tracestate``: an immutable, ordered list of vendor entries.

Grammar (Trace Context Level 2, which the W3C test suite checks at strict level 2):

- list members are separated by commas with optional whitespace; empty members are ignored;
  more than 32 members make the whole header invalid;
- a key is 1-256 characters: a lowercase letter or digit, then lowercase letters, digits and
  ``_ - * / @`` (Level 1's ``tenant@system`` split with its 241/14 limits is gone; ``@`` may
  appear anywhere after the first character, any number of times);
- a value is 1-256 printable ASCII characters (0x20-0x7E) except ``,`` and ``=``, not ending
  in a space (leading spaces are part of the value);
- a key that repeats keeps its left-most entry (the most recently updated one) and the later
  duplicates are discarded: the spec lets vendors discard duplicates, and dropping the whole
  header for one of them would lose every other vendor's entry.

Mutations follow the spec: ``set`` moves the key to the left, ``to_header`` truncates whole
entries (entries over 128 characters first, then from the right).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from sysspan.propagation.traceparent import InvalidTraceContext

MAX_MEMBERS = 32
DEFAULT_MAX_HEADER = 512
_LARGE_ENTRY = 128

_KEY_RE = re.compile(r"[a-z0-9][a-z0-9_\-*/@]{0,255}")
_VALUE_RE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")
_OWS = " \t"


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        raise InvalidTraceContext(f"invalid tracestate key {key!r}")


def _check_value(key: str, value: str) -> None:
    if not isinstance(value, str) or not _VALUE_RE.fullmatch(value):
        raise InvalidTraceContext(f"invalid tracestate value for key {key!r}")


class TraceState:
    """Ordered ``(key, value)`` entries, left-most = most recently updated vendor.

    Immutable: every mutation returns a new ``TraceState``. Equality and hashing go by the
    entries, in order.
    """

    __slots__ = ("_entries",)

    def __init__(self, entries: Iterable[tuple[str, str]] = ()) -> None:
        items = tuple((k, v) for k, v in entries)
        seen: set[str] = set()
        for key, value in items:
            _check_key(key)
            _check_value(key, value)
            if key in seen:
                raise InvalidTraceContext(f"duplicate tracestate key {key!r}")
            seen.add(key)
        if len(items) > MAX_MEMBERS:
            raise InvalidTraceContext(f"more than {MAX_MEMBERS} tracestate members")
        self._entries: tuple[tuple[str, str], ...] = items

    @classmethod
    def parse(cls, header: str) -> TraceState:
        """Parse a ``tracestate`` header value; an empty or blank header is an empty state.

        Raises ``InvalidTraceContext`` when any member is malformed or there are more than 32
        members: per the spec the whole header is then discarded. A repeated key keeps its
        left-most entry.
        """
        if not isinstance(header, str):
            raise InvalidTraceContext("tracestate must be a string")
        entries: list[tuple[str, str]] = []
        seen: set[str] = set()
        members = 0
        for raw in header.split(","):
            member = raw.strip(_OWS)
            if not member:
                continue
            members += 1
            if members > MAX_MEMBERS:
                raise InvalidTraceContext(f"more than {MAX_MEMBERS} tracestate members")
            key, sep, value = member.partition("=")
            if not sep:
                raise InvalidTraceContext(f"tracestate member {member[:40]!r} has no '='")
            _check_key(key)
            _check_value(key, value)
            if key not in seen:
                seen.add(key)
                entries.append((key, value))
        return cls(entries)

    # -- read ---------------------------------------------------------------------------

    def get(self, key: str, default: str | None = None) -> str | None:
        for k, v in self._entries:
            if k == key:
                return v
        return default

    def items(self) -> tuple[tuple[str, str], ...]:
        return self._entries

    def keys(self) -> list[str]:
        return [k for k, _ in self._entries]

    def __contains__(self, key: object) -> bool:
        return any(k == key for k, _ in self._entries)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TraceState):
            return NotImplemented
        return self._entries == other._entries

    def __hash__(self) -> int:
        return hash(self._entries)

    def __repr__(self) -> str:
        return f"TraceState({list(self._entries)!r})"

    def __str__(self) -> str:
        return self.to_header(max_len=None)

    # -- mutate (returning new states) ----------------------------------------------------

    def set(self, key: str, value: str) -> TraceState:
        """Add or update ``key`` and move it to the left, as the spec requires of a vendor
        that modifies its entry. At the 32-member limit the right-most entry is dropped to
        make room (truncation from the right is the spec's rule too)."""
        _check_key(key)
        _check_value(key, value)
        rest = [(k, v) for k, v in self._entries if k != key]
        return TraceState([(key, value), *rest[: MAX_MEMBERS - 1]])

    def delete(self, key: str) -> TraceState:
        """Remove ``key`` (a no-op when absent)."""
        return TraceState([(k, v) for k, v in self._entries if k != key])

    # -- write ----------------------------------------------------------------------------

    def to_header(self, max_len: int | None = DEFAULT_MAX_HEADER) -> str:
        """The header value, at most ``max_len`` characters (None: no limit).

        Truncation removes whole entries: entries longer than 128 characters go first
        (right-most first), then entries from the right, until the rest fits.
        """
        entries = [f"{k}={v}" for k, v in self._entries]

        def size() -> int:
            return sum(len(e) for e in entries) + max(len(entries) - 1, 0)

        if max_len is None:
            return ",".join(entries)
        while entries and size() > max_len:
            large = [i for i, e in enumerate(entries) if len(e) > _LARGE_ENTRY]
            del entries[large[-1] if large else -1]
        return ",".join(entries)
