"""Moves finished spans from the tracer thread to the sinks on one background thread.

``emit()`` is a list append; every ``batch_size`` spans (or sooner, at ``hand_over()``) the
batch is handed to the export thread through a bounded queue. When the queue is full (the sinks are slower than the
tracer: a slow collector, a slow disk) ``emit()`` *blocks* until the export thread catches
up. That back-pressure is deliberate: the alternative is dropping spans or growing memory
without bound, and sysspan promises neither happens (docs/architecture.md §9, §10). Blocking slows the
traced program a little, exactly as a slow terminal slows strace. Memory stays bounded at
``(queue_batches + 2) * batch_size`` spans.

Sinks never see concurrent calls: all ``export()`` calls happen on the one export thread,
``close()`` calls on the caller's thread after that thread has finished.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence

from sysspan.exporters.base import SinkReport
from sysspan.model import Span

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

    from sysspan.exporters.base import Sink

_STOP = object()


class _SinkTrouble:
    """Exceptions one sink raised inside the export thread (a sink bug: sinks should count
    their own failures), remembered for its report."""

    __slots__ = ("batches", "spans", "first")

    def __init__(self) -> None:
        self.batches = 0
        self.spans = 0
        self.first = ""


def _sink_name(sink: object) -> str:
    return str(getattr(sink, "name", "") or type(sink).__name__)


class Pipeline:
    """Batches spans and feeds them to every sink from one background thread.

    ``emit`` must be called from one thread (the tracer's). Call ``close()`` exactly once at
    the end (in a ``finally``): the export thread is a daemon so a crash cannot hang the
    process, which also means spans still queued are lost if ``close()`` is skipped.
    """

    def __init__(
        self,
        sinks: Sequence[Sink],
        batch_size: int = 512,
        queue_batches: int = 64,
        prepare: Callable[[list], list[Span]] | None = None,
        start: bool = True,
    ) -> None:
        """``prepare`` runs on the export thread and turns each batch of emitted items into
        spans: the tracer emits raw records and the decoding happens here, off the stop path.
        With ``start=False`` the export thread waits for ``start()`` (so a child can be
        forked before the process has threads)."""
        if batch_size < 1 or queue_batches < 1:
            raise ValueError("batch_size and queue_batches must be at least 1")
        self.sinks = list(sinks)
        self.batch_size = batch_size
        self._batch: list[Any] = []  # spans, or raw records that prepare() turns into spans
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_batches)
        self._trouble = [_SinkTrouble() for _ in self.sinks]
        self._handed = 0
        self._reports: list[SinkReport] | None = None
        self._prepare = prepare
        self.prepare_errors = 0
        self.prepare_first_error = ""
        self._thread = threading.Thread(target=self._run, name="sysspan-export", daemon=True)
        if start:
            self._thread.start()

    def start(self, prepare: Callable[[list], list[Span]] | None = None) -> None:
        """Start the export thread (once; see ``start=False``), with ``prepare`` if given
        (the span builder, made after the pipeline it emits into)."""
        if prepare is not None:
            self._prepare = prepare
        if self._thread.ident is None:
            self._thread.start()

    @property
    def spans_emitted(self) -> int:
        """Spans given to :meth:`emit` so far."""
        return self._handed + len(self._batch)

    def emit(self, span: object) -> None:
        """Queue one finished span (or an item for ``prepare``). Blocks only while the export queue is full."""
        batch = self._batch
        batch.append(span)
        if len(batch) >= self.batch_size:
            self._hand_off()

    def emit_all(self, items: list) -> None:
        """``emit`` for each of ``items``, in order (the caller may reuse the list)."""
        size = self.batch_size
        start = 0
        end = len(items)
        while start < end:
            batch = self._batch
            take = size - len(batch)
            batch += items[start : start + take]
            start += take
            if len(batch) >= size:
                self._hand_off()

    def hand_over(self) -> None:
        """Give the partial batch to the export thread now if that thread has nothing
        queued: spans then do not wait for a full batch while it idles, and a trace that
        keeps it busy still goes out in full batches (fewer lines, fewer requests)."""
        if self._batch and self._queue.empty():
            self._hand_off()

    def _hand_off(self) -> None:
        if self._reports is not None:
            raise RuntimeError("Pipeline is closed")
        batch = self._batch
        if batch:
            # put() before resetting: if Ctrl-C interrupts a blocked put, the batch stays here
            # and is handed over by close().
            self._queue.put(batch)
            self._handed += len(batch)
            self._batch = []

    def flush(self, timeout: float | None = None) -> bool:
        """Hand over the partial batch and wait until every sink has exported everything
        emitted so far (e.g. before a Lambda environment freezes). False on timeout."""
        self._hand_off()
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self) -> list[SinkReport]:
        """Drain the queue, stop the export thread, close every sink; one report per sink,
        in the order the sinks were given. Safe to call again (returns the same reports)."""
        if self._reports is not None:
            return self._reports
        self.start()
        self._hand_off()
        self._queue.put(_STOP)
        self._thread.join()
        reports = []
        for sink, trouble in zip(self.sinks, self._trouble, strict=True):
            name = _sink_name(sink)
            try:
                report = sink.close()
            except Exception as exc:
                report = SinkReport(name=name, messages=[f"{name}: closing failed: {_describe(exc)}"])
            if trouble.batches:
                report.spans_failed += trouble.spans
                report.messages.append(
                    f"{name}: export failed on {trouble.batches} batch(es) ({trouble.first}):"
                    f" {trouble.spans} spans not delivered"
                )
            reports.append(report)
        self._reports = reports
        return reports

    def _run(self) -> None:
        get = self._queue.get
        while True:
            item = get()
            if item is _STOP:
                return
            if isinstance(item, threading.Event):
                for sink in self.sinks:
                    sink_flush = getattr(sink, "flush", None)  # a sink sending on its own thread
                    if sink_flush is not None:
                        sink_flush()
                item.set()
                continue
            assert isinstance(item, list)
            if self._prepare is not None:
                try:
                    item = self._prepare(item)
                except Exception as exc:
                    # A decoding bug must not take the trace down: count it, keep going.
                    self.prepare_errors += len(item)
                    if not self.prepare_first_error:
                        self.prepare_first_error = _describe(exc)
                    continue
            # prepare can release many held spans at once (the decision linker at the end):
            # export them in batches, so no request or line grows with the trace.
            size = self.batch_size
            for start in range(0, len(item), size):
                self._export(item[start : start + size] if len(item) > size else item)

    def _export(self, batch: list) -> None:
        for sink, trouble in zip(self.sinks, self._trouble, strict=True):
            try:
                sink.export(batch)
            except Exception as exc:
                trouble.batches += 1
                trouble.spans += len(batch)
                if not trouble.first:
                    trouble.first = _describe(exc)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
