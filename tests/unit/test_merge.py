"""Merge logic: de-duplication, causal order, missing parents, clock-skew estimation."""

from __future__ import annotations

import random

from sysspan.merge import (
    Entry,
    causal_order,
    deduplicate,
    describe_skew,
    estimate_skew,
    merge_spans,
    source_shifts,
)
from sysspan.model import Span, SpanEvent

S = 1_000_000_000
T0 = 1_700_000_000 * S
TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736


def span(sid: int, parent: int, start: float, end: float, name: str = "", trace: int = TRACE) -> Span:
    return Span(
        trace_id=trace,
        span_id=sid,
        parent_id=parent,
        name=name or f"s{sid}",
        start_ns=T0 + int(start * S),
        end_ns=T0 + int(end * S),
        events=[SpanEvent("e", T0 + int(start * S))],
    )


def entries(*items: tuple[Span, int]) -> list[Entry]:
    res = {"service.name": "t"}
    return [Entry(s, src, res, "sysspan", "") for s, src in items]


def tree(result_entries: list[Entry]) -> set[tuple[int, int]]:
    return {(e.span.span_id, e.span.parent_id) for e in result_entries}


def assert_causal(ordered: list[Entry]) -> None:
    position = {(e.span.trace_id, e.span.span_id): i for i, e in enumerate(ordered)}
    for i, e in enumerate(ordered):
        p = position.get((e.span.trace_id, e.span.parent_id))
        if e.span.parent_id and p is not None:
            assert p < i, f"span {e.span.span_id:x} written before its parent"


def two_host_trace(skew_s: float = 0.0) -> list[Entry]:
    """laptop (source 0): run 1 → ci 2; CI runner (source 1): job 3 under 2, steps 4, 5,
    and a laptop-side child 6 of the CI step 5 (a callback). ``skew_s`` moves source 1's
    clock."""
    k = skew_s
    return entries(
        (span(1, 0, 0.0, 100.0, "laptop"), 0),
        (span(2, 1, 1.0, 90.0, "ci"), 0),
        (span(3, 2, 2.0 + k, 80.0 + k, "job"), 1),
        (span(4, 3, 3.0 + k, 10.0 + k, "step-a"), 1),
        (span(5, 3, 11.0 + k, 70.0 + k, "step-b"), 1),
        (span(6, 5, 12.0, 60.0, "callback"), 0),
    )


def test_duplicates_dropped_first_copy_kept() -> None:
    a = span(1, 0, 0, 1)
    b = span(1, 0, 0, 2)  # same id, different end: a conflicting duplicate
    c = span(2, 1, 0.1, 0.5)
    unique, dups, conflicting = deduplicate(entries((a, 0), (c, 0), (c, 1), (b, 1)))
    assert len(unique) == 2 and dups == 2 and conflicting == 1
    assert unique[(TRACE, 1)].span.end_ns == a.end_ns


def test_same_span_id_in_two_traces_is_not_a_duplicate() -> None:
    unique, dups, _ = deduplicate(entries((span(1, 0, 0, 1, trace=1), 0), (span(1, 0, 0, 1, trace=2), 0)))
    assert len(unique) == 2 and dups == 0


def test_causal_order_ignores_timestamps() -> None:
    # Children that claim to start before their parents (skewed clocks) still come after.
    items = [
        (span(1, 0, 50, 60), 0),
        (span(2, 1, 10, 20), 1),
        (span(3, 2, 0, 5), 1),
        (span(4, 1, 55, 59), 0),
        (span(5, 3, -100, -99), 2),
    ]
    random.Random(7).shuffle(items)
    unique, _, _ = deduplicate(entries(*items))
    ordered, orphans, cycles = causal_order(unique)
    assert [e.span.span_id for e in ordered][0] == 1
    assert_causal(ordered)
    assert not orphans and cycles == 0 and len(ordered) == 5


def test_missing_parents_reported_and_written() -> None:
    unique, _, _ = deduplicate(entries((span(1, 0, 0, 1), 0), (span(7, 99, 0, 1), 1), (span(8, 7, 0, 1), 1)))
    ordered, orphans, _ = causal_order(unique)
    assert [(o.span.span_id, o.source) for o in orphans] == [(7, 1)]
    assert len(ordered) == 3
    assert_causal(ordered)


def test_parent_cycle_does_not_hang() -> None:
    unique, _, _ = deduplicate(entries((span(1, 2, 0, 1), 0), (span(2, 1, 0, 1), 0)))
    ordered, orphans, cycles = causal_order(unique)
    assert cycles == 2 and len(ordered) == 2 and not orphans


def test_no_skew_reported_for_consistent_clocks() -> None:
    unique, _, _ = deduplicate(two_host_trace(0.0))
    skews = estimate_skew(unique)
    assert len(skews) == 1
    assert skews[0].offset_ns == 0 and skews[0].pairs == 2 and skews[0].consistent
    assert (skews[0].low_ns, skews[0].high_ns) == (-S, S)


def test_ten_second_skew_estimated_and_tree_unchanged() -> None:
    base = merge_spans(two_host_trace(0.0), ["a.jsonl", "b.jsonl"])
    skewed = merge_spans(two_host_trace(-10.0), ["a.jsonl", "b.jsonl"])
    assert tree(base.entries) == tree(skewed.entries)
    assert [e.span.span_id for e in base.entries] == [e.span.span_id for e in skewed.entries]
    (skew,) = skewed.skews
    assert (skew.reference, skew.source) == (0, 1)
    # The job starts 1 s after "ci" in true time, so "job starts after ci" alone allows
    # -inf..-9 s; the callback (source 0 under step-b, starting 1 s after it) bounds it
    # from the other side: -11..-9 s, and the shift closest to zero is reported.
    assert (skew.low_ns, skew.high_ns, skew.offset_ns) == (-11 * S, -9 * S, -9 * S)
    text = describe_skew(skew, skewed.sources)
    assert "b.jsonl runs 9.000 s behind a.jsonl" in text


def test_skew_estimate_is_close_when_children_are_tight() -> None:
    # A child that starts 1 ms after its parent and ends 1 ms before: ≈ the true 10 s.
    items = entries(
        (span(1, 0, 0.0, 10.0), 0),
        (span(2, 1, 0.001 + 10, 9.999 + 10), 1),
    )
    unique, _, _ = deduplicate(items)
    (skew,) = estimate_skew(unique)
    assert abs(skew.offset_ns - 10 * S) <= 2_000_000
    assert "b runs 9.99" in describe_skew(skew, ["a", "b"]) and "ahead of a" in describe_skew(skew, ["a", "b"])


def test_fix_skew_shifts_source_onto_reference_clock() -> None:
    result = merge_spans(two_host_trace(-10.0), ["a", "b"], fix_skew=True)
    assert set(result.shifts_ns) == {1}
    by_id = {e.span.span_id: e.span for e in result.entries}
    # After the shift every child starts no earlier than its parent.
    for s in by_id.values():
        if s.parent_id in by_id:
            assert s.start_ns >= by_id[s.parent_id].start_ns
    assert by_id[3].events[0].time_ns == by_id[3].start_ns  # events move with their span
    assert_causal(result.entries)


def test_async_child_outliving_parent_uses_start_constraint() -> None:
    items = entries(
        (span(1, 0, 0.0, 1.0), 0),
        (span(2, 1, 0.5 - 10, 30.0 - 10), 1),  # longer than its parent: no end constraint
        (span(3, 1, 0.2 - 10, 0.9 - 10), 1),
    )
    unique, _, _ = deduplicate(items)
    (skew,) = estimate_skew(unique)
    assert -10 * S <= skew.offset_ns <= -9.7 * S


def test_source_shifts_chain_through_sources() -> None:
    # a → b (+5 s), b → c (+2 s): c is 7 s ahead of a.
    items = entries(
        (span(1, 0, 0.0, 10.0), 0),
        (span(2, 1, 5.0 + 1, 5.0 + 9), 1),
        (span(3, 2, 7.0 + 2, 7.0 + 8), 2),
    )
    unique, _, _ = deduplicate(items)
    shifts = source_shifts(estimate_skew(unique))
    assert shifts[0] == 0
    assert abs(shifts[1] - 5 * S) <= S and abs(shifts[2] - 7 * S) <= 2 * S
