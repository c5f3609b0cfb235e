"""Sampling and rate limiting for decisions, with exact counters.

Why here and not in the exporters: a decision-heavy program (a transpiler making a million
inlining choices) must not turn sysspan into the bottleneck, and docs/architecture.md §10 says nothing is
lost silently. So every decision passes one :class:`DecisionGate` that

* samples with a seedable xorshift64* RNG (cheap, reproducible, no Moiré patterns that a
  "keep every n-th" rule gives on periodic workloads),
* rate-limits with an integer token bucket (default 10,000 decisions/s, the renacer/Ruchy
  global circuit breaker), and
* keeps exact ``count`` / ``dropped`` / ``malformed`` counters, which become the run span's
  ``decision.count``, ``decision.dropped`` and ``decision.malformed`` attributes.

Nothing here allocates per decision: a burst of ten million decisions keeps memory flat.
"""

from __future__ import annotations

import os
import threading

__all__ = ["DecisionGate", "RateLimiter", "Sampler", "parse_ratio"]

_MASK64 = 0xFFFFFFFFFFFFFFFF
_XS_MULT = 0x2545F4914F6CDD1D
_SEED_ZERO = 0x9E3779B97F4A7C15  # xorshift state must never be zero
_NS = 1_000_000_000


def parse_ratio(text: str | float | None, name: str = "SYSSPAN_DECISION_SAMPLE") -> float:
    """A sampling ratio in [0, 1] from a flag or environment value.

    Raises ``ValueError`` naming ``name`` for anything that is not a number in [0, 1], so
    the caller can turn it into a ``ConfigError`` (the traced-program API instead ignores a
    bad value and keeps everything).
    """
    if text is None or text == "":
        return 1.0
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a ratio between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"{name}: expected a ratio between 0 and 1, got {text!r}")
    return value


class Sampler:
    """Keeps each decision with probability ``ratio`` (xorshift64*, Vigna 2016).

    ``seed=None`` draws the seed from ``os.urandom``; a fixed seed makes the kept set
    reproducible (tests, benchmarks). Ratios ≥ 1 keep everything and ≤ 0 keep nothing
    without touching the RNG.
    """

    __slots__ = ("ratio", "_state", "_threshold", "_always", "_never")

    def __init__(self, ratio: float = 1.0, seed: int | None = None) -> None:
        ratio = float(ratio)
        if ratio != ratio:  # NaN
            raise ValueError("sampling ratio must be a number between 0 and 1")
        self.ratio = min(1.0, max(0.0, ratio))
        self._always = self.ratio >= 1.0
        self._never = self.ratio <= 0.0
        self._threshold = min(int(self.ratio * 2.0**64), 1 << 64)
        if seed is None:
            seed = int.from_bytes(os.urandom(8), "little")
        self._state = (seed & _MASK64) or _SEED_ZERO

    def reseed(self, seed: int | None = None) -> None:
        """New RNG state (after ``fork`` both processes would otherwise draw the same)."""
        if seed is None:
            seed = int.from_bytes(os.urandom(8), "little")
        self._state = (seed & _MASK64) or _SEED_ZERO

    def next_u64(self) -> int:
        """The next xorshift64* output (a uniform u64)."""
        x = self._state
        x ^= x >> 12
        x ^= (x << 25) & _MASK64
        x ^= x >> 27
        self._state = x
        return (x * _XS_MULT) & _MASK64

    def keep(self) -> bool:
        """True when this decision is sampled in."""
        if self._always:
            return True
        if self._never:
            return False
        x = self._state
        x ^= x >> 12
        x ^= (x << 25) & _MASK64
        x ^= x >> 27
        self._state = x
        return ((x * _XS_MULT) & _MASK64) < self._threshold


class RateLimiter:
    """Token bucket: at most ``per_second`` decisions per second, bursts up to one second's
    worth. It starts full, or with ``start`` tokens (at least one). ``per_second <= 0``
    disables the limit.

    Exact integer arithmetic (tokens are kept in units of 1e-9 token) so that counts stay
    exact over any run length. Time comes from the caller (``t_ns``), which keeps the
    limiter deterministic under test and free of clock calls; time going backwards (events
    from several sources) never refills.
    """

    __slots__ = ("per_second", "_capacity", "_tokens", "_last")

    def __init__(self, per_second: int = 10_000, start: int | None = None) -> None:
        self.per_second = int(per_second)
        self._capacity = max(0, self.per_second) * _NS
        self._tokens = self._capacity if start is None else min(self._capacity, max(1, int(start)) * _NS)
        self._last: int | None = None

    def allow(self, t_ns: int) -> bool:
        """True when a decision at time ``t_ns`` fits in the budget (and consumes a token)."""
        if self.per_second <= 0:
            return True
        last = self._last
        if last is None:
            self._last = t_ns
        elif t_ns > last:
            tokens = self._tokens + (t_ns - last) * self.per_second
            self._tokens = tokens if tokens < self._capacity else self._capacity
            self._last = t_ns
        if self._tokens >= _NS:
            self._tokens -= _NS
            return True
        return False

    def next_allowed_ns(self) -> int:
        """The earliest time at which :meth:`allow` can succeed again (0: now), so a caller
        can drop a burst without asking for every decision."""
        if self.per_second <= 0 or self._last is None or self._tokens >= _NS:
            return 0
        missing = _NS - self._tokens
        return self._last + -(-missing // self.per_second)


class DecisionGate:
    """Sampler + rate limiter + the exact counters a run reports.

    ``count``     every decision seen (kept, sampled away, rate-limited; including those a
                  traced program sampled away in-process and reported via ``skipped``)
    ``dropped``   sampled away or rate-limited (``count - dropped`` were kept)
    ``malformed`` protocol lines, JSON or file records that could not be parsed

    Thread-safe (one lock), so the tracer thread (stderr protocol) and the channel reader
    thread can share one global gate and the circuit breaker stays global.
    """

    __slots__ = ("sampler", "limiter", "count", "dropped", "malformed", "_lock")

    def __init__(
        self,
        sample_ratio: float = 1.0,
        max_per_second: int = 10_000,
        *,
        seed: int | None = None,
    ) -> None:
        self.sampler = Sampler(sample_ratio, seed)
        self.limiter = RateLimiter(max_per_second)
        self.count = 0
        self.dropped = 0
        self.malformed = 0
        self._lock = threading.Lock()

    @property
    def kept(self) -> int:
        return self.count - self.dropped

    def admit(self, t_ns: int, *, presampled: bool = False) -> bool:
        """Count one decision at ``t_ns``; True when it should become a span.

        ``presampled=True`` skips the sampler (the writer already sampled in-process, e.g.
        the Python API with ``SYSSPAN_DECISION_SAMPLE``); the rate limit still applies.
        """
        with self._lock:
            self.count += 1
            if (presampled or self.sampler.keep()) and self.limiter.allow(t_ns):
                return True
            self.dropped += 1
            return False

    def note_skipped(self, n: int) -> None:
        """``n`` decisions were sampled away upstream (in the traced process)."""
        if n > 0:
            with self._lock:
                self.count += n
                self.dropped += n

    def note_malformed(self, n: int = 1) -> None:
        if n > 0:
            with self._lock:
                self.malformed += n

    def attributes(self) -> dict[str, int]:
        """The run span attributes: ``decision.count``, ``decision.dropped``, ``decision.malformed``."""
        return {
            "decision.count": self.count,
            "decision.dropped": self.dropped,
            "decision.malformed": self.malformed,
        }
