"""Identifier schemes (docs/architecture.md §5).

Span ids are derived, not random: xxh64 over a per-run nonce and the event's identity.
A re-sent batch therefore carries the same ids, and ``merge`` can de-duplicate.
Decision ids are FNV-1a 64 so they agree with the Ruchy/renacer decision manifests.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

import xxhash

FNV64_OFFSET = 0xCBF29CE484222325
FNV64_PRIME = 0x100000001B3
_MASK64 = 0xFFFFFFFFFFFFFFFF

_IDENTITY = struct.Struct("<QiiQ")


def fnv1a64(data: bytes, h: int = FNV64_OFFSET) -> int:
    """FNV-1a 64-bit hash of ``data``, continuing from ``h``."""
    for byte in data:
        h = ((h ^ byte) * FNV64_PRIME) & _MASK64
    return h


def decision_id(category: str, name: str, file: str, line: int) -> int:
    """Decision id: FNV-1a 64 over ``category::name::file::`` then ``line`` as u32 LE."""
    h = fnv1a64(category.encode())
    h = fnv1a64(b"::", h)
    h = fnv1a64(name.encode(), h)
    h = fnv1a64(b"::", h)
    h = fnv1a64(file.encode(), h)
    h = fnv1a64(b"::", h)
    return fnv1a64(struct.pack("<I", line & 0xFFFFFFFF), h)


def new_nonce() -> int:
    """A random per-run 64-bit nonce that seeds every span id of the run."""
    return int.from_bytes(os.urandom(8), "little")


def new_trace_id() -> int:
    """16 random bytes, never all zero (W3C forbids an all-zero trace id)."""
    while True:
        value = int.from_bytes(os.urandom(16), "big")
        if value:
            return value


class SpanIds:
    """Deterministic span ids for one run: same nonce and identity, same id."""

    __slots__ = ("nonce", "_seed")

    def __init__(self, nonce: int) -> None:
        self.nonce = nonce & _MASK64
        self._seed = self.nonce

    def make(self, pid: int, tid: int, seq: int) -> int:
        """Span id for event ``seq`` of thread ``tid`` in process ``pid``; never zero."""
        value = xxhash.xxh64_intdigest(_IDENTITY.pack(self.nonce, pid, tid, seq), self._seed)
        return value or 1

    def parts(self) -> tuple[Callable[..., bytes], Callable[[bytes, int], int], int, int]:
        """``(pack, digest, nonce, seed)``: ``make(pid, tid, seq)`` is
        ``digest(pack(nonce, pid, tid, seq), seed) or 1``. For a loop that makes an id per
        syscall and cannot afford the method call."""
        return _IDENTITY.pack, xxhash.xxh64_intdigest, self.nonce, self._seed
