"""``sysspan report TRACE... [-o report.html] [--folded FILE] [--perfetto FILE]``: turn trace
files into a self-contained HTML report, folded stacks and/or Chrome trace-event JSON.

The trace files are streamed once into an aggregator (constant memory per span); the
Perfetto output, which needs one event per span, streams them a second time.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os

from sysspan.errors import TraceFileError, UsageError
from sysspan.tracefile import add_spool_flag, add_trace_files, check_trace_file, expand_inputs

DEFAULT_OUTPUT = "sysspan-report.html"


def prepare_parser(p: argparse.ArgumentParser) -> None:
    add_trace_files(p)
    add_spool_flag(p)
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        default=None,
        help=f"HTML report to write (default: {DEFAULT_OUTPUT}; '-' with --folded/--perfetto "
        "to skip the HTML)",
    )
    p.add_argument(
        "--folded",
        metavar="FILE",
        default=None,
        help="also write folded stacks (flamegraph.pl / speedscope), values in microseconds",
    )
    p.add_argument(
        "--perfetto",
        metavar="FILE",
        default=None,
        help="also write Chrome trace-event JSON (opens in ui.perfetto.dev or chrome://tracing)",
    )
    p.add_argument("--title", default=None, help="page title (default: the traced command line)")


def _check_output(path: str, what: str) -> None:
    if not path:
        raise UsageError(f"{what}: empty file name")
    if os.path.isdir(path):
        raise UsageError(f"{what} {path}: is a directory")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"{what} {path}: directory {parent} does not exist")


def run(ns: argparse.Namespace, env: dict[str, str]) -> int:
    # The work allocates millions of small acyclic objects and keeps large dictionaries
    # alive: the cyclic collector would rescan them over and over (a third of the time).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _run(ns)
    finally:
        if was_enabled:
            gc.enable()


def _run(ns: argparse.Namespace) -> int:
    ns.files = expand_inputs(ns.files, include_spools=ns.include_spools)
    from sysspan.reporters import Writer
    from sysspan.reporters.aggregate import aggregate_files
    from sysspan.reporters.folded import write_folded
    from sysspan.reporters.html import write_html
    from sysspan.reporters.perfetto import write_perfetto

    output = ns.output
    if output is None:
        output = DEFAULT_OUTPUT
    elif output == "-":
        if not ns.folded and not ns.perfetto:
            raise UsageError("-o - skips the HTML report: give --folded or --perfetto then")
        output = ""
    targets = [(output, "--output")] if output else []
    targets += [(p, opt) for p, opt in ((ns.folded, "--folded"), (ns.perfetto, "--perfetto")) if p]
    for path, what in targets:
        _check_output(path, what)
    real = [os.path.realpath(p) for p, _ in targets]
    if len(set(real)) != len(real):
        raise UsageError("--output, --folded and --perfetto must name different files")
    for path in ns.files:
        check_trace_file(path)
        if os.path.realpath(path) in real:
            raise UsageError(f"{path}: is both an input trace and an output file")

    agg = aggregate_files(ns.files)
    if not agg.counts["spans"]:
        names = ", ".join(ns.files)
        raise TraceFileError(f"{names}: no spans (is this an OTLP JSON lines trace file?)")
    report = agg.report()
    writers: list[tuple[Writer, str]] = []
    if output:
        writers.append((functools.partial(write_html, title=ns.title), output))
    if ns.folded:
        writers.append((write_folded, ns.folded))
    if ns.perfetto:
        writers.append((write_perfetto, ns.perfetto))
    written = []
    try:
        for write, path in writers:
            size = write(report, path)
            big = path == output and size >= 1e6  # the page's size, when it is worth saying
            written.append(f"{path} ({size / 1e6:.1f} MB)" if big else path)
    except OSError as exc:
        name = exc.filename or "output"
        raise UsageError(f"cannot write {name}: {exc.strerror or exc}") from None
    c = report.counts
    print(
        f"sysspan: report of {c.spans:,} spans ({c.syscalls:,} syscalls, "
        f"{c.processes:,} processes) written to " + ", ".join(written)
    )
    return 0


class Report:
    name = "report"
    help = "render trace files as an HTML report (and folded stacks / Perfetto JSON)"
    description = (
        "Render OTLP JSON lines trace files as one self-contained HTML page: process "
        "timeline, flame graph, syscall latency, slowest syscalls and decision impact. "
        "Several files are combined into one report."
    )
    prepare_parser = staticmethod(prepare_parser)
    run = staticmethod(run)


COMMAND = Report()
