"""The sink contract every exporter follows, and the report a sink hands back at the end.

Sinks never raise into the caller from ``export()``: the tracer must keep running whatever
happens to the telemetry. Failures are counted and described once, in ``close()``'s report.
"""

from __future__ import annotations

from sysspan.model import ResourceSpans, Span
from sysspan.plainrecord import Record

TYPE_CHECKING = False


def spans_text(n: int) -> str:
    """``1 span``, ``2 spans``: the count in the sentences sinks report."""
    return f"{n} span" if n == 1 else f"{n} spans"


class SinkReport(Record):
    """What a sink did, for the end-of-run summary.

    ``messages`` are one-line, human-readable sentences ("wrote 123 spans to x.jsonl",
    "could not reach URL (connection refused): 123 spans spooled to ..."); the CLI prints
    them as they are, as warnings when ``ok`` is false.
    """

    __slots__ = _FIELDS = ("name", "spans_written", "spans_failed", "path", "messages", "degraded")

    def __init__(self, name: str, spans_written: int = 0, spans_failed: int = 0,
                 path: str | None = None, messages: list[str] | None = None,
                 degraded: bool = False) -> None:
        self.name = name
        self.spans_written = spans_written
        self.spans_failed = spans_failed
        self.path = path
        self.messages: list[str] = [] if messages is None else messages
        self.degraded = degraded  # spans went somewhere other than asked (a fallback location)

    @property
    def ok(self) -> bool:
        """True when every span this sink was given was delivered."""
        return self.spans_failed == 0


if TYPE_CHECKING:  # an interface for mypy; no sink subclasses it or checks it at run time
    from typing import Protocol

    class Sink(Protocol):
        """Where finished spans go. ``export`` is called from one thread (the pipeline's)."""

        def export(self, spans: list[Span]) -> None:
            """Deliver one batch; count, never raise, on failure."""
            ...

        def close(self) -> SinkReport:
            """Flush, release resources, and say what happened."""
            ...


class ResourceSink:
    """Base of the sinks that also take pre-grouped batches: ``export`` wraps its spans in
    one batch of the sink's own ``resource`` and hands it to ``export_batches``."""

    resource: dict
    scope_version: str

    def export(self, spans: list[Span]) -> None:
        if spans:
            self.export_batches([ResourceSpans(self.resource, spans, "sysspan", self.scope_version)])

    def export_batches(self, batches: list[ResourceSpans]) -> None:
        raise NotImplementedError
