"""The export pipeline: batching, one export thread, back-pressure, failure isolation."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sysspan.exporters.base import SinkReport
from sysspan.exporters.jsonl import JsonlSink
from sysspan.exporters.pipeline import Pipeline
from sysspan.model import Span
from sysspan.tracefile import iter_trace_file


def span(i: int) -> Span:
    return Span(trace_id=7, span_id=i + 1, parent_id=0, name=f"s{i}", start_ns=i, end_ns=i + 1)


class ListSink:
    name = "list"

    def __init__(self) -> None:
        self.batches: list[list[Span]] = []
        self.threads: set[str] = set()
        self.closed = False

    def export(self, spans: list[Span]) -> None:
        self.threads.add(threading.current_thread().name)
        self.batches.append(list(spans))

    def close(self) -> SinkReport:
        self.closed = True
        n = sum(len(b) for b in self.batches)
        return SinkReport(self.name, spans_written=n, messages=[f"kept {n} spans"])


class BrokenSink:
    name = "broken"

    def __init__(self, fail_close: bool = False) -> None:
        self.calls = 0
        self.fail_close = fail_close

    def export(self, spans: list[Span]) -> None:
        self.calls += 1
        raise OSError("disk on fire")

    def close(self) -> SinkReport:
        if self.fail_close:
            raise RuntimeError("close exploded")
        return SinkReport(self.name)


class GateSink(ListSink):
    """Blocks in export until released: a collector that stopped answering."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def export(self, spans: list[Span]) -> None:
        self.entered.set()
        assert self.release.wait(10)
        super().export(spans)


def test_batches_go_to_every_sink_in_order_on_one_background_thread() -> None:
    a, b = ListSink(), ListSink()
    pipe = Pipeline([a, b], batch_size=4, queue_batches=2)
    for i in range(10):
        pipe.emit(span(i))
    assert pipe.spans_emitted == 10
    reports = pipe.close()
    for sink in (a, b):
        assert [len(x) for x in sink.batches] == [4, 4, 2]
        assert [s.span_id for x in sink.batches for s in x] == list(range(1, 11))
        assert sink.threads == {"sysspan-export"}
        assert sink.closed
    assert [r.spans_written for r in reports] == [10, 10]
    assert pipe.close() is reports  # idempotent


def test_emit_all_batches_a_list_as_emit_batches_its_items() -> None:
    one, many = ListSink(), ListSink()
    pipes = Pipeline([one], batch_size=4, queue_batches=2), Pipeline([many], batch_size=4, queue_batches=2)
    items = [span(i) for i in range(23)]
    for item in items:
        pipes[0].emit(item)
    chunk: list[Span] = []
    for lo, hi in ((0, 3), (3, 3), (3, 12), (12, 13), (13, 23)):
        chunk[:] = items[lo:hi]
        pipes[1].emit_all(chunk)  # the caller reuses its list
    assert pipes[1].spans_emitted == 23
    for pipe in pipes:
        pipe.close()
    assert [len(b) for b in many.batches] == [len(b) for b in one.batches] == [4, 4, 4, 4, 4, 3]
    assert [s.span_id for b in many.batches for s in b] == list(range(1, 24))


def test_flush_delivers_the_partial_batch_without_closing() -> None:
    sink = ListSink()
    pipe = Pipeline([sink], batch_size=100)
    for i in range(3):
        pipe.emit(span(i))
    assert pipe.flush(timeout=10)
    assert [len(b) for b in sink.batches] == [3] and not sink.closed
    pipe.emit(span(3))
    pipe.close()
    assert [len(b) for b in sink.batches] == [3, 1]


def test_a_raising_sink_is_counted_and_does_not_starve_the_others() -> None:
    good, bad = ListSink(), BrokenSink()
    pipe = Pipeline([bad, good], batch_size=2)
    for i in range(5):
        pipe.emit(span(i))
    bad_report, good_report = pipe.close()
    assert sum(len(b) for b in good.batches) == 5 and good_report.ok
    assert bad.calls == 3
    assert bad_report.spans_failed == 5 and not bad_report.ok
    assert "broken: export failed on 3 batch(es) (OSError: disk on fire): 5 spans not delivered" in bad_report.messages


def test_a_sink_whose_close_raises_still_gets_a_report() -> None:
    good = ListSink()
    pipe = Pipeline([BrokenSink(fail_close=True), good], batch_size=2)
    pipe.emit(span(0))
    reports = pipe.close()
    assert reports[0].name == "broken"
    assert any("closing failed: RuntimeError: close exploded" in m for m in reports[0].messages)
    assert reports[1].spans_written == 1


def test_full_queue_blocks_emit_instead_of_dropping() -> None:
    gate = GateSink()
    pipe = Pipeline([gate], batch_size=1, queue_batches=1)
    pipe.emit(span(0))  # taken by the export thread, which then blocks in the sink
    assert gate.entered.wait(10)
    pipe.emit(span(1))  # fills the one queue slot
    finished = threading.Event()

    def producer() -> None:
        pipe.emit(span(2))  # must block: queue full, sink stuck
        finished.set()

    thread = threading.Thread(target=producer)
    thread.start()
    # Bounded wait for something that must NOT happen while the sink is stuck.
    assert not finished.wait(0.3)
    gate.release.set()
    assert finished.wait(10)
    thread.join()
    pipe.close()
    assert [s.span_id for b in gate.batches for s in b] == [1, 2, 3]


def test_end_to_end_with_the_jsonl_sink(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    pipe = Pipeline([JsonlSink(str(path), {"service.name": "t"}, "9")], batch_size=512)
    for i in range(1300):
        pipe.emit(span(i))
    (report,) = pipe.close()
    assert report.spans_written == 1300 and report.path == str(path)
    assert len(path.read_text().splitlines()) == 3
    assert [s.span_id for b in iter_trace_file(path) for s in b.spans] == list(range(1, 1301))


def test_invalid_sizes_are_rejected() -> None:
    with pytest.raises(ValueError):
        Pipeline([], batch_size=0)
