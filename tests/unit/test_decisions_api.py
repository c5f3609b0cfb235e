"""Sampling, rate limiting, the exact counters, the Python API's off mode, the syscall
linker and the ``sysspan decisions`` commands."""

from __future__ import annotations

import os
import time
import tracemalloc

import pytest

import sysspan.decisions as d
from sysspan.cli import main
from sysspan.decisions.model import Decision, DecisionLinker, decision_span
from sysspan.decisions.sampling import DecisionGate, RateLimiter, Sampler, parse_ratio
from sysspan.exporters.otlp_json import encode_line
from sysspan.model import ResourceSpans, Span

S = 1_000_000_000


# --------------------------------------------------------------------------- sampler


def test_xorshift64star_reference_sequence() -> None:
    s = Sampler(0.5, seed=1)
    # xorshift64* (Vigna): x ^= x >> 12; x ^= x << 25; x ^= x >> 27; out = x * 0x2545F4914F6CDD1D
    x, expected = 1, []
    for _ in range(3):
        x ^= x >> 12
        x ^= (x << 25) & (2**64 - 1)
        x ^= x >> 27
        expected.append((x * 0x2545F4914F6CDD1D) % 2**64)
    assert [s.next_u64() for _ in range(3)] == expected


def test_sampler_is_reproducible_and_close_to_ratio() -> None:
    a = [Sampler(0.1, seed=42).keep() for _ in range(1)]
    s1, s2 = Sampler(0.1, seed=42), Sampler(0.1, seed=42)
    seq1 = [s1.keep() for _ in range(100_000)]
    seq2 = [s2.keep() for _ in range(100_000)]
    assert seq1 == seq2 and a == seq1[:1]
    assert 9_400 < sum(seq1) < 10_600


def test_sampler_edges() -> None:
    assert all(Sampler(1.0, seed=0).keep() for _ in range(1000))
    assert not any(Sampler(0.0, seed=0).keep() for _ in range(1000))
    with pytest.raises(ValueError):
        Sampler(float("nan"))
    assert parse_ratio("0.25") == 0.25 and parse_ratio(None) == 1.0
    for bad in ("x", "-0.1", "1.5", "nan"):
        with pytest.raises(ValueError, match="SYSSPAN_DECISION_SAMPLE"):
            parse_ratio(bad)


# --------------------------------------------------------------------------- rate limiter


def test_rate_limiter_burst_then_steady_rate() -> None:
    rl = RateLimiter(100)
    assert sum(rl.allow(0) for _ in range(1000)) == 100  # one second's burst
    assert not rl.allow(0)
    # 10 ms later exactly one token is back
    assert rl.allow(10_000_000)
    assert not rl.allow(10_000_000)
    # time going backwards never refills
    assert not rl.allow(5_000_000)
    assert RateLimiter(0).allow(0)


def test_rate_limiter_can_start_nearly_empty_and_still_holds_a_second() -> None:
    rl = RateLimiter(1000, start=10)  # what a ring writer uses: 1/100 s's worth
    assert sum(rl.allow(0) for _ in range(100)) == 10
    # half a second without a decision fills it with 500, a second's worth at most
    assert sum(rl.allow(500_000_000) for _ in range(2000)) == 500
    assert sum(rl.allow(3_000_000_000) for _ in range(2000)) == 1000
    empty = RateLimiter(50, start=0)
    assert sum(empty.allow(0) for _ in range(9)) == 1  # at least one


def test_rate_limiter_long_run_is_exact() -> None:
    rl = RateLimiter(1000)
    kept = sum(rl.allow(i * 100_000) for i in range(100_000))  # 10 s at 10,000/s offered
    assert kept == 1000 + 10 * 1000 - 1  # initial burst + refill over 9.9999 s


# --------------------------------------------------------------------------- gate


def test_gate_counts_are_exact() -> None:
    gate = DecisionGate(0.5, max_per_second=0, seed=7)
    kept = sum(gate.admit(0) for _ in range(10_000))
    assert gate.count == 10_000 and gate.dropped == 10_000 - kept == 10_000 - gate.kept
    gate.note_skipped(5)
    gate.note_malformed(2)
    assert gate.attributes() == {
        "decision.count": 10_005,
        "decision.dropped": 10_005 - kept,
        "decision.malformed": 2,
    }
    assert gate.admit(0, presampled=True)  # skips the sampler


@pytest.mark.slow
def test_burst_of_a_million_keeps_memory_flat_and_counts_exact() -> None:
    n = 1_000_000
    gate = DecisionGate(sample_ratio=1.0, max_per_second=10_000, seed=1)
    admit = gate.admit
    tracemalloc.start()
    try:
        t0 = 0
        kept = 0
        for i in range(n):  # a million decisions in 1 s of (simulated) time
            if admit(t0 + i * 1000):
                kept += 1
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert gate.count == n
    assert gate.dropped == n - kept
    assert kept == 10_000 + 9_999  # the burst, then 10,000/s refill over 0.999999 s
    assert peak < 64 * 1024, f"gate allocated {peak} bytes for a burst"


# --------------------------------------------------------------------------- Python API


@pytest.fixture
def api_off():
    d.configure({})
    yield d
    d.configure()


def test_api_functions_look_like_plain_module_functions() -> None:
    import pickle

    import sysspan.decisions as d

    # defined in a closure (their countdown cell), but named and pickled as module functions
    assert d.record.__qualname__ == "record" and d.decision.__qualname__ == "decision"
    assert pickle.loads(pickle.dumps(d.record)) is d.record
    assert "caller's line" in (d.record.__doc__ or "")


def test_a_reference_to_record_follows_every_mode_change(api_off) -> None:
    """``record`` runs another body in ring mode (the countdown first): a reference taken
    before ``configure`` records into a ring, stops when decisions are off, records again,
    and names its caller's line each time."""
    from sysspan.decisions.ring import DecisionRing

    rec = d.record
    got: list = []
    record_line = 0
    for attempt in range(2):
        ring = DecisionRing(got.append, gate=DecisionGate(1.0, 0))
        try:
            assert d.configure({"SYSSPAN_DECISION_RING": ring.path}) == "ring"
            # a sampled-out call is the countdown alone: the mode is not asked first
            assert "_emit" not in rec.__code__.co_names
            for i in range(600):  # past several chunks of the countdown
                record_line = _line_of_next_call() + 1
                rec("c", "n", input=i + 1000 * attempt)
            d.configure({})
            assert "_emit" in rec.__code__.co_names
            rec("c", "n", input=-1)  # off: nothing
        finally:
            ring.close()
        assert [x.input for x in got] == [i + 1000 * attempt for i in range(600)]
        assert {x.line for x in got} == {record_line}
        assert {x.file for x in got} == {__file__}
        got.clear()


def _line_of_next_call() -> int:
    import sys

    return sys._getframe(1).f_lineno


def test_api_off_mode_records_nothing_and_is_cheap(api_off) -> None:
    assert d.mode() == "off"
    recorded = d.stats()["recorded"]  # by this process's earlier tests
    assert d.record("c", "n", input={"a": 1}, result=2) is None
    with d.decision("c", "n", input=1) as dec:
        dec.result = 3
    n = 200_000
    t0 = time.perf_counter()
    for _ in range(n):
        d.record("c", "n")
    per_call = (time.perf_counter() - t0) / n
    assert per_call < 2e-6, f"off-mode record() costs {per_call * 1e9:.0f} ns"
    assert d.stats()["recorded"] == recorded


def test_api_ignores_a_decision_fd_that_is_not_our_pipe(api_off, tmp_path) -> None:
    with open(tmp_path / "f", "w") as fh:
        assert d.configure({"SYSSPAN_DECISION_FD": str(fh.fileno())}) == "off"  # a file, not a pipe
    r, w = os.pipe()
    try:
        assert d.configure({"SYSSPAN_DECISION_FD": str(w), "SYSSPAN_DECISION_INO": "1"}) == "off"
        ino = str(os.fstat(w).st_ino)
        assert (
            d.configure({"SYSSPAN_DECISION_FD": str(w), "SYSSPAN_DECISION_INO": ino}) == "channel"
        )
        d.record("c", "n", input=[1])
        line = os.read(r, 65536)
        assert line.startswith(b'{"category":"c","name":"n","input":[1]') and line.endswith(b"}\n")
        assert d.configure({"SYSSPAN_DECISION_FD": "999999"}) == "off"
        assert d.configure({"SYSSPAN_DECISION_FD": "nope"}) == "off"
    finally:
        os.close(r)
        os.close(w)


def test_api_stops_quietly_when_the_pipe_is_gone(api_off) -> None:
    r, w = os.pipe()
    os.set_inheritable(w, False)
    d.configure({"SYSSPAN_DECISION_FD": str(w)})
    os.close(r)  # sysspan went away: EPIPE
    d.record("c", "n")
    assert d.mode() == "off" and d.stats()["errors"] == 1
    os.close(w)


def test_api_timed_decision_reports_exception(api_off) -> None:
    r, w = os.pipe()
    try:
        d.configure({"SYSSPAN_DECISION_FD": str(w)})
        with pytest.raises(KeyError), d.decision("c", "n"):
            raise KeyError("x")
        line = os.read(r, 65536)
        assert b'"result":{"exception":"KeyError"}' in line
    finally:
        os.close(r)
        os.close(w)


# --------------------------------------------------------------------------- linker


def _sys(span_id: int, start: int, end: int, parent: int = 1) -> Span:
    return Span(
        trace_id=9,
        span_id=span_id,
        parent_id=parent,
        name="read",
        start_ns=start,
        end_ns=end,
        attributes={"syscall.name": "read"},
    )


def test_linker_adopts_syscalls_inside_timed_decisions_innermost_first() -> None:
    out: list[Span] = []
    link = DecisionLinker(out.append)
    link.syscall(_sys(10, 100, 110), tid=5)  # before the decision
    link.syscall(_sys(11, 210, 220), tid=5)  # inside inner
    link.syscall(_sys(12, 230, 240), tid=6)  # inside, other thread
    link.syscall(_sys(13, 260, 270), tid=5)  # inside outer only
    inner = decision_span(
        Decision("c", "inner", start_ns=200, end_ns=250, tid=5), trace_id=9, span_id=20, parent_id=1
    )
    outer = decision_span(
        Decision("c", "outer", start_ns=150, end_ns=300, tid=5), trace_id=9, span_id=21, parent_id=1
    )
    assert link.decision(inner, tid=5) == 1
    assert link.decision(outer, tid=5) == 1
    link.flush()
    parents = {s.span_id: s.parent_id for s in out}
    assert parents == {10: 1, 11: 20, 12: 1, 13: 21, 20: 1, 21: 1}
    assert link.adopted == 2 and link.late == 0 and len(link) == 0


def test_linker_is_bounded_and_counts_late_decisions() -> None:
    out: list[Span] = []
    link = DecisionLinker(out.append, max_spans=10, max_delay_ns=S)
    for i in range(100):
        link.syscall(_sys(100 + i, i * 10, i * 10 + 5), tid=1)
        assert len(link) <= 10
    late = decision_span(
        Decision("c", "n", start_ns=0, end_ns=1000, tid=1), trace_id=9, span_id=5, parent_id=1
    )
    assert link.decision(late, tid=1) == 10  # only those still waiting
    assert link.late == 1
    # age limit: a span older than max_delay_ns goes out when a newer one arrives
    link.flush()
    out.clear()
    link.syscall(_sys(1, 0, 10), tid=1)
    link.syscall(_sys(2, 3 * S, 3 * S + 10), tid=1)
    assert [s.span_id for s in out] == [1]


def test_linker_takes_a_list_of_syscalls_as_it_takes_them_one_by_one() -> None:
    """The builder hands spans over a batch at a time: releases, adoption, the late counter
    and the bound must come out as they do span by span."""

    def run(batched: bool) -> tuple[list[tuple[int, int]], list[int], int, int]:
        out: list[Span] = []
        link = DecisionLinker(out.append, max_spans=50, max_delay_ns=S,
                              emit_all=out.extend if batched else None)
        sizes = []
        sid = 1000
        for round_ in range(12):
            base = round_ * S // 3
            spans = [_sys(sid + i, base + i * 100, base + i * 100 + 50) for i in range(30)]
            tids = [1 + i % 3 for i in range(30)]
            sid += 30
            if batched:
                link.syscalls(spans, tids)
            else:
                for span, tid in zip(spans, tids, strict=True):
                    link.syscall(span, tid)
            sizes.append(len(link))
            # a decision of thread 2 around the middle of this round, and an outer one
            inner = Decision("c", "in", start_ns=base + 1000, end_ns=base + 2000, tid=2)
            outer = Decision("c", "out", start_ns=base + 500, end_ns=base + 2500, tid=2)
            # and one of thread 3 reaching back to the start: late once spans went out
            old = Decision("c", "old", start_ns=0, end_ns=base + 1200, tid=3)
            for dec, did in ((inner, 10 * round_ + 1), (outer, 10 * round_ + 2), (old, 10 * round_ + 3)):
                link.decision(decision_span(dec, trace_id=9, span_id=did, parent_id=1), tid=dec.tid)
        link.flush()
        return [(s.span_id, s.parent_id) for s in out], sizes, link.adopted, link.late

    assert run(batched=True) == run(batched=False)
    spans, sizes, adopted, late = run(batched=True)
    assert max(sizes) <= 50 and adopted > 0 and late > 0
    assert len(spans) == 12 * 30 + 36


# --------------------------------------------------------------------------- commands


def _trace_file(path) -> None:
    """A run with two decision sites; syscalls under the decision spans."""
    spans = [
        Span(
            trace_id=1,
            span_id=1,
            parent_id=0,
            name="run",
            start_ns=0,
            end_ns=10_000_000,
            attributes={"syscall.count": 4},
        )
    ]
    sid = 100

    def dec(name: str, line: int, start: int, end: int) -> int:
        nonlocal sid
        sid += 1
        spans.append(
            decision_span(
                Decision("opt", name, {"n": 1}, True, "m.py", line, 0, start, end, 7, 7),
                trace_id=1,
                span_id=sid,
                parent_id=1,
            )
        )
        return sid

    a1 = dec("inline", 3, 1_000_000, 3_000_000)  # 2 ms
    a2 = dec("inline", 3, 4_000_000, 5_000_000)  # 1 ms
    b1 = dec("unroll", 9, 6_000_000, 6_500_000)  # 0.5 ms, but heavy syscalls
    for parent, dur in ((a1, 100_000), (a2, 50_000), (b1, 400_000), (b1, 50_000), (1, 999_999)):
        sid += 1
        spans.append(
            Span(
                trace_id=1,
                span_id=sid,
                parent_id=parent,
                name="read",
                start_ns=0,
                end_ns=dur,
                attributes={"syscall.name": "read"},
            )
        )
    path.write_text(encode_line(ResourceSpans({"service.name": "t"}, spans)) + "\n")


def test_manifest_command(tmp_path, capsys) -> None:
    _trace_file(tmp_path / "t.jsonl")
    assert main(["decisions", "manifest", str(tmp_path / "t.jsonl")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["decision", "id", "category::name", "source", "count"]
    first, second = lines[1].split(), lines[2].split()
    assert first == [
        Decision("opt", "inline", file="m.py", line=3).id_hex,
        "opt::inline",
        "m.py:3",
        "2",
    ]
    assert second[1:] == ["opt::unroll", "m.py:9", "1"]


def test_top_command_ranks_by_time_and_by_syscalls(tmp_path, capsys) -> None:
    _trace_file(tmp_path / "t.jsonl")
    assert main(["decisions", "top", str(tmp_path / "t.jsonl")]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    inline = rows[0].split()
    assert inline[1:7] == ["2", "3.000", "1.500", "2", "0.150", "opt::inline"]
    assert rows[1].split()[1:7] == ["1", "0.500", "0.500", "2", "0.450", "opt::unroll"]
    assert main(["decisions", "top", "--sort", "syscalls", str(tmp_path / "t.jsonl")]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert "opt::unroll" in rows[0]


def test_import_and_export_commands(tmp_path, capsys) -> None:
    from sysspan.decisions.ruchy import write_dir
    from sysspan.tracefile import iter_trace_file

    t = 1_700_000_000_000_000_000
    write_dir(
        tmp_path / "proj",
        [
            Decision("a", "b", {"x": 1}, 2, "f.rb", 3, 0, t, t),
            Decision("a", "c", None, None, "f.rb", 4, 0, t + 1000, t + 1000),
        ],
    )
    out = tmp_path / "out.jsonl"
    assert main(["decisions", "import", str(tmp_path / "proj"), "-o", str(out)]) == 0
    assert "2 decisions" in capsys.readouterr().err
    spans = [s for b in iter_trace_file(out) for s in b.spans]
    root = [s for s in spans if s.parent_id == 0]
    assert len(root) == 1 and root[0].name == "proj" and root[0].attributes["decision.count"] == 2
    decs = [s for s in spans if "decision.id" in s.attributes]
    assert {s.name for s in decs} == {"a::b", "a::c"}
    assert all(s.parent_id == root[0].span_id and s.trace_id == root[0].trace_id for s in decs)

    assert main(["decisions", "export", str(out), "-o", str(tmp_path / "again")]) == 0
    from sysspan.decisions.ruchy import import_dir

    back, counters = import_dir(tmp_path / "again")
    assert sorted((x.name, x.file, x.line, x.result) for x in back) == [
        ("b", "f.rb", 3, 2),
        ("c", "f.rb", 4, None),
    ]
    assert counters.malformed == 0


def test_import_command_errors_are_one_line(tmp_path, capsys) -> None:
    assert main(["decisions", "import", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such directory" in err
    assert main(["decisions", "top", str(tmp_path / "missing.jsonl")]) == 1


def test_rate_limiter_next_allowed_is_exact() -> None:
    rl = RateLimiter(3)
    assert rl.next_allowed_ns() == 0
    assert [rl.allow(0) for _ in range(4)] == [True, True, True, False]
    t = rl.next_allowed_ns()
    assert t == S // 3 + 1  # ceil(1e9 / 3)
    assert not rl.allow(t - 1)
    assert rl.allow(t)
