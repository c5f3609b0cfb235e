"""Reporters: turn trace files into things people read.

``aggregate`` streams one or more OTLP JSON lines files into plain data (a :class:`Report`);
``html``, ``folded`` and ``perfetto`` render that data (as memray's ``reporters/`` do) and
never see individual spans, except ``perfetto``, which by nature writes one event per span and
streams the files a second time to do so.
"""

from sysspan.reporters.aggregate import Aggregator, Report, aggregate_files

__all__ = ["Aggregator", "Report", "aggregate_files"]
