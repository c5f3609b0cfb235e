"""``sysspan merge A.jsonl B.jsonl ... -o merged.jsonl``: one trace out of files recorded in
different places (laptop, CI runner, container, Lambda). See ``sysspan.merge`` for what it
does; this module parses the command line and prints the report (on stderr, so the merged
file can go to stdout with ``-o -``)."""

from __future__ import annotations

import argparse
import os
import sys

from sysspan.errors import UsageError
from sysspan.exporters.otlp_json import encode_line_bytes
from sysspan.merge import batches_of, describe_skew, write_merged
from sysspan.merge_stream import merge_files_streaming, read_back
from sysspan.tracefile import add_spool_flag, add_trace_files, check_trace_file, expand_inputs

_SHOWN_ORPHANS = 5


def prepare_parser(p: argparse.ArgumentParser) -> None:
    add_trace_files(p, "FILE")
    add_spool_flag(p)
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="merged output file ('-' for stdout)")
    p.add_argument(
        "--fix-skew",
        action="store_true",
        help="shift each file's timestamps onto the first file's clock, using the estimated skew",
    )
    p.add_argument("-q", dest="quiet", action="store_true", help="print nothing but errors")


def _short(path: str) -> str:
    return os.path.basename(path) or path


def run(ns: argparse.Namespace, env: dict[str, str]) -> int:
    ns.files = expand_inputs(ns.files, include_spools=ns.include_spools)
    if len(set(map(os.path.abspath, ns.files))) != len(ns.files):
        # Harmless for the result (duplicates are dropped) but almost certainly a typo.
        print("sysspan merge: warning: a file is given more than once", file=sys.stderr)
    for path in ns.files:
        check_trace_file(path)
    if ns.output != "-" and os.path.isdir(ns.output):
        raise UsageError(f"-o {ns.output}: is a directory, expected a file name")

    result = merge_files_streaming(ns.files, fix_skew=ns.fix_skew)
    if ns.output == "-":
        out = sys.stdout.buffer
        for line in batches_of(read_back(result)):
            out.write(encode_line_bytes(line))
        out.flush()
    else:
        write_merged(ns.output, read_back(result))

    if ns.quiet:
        return 0
    say = lambda msg: print(f"sysspan merge: {msg}", file=sys.stderr)  # noqa: E731
    written = len(result.entries)
    dest = "stdout" if ns.output == "-" else ns.output
    dup = ""
    if result.duplicates:
        dup = f" ({result.duplicates} duplicate{'s' if result.duplicates != 1 else ''} dropped"
        if result.conflicting_duplicates:
            dup += f", {result.conflicting_duplicates} of them differed: the first copy was kept"
        dup += ")"
    say(
        f"{result.spans_in} spans from {len(ns.files)} file{'s' if len(ns.files) != 1 else ''}, "
        f"{written} written to {dest} in causal order{dup}; "
        f"{result.traces} trace{'s' if result.traces != 1 else ''}"
    )
    if result.orphans:
        n = len(result.orphans)
        say(f"{n} span{'s' if n != 1 else ''} whose parent is in none of the files:")
        for orphan in result.orphans[:_SHOWN_ORPHANS]:
            s = orphan.span
            say(
                f"  {s.name!r} span {s.span_id:016x} (trace {s.trace_id:032x}) in "
                f"{_short(ns.files[orphan.source])}: parent {s.parent_id:016x} missing"
            )
        if n > _SHOWN_ORPHANS:
            say(f"  ... and {n - _SHOWN_ORPHANS} more")
    if result.cycles:
        say(f"warning: {result.cycles} spans are their own ancestors (malformed input); written last")
    for skew in result.skews:
        say("clock skew: " + describe_skew(skew, ns.files))
    for source, shift in sorted(result.shifts_ns.items()):
        say(
            f"--fix-skew: shifted {_short(ns.files[source])} by {-shift / 1e9:+.3f} s "
            f"onto {_short(ns.files[0])}'s clock"
        )
    if ns.fix_skew and not result.shifts_ns:
        say("--fix-skew: nothing to shift")
    return 0


class Merge:
    name = "merge"
    help = "join OTLP JSON lines files from several places into one causal trace"
    description = (
        "Merge trace files recorded in different places into one file: "
        "de-duplicate spans by (trace id, span id), write parents before children, report "
        "spans whose parent is missing and the clock skew between the files."
    )
    prepare_parser = staticmethod(prepare_parser)
    run = staticmethod(run)


COMMAND = Merge()
