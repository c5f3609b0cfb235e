"""Collections during a trace: rare inside the window, as before after it."""

from __future__ import annotations

import gc

import pytest

from sysspan.collector.gc_window import YOUNG_THRESHOLD, rare_collections


def test_young_collections_are_rare_inside_and_restored_after() -> None:
    before = gc.get_threshold()
    try:
        with rare_collections():
            assert gc.get_threshold()[0] == YOUNG_THRESHOLD
            start = gc.get_stats()[0]["collections"]
            junk = [[i] for i in range(YOUNG_THRESHOLD // 2)]  # far more than 700 allocations
            assert gc.get_stats()[0]["collections"] == start
            del junk
        assert gc.get_threshold() == before
        with pytest.raises(RuntimeError), rare_collections():
            raise RuntimeError("the trace failed")
        assert gc.get_threshold() == before
    finally:
        gc.unfreeze()
