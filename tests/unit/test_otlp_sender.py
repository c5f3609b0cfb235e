"""RequestQueue: one sender thread, items in order, bounded, nothing dropped on a bug."""

from __future__ import annotations

import threading

import pytest

from sysspan.exporters.otlp_sender import RequestQueue


def test_items_are_delivered_in_order_on_another_thread_and_flush_waits() -> None:
    got: list[tuple[int, str]] = []
    q: RequestQueue[int] = RequestQueue(lambda i: got.append((i, threading.current_thread().name)),
                                        lambda i, e: None, depth=2)
    for i in range(100):
        q.put(i)
    q.flush()
    assert [i for i, _ in got] == list(range(100))
    assert {name for _, name in got} == {"sysspan-otlp-send"}
    q.close()
    q.put(100)  # after close: delivered at once, on the caller's thread
    assert got[-1] == (100, threading.current_thread().name)


def test_an_item_whose_delivery_raises_goes_to_on_error_and_the_rest_still_flow() -> None:
    got: list[int] = []
    failed: list[tuple[int, str]] = []

    def deliver(i: int) -> None:
        if i % 3 == 1:
            raise RuntimeError(f"bug on {i}")
        got.append(i)

    q: RequestQueue[int] = RequestQueue(deliver, lambda i, e: failed.append((i, str(e))), depth=1)
    for i in range(9):
        q.put(i)
    q.close()
    assert got == [0, 2, 3, 5, 6, 8]
    assert failed == [(1, "bug on 1"), (4, "bug on 4"), (7, "bug on 7")]


def test_put_blocks_while_depth_items_wait() -> None:
    gate = threading.Event()
    started = threading.Event()

    def deliver(i: int) -> None:
        started.set()
        gate.wait(10)

    q: RequestQueue[int] = RequestQueue(deliver, lambda i, e: None, depth=2)
    q.put(0)
    assert started.wait(10)  # item 0 is being delivered
    q.put(1)
    q.put(2)  # the queue is full now
    third = threading.Thread(target=q.put, args=(3,))
    third.start()
    third.join(0.3)
    assert third.is_alive()
    gate.set()
    third.join(10)
    assert not third.is_alive()
    q.close()


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RequestQueue(lambda i: None, lambda i, e: None, depth=0)
