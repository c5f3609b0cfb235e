"""BudgetSink selection and summaries on a synthetic stream shaped like a compiler's:
tens of thousands of ENOENT probes beside a few other kinds of failure."""

from __future__ import annotations

from collections import Counter

import pytest

from sysspan.exporters.base import SinkReport
from sysspan.exporters.budget import BudgetSink
from sysspan.exporters.otlp_proto import ProtoEncoder
from sysspan.exporters.summaries import parse_summary_attributes
from sysspan.model import Span

RUN = 1


class Collect:
    """The sink behind the budget: keeps what it is given."""

    name = "otlp"

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.requests = 0

    def export(self, spans: list[Span]) -> None:
        self.requests += 1
        self.spans.extend(spans)

    def close(self) -> SinkReport:
        return SinkReport(self.name, spans_written=len(self.spans))


class Stream:
    def __init__(self) -> None:
        self.t = 1_000_000
        self.next_id = 1000
        self.spans: list[Span] = []
        self.expected: Counter = Counter()

    def syscall(self, parent: int, name: str, errno: str | None = None, dur: int = 1000,
                proc: int | None = None) -> Span:
        self.next_id += 1
        attrs = {"syscall.name": name, "syscall.args": "x", "thread.id": 7}
        if errno:
            attrs["error.type"] = errno
        span = Span(9, self.next_id, parent, name, self.t, self.t + dur, attributes=attrs)
        self.t += dur + 10
        self.spans.append(span)
        self.expected[(proc or parent, name, "count")] += 1
        self.expected[(proc or parent, name, "errors")] += bool(errno)
        return span

    def process(self, span_id: int, start: int) -> None:
        self.spans.append(Span(9, span_id, RUN, f"p{span_id}", start, self.t,
                               attributes={"process.pid": span_id, "process.parent_pid": 1}))
        self.t += 10

    def decision(self, span_id: int, parent: int, start: int, end: int) -> None:
        self.spans.append(Span(9, span_id, parent, "inline::x", start, end,
                               attributes={"decision.id": "00"}))


def build() -> Stream:
    s = Stream()
    p1, p2, p3 = 11, 12, 13
    start = s.t
    for i in range(30_000):
        s.syscall(p1, "openat", "ENOENT")
        if i % 600 == 0:
            s.syscall(p1, "newfstatat", "ENOENT")
        if i % 15 == 0:
            s.syscall(p1, "read")
    s.syscall(p1, "read", dur=9_000_000)  # the slowest read
    s.process(p1, start)
    start = s.t
    for _ in range(100):
        s.syscall(p2, "write", "EPIPE")
    s.process(p2, start)
    start = s.t
    d_start = s.t
    s.syscall(p3, "mmap")
    for _ in range(20):
        s.syscall(500, "read", proc=p3)  # inside decision 500
    s.decision(500, p3, d_start, s.t)
    s.process(p3, start)
    return s


def feed(sink: BudgetSink, spans: list[Span]) -> SinkReport:
    # the decision linker sends a decision before the syscalls it adopted
    stream = list(spans)
    decision = next(sp for sp in stream if sp.span_id == 500)
    stream.remove(decision)
    first_child = next(i for i, sp in enumerate(stream) if sp.parent_id == 500)
    stream.insert(first_child, decision)
    for k in range(0, len(stream), 512):
        sink.export(stream[k:k + 512])
    sink.export([Span(9, RUN, 0, "run", 0, 10**12, attributes={"syscall.count": 1})])
    return sink.close()


def kept_kinds(spans: list[Span]) -> Counter:
    return Counter(
        (sp.parent_id, sp.attributes["syscall.name"], sp.attributes.get("error.type"))
        for sp in spans if "syscall.name" in sp.attributes
    )


def test_budget_keeps_every_kind_and_takes_failures_round_robin():
    s = build()
    inner = Collect()
    report = feed(BudgetSink(inner, run_span_id=RUN, limit=500), s.spans)
    syscalls = [sp for sp in inner.spans if "syscall.name" in sp.attributes]
    assert len(syscalls) <= 500
    kinds = kept_kinds(syscalls)
    # every (process, syscall, errno) kind, the first call of each (process, syscall)
    for key in {(sp.parent_id, sp.attributes["syscall.name"], sp.attributes.get("error.type"))
                for sp in s.spans if "syscall.name" in sp.attributes}:
        assert kinds[key] >= 1, key
    # 30,000 ENOENT probes take turns with the 50 stat failures and the 100 EPIPEs
    assert kinds[(11, "newfstatat", "ENOENT")] == 50
    assert kinds[(12, "write", "EPIPE")] == 100
    assert kinds[(11, "openat", "ENOENT")] < 400
    # the slowest read and every syscall inside the decision
    assert any(sp.end_ns - sp.start_ns == 9_000_000 for sp in syscalls)
    assert kinds[(500, "read", None)] == 20
    assert len({sp.span_id for sp in syscalls}) == len(syscalls)
    line = report.messages[-1]
    assert line.startswith(f"kept {len(syscalls):,} of {sum(1 for sp in s.spans if 'syscall.name' in sp.attributes):,} syscall spans")
    assert "every syscall×errno kind" in line and "20 inside decisions" in line


def test_summaries_are_exact_and_ride_on_the_process_spans():
    s = build()
    inner = Collect()
    feed(BudgetSink(inner, run_span_id=RUN, limit=100), s.spans)
    procs = {sp.span_id: sp for sp in inner.spans if "process.parent_pid" in sp.attributes}
    assert set(procs) == {11, 12, 13}
    for (owner, name, field), value in s.expected.items():
        assert parse_summary_attributes(procs[owner].attributes)[name][field] == value
    total = sum(sp.end_ns - sp.start_ns for sp in s.spans if sp.attributes.get("syscall.name") == "read")
    got = sum(parse_summary_attributes(p.attributes).get("read", {}).get("total_ns", 0) for p in procs.values())
    assert got == total


def test_a_straggler_after_its_process_span_counts_on_the_run_span():
    s = build()
    late = s.syscall(11, "close")  # arrives after process 11 went out
    inner = Collect()
    feed(BudgetSink(inner, run_span_id=RUN, limit=100), s.spans)
    run = next(sp for sp in inner.spans if sp.span_id == RUN)
    assert parse_summary_attributes(run.attributes)["close"]["count"] == 1
    assert late.end_ns > 0


def test_bytes_cap_and_errors_mode():
    s = build()
    inner = Collect()
    report = feed(BudgetSink(inner, run_span_id=RUN, limit=10_000, max_bytes=60_000), s.spans)
    enc = ProtoEncoder()
    assert sum(len(enc.span(sp)) for sp in inner.spans) <= 60_000
    assert "did not fit" in report.messages[-1]

    inner = Collect()
    feed(BudgetSink(inner, run_span_id=RUN, mode="errors"), s.spans)
    syscalls = [sp for sp in inner.spans if "syscall.name" in sp.attributes]
    assert len(syscalls) == sum(1 for sp in s.spans if "error.type" in sp.attributes)


def test_all_is_not_a_budget_mode():
    with pytest.raises(ValueError):
        BudgetSink(Collect(), run_span_id=RUN, mode="all")


def test_memory_stays_bounded_whatever_the_stream():
    inner = Collect()
    sink = BudgetSink(inner, run_span_id=RUN, limit=100, slowest=4)
    s = Stream()
    names = ["read", "write", "openat", "close", "mmap"]
    held_max = 0
    for p in range(50):
        start = s.t
        for i in range(2_000):
            s.syscall(100 + p, names[i % 5], "ENOENT" if i % 3 == 0 else None, dur=1000 + (i * 7919) % 5000)
        s.process(100 + p, start)
        sink.export(s.spans)
        s.spans = []
        held = len(sink._heap) + sum(len(v) for v in sink._slow.values())
        held_max = max(held_max, held)
        assert len(sink._owners) <= 2  # the process just finished, and at most one pending
    assert held_max <= 100 + 4 * len(names)
    sink.export([Span(9, RUN, 0, "run", 0, 10**15, attributes={"syscall.count": 1})])
    sink.close()
    syscalls = [sp for sp in inner.spans if "syscall.name" in sp.attributes]
    assert len(syscalls) <= 100
    assert sum(1 for sp in inner.spans if "process.parent_pid" in sp.attributes) == 50
