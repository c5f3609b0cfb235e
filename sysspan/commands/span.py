"""``sysspan span``: record one span with explicit times, under the current trace context.

What for: CI pipelines and scripts whose work starts in one step and ends in another (a
pipeline span around all jobs, a "deploy" span around steps that cannot share a process).
The span joins the current trace like ``sysspan -- CMD`` does (``--traceparent`` >
``--tp-carrier`` > ``TRACEPARENT``) and goes to the same sinks (``--trace-file``,
``--otlp-endpoint`` / ``OTEL_EXPORTER_OTLP_*``, else ``./sysspan-traces/``).

Three ways to use it:

* one finished span: ``sysspan span --name checkout --start 2024-05-01T12:00:00.25Z
  --end now``; ``--print-traceparent`` prints ``TRACEPARENT=<its context>`` so later work can
  nest under it;
* a span that starts now and ends in a later step (``--open`` … ``--close``)::

      sysspan span --open --name pipeline >> "$GITHUB_ENV"      # step 1 (records nothing)
      sysspan --no-syscalls -- make test                         # steps: children of it
      sysspan span --close --name pipeline --status ok           # last step: recorded

  ``--open`` prints ``TRACEPARENT`` (the open span, so every later step is its child),
  ``SYSSPAN_SPAN_START`` and ``SYSSPAN_SPAN_PARENT`` as ``KEY=value`` lines (for
  ``$GITHUB_ENV``, or ``export $(sysspan span --open ...)`` in a shell); ``--close`` reads
  them back from the environment and records the span with the same id. Steps that cannot share an environment use files:
  ``--open --state pipeline.env --tp-carrier ctx.env`` writes the state to its own file and
  the open span's context to the carrier (which each traced step then rewrites with its
  own run span, chaining the steps); ``--close --state pipeline.env`` ends it;
* a fixed id (``--span-id``) for tools that pre-allocate ids themselves.

Times are RFC 3339 (``2024-05-01T12:00:00.123456789+02:00``, fractional seconds to the
nanosecond), integers in epoch nanoseconds, an integer with a unit (``1714564800s``,
``...ms``, ``...us``, ``...ns``), or ``now``.
"""

from __future__ import annotations

import argparse
import calendar
import os
import re
import sys
import time
from datetime import date

from sysspan.errors import ConfigError, PropagationError, UsageError
from sysspan.exporters.sinks import build_sinks
from sysspan.fsutil import write_private_file
from sysspan.ids import new_nonce, new_trace_id
from sysspan.model import Span, SpanKind, StatusCode
from sysspan.otlp_flags import add_otlp_flags
from sysspan.propagation.carriers import (
    TRACEPARENT,
    TRACESTATE,
    context_lines,
    read_carrier_file,
    resolve_incoming,
    write_carrier_file,
)
from sysspan.propagation.detect import resource_for
from sysspan.propagation.traceparent import (
    NEW_TRACE_FLAGS,
    InvalidTraceContext,
    SpanContext,
    parse_traceparent,
)
from sysspan.propagation.tracestate import TraceState
from sysspan.redact import redact
from sysspan.span_roles import ROLE_KEY, STEP

SPAN_START = "SYSSPAN_SPAN_START"
SPAN_PARENT = "SYSSPAN_SPAN_PARENT"

KINDS = {
    "internal": SpanKind.INTERNAL,
    "server": SpanKind.SERVER,
    "client": SpanKind.CLIENT,
    "producer": SpanKind.PRODUCER,
    "consumer": SpanKind.CONSUMER,
}
STATUSES = {"unset": StatusCode.UNSET, "ok": StatusCode.OK, "error": StatusCode.ERROR}

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_EPOCH = re.compile(r"(\d+)(ns|us|µs|ms|s)?")
# An epoch-ns integer before this (1970-01-01T00:16:40Z) is almost surely seconds or ms.
_SMALLEST_PLAUSIBLE_NS = 10**12
_ATTR_TYPES = ("str", "string", "int", "float", "double", "bool")


# --------------------------------------------------------------------------- parsing


def parse_time(text: str, flag: str, now_ns: int | None = None) -> int:
    """Epoch nanoseconds from RFC 3339, epoch digits (ns, or with an s/ms/us/ns unit) or
    ``now``. Raises ``UsageError`` naming ``flag`` for anything else."""
    value = text.strip()
    if value.lower() == "now":
        return time.time_ns() if now_ns is None else now_ns
    m = _EPOCH.fullmatch(value)
    if m:
        number, unit = int(m.group(1)), m.group(2)
        if unit is None and number < _SMALLEST_PLAUSIBLE_NS:
            raise UsageError(
                f"{flag} {text!r}: a bare integer is epoch nanoseconds, and this is in 1970; "
                "for seconds write it with a unit (e.g. 1714564800s), or use $(date +%s%N)"
            )
        return number * _UNITS[unit or "ns"]
    m = _RFC3339.fullmatch(value)
    if not m:
        raise UsageError(
            f"{flag} {text!r}: expected RFC 3339 (2024-05-01T12:00:00.5Z, "
            "2024-05-01T14:00:00+02:00), epoch nanoseconds, or 'now'"
        )
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    try:
        date(year, month, day)
    except ValueError as exc:
        raise UsageError(f"{flag} {text!r}: {exc}") from None
    if hour > 23 or minute > 59 or second > 60:  # :60 is a leap second (RFC 3339 §5.6)
        raise UsageError(f"{flag} {text!r}: time of day out of range")
    fraction = (m.group(7) or "")[:9].ljust(9, "0")
    offset = 0
    if m.group(9):
        off_h, off_m = int(m.group(10)), int(m.group(11))
        if off_h > 23 or off_m > 59:
            raise UsageError(f"{flag} {text!r}: UTC offset out of range")
        offset = (off_h * 60 + off_m) * 60 * (1 if m.group(9) == "+" else -1)
    seconds = calendar.timegm((year, month, day, hour, minute, min(second, 59), 0, 0, 0))
    seconds += (second == 60) - offset
    total = seconds * 1_000_000_000 + int(fraction)
    if total < 0:
        raise UsageError(f"{flag} {text!r}: before 1970-01-01T00:00:00Z")
    return total


def parse_attr(text: str) -> tuple[str, object]:
    """``key=value`` (a string) or ``key:TYPE=value`` with TYPE int, float, bool or str."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UsageError(f"--attr {text!r}: expected key=value (or key:int=3, key:bool=true)")
    name, colon, kind = key.rpartition(":")
    if not colon or kind not in _ATTR_TYPES:
        return key, value
    if not name:
        raise UsageError(f"--attr {text!r}: empty key")
    try:
        if kind == "int":
            return name, int(value)
        if kind in ("float", "double"):
            return name, float(value)
        if kind == "bool":
            low = value.strip().lower()
            if low not in ("true", "false", "1", "0"):
                raise ValueError(value)
            return name, low in ("true", "1")
    except ValueError:
        raise UsageError(f"--attr {text!r}: {value!r} is not a valid {kind}") from None
    return name, value


def parse_span_id(text: str, flag: str) -> int:
    value = text.strip()
    if not re.fullmatch(r"[0-9a-f]{16}", value) or int(value, 16) == 0:
        raise UsageError(f"{flag} {text!r}: expected 16 lowercase hex digits, not all zero")
    return int(value, 16)


# --------------------------------------------------------------------------- command line


def prepare_parser(p: argparse.ArgumentParser) -> None:
    p.epilog = (
        "Start in one step, end in another: 'sysspan span --open --name pipeline >> "
        "\"$GITHUB_ENV\"' prints TRACEPARENT (later steps become children of the open span) "
        "and the state that 'sysspan span --close --name pipeline' reads back to record it."
    )
    p.add_argument("--name", required=True, help="span name")
    p.add_argument("--start", metavar="TIME", help="start time (required unless --open or --close)")
    p.add_argument("--end", metavar="TIME", help="end time (required unless --open; --close defaults to now)")
    p.add_argument("--attr", action="append", default=[], metavar="K=V", help="attribute (repeatable); typed: K:int=3, K:float=0.5, K:bool=true")
    p.add_argument("--kind", choices=tuple(KINDS), default="internal", help="span kind (default internal)")
    p.add_argument("--status", choices=tuple(STATUSES), default="unset", help="span status (default unset)")
    p.add_argument("--status-message", default="", metavar="TEXT", help="status description (with --status error)")
    p.add_argument("--span-id", metavar="HEX", help="use this span id (16 hex digits) instead of a new one")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--open", action="store_true", help="start a span now (or at --start) that a later 'sysspan span --close' records; prints KEY=value lines")
    mode.add_argument("--close", action="store_true", help="record the span a previous --open started (reads TRACEPARENT, SYSSPAN_SPAN_START, SYSSPAN_SPAN_PARENT from --state FILE or the environment)")
    p.add_argument("--state", metavar="FILE", help="--open writes the open span's state to FILE (mode 0600), --close reads it back")
    p.add_argument("--print-traceparent", action="store_true", help="print TRACEPARENT=<the new span's context> on stdout")

    out = p.add_argument_group("output")
    dest = out.add_mutually_exclusive_group()
    dest.add_argument("--trace-file", metavar="FILE", help="append the span to this OTLP JSON lines file")
    add_otlp_flags(out, endpoint_group=dest)
    out.add_argument("--output-dir", metavar="DIR", help="directory for the default trace file")
    out.add_argument("--service-name", metavar="NAME", help="service.name (default: OTEL_SERVICE_NAME, else 'sysspan')")
    out.add_argument("-q", dest="quiet", action="count", default=0, help="quiet (-qq: not even where the span went)")

    pr = p.add_argument_group("propagation")
    pr.add_argument("--traceparent", metavar="TP", help="parent context (wins over --tp-carrier and TRACEPARENT); with --close: the open span's own context")
    pr.add_argument("--tp-carrier", metavar="FILE", help="read the parent context from FILE; --open also writes the open span's context to it")
    pr.add_argument("--tp-required", action="store_true", help="fail (exit 1) when no valid incoming context is found (not with --close)")
    pr.add_argument("--strict", action="store_true", help="exit 1 when the span could not be delivered (default: a warning)")


def _warn(msg: str) -> None:
    print(f"sysspan: warning: {msg}", file=sys.stderr)


def _read_state(path: str) -> dict[str, str]:
    """The ``KEY=value`` lines --open wrote (same syntax as a carrier file)."""
    if not os.path.exists(path):
        raise UsageError(f"--state {path}: no such file (written by 'sysspan span --open --state FILE')")
    try:
        return read_carrier_file(path)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("--tp-carrier", "--state", 1)) from None


def _saved(name: str, state: dict[str, str], env: dict[str, str]) -> str | None:
    for source in (state, env):
        value = source.get(name)
        if value is not None and value.strip():
            return value.strip()
    return None


def _open_span(ns: argparse.Namespace, env: dict[str, str]) -> tuple[SpanContext, SpanContext | None, str | None]:
    """--close: the open span's own context, its parent, and its saved start (if any).
    The span's context comes from --traceparent > --state FILE > TRACEPARENT."""
    state = _read_state(ns.state) if ns.state else {}
    raw = ns.traceparent or _saved(TRACEPARENT, state, env)
    where = "--traceparent" if ns.traceparent else (f"--state {ns.state}" if TRACEPARENT in state else TRACEPARENT)
    if not raw:
        raise UsageError(
            "--close: no open span: TRACEPARENT (from 'sysspan span --open', in the environment "
            "or in --state FILE) is not set"
        )
    try:
        ctx = parse_traceparent(raw)
    except InvalidTraceContext as exc:
        raise UsageError(f"--close: {where}: invalid traceparent {raw!r} ({exc})") from None
    tracestate = _saved(TRACESTATE, state, env)
    if tracestate:
        try:
            ctx = SpanContext(ctx.trace_id, ctx.span_id, ctx.flags, TraceState.parse(tracestate), True)
        except InvalidTraceContext:
            _warn(f"--close: ignoring invalid {TRACESTATE}")
    parent_hex = _saved(SPAN_PARENT, state, env)
    parent = None
    if parent_hex:
        parent = SpanContext(ctx.trace_id, parse_span_id(parent_hex, SPAN_PARENT), ctx.flags, ctx.tracestate, True)
    return ctx, parent, _saved(SPAN_START, state, env)


def _state_lines(ctx: SpanContext, start_ns: int, parent: SpanContext | None, baggage: str | None) -> list[str]:
    lines = context_lines(ctx, baggage)
    lines.append(f"{SPAN_START}={start_ns}")
    lines.append(f"{SPAN_PARENT}={parent.span_id_hex if parent else ''}")
    return lines


def _write_state_file(path: str, lines: list[str]) -> None:
    """--open --state FILE: the state lines, mode 0600, replaced atomically."""
    write_private_file(path, "\n".join(lines) + "\n", f"--state {path}")


def run(ns: argparse.Namespace, env: dict[str, str]) -> int:
    env = dict(env)
    if not ns.name.strip():
        raise UsageError("--name: must not be empty")
    now = time.time_ns()
    attrs = {ROLE_KEY: STEP, **redact(dict(parse_attr(a) for a in ns.attr))}
    span_id = parse_span_id(ns.span_id, "--span-id") if ns.span_id else None
    if ns.open and ns.end:
        raise UsageError("--open starts a span that a later --close ends: leave out --end")
    if not (ns.open or ns.close):
        if not ns.start:
            raise UsageError("--start is required (or use --open now and --close later)")
        if not ns.end:
            raise UsageError("--end is required (use --end now for the current time)")

    if ns.state and not (ns.open or ns.close):
        raise UsageError("--state goes with --open or --close")
    if ns.close:
        if ns.tp_carrier:
            raise UsageError(
                "--close reads the open span from --state FILE or the environment, not from "
                "--tp-carrier (traced steps rewrite the carrier with their own context)"
            )
        ctx, parent, saved_start = _open_span(ns, env)
        if ns.start is None and saved_start is None:
            raise UsageError(f"--close: {SPAN_START} is not set (printed by --open); or give --start")
        start = parse_time(ns.start or saved_start or "", "--start" if ns.start else SPAN_START, now)
        if span_id is not None and span_id != ctx.span_id:
            raise UsageError("--close: --span-id differs from the open span's id in TRACEPARENT")
        span_id = ctx.span_id
        trace_id, flags, tracestate = ctx.trace_id, ctx.flags, ctx.tracestate
        end = parse_time(ns.end or "now", "--end", now)
        baggage = None
    else:
        parent, baggage, warnings = resolve_incoming(ns.traceparent, ns.tp_carrier, env)
        for w in warnings:
            _warn(w)
        if parent is None and ns.tp_required:
            raise PropagationError(
                "--tp-required: no valid incoming trace context (TRACEPARENT, --traceparent or --tp-carrier)"
            )
        start = parse_time(ns.start or "now", "--start", now)
        end = parse_time(ns.end, "--end", now) if ns.end else start
        trace_id = parent.trace_id if parent else new_trace_id()
        flags = parent.flags if parent else NEW_TRACE_FLAGS
        tracestate = parent.tracestate if parent else None
        if span_id is None:
            span_id = new_nonce() or 1
    if end < start:
        raise UsageError(f"--end is {(start - end) / 1e9:.3f} s before --start")

    ctx = SpanContext(trace_id, span_id, flags, tracestate, remote=False)
    if ns.open:
        lines = _state_lines(ctx, start, parent, baggage)
        if ns.state:
            _write_state_file(ns.state, lines)
        if ns.tp_carrier:
            write_carrier_file(ns.tp_carrier, ctx, baggage)
        print("\n".join(lines))
        return 0

    state_header = tracestate.to_header() if tracestate is not None else ""
    if ns.status_message and ns.status != "error":
        _warn("--status-message is only recorded with --status error (OpenTelemetry rule)")
    span = Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=parent.span_id if parent else 0,
        name=ns.name,
        start_ns=start,
        end_ns=end,
        kind=KINDS[ns.kind],
        attributes=attrs,
        status=STATUSES[ns.status],
        status_message=ns.status_message if ns.status == "error" else "",
        trace_state=state_header,
        flags=flags & 0xFF,
    )
    resource = resource_for(env, "sysspan")
    if ns.service_name:
        resource["service.name"] = ns.service_name
    failed = False
    remote = (parent.span_id,) if parent is not None and parent.remote else ()
    for sink in build_sinks(ns, env, resource, "span", trace_id, remote):
        sink.export([span])
        report = sink.close()
        for msg in report.messages:
            if report.spans_failed:
                failed = True
                _warn(msg)
            elif ns.quiet < 2:
                print(f"sysspan: {msg}", file=sys.stderr)
    if ns.print_traceparent:
        print(f"{TRACEPARENT}={ctx.traceparent}")
    if ns.quiet == 0:
        print(f"sysspan: span {ns.name!r} {span_id:016x} in trace {trace_id:032x}", file=sys.stderr)
    return 1 if failed and ns.strict else 0


class SpanCommand:
    name = "span"
    help = "record one span with explicit start and end times (CI pipelines, scripts)"
    description = (
        "Record one span under the current trace context (--traceparent > "
        "--tp-carrier > TRACEPARENT). Times: RFC 3339 (2024-05-01T12:00:00.25Z), epoch "
        "nanoseconds (or with a unit: 1714564800s, ...ms, ...us), or 'now'."
    )
    prepare_parser = staticmethod(prepare_parser)
    run = staticmethod(run)


COMMAND = SpanCommand()
