"""The embedded default sink: OTLP JSON lines, one ``ExportTraceServiceRequest`` per batch.

The file is what the OpenTelemetry Collector's file exporter writes, so ``sysspan replay``,
the Collector's ``otlpjsonfile`` receiver and ``jq`` all read it.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable

from sysspan.exporters.base import ResourceSink, SinkReport, spans_text
from sysspan.exporters.otlp_json import encode_line_bytes
from sysspan.exporters.wholeline import Fallback, WholeLineFile
from sysspan.model import ResourceSpans

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def default_trace_path(output_dir: str, executable_name: str, trace_id: int) -> str:
    """``<dir>/<exe>-<UTC yyyymmddThhmmssZ>-<first 8 hex digits of the trace id>.jsonl``.

    The executable name is reduced to its base name and safe characters, so ``./a b`` or a
    path cannot escape the directory. Two runs of the same trace in the same second share a
    file: appends are single ``write`` calls of whole lines, so both runs' lines survive.
    """
    exe = _UNSAFE.sub("_", os.path.basename(executable_name.rstrip("/"))).strip("._") or "trace"
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    short_id = f"{trace_id:032x}"[:8]
    return os.path.join(output_dir, f"{exe}-{stamp}-{short_id}.jsonl")


class JsonlAppender:
    """Appends whole lines of spans to a file, opened on first use; never raises.

    Shared by :class:`JsonlSink` and the OTLP sink's spool. Each line goes out in
    unbuffered writes on an ``O_APPEND`` descriptor (see :class:`WholeLineFile`): a failing
    write is truncated back to the last whole line and moved to ``fallback``'s locations.
    """

    def __init__(self, path: str, fallback: Fallback | None = None) -> None:
        self.file = WholeLineFile(path, fallback)
        self.lines = 0

    @property
    def path(self) -> str:
        """Where the last line went (the first path unless it failed)."""
        return self.file.path

    @property
    def spans(self) -> int:
        return self.file.items

    @property
    def error(self) -> str | None:
        return self.file.error

    def append(self, batches: Iterable[ResourceSpans], count: int) -> bool:
        """Write one line holding ``batches`` (``count`` spans). False if it could not."""
        if not self.file.write(encode_line_bytes(batches), count):
            return False
        self.lines += 1
        return True

    def describe(self) -> list[str]:
        """Sentences about a failure: where the spans went, how many were lost."""
        return self.file.describe(spans_text)

    def close(self) -> None:
        self.file.close()


class JsonlSink(ResourceSink):
    """Writes each exported batch as one OTLP/JSON line, appending to ``path``.

    The file (and its parent directories) is created at the first batch, so a run that
    produces nothing leaves nothing behind. A write failure (disk full, read-only
    directory, the directory deleted) moves the rest to the fallback locations; it is
    counted and reported by ``close()``, never raised.
    """

    name = "jsonl"

    def __init__(
        self,
        path: str,
        resource: dict[str, Any],
        scope_version: str,
        fallback: Fallback | None = None,
    ) -> None:
        self.path = path
        self.resource = resource
        self.scope_version = scope_version
        self._out = JsonlAppender(path, fallback)

    def export_batches(self, batches: list[ResourceSpans]) -> None:
        """Write already-grouped batches (each keeps its own resource) as one line."""
        count = sum(len(b.spans) for b in batches)
        if count:
            self._out.append(batches, count)

    def close(self) -> SinkReport:
        self._out.close()
        f = self._out.file
        kept = f.written.get(self.path, 0)
        report = SinkReport(
            name=self.name,
            spans_written=f.items,
            spans_failed=f.lost,
            path=self.path if kept else (f.path if f.items else None),
            degraded=f.moved,
        )
        if kept and not f.moved:
            report.messages.append(f"wrote {spans_text(kept)} to {self.path}")
        elif not f.items and not f.lost:
            report.messages.append(f"no spans recorded, nothing written to {self.path}")
        report.messages += self._out.describe()
        return report

