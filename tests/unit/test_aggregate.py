"""The report's streaming aggregation: exact where it promises exactness, bounded where it
promises bounds, and independent of the order in which parents and children arrive."""

from __future__ import annotations

import math
import random

import pytest

from sysspan.model import ResourceSpans, Span, StatusCode
from sysspan.reporters import aggregate as agg_mod
from sysspan.reporters.aggregate import (
    EXACT_SYSCALLS,
    QUANTILE_RELATIVE_ERROR,
    SLOWEST,
    TIMELINE_BINS,
    Aggregator,
    LogHistogram,
    stack_frames,
)
from sysspan.reporters.folded import folded_lines
from sysspan.reporters.html import MAX_CELLS, MAX_ROWS, build_view, flame_tree, render_html
from sysspan.reporters.syscall_classes import syscall_class

T0 = 1_700_000_000_000_000_000
TRACE = 0x1234


class Trace:
    """A tiny span factory: ids are sequential, times are offsets from T0 in ns."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.next_id = 0x100

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id

    def run(self, name: str, pid: int, start: int, end: int) -> int:
        sid = self._id()
        self.spans.append(Span(TRACE, sid, 0, name, T0 + start, T0 + end, attributes={
            "syscall.count": 0, "process.pid": pid, "process.executable.name": name,
            "process.command_args": [name, "-c", "true"],
        }))  # fmt: skip
        return sid

    def process(self, name: str, pid: int, ppid: int, parent: int, start: int, end: int,
                sid: int | None = None) -> int:  # fmt: skip
        sid = sid or self._id()
        self.spans.append(Span(TRACE, sid, parent, name, T0 + start, T0 + end, attributes={
            "process.pid": pid, "process.parent_pid": ppid, "process.executable.name": name,
            "process.command_args": [name], "process.exit.code": 0,
        }))  # fmt: skip
        return sid

    def syscall(self, name: str, parent: int, start: int, dur: int, *, tid: int = 1,
                errno: str | None = None, args: str = "", **extra) -> Span:  # fmt: skip
        attrs = {"syscall.name": name, "syscall.args": args, "thread.id": tid,
                 "syscall.return": -1 if errno else 0, **extra}  # fmt: skip
        span = Span(TRACE, self._id(), parent, name, T0 + start, T0 + start + dur, attributes=attrs)
        if errno:
            attrs["error.type"] = errno
            span.status = StatusCode.ERROR
        self.spans.append(span)
        return span

    def decision(self, name: str, parent: int, start: int, end: int, sid: int | None = None,
                 result: str = "hit") -> int:  # fmt: skip
        sid = sid or self._id()
        category, _, short = name.partition("::")
        self.spans.append(Span(TRACE, sid, parent, name, T0 + start, T0 + end, attributes={
            "decision.id": f"{hash(name) & 0xFFFFFFFFFFFFFFFF:016x}", "decision.category": category,
            "decision.name": short, "decision.input": "key=a", "decision.result": result,
            "code.file.path": "/src/cache.py", "code.line.number": 12,
        }))  # fmt: skip
        return sid

    def reserve(self) -> int:
        return self._id()

    def aggregate(self, spans: list[Span] | None = None) -> Aggregator:
        agg = Aggregator()
        agg.add_batch(ResourceSpans({"service.name": "test"}, spans or self.spans))
        return agg


# --------------------------------------------------------------------------- histogram


def exact_quantile(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_histogram_quantiles_within_documented_error(seed):
    rng = random.Random(seed)
    values = [max(1, int(rng.lognormvariate(9, 1.5))) for _ in range(50_000)]
    values += [rng.randint(1, 50) for _ in range(500)]  # tiny durations are handled too
    h = LogHistogram()
    for v in values:
        h.add(v)
    assert h.count == len(values)
    assert h.min == min(values) and h.max == max(values)
    for q in (0.01, 0.5, 0.9, 0.99, 0.999, 1.0):
        exact = exact_quantile(values, q)
        got = h.quantile(q)
        # rounding the representative value to whole ns adds at most 0.5 ns
        assert abs(got - exact) <= exact * QUANTILE_RELATIVE_ERROR + 0.5, (q, got, exact)
    # Memory: one counter per occupied log bucket, however many samples.
    assert len(h.buckets) < 700


def test_histogram_memory_does_not_grow_with_samples():
    h = LogHistogram()
    for i in range(200_000):
        h.add(1000 + (i * 7919) % 100_000)
    assert len(h.buckets) <= math.ceil(math.log(101_000 / 1000) / math.log(agg_mod.GAMMA)) + 2


def test_histogram_zero_durations_and_merge():
    a, b = LogHistogram(), LogHistogram()
    for v in (0, 0, 10, 20):
        a.add(v)
    for v in (30, 40):
        b.add(v)
    a.merge(b)
    assert (a.count, a.min, a.max) == (6, 0, 40)
    assert a.quantile(0.25) == 0
    assert a.quantile(1.0) == 40


# --------------------------------------------------------------------------- spans → report


def small_trace() -> tuple[Trace, dict[str, int]]:
    t = Trace()
    run = t.run("sh", 10, 0, 10_000_000)
    sh = t.reserve()
    ls = t.reserve()
    # Syscalls come before their process spans, as the span builder writes them.
    t.syscall("openat", sh, 1_000, 5_000, tid=10, args='AT_FDCWD, "/etc/passwd"')
    t.syscall("openat", ls, 2_000_000, 20_000, tid=11, errno="ENOENT", args='AT_FDCWD, "/nope"')
    t.syscall("openat", ls, 2_100_000, 7_000, tid=11, errno="EACCES")
    t.syscall("read", ls, 2_200_000, 300_000, tid=11, args="3, ..., 4096",
              **{"code.function.name": "main", "code.file.path": "/src/ls.c",
                 "code.line.number": 42})  # fmt: skip
    t.syscall("write", sh, 9_000_000, 2_000, tid=10)
    t.process("ls", 11, 10, sh, 1_900_000, 3_000_000, sid=ls)
    t.process("sh", 10, 9, run, 500, 9_900_000, sid=sh)
    return t, {"run": run, "sh": sh, "ls": ls}


def test_counts_stats_and_tree():
    t, ids = small_trace()
    r = t.aggregate().report()
    c = r.counts
    assert (c.spans, c.runs, c.processes, c.syscalls, c.errors) == (8, 1, 2, 5, 2)
    by = {row.name: row for row in r.syscalls}
    assert by["openat"].count == 3
    assert by["openat"].total_ns == 32_000
    assert by["openat"].max_ns == 20_000
    assert by["openat"].errors == {"ENOENT": 1, "EACCES": 1}
    assert by["openat"].cls == "file" and by["read"].cls == "desc"
    assert r.syscalls[0].name == "read"  # sorted by total time
    assert [(n.kind, n.name, n.depth) for n in r.nodes] == [
        ("run", "sh", 0), ("process", "sh", 1), ("process", "ls", 2)
    ]
    sh, ls = r.nodes[1], r.nodes[2]
    assert (sh.syscalls, sh.syscall_ns, sh.errors) == (2, 7_000, 0)
    assert (ls.syscalls, ls.syscall_ns, ls.errors) == (3, 327_000, 2)
    assert r.start_ns == T0 and r.end_ns == T0 + 10_000_000


def test_slowest_has_args_process_and_source():
    t, _ = small_trace()
    r = t.aggregate().report()
    first = r.slowest[0]
    assert (first.name, first.dur_ns, first.pid, first.process) == ("read", 300_000, 11, "ls")
    assert (first.function, first.file, first.line) == ("main", "/src/ls.c", 42)
    assert first.args == "3, ..., 4096"
    assert [s.dur_ns for s in r.slowest] == sorted((s.dur_ns for s in r.slowest), reverse=True)
    failed = [s for s in r.slowest if s.error]
    assert {s.error for s in failed} == {"ENOENT", "EACCES"}


def test_folded_stacks_follow_the_process_tree_and_sum_to_syscall_time():
    t, _ = small_trace()
    r = t.aggregate().report()
    assert sum(acc[1] for acc in r.folded.values()) == r.syscall_ns == 334_000
    assert ("sh", "ls", "main", "read") in r.folded  # code.function.name becomes a frame
    assert r.folded[("sh", "ls", "openat")][:2] == [2, 27_000]
    assert r.folded[("sh", "openat")][2] == "PY"
    lines = list(folded_lines(r))
    assert sum(int(line.rsplit(" ", 1)[1]) for line in lines) == 334
    assert lines[0] == "sh;ls;main;read 300"


def test_folded_rounding_keeps_the_total():
    t = Trace()
    p = t.process("p", 1, 0, 0, 0, 10_000_000)
    for i in range(999):  # 999 stacks of 1.5 µs: naive rounding would be off by ~500 µs
        t.syscall(f"sys{i}", p, i * 2_000, 1_500)
    r = t.aggregate().report()
    values = [int(line.rsplit(" ", 1)[1]) for line in folded_lines(r)]
    assert sum(values) == (999 * 1_500 + 500) // 1000  # the total, rounded half up


def test_stack_frames_are_outermost_first_and_cleaned():
    stack = "#0 read_config at /src/a.c:12 [0x7f00dead]\n > main;x at /src/a.c:40\n\n__libc_start_main"
    assert stack_frames(stack) == ["__libc_start_main", "main:x at /src/a.c:40",
                                   "read_config at /src/a.c:12"]  # fmt: skip


def test_stacktrace_builds_source_flame():
    t = Trace()
    p = t.reserve()
    t.syscall("openat", p, 0, 1_000, **{"code.stacktrace": "load at a.c:3\nmain at a.c:9"})
    t.syscall("openat", p, 5_000, 3_000, **{"code.stacktrace": "load at a.c:3\nmain at a.c:9"})
    t.process("app", 5, 1, 0, 0, 10_000, sid=p)
    r = t.aggregate().report()
    assert r.has_stacks
    assert r.folded == {("app", "main at a.c:9", "load at a.c:3", "openat"): [2, 4_000, "PSSY"]}


# --------------------------------------------------------------------------- decisions


def decision_trace(children_first: bool) -> Trace:
    t = Trace()
    p = t.reserve()
    d = t.reserve()
    inner = t.reserve()
    syscalls = [
        ("openat", d, 1_000, 10_000),
        ("read", d, 12_000, 4_000),
        ("stat", inner, 20_000, 2_000),
        ("close", p, 50_000, 1_000),
    ]
    decisions = [
        ("cfg::inner", d, 19_000, 25_000, inner),
        ("cache::lookup", p, 500, 30_000, d),
    ]
    if children_first:  # what the span builder writes: a parent when it ends
        for name, parent, s, dur in syscalls:
            t.syscall(name, parent, s, dur)
        for name, parent, s, e, sid in decisions:
            t.decision(name, parent, s, e, sid=sid)
    else:
        for name, parent, s, e, sid in reversed(decisions):
            t.decision(name, parent, s, e, sid=sid)
        for name, parent, s, dur in syscalls:
            t.syscall(name, parent, s, dur)
    t.process("app", 7, 1, 0, 0, 100_000, sid=p)
    return t


@pytest.mark.parametrize("children_first", [True, False])
def test_decision_impact_whatever_the_order(children_first):
    r = decision_trace(children_first).aggregate().report()
    assert r.counts.decisions == 2
    by = {d.name: d for d in r.decisions}
    outer, inner = by["lookup"], by["inner"]
    assert (outer.count, outer.total_ns) == (1, 29_500)
    assert (outer.syscalls, outer.syscall_ns) == (3, 16_000)  # includes the nested one's
    assert (inner.syscalls, inner.syscall_ns) == (1, 2_000)
    assert r.decisions[0].name == "lookup"  # slowest first
    assert outer.results == {"hit": 1} and outer.file == "/src/cache.py"
    inst = {d.name: d for d in r.slowest_decisions}
    assert inst["cache::lookup"].syscall_ns == 16_000 and inst["cache::lookup"].pid == 7
    assert r.folded[("app", "cache::lookup", "openat")][:2] == [1, 10_000]
    assert r.folded[("app", "cache::lookup", "cfg::inner", "stat")][2] == "PDDY"
    assert r.folded[("app", "close")][:2] == [1, 1_000]
    app = r.nodes[0]
    assert (app.name, app.syscalls, app.syscall_ns) == ("app", 4, 17_000)
    assert {s.process for s in r.slowest} == {"app"}


def test_orphan_syscalls_are_kept_under_a_placeholder():
    t = Trace()
    t.syscall("read", 0xDEAD, 0, 100)
    r = t.aggregate().report()
    assert r.nodes[0].kind == "unknown" and r.nodes[0].syscalls == 1
    assert "dead" in r.nodes[0].name


# --------------------------------------------------------------------------- bounds


def test_timeline_bins_conserve_time_across_regrids():
    t = Trace()
    p = t.reserve()
    rng = random.Random(5)
    total = 0
    # Out of order, growing in both directions, some spanning many bins.
    for i in range(3_000):
        start = rng.randint(-10**9, 10**10) if i % 7 else rng.randint(0, 10**6)
        dur = rng.choice([0, 1, 50, 5_000, 10**7, 10**9])
        t.syscall("read", p, 10**10 + start, dur)
        total += max(dur, 1)
    t.process("p", 1, 0, 0, 0, 3 * 10**10, sid=p)
    r = t.aggregate().report()
    cells = r.timeline.bins[0]
    assert sum(sum(c[1:-1]) for c in cells) == total
    assert len(cells) <= TIMELINE_BINS
    assert all(0 <= c[0] < TIMELINE_BINS for c in cells)
    origin, width = r.timeline.origin, r.timeline.width
    assert origin <= T0 and origin + TIMELINE_BINS * width >= T0 + 3 * 10**10


def test_memory_stays_bounded_with_many_syscalls():
    t = Trace()
    p = t.reserve()
    agg = Aggregator()
    t.process("p", 1, 0, 0, 0, 10**12, sid=p)
    agg.add_batch(ResourceSpans({}, t.spans))
    for i in range(EXACT_SYSCALLS + 5_000):
        span = Span(TRACE, 10**6 + i, p, "read", T0 + i * 1000, T0 + i * 1000 + 10 + i % 500,
                    attributes={"syscall.name": "read", "thread.id": 1})  # fmt: skip
        agg.add_span(span)
    assert agg._exact is None  # individual intervals dropped past the cap
    assert len(agg._slow) == SLOWEST
    assert len(agg._owners) == 1
    r = agg.report()
    assert r.counts.syscalls == EXACT_SYSCALLS + 5_000
    assert r.timeline.exact is None
    assert any("binned" in note for note in r.notes)


def test_flame_tree_is_pruned_to_the_node_budget():
    folded = {}
    rng = random.Random(3)
    for i in range(20_000):
        frames = ("make", f"cc{i % 300}", f"f{i % 97}", f"g{i}", rng.choice(["read", "openat"]))
        folded[frames] = [1, rng.randint(1, 10_000), "PPSSY"]
    tree = flame_tree(folded, max_nodes=2_000)
    n = len(tree["name"])
    assert n <= 2_000
    assert tree["value"][0] == sum(v[1] for v in folded.values())
    child_sum = [0] * n
    for i in range(1, n):
        assert tree["parent"][i] < i
        child_sum[tree["parent"][i]] += tree["value"][i]
    assert all(child_sum[i] <= tree["value"][i] for i in range(n))
    assert "other" in tree["name"]


def test_html_view_caps_rows_and_cells():
    t = Trace()
    run = t.run("make", 1, 0, 10**10)
    for i in range(MAX_ROWS + 500):
        p = t.reserve()
        for j in range(30):
            t.syscall("read", p, i * 5_000_000 + j * 150_000, 1000 + i)
        t.process(f"cc{i}", 100 + i, 1, run, i * 5_000_000, i * 5_000_000 + 5_000_000, sid=p)
    r = t.aggregate().report()
    view = build_view(r, "t")
    assert len(view["rows"]) <= MAX_ROWS
    assert view["hidden_rows"] == len(r.nodes) - len(view["rows"])
    assert sum(len(c) // 4 for c in view["timeline"]["cells"].values()) <= MAX_CELLS
    # The busiest processes are the ones drawn, with their ancestor (the run).
    names = {row["n"] for row in view["rows"]}
    assert f"cc{MAX_ROWS + 499}" in names and "make" in names
    page = render_html(r, "many processes")
    assert 'id="count-processes" data-value="1500"' in page
    assert "http://" not in page and "https://" not in page  # nothing to fetch


def test_syscall_class_table():
    assert syscall_class("openat") == "file"
    assert syscall_class("connect") == "network"
    assert syscall_class("mmap") == "memory"
    assert syscall_class("clone3") == "process"
    assert syscall_class("no_such_call") == "other"
