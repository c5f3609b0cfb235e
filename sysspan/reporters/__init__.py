"""Reporters: turn trace files into things people read.

``aggregate`` streams one or more OTLP JSON lines files into a typed :class:`Report`
(``model``); ``html``, ``folded`` and ``perfetto`` render it, each as a :data:`Writer`
(as memray's ``reporters/`` do). ``perfetto`` writes one event per span, so it streams the
report's files a second time; the others never see individual spans.
"""

import os
from collections.abc import Callable

from sysspan.reporters.aggregate import Aggregator, aggregate_files
from sysspan.reporters.model import Report

#: What every reporter is: write ``report`` to a file, return how much was written (bytes
#: for the HTML page, lines for folded stacks, events for Perfetto).
Writer = Callable[[Report, str | os.PathLike[str]], int]

__all__ = ["Aggregator", "Report", "Writer", "aggregate_files"]
