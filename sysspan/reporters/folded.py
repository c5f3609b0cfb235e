"""Folded stacks (``frame;frame;frame value``), the input of flamegraph.pl, speedscope,
inferno and most flame-graph tools.

Frames are the process tree (executable names, outermost first), then the decisions a syscall
was timed under, then its source stack when the trace has ``code.stacktrace`` (or
``code.function.name``), then the syscall name. The value is syscall time in microseconds.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from sysspan.fsutil import private_open
from sysspan.reporters.model import Report

__all__ = ["folded_lines", "write_folded"]


def folded_lines(report: Report) -> Iterator[str]:
    """One line per distinct stack, heaviest first, without newline.

    Values are rounded to whole microseconds by the largest-remainder method, so they sum to
    exactly the total syscall time in µs (rounded half up): a tool's grand total matches. Stacks
    that round to 0 µs are left out (they would not show in a flame graph anyway).
    """
    items = sorted(report.folded.items(), key=lambda kv: (-kv[1][1], kv[0]))
    total_ns = sum(acc[1] for _frames, acc in items)
    target = (total_ns + 500) // 1000
    floors = [acc[1] // 1000 for _frames, acc in items]
    missing = target - sum(floors)
    if missing > 0:
        by_remainder = sorted(range(len(items)), key=lambda i: (-(items[i][1][1] % 1000), i))
        for i in by_remainder[:missing]:
            floors[i] += 1
    for (frames, _acc), value in zip(items, floors, strict=True):
        if value > 0:
            yield ";".join(_clean(f) for f in frames) + f" {value}"


def _clean(frame: str) -> str:
    # ';' separates frames and a newline separates stacks; keep both out of frame names.
    return frame.replace(";", ":").replace("\n", " ").replace("\r", " ") or "?"


def write_folded(report: Report, path: str | os.PathLike[str]) -> int:
    """Write the folded stacks to ``path``; returns the number of lines."""
    n = 0
    with private_open(path, "w", encoding="utf-8", errors="backslashreplace") as fh:
        for line in folded_lines(report):
            fh.write(line + "\n")
            n += 1
    return n
