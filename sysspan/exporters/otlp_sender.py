"""The OTLP sink's sender thread: request N is on the wire while the caller encodes N+1.

A synchronous exporter alternates between encoding a batch and waiting for the receiver's
answer, so the two never overlap and the caller idles for a whole round trip per batch.
Here the caller hands each encoded request to one sender thread through a bounded queue and
goes on encoding. One thread sends, so requests leave in the order they were made, a retry
holds back the requests behind it, and a failure seen on one request decides the fate of the
next one exactly as a synchronous exporter would. The queue's bound is the back-pressure: when
``depth`` requests are waiting, :meth:`RequestQueue.put` blocks until one leaves, so a slow
receiver slows the caller down instead of growing memory.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

_STOP = object()


class RequestQueue(Generic[T]):
    """Feeds items to ``deliver`` on one background thread, in order.

    ``deliver`` must not raise (the sink turns every failure into a spooled batch); should
    it raise anyway, the item is given to ``on_error`` so nothing is dropped unseen. The
    thread starts with the first :meth:`put`.
    """

    def __init__(
        self,
        deliver: Callable[[T], None],
        on_error: Callable[[T, BaseException], None],
        depth: int,
        name: str = "sysspan-otlp-send",
    ) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, not {depth}")
        self._deliver = deliver
        self._on_error = on_error
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._name = name
        self._thread: threading.Thread | None = None
        self._closed = False

    def put(self, item: T) -> None:
        """Queue ``item`` for the sender thread; blocks while ``depth`` items are waiting.
        After :meth:`close`, ``item`` is delivered on the caller's thread."""
        if self._closed:
            self._deliver(item)
            return
        if self._thread is None:
            # A daemon, like the pipeline's export thread: a caller that dies without
            # close() must not hang the interpreter's exit on a slow endpoint.
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        self._queue.put(item)

    def flush(self) -> None:
        """Wait until every item put so far has been delivered."""
        if self._thread is not None:
            self._queue.join()

    def close(self) -> None:
        """Deliver what is queued, then end the thread. Safe to call again."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()

    def _run(self) -> None:
        get, done = self._queue.get, self._queue.task_done
        while True:
            item = get()
            try:
                if item is _STOP:
                    return
                try:
                    self._deliver(item)  # type: ignore[arg-type]
                except BaseException as exc:  # noqa: BLE001 - a sink bug must not lose the batch
                    self._on_error(item, exc)  # type: ignore[arg-type]
            finally:
                done()
