"""``sysspan replay FILE...``: ship OTLP JSON lines files (a run's default output, or a spool
left by an unreachable collector) to an OTLP endpoint.

Each line keeps its own resource. Lines are coalesced into requests of about
``_REQUEST_SPANS`` spans so a file of many small lines does not become many tiny requests.
What still cannot be delivered goes to a new spool file, so nothing is lost and the same
command can be run again on it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from sysspan import __version__
from sysspan.config import PROTOCOLS, output_dir, resolve_otlp
from sysspan.errors import TraceFileError, UsageError
from sysspan.exporters.otlp import OtlpSink
from sysspan.model import ResourceSpans
from sysspan.tracefile import add_spool_flag, check_trace_file, expand_inputs, iter_trace_lines

_REQUEST_SPANS = 512


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "replay",
        help="send OTLP JSON lines trace files to an OTLP endpoint",
        description="Send trace files written by sysspan (or the OpenTelemetry Collector's file "
        "exporter) to an OTLP endpoint. Spans that cannot be delivered are spooled to a new file.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="OTLP JSON lines file(s), .gz accepted, or directories of them")
    add_spool_flag(p)
    p.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        default=None,
        help="collector URL (default: OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT)",
    )
    p.add_argument(
        "--otlp-protocol",
        choices=PROTOCOLS,
        default=None,
        help="default: OTEL_EXPORTER_OTLP_PROTOCOL, else grpc for port 4317, http/protobuf otherwise",
    )
    p.add_argument(
        "--otlp-header",
        metavar="K=V",
        action="append",
        default=None,
        help="extra header/metadata, repeatable (adds to OTEL_EXPORTER_OTLP_HEADERS)",
    )
    p.add_argument("--output-dir", default=None, help=argparse.SUPPRESS)
    return p


def _spool_path(env: dict[str, str], ns: argparse.Namespace) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    directory = output_dir(env, getattr(ns, "output_dir", None))
    return os.path.join(directory, f"replay-spool-{stamp}-{os.getpid()}.jsonl")


def run(ns: argparse.Namespace, env: dict[str, str]) -> int:
    ns.files = expand_inputs(ns.files, include_spools=ns.include_spools)
    settings = resolve_otlp(
        env,
        endpoint=ns.otlp_endpoint,
        protocol=ns.otlp_protocol,
        headers=ns.otlp_header,
    )
    if settings is None:
        raise UsageError(
            "replay: no OTLP endpoint: pass --otlp-endpoint or set OTEL_EXPORTER_OTLP_ENDPOINT"
        )
    for path in ns.files:
        check_trace_file(path)  # a typo in the last name should not half-send the others
    sink = OtlpSink(settings, {}, _spool_path(env, ns), __version__)
    total = 0
    pending: list[ResourceSpans] = []
    pending_spans = 0
    try:
        for path in ns.files:
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
    files = f"{len(ns.files)} files" if len(ns.files) != 1 else ns.files[0]
    if report.ok:
        print(
            f"sysspan replay: sent {total} spans from {files} to {settings.endpoint}"
            f" ({settings.protocol})",
            file=sys.stderr,
        )
        return 0
    print(
        f"sysspan replay: sent {report.spans_written} of {total} spans from {files}; "
        + "; ".join(m for m in report.messages if not m.startswith("sent ")),
        file=sys.stderr,
    )
    return 1
