"""``sysspan decisions ...``: the decision tools.

* ``import DIR [-o OUT.jsonl]``   Ruchy/renacer ``.ruchy/decisions.msgpack`` and
  ``decision_manifest.json`` → decision spans in a new trace (OTLP JSON lines)
* ``export TRACE... -o DIR``      the decision spans of trace files → the two Ruchy files
* ``manifest TRACE...``           decision id → ``category::name``, source, count
* ``top TRACE...``                the decision impact table: time spent inside each decision
  and syscall time under it (syscall spans parented by its spans), slowest first
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from sysspan import __version__
from sysspan.config import output_dir, resource_from_env
from sysspan.decisions.model import Decision, decision_span, span_to_decision
from sysspan.decisions.ruchy import DecisionWriter, import_dir
from sysspan.errors import TraceFileError, UsageError
from sysspan.exporters.jsonl import default_trace_path
from sysspan.exporters.otlp_json import encode_line
from sysspan.fsutil import private_open
from sysspan.ids import SpanIds, new_nonce, new_trace_id
from sysspan.model import Attributes, ResourceSpans, Span, SpanKind
from sysspan.span_roles import DECISION, SYSCALL
from sysspan.tracefile import add_trace_files, check_trace_file, expand_inputs, iter_trace_file

_LINE_SPANS = 512


def prepare_parser(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    imp = sub.add_parser(
        "import",
        help="turn .ruchy/decisions.msgpack + decision_manifest.json into a trace",
        description="Read DIR/.ruchy/decisions.msgpack and/or DIR/.ruchy/decision_manifest.json "
        "(or those files in DIR itself) and write them as decision spans of a new trace.",
    )
    imp.add_argument("dir", metavar="DIR", help="project directory (or its .ruchy directory)")
    imp.add_argument(
        "-o",
        "--output",
        metavar="OUT.jsonl",
        help="OTLP JSON lines file to write (default: a new file in the output directory)",
    )
    imp.add_argument(
        "--output-dir",
        metavar="DIR",
        help="directory for the default file (SYSSPAN_OUTPUT_DIR, default ./sysspan-traces)",
    )

    exp = sub.add_parser(
        "export",
        help="write the decisions of trace files as .ruchy/decisions.msgpack + decision_manifest.json",
    )
    add_trace_files(exp)
    exp.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        required=True,
        help="directory to write (DIR/.ruchy/ unless DIR is named .ruchy)",
    )

    man = sub.add_parser("manifest", help="list decision ids with category::name, source and count")
    add_trace_files(man)

    top = sub.add_parser(
        "top",
        help="rank decisions by the time inside them and the syscall time under them",
    )
    add_trace_files(top)
    top.add_argument(
        "-n",
        "--limit",
        type=int,
        default=20,
        metavar="N",
        help="show the first N rows (0: all; default 20)",
    )
    top.add_argument(
        "--sort",
        choices=("time", "syscalls"),
        default="time",
        help="rank by time inside (default) or by syscall time under",
    )


def run(ns: argparse.Namespace, env: dict[str, str]) -> int:
    action = ns.action
    if action == "import":
        return _import(ns, env)
    if action == "export":
        return _export(ns)
    if action == "manifest":
        return _manifest(ns)
    if action == "top":
        return _top(ns)
    raise UsageError(f"decisions: unknown action {action!r}")


# --------------------------------------------------------------------------- import


def _import(ns: argparse.Namespace, env: dict[str, str]) -> int:
    decisions, counters = import_dir(ns.dir)
    base = os.path.basename(os.path.normpath(os.path.abspath(ns.dir)))
    if base == ".ruchy":
        base = os.path.basename(os.path.dirname(os.path.normpath(os.path.abspath(ns.dir))))
    base = base or "decisions"
    trace_id = new_trace_id()
    out = ns.output or default_trace_path(output_dir(env, ns.output_dir), base, trace_id)
    ids = SpanIds(new_nonce())
    root_id = ids.make(0, 0, 0)
    resource: Attributes = dict(resource_from_env(env, base))
    start = min((d.start_ns for d in decisions), default=0)
    end = max((d.end_ns for d in decisions), default=0)
    root = Span(
        trace_id=trace_id,
        span_id=root_id,
        parent_id=0,
        name=base,
        start_ns=start,
        end_ns=end,
        kind=SpanKind.INTERNAL,
        attributes={
            "decision.count": counters.decisions,
            "decision.dropped": 0,
            "decision.malformed": counters.malformed,
            "sysspan.decisions.source": counters.files,
        },
    )

    def spans() -> Iterator[Span]:
        yield root
        for seq, d in enumerate(decisions, 1):
            yield decision_span(
                d, trace_id=trace_id, span_id=ids.make(0, 0, seq), parent_id=root_id
            )

    try:
        with private_open(out, "w", encoding="utf-8", errors="backslashreplace") as fh:
            batch: list[Span] = []
            for span in spans():
                batch.append(span)
                if len(batch) >= _LINE_SPANS:
                    fh.write(
                        encode_line(ResourceSpans(resource, batch, "sysspan", __version__)) + "\n"
                    )
                    batch = []
            if batch:
                fh.write(encode_line(ResourceSpans(resource, batch, "sysspan", __version__)) + "\n")
    except OSError as exc:
        raise TraceFileError(f"{out}: cannot write ({exc.strerror or exc})") from None
    print(f"sysspan: {counters.summary()}", file=sys.stderr)
    print(f"sysspan: trace {trace_id:032x} written to {out}", file=sys.stderr)
    return 1 if not decisions and counters.malformed else 0


# --------------------------------------------------------------------------- reading traces


def _spans(files: list[str]) -> Iterator[Span]:
    """Every span of ``files`` (a directory stands for its ``*.jsonl`` files, spools left
    out, as for ``stats`` and ``report``)."""
    paths = expand_inputs(files)
    for path in paths:
        check_trace_file(path)
    for path in paths:
        for batch in iter_trace_file(path):
            yield from batch.spans


def _decision_spans(files: list[str]) -> Iterator[tuple[Span, Decision]]:
    for span in _spans(files):
        if span.role == DECISION:
            d = span_to_decision(span)
            if d is not None:
                yield span, d


def _export(ns: argparse.Namespace) -> int:
    writer = DecisionWriter(ns.output, transpiler_version=f"sysspan {__version__}")
    try:
        for _span, d in _decision_spans(ns.files):
            writer.add(d)
    except BaseException:
        writer.abort()
        raise
    dpath, mpath = writer.close()
    print(f"sysspan: {writer.count} decisions written to {dpath} and {mpath}", file=sys.stderr)
    return 0


@dataclass
class _Row:
    name: str
    source: str
    count: int = 0
    total_ns: int = 0
    syscalls: int = 0
    syscall_ns: int = 0


def _source(d: Decision) -> str:
    if not d.file and not d.line:
        return "-"
    return f"{d.file or '?'}:{d.line}"


def _manifest(ns: argparse.Namespace) -> int:
    rows: dict[str, _Row] = {}
    for span, d in _decision_spans(ns.files):
        key = str(span.attributes.get("decision.id") or d.id_hex)
        row = rows.get(key)
        if row is None:
            row = rows[key] = _Row(d.qualified_name, _source(d))
        row.count += 1
    if not rows:
        print(f"sysspan: no decision spans in {', '.join(ns.files)}", file=sys.stderr)
        return 0
    ordered = sorted(rows.items(), key=lambda kv: (-kv[1].count, kv[1].name, kv[0]))
    wname = max(len("category::name"), *(len(r.name) for _, r in ordered))
    wsrc = max(len("source"), *(len(r.source) for _, r in ordered))
    print(f"{'decision id':<16}  {'category::name':<{wname}}  {'source':<{wsrc}}  {'count':>8}")
    for key, r in ordered:
        print(f"{key:<16}  {r.name:<{wname}}  {r.source:<{wsrc}}  {r.count:>8}")
    return 0


def _ms(ns_: int) -> str:
    return f"{ns_ / 1e6:.3f}"


def _top(ns: argparse.Namespace) -> int:
    if ns.limit < 0:
        raise UsageError("decisions top: -n must not be negative")
    rows: dict[str, _Row] = {}
    span_key: dict[int, str] = {}  # decision span id -> decision id
    under: dict[int, list[int]] = {}  # parent span id -> [syscall count, syscall ns]
    for span in _spans(ns.files):
        attrs = span.attributes
        role = span.role
        if role == SYSCALL:
            acc = under.get(span.parent_id)
            if acc is None:
                acc = under[span.parent_id] = [0, 0]
            acc[0] += 1
            acc[1] += max(0, span.end_ns - span.start_ns)
            continue
        d = span_to_decision(span) if role == DECISION else None
        if d is None:
            continue
        key = str(attrs.get("decision.id") or d.id_hex)
        row = rows.get(key)
        if row is None:
            row = rows[key] = _Row(d.qualified_name, _source(d))
        row.count += 1
        row.total_ns += d.duration_ns
        span_key[span.span_id] = key
    if not rows:
        print(f"sysspan: no decision spans in {', '.join(ns.files)}", file=sys.stderr)
        return 0
    for span_id, key in span_key.items():
        acc = under.get(span_id)
        if acc is not None:
            rows[key].syscalls += acc[0]
            rows[key].syscall_ns += acc[1]
    if ns.sort == "syscalls":
        order = sorted(rows.items(), key=lambda kv: (-kv[1].syscall_ns, -kv[1].total_ns, kv[0]))
    else:
        order = sorted(rows.items(), key=lambda kv: (-kv[1].total_ns, -kv[1].syscall_ns, kv[0]))
    shown = order[: ns.limit] if ns.limit else order
    wname = max(len("category::name"), *(len(r.name) for _, r in shown))
    print(
        f"{'decision id':<16}  {'count':>8}  {'total ms':>11}  {'mean ms':>9}  {'syscalls':>9}  "
        f"{'syscall ms':>11}  {'category::name':<{wname}}  source"
    )
    for key, r in shown:
        mean = r.total_ns // r.count if r.count else 0
        print(
            f"{key:<16}  {r.count:>8}  {_ms(r.total_ns):>11}  {_ms(mean):>9}  {r.syscalls:>9}  "
            f"{_ms(r.syscall_ns):>11}  {r.name:<{wname}}  {r.source}"
        )
    if len(shown) < len(order):
        print(f"... {len(order) - len(shown)} more (-n 0 shows all)")
    return 0


class Decisions:
    name = "decisions"
    help = "import, export and rank recorded decisions"
    description = (
        "Tools for decision spans: import/export the Ruchy/renacer decision files, "
        "list the decisions of a trace, rank them by the time and syscall time they caused."
    )
    prepare_parser = staticmethod(prepare_parser)
    run = staticmethod(run)


COMMAND = Decisions()
