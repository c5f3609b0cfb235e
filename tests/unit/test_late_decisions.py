"""Decisions that reach the span builder after their process's exit was handled keep that
process as their parent (they are read from the ring concurrently with the tracer's records,
so the order between the two is a race)."""

from __future__ import annotations

from sysspan.builder import SpanBuilder
from sysspan.collector.records import DecisionItem, ProcessExit, ProcessStart
from sysspan.decisions.model import Decision
from sysspan.decisions.recorder import DecisionRecorder
from sysspan.decisions.sampling import DecisionGate
from sysspan.ids import SpanIds

RUN = 7


def _builder() -> tuple[SpanBuilder, DecisionRecorder, list]:
    items: list = []
    recorder = DecisionRecorder(DecisionGate(1.0, 0))
    builder = SpanBuilder(trace_id=0x1234, run_span_id=RUN, ids=SpanIds(99), format_call=lambda *a: None,
                          emit=items.append, decisions=recorder)
    return builder, recorder, items


def _decision(pid: int, t: int) -> Decision:
    return Decision("c", f"from-{pid}", None, None, "f.py", 1, 0, t, t, pid, pid)


def _parents(items: list) -> dict[str, int]:
    return {item.decision.name: item.parent for item in items if type(item) is DecisionItem}


def _proc_span(builder: SpanBuilder, pid: int) -> int:
    return builder.procs[pid].span_id


def test_a_decision_held_back_behind_a_later_one_keeps_its_exited_process() -> None:
    builder, recorder, items = _builder()
    builder.handle(ProcessStart(100, 0, 10, False, 1))
    builder.handle(ProcessStart(200, 100, 20, False, 2))
    a, b = _proc_span(builder, 100), _proc_span(builder, 200)
    # process 100's decision was read first but happened after process 200's exit, which
    # the tracer has not handed over yet: it holds 200's decision back in the queue
    recorder.on_channel(_decision(100, 500))
    recorder.on_channel(_decision(200, 150))
    builder.handle(ProcessExit(200, 300, 0, 3))
    builder.handle(ProcessExit(100, 600, 0, 4))
    assert _parents(items) == {"from-100": a, "from-200": b}


def test_a_decision_read_after_its_process_exit_keeps_the_process() -> None:
    builder, recorder, items = _builder()
    builder.handle(ProcessStart(100, 0, 10, False, 1))
    a = _proc_span(builder, 100)
    builder.handle(ProcessExit(100, 300, 0, 2))
    recorder.on_channel(_decision(100, 200))
    builder.finish(400)
    assert _parents(items) == {"from-100": a}


def test_a_reused_pid_does_not_inherit_the_old_process() -> None:
    builder, recorder, items = _builder()
    builder.handle(ProcessStart(100, 0, 10, False, 1))
    builder.handle(ProcessExit(100, 300, 0, 2))
    builder.handle(ProcessStart(100, 0, 400, False, 3))
    new = _proc_span(builder, 100)
    recorder.on_channel(_decision(100, 450))
    builder.finish(500)
    assert _parents(items) == {"from-100": new}
