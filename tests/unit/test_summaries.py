"""Per-syscall summaries: exact counters, histogram percentiles within their stated error."""

from __future__ import annotations

import random

from sysspan.exporters.summaries import (
    CallSummary,
    bucket_of,
    bucket_value,
    parse_summary_attributes,
    summary_attributes,
)


def test_buckets_sort_like_durations_and_stay_close():
    rng = random.Random(7)
    values = sorted({rng.randrange(0, 10**10) for _ in range(5000)} | set(range(600)))
    keys = [bucket_of(v) for v in values]
    assert keys == sorted(keys)
    for v in values:
        rep = bucket_value(bucket_of(v))
        assert abs(rep - v) <= max(1, v // 128), (v, rep)


def test_percentiles_match_nearest_rank_on_exact_data():
    rng = random.Random(3)
    durations = [int(rng.lognormvariate(9, 1.5)) for _ in range(20_001)]
    s = CallSummary()
    for d in durations:
        s.add(d, None)
    ordered = sorted(durations)
    for permille in (500, 990):
        exact = ordered[-(-permille * len(ordered) // 1000) - 1]
        got = s.percentile(permille)
        assert abs(got - exact) <= max(1, exact // 128), (permille, got, exact)
    assert s.count == len(durations)
    assert s.total_ns == sum(durations)
    assert s.min_ns == min(durations) and s.max_ns == max(durations)


def test_failures_rank_per_errno():
    s = CallSummary()
    ranks = [s.add(10, e) for e in ("ENOENT", "ENOENT", "EACCES", None, "ENOENT")]
    assert ranks == [0, 1, 0, 3, 2]
    assert s.errors == 4 and s.count == 5


def test_attributes_round_trip():
    a, b = CallSummary(), CallSummary()
    for d in (5, 7, 9):
        a.add(d, None)
    b.add(1000, "ENOENT")
    attrs = summary_attributes({"read": a, "openat": b})
    assert attrs["syscall.summary.count"] == 4
    assert attrs["syscall.summary.errors"] == 1
    parsed = parse_summary_attributes(attrs)
    assert parsed["read"] == {
        "count": 3, "errors": 0, "total_ns": 21, "min_ns": 5, "max_ns": 9, "p50_ns": 7, "p99_ns": 9,
    }
    assert parsed["openat"]["errors"] == 1 and parsed["openat"]["p50_ns"] == 1000
