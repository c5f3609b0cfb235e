"""``sysspan replay FILE...``: ship OTLP JSON lines files (a run's default output, or a spool
left by an unreachable collector) to an OTLP endpoint.

Each line keeps its own resource. Lines are coalesced into requests of about
``_REQUEST_SPANS`` spans so a file of many small lines does not become many tiny requests.

Each source file has one spool, so running the same command again never duplicates spans:

* a spool file (``*-spool-*``) is the record of what is still undelivered: once every span
  in it is acknowledged it is removed; spans still undelivered replace its content, so it
  holds exactly what is left (``--keep`` leaves it untouched and spools like any file);
* any other file is never modified; what cannot be delivered goes to
  ``<output dir>/<name>-spool-replay.jsonl``, the same file on every attempt, holding what
  the latest attempt left undelivered (removed once a later attempt delivers everything).

Undelivered spans are first written next to the spool as ``.pending`` and moved over it
only once the source has been read to the end.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from sysspan import __version__
from sysspan.config import output_dir
from sysspan.errors import TraceFileError, UsageError
from sysspan.exporters.base import spans_text
from sysspan.exporters.jsonl import JsonlAppender
from sysspan.exporters.otlp import OtlpSink
from sysspan.exporters.wholeline import Fallback
from sysspan.model import ResourceSpans
from sysspan.otlp_flags import add_otlp_flags, otlp_settings
from sysspan.tracefile import (
    add_spool_flag,
    add_trace_files,
    check_trace_file,
    expand_inputs,
    iter_trace_lines,
)

_REQUEST_SPANS = 512
_SUFFIX = re.compile(r"(\.jsonl)?(\.gz)?$")


def prepare_parser(p: argparse.ArgumentParser) -> None:
    add_trace_files(p, "FILE")
    add_spool_flag(p)
    add_otlp_flags(p)
    p.add_argument("--keep", action="store_true", help="leave spool files in place after a complete replay")
    p.add_argument("--output-dir", default=None, help="where spools of undelivered spans go (SYSSPAN_OUTPUT_DIR, default ./sysspan-traces)")


def is_spool(path: str) -> bool:
    return "-spool-" in os.path.basename(path)


def _spool_for(path: str, directory: str) -> str:
    """The one spool of undelivered spans of a (non-spool) source file."""
    stem = _SUFFIX.sub("", os.path.basename(path)) or "trace"
    return os.path.join(directory, f"{stem}-spool-replay.jsonl")


def run(ns: argparse.Namespace, env: dict[str, str]) -> int:
    ns.files = expand_inputs(ns.files, include_spools=ns.include_spools)
    settings = otlp_settings(env, ns)
    if settings is None:
        raise UsageError(
            "replay: no OTLP endpoint: pass --otlp-endpoint or set OTEL_EXPORTER_OTLP_ENDPOINT"
        )
    for path in ns.files:
        check_trace_file(path)  # a typo in the last name should not half-send the others
    directory = output_dir(env, ns.output_dir)
    fallback = Fallback(env)
    sink = OtlpSink(settings, {}, os.devnull, __version__)
    total = 0
    notes: list[str] = []
    try:
        for path in ns.files:
            in_place = is_spool(path) and not ns.keep and not path.endswith(".gz")
            dest = path if in_place else _spool_for(path, directory)
            target = dest + ".pending"
            sink.switch_spool(target, None if in_place else fallback)
            sent_before = sink.sent
            count = _send_file(sink, path)
            total += count
            spooled = sink.switch_spool(os.devnull)
            notes += _settle(path, dest, in_place, count, sink.sent - sent_before, spooled)
    except TraceFileError:
        report = sink.close()
        if total:
            print(
                f"sysspan replay: {total} spans before the bad line were already handled: "
                + "; ".join(report.messages),
                file=sys.stderr,
            )
        raise
    except BaseException:  # Ctrl-C: release the connection, keep whatever was spooled
        sink.close()
        raise
    report = sink.close()
    for note in notes:
        print(f"sysspan replay: {note}", file=sys.stderr)
    files = f"{len(ns.files)} files" if len(ns.files) != 1 else ns.files[0]
    if sink.sent == total:
        print(
            f"sysspan replay: sent {total} spans from {files} to {settings.endpoint}"
            f" ({settings.protocol})",
            file=sys.stderr,
        )
        return 0
    why = ", ".join(sink.reasons) or "export failed"
    print(
        f"sysspan replay: sent {sink.sent} of {total} spans from {files} to {settings.endpoint} "
        f"({why})",
        file=sys.stderr,
    )
    return 1


def _send_file(sink: OtlpSink, path: str) -> int:
    """Send every span of ``path``; returns how many there were."""
    total = 0
    pending: list[ResourceSpans] = []
    pending_spans = 0
    for _lineno, batches in iter_trace_lines(path):
        for batch in batches:
            if batch.spans:
                pending.append(batch)
                pending_spans += len(batch.spans)
        if pending_spans >= _REQUEST_SPANS:
            sink.export_batches(pending)
            total += pending_spans
            pending, pending_spans = [], 0
    if pending:
        sink.export_batches(pending)
        total += pending_spans
    return total


def _settle(
    path: str, dest: str, in_place: bool, count: int, acked: int, spooled: JsonlAppender
) -> list[str]:
    """Move the undelivered spans of ``path`` over its spool ``dest`` (or remove a spool that
    is no longer needed); say where they are."""
    f = spooled.file
    target = dest + ".pending"
    if f.items and f.path == target:
        os.replace(target, dest)
        if in_place:
            return [
                f"{path}: {count - f.items} of {count} spans acknowledged; the {f.items} "
                "undelivered are left in it (run the same command again)"
            ]
        return [f"{spans_text(f.items)} of {path} spooled to {dest} (send later: sysspan replay {dest})"]
    _unlink(target)
    if f.items or f.lost:  # the spool's own location failed
        if in_place:
            return [f"{path}: kept as it was ({acked} of {count} spans acknowledged)"] + f.describe(spans_text)
        return [f"{path}: " + m for m in f.describe(spans_text)]
    if acked != count:
        return []
    _unlink(dest)  # in place: the source itself; else a spool an earlier attempt left
    if in_place:
        return [f"{path}: every span acknowledged, spool removed (--keep keeps it)"]
    return []


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class Replay:
    name = "replay"
    help = "send OTLP JSON lines trace files to an OTLP endpoint"
    description = (
        "Send trace files written by sysspan (or the OpenTelemetry Collector's file "
        "exporter) to an OTLP endpoint. A spool file is removed once every span in it is "
        "acknowledged; what cannot be delivered goes to one spool per source file."
    )
    prepare_parser = staticmethod(prepare_parser)
    run = staticmethod(run)


COMMAND = Replay()
