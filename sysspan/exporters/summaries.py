"""Exact per-syscall summaries (strace's ``-c`` table) for one process, as span attributes.

When a sink does not receive every syscall span, what it misses is summarised on the span
of the process that made the calls, one group of attributes per syscall name::

    syscall.summary.openat.count     calls (exact)
    syscall.summary.openat.errors    failed calls (exact)
    syscall.summary.openat.total_ns  summed entry→exit latency (exact; what -c adds up)
    syscall.summary.openat.min_ns / .max_ns          (exact)
    syscall.summary.openat.p50_ns / .p99_ns          (nearest rank, within 0.4%)

Summed over the process spans of a run, ``count``, ``errors`` and ``total_ns`` equal the
``-c`` table. Percentiles come from a log-bucketed histogram (8 significant bits per
bucket) so memory per (process, syscall) stays bounded however many calls it makes.
"""

from __future__ import annotations

from sysspan.model import Attributes

PREFIX = "syscall.summary."

# Durations below 2**_MANTISSA ns are their own bucket; above, the top _MANTISSA bits are
# kept, a relative bucket width of at most 1/128 (the midpoint is within 1/256).
_MANTISSA = 8


def bucket_of(duration_ns: int) -> int:
    """Histogram key of a duration; keys sort the way the durations do."""
    if duration_ns < (1 << _MANTISSA):
        return max(duration_ns, 0)
    shift = duration_ns.bit_length() - _MANTISSA
    return (shift << _MANTISSA) | (duration_ns >> shift)


def bucket_value(key: int) -> int:
    """A representative duration (the midpoint) of a histogram bucket."""
    if key < (1 << _MANTISSA):
        return key
    shift = key >> _MANTISSA
    mantissa = key & ((1 << _MANTISSA) - 1)
    low = mantissa << shift
    return low + ((1 << shift) - 1) // 2


class CallSummary:
    """Counters of one syscall name in one process."""

    __slots__ = ("count", "errors", "total_ns", "min_ns", "max_ns", "hist", "errnos")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.total_ns = 0
        self.min_ns = -1
        self.max_ns = 0
        self.hist: dict[int, int] = {}
        # errno name -> failures so far: the budget ranks a failure by how many of its kind
        # came before it in the same process.
        self.errnos: dict[str, int] = {}

    def add(self, duration_ns: int, errno: str | None) -> int:
        """Count one call; returns its 0-based rank among the calls (or, for a failure,
        among the failures with the same errno) of this process and name."""
        self.count += 1
        self.total_ns += duration_ns
        if self.min_ns < 0 or duration_ns < self.min_ns:
            self.min_ns = duration_ns
        if duration_ns > self.max_ns:
            self.max_ns = duration_ns
        # bucket_of(), inlined: this runs for every syscall span
        if duration_ns < (1 << _MANTISSA):
            key = max(duration_ns, 0)
        else:
            shift = duration_ns.bit_length() - _MANTISSA
            key = (shift << _MANTISSA) | (duration_ns >> shift)
        hist = self.hist
        hist[key] = hist.get(key, 0) + 1
        if errno is None:
            return self.count - 1
        self.errors += 1
        rank = self.errnos.get(errno, 0)
        self.errnos[errno] = rank + 1
        return rank

    def percentile(self, permille: int) -> int:
        """Nearest-rank percentile (``permille`` / 1000 of the calls are at or below it),
        clamped to [min, max]."""
        if not self.count:
            return 0
        wanted = max(1, -(-permille * self.count // 1000))
        seen = 0
        value = self.max_ns
        for key in sorted(self.hist):
            seen += self.hist[key]
            if seen >= wanted:
                value = bucket_value(key)
                break
        return min(max(value, self.min_ns), self.max_ns)


def summary_attributes(calls: dict[str, CallSummary]) -> Attributes:
    """The attributes a process span carries for ``calls`` (syscall name → summary)."""
    attrs: Attributes = {}
    count = errors = 0
    for name in sorted(calls):
        s = calls[name]
        base = PREFIX + name + "."
        attrs[base + "count"] = s.count
        attrs[base + "errors"] = s.errors
        attrs[base + "total_ns"] = s.total_ns
        attrs[base + "min_ns"] = max(s.min_ns, 0)
        attrs[base + "max_ns"] = s.max_ns
        attrs[base + "p50_ns"] = s.percentile(500)
        attrs[base + "p99_ns"] = s.percentile(990)
        count += s.count
        errors += s.errors
    attrs["syscall.summary.count"] = count
    attrs["syscall.summary.errors"] = errors
    return attrs


def parse_summary_attributes(attrs: Attributes) -> dict[str, dict[str, int]]:
    """The inverse, for readers: syscall name → {"count": ..., "errors": ..., ...}."""
    out: dict[str, dict[str, int]] = {}
    for key, value in attrs.items():
        if not key.startswith(PREFIX) or not isinstance(value, int):
            continue
        name, _, field = key[len(PREFIX):].rpartition(".")
        if name:
            out.setdefault(name, {})[field] = value
    return out
