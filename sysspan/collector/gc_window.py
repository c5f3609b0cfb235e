"""Fewer garbage collections while a trace runs.

Every syscall makes a handful of short-lived objects (the record, the item handed to the
export thread, the span) and thousands of spans wait at any time in the export queue and
the decision linker. With CPython's default threshold a young-generation collection runs
every 700 allocations and walks all of those waiting spans, plus, at each older
collection, everything sysspan imported at start-up: about a third of the Python time per
syscall (in a build trace the collector took 13-19% of sysspan's CPU, more while the span
budget holds candidates: bench/bench_budget.py). Nothing on this path makes reference cycles, so collecting rarely frees the same
memory; start-up's objects, which live for the whole run anyway, are frozen out of every
collection.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# allocations between young collections: still well under a megabyte of young objects
YOUNG_THRESHOLD = 50_000


@contextmanager
def rare_collections() -> Iterator[None]:
    """Freeze what exists now and collect the young generation rarely until the block ends;
    the previous thresholds come back afterwards (the frozen objects stay frozen)."""
    saved = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, max(saved[1], 20), saved[2])
    try:
        yield
    finally:
        gc.set_threshold(*saved)
