"""The embedded default sink: OTLP JSON lines, one ``ExportTraceServiceRequest`` per batch.

The file is what the OpenTelemetry Collector's file exporter writes, so ``sysspan replay``,
the Collector's ``otlpjsonfile`` receiver and ``jq`` all read it.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from typing import Any

from sysspan.exporters.base import SinkReport
from sysspan.exporters.otlp_json import encode_line_bytes
from sysspan.model import ResourceSpans, Span

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
    """Appends whole lines to a file, opened on first use; never raises from ``append``.

    Shared by :class:`JsonlSink` and the OTLP sink's spool. Each line goes out in one
    unbuffered ``write`` on an ``O_APPEND`` descriptor: a crash loses at most the batch in
    flight, and concurrent writers never interleave inside a line.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.spans = 0
        self.lines = 0
        self.error: str | None = None
        self._fh: Any = None

    def _ensure_open(self) -> bool:
        if self._fh is not None:
            return True
        if self.error is not None:
            return False
        try:
            parent = os.path.dirname(self.path)
            if parent:
                os.makedirs(parent, exist_ok=True)
            self._fh = open(self.path, "ab", buffering=0)  # noqa: SIM115 - closed in close()
        except OSError as exc:
            self.error = exc.strerror or str(exc)
            return False
        return True

    def append(self, batches: Iterable[ResourceSpans], count: int) -> bool:
        """Write one line holding ``batches`` (``count`` spans). False if it could not."""
        if not self._ensure_open():
            return False
        try:
            data = encode_line_bytes(batches)
            view = memoryview(data)
            while view:
                written = self._fh.write(view)
                view = view[written:]
        except OSError as exc:
            self.error = exc.strerror or str(exc)
            return False
        self.spans += count
        self.lines += 1
        return True

    def close(self) -> None:
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError as exc:
                self.error = self.error or exc.strerror or str(exc)
            self._fh = None


class JsonlSink:
    """Writes each exported batch as one OTLP/JSON line, appending to ``path``.

    The file (and its parent directories) is created at the first batch, so a run that
    produces nothing leaves nothing behind. A write failure (disk full, read-only
    directory) is counted and reported by ``close()``, never raised.
    """

    name = "jsonl"

    def __init__(self, path: str, resource: dict[str, Any], scope_version: str) -> None:
        self.path = path
        self.resource = resource
        self.scope_version = scope_version
        self._out = JsonlAppender(path)
        self._failed = 0

    def export(self, spans: list[Span]) -> None:
        if spans:
            self.export_batches(
                [ResourceSpans(self.resource, spans, "sysspan", self.scope_version)]
            )

    def export_batches(self, batches: list[ResourceSpans]) -> None:
        """Write already-grouped batches (each keeps its own resource) as one line."""
        count = sum(len(b.spans) for b in batches)
        if count and not self._out.append(batches, count):
            self._failed += count

    def close(self) -> SinkReport:
        self._out.close()
        report = SinkReport(
            name=self.name,
            spans_written=self._out.spans,
            spans_failed=self._failed,
            path=self.path if self._out.lines else None,
        )
        if self._out.lines:
            report.messages.append(f"wrote {_spans(self._out.spans)} to {self.path}")
        elif not self._failed:
            report.messages.append(f"no spans recorded, nothing written to {self.path}")
        if self._failed:
            report.messages.append(
                f"could not write {self.path} ({self._out.error}): {_spans(self._failed)} lost"
            )
        return report


def _spans(n: int) -> str:
    return f"{n} span" if n == 1 else f"{n} spans"
