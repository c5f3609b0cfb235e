"""Reading OTLP JSON lines trace files (what the embedded default sink and the spool write).

Streams line by line so that ``replay``, ``report`` and ``stats`` work on traces of any
length in constant memory. ``.gz`` files are read transparently.
"""

from __future__ import annotations

import gzip
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, TypeVar

from sysspan.errors import TraceFileError
from sysspan.exporters.otlp_json_fast import SpanRecord, decode_line_fast, span_facts, span_records
from sysspan.exporters.otlp_json_typed import typed_span_facts, typed_span_records
from sysspan.model import ResourceSpans, Span, SpanKind, StatusCode


def _open(path: str) -> IO[bytes]:
    try:
        if not path.endswith(".gz"):
            return open(path, "rb")  # noqa: SIM115 - the caller closes it
        handle = gzip.open(path, "rb")  # noqa: SIM115 - the caller closes it
        try:
            handle.peek(1)  # type: ignore[union-attr]  # a non-gzip file fails here, named
        except BaseException:
            handle.close()
            raise
        return handle  # type: ignore[return-value]
    except FileNotFoundError:
        raise TraceFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise TraceFileError(f"{path}: is a directory, expected an OTLP JSON lines file") from None
    except PermissionError:
        raise TraceFileError(f"{path}: permission denied") from None
    except (OSError, EOFError) as exc:
        raise TraceFileError(f"{path}: cannot read ({exc})") from None


def check_trace_file(path: str | os.PathLike[str]) -> None:
    """Raise ``TraceFileError`` now if ``path`` cannot be opened (before any work starts)."""
    _open(os.fspath(path)).close()


_CUT_WARNED: set[tuple[str, int]] = set()
T = TypeVar("T")


def _warn(msg: str) -> None:
    print(f"sysspan: warning: {msg}", file=sys.stderr)


def _raw_lines(name: str) -> Iterator[tuple[int, int, bytes]]:
    """``(byte offset, line number, bytes)`` of every non-blank line of the file."""
    handle = _open(name)
    with handle:
        lineno = 0
        while True:
            offset = handle.tell()
            try:
                raw = handle.readline()
            except (OSError, EOFError) as exc:
                raise TraceFileError(f"{name}:{lineno + 1}: cannot read ({exc})") from None
            if not raw:
                return
            lineno += 1
            if not raw.isspace():
                yield offset, lineno, raw


def _decode(raw: bytes, lineno: int, name: str) -> list[ResourceSpans] | None:
    """One line's batches; None for a cut-off last line (after one warning)."""
    try:
        try:
            return decode_line_fast(raw, lineno, name)
        except UnicodeDecodeError as exc:
            raise TraceFileError(f"{name}:{lineno}: not UTF-8 text ({exc.reason})") from None
    except TraceFileError:
        if raw.endswith(b"\n"):
            raise
        if (name, lineno) in _CUT_WARNED:  # a second pass over the file (report --perfetto)
            return None
        _CUT_WARNED.add((name, lineno))
        _warn(
            f"{name}:{lineno}: the last line is cut off ({len(raw)} bytes without a "
            "newline, a write that never finished); ignored, the rest is used"
        )
        return None


def iter_trace_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, list[ResourceSpans]]]:
    """``(line number, batches)`` for every non-blank line; what ``replay`` uses to keep
    each line's own resource and report where a problem is.

    A final line without its newline that does not parse is what a writer that died (disk
    full, killed) leaves behind: it is skipped with one warning and the rest is used. Any
    other bad line raises ``TraceFileError``.
    """
    name = os.fspath(path)
    for _offset, lineno, raw in _raw_lines(name):
        batches = _decode(raw, lineno, name)
        if batches is None:
            return
        yield lineno, batches


def _lines_fast_or_decoded(
    path: str | os.PathLike[str],
    fast: Callable[[bytes], T | None],
    decoded: Callable[[list[ResourceSpans]], T],
) -> Iterator[T]:
    """Per line, ``fast(raw)``, or, when that gives None (an unusual or bad line),
    ``decoded(batches)`` of the full decoder's result; same errors and the same cut-off
    last line handling as :func:`iter_trace_lines`."""
    name = os.fspath(path)
    for _offset, lineno, raw in _raw_lines(name):
        got = fast(raw)
        if got is not None:
            yield got
            continue
        batches = _decode(raw, lineno, name)
        if batches is None:
            return
        yield decoded(batches)


def iter_span_facts(
    path: str | os.PathLike[str], wanted: frozenset[str]
) -> Iterator[list[tuple[int, str, dict[str, Any]]]]:
    """Per line, ``(trace id, name, the attributes named in wanted)`` of each span (see
    :func:`span_facts`) without building spans where the line allows; same errors and
    the same cut-off last line handling as :func:`iter_trace_lines`."""

    def decoded(batches: list[ResourceSpans]) -> list[tuple[int, str, dict[str, Any]]]:
        return [
            (span.trace_id, span.name, {k: v for k, v in span.attributes.items() if k in wanted})
            for batch in batches
            for span in batch.spans
        ]

    def fast(raw: bytes) -> list[tuple[int, str, dict[str, Any]]] | None:
        facts = typed_span_facts(raw, wanted)
        return facts if facts is not None else span_facts(raw, wanted)

    return _lines_fast_or_decoded(path, fast, decoded)


def span_record(span: Span) -> SpanRecord:
    """A decoded span as the :data:`SpanRecord` that :func:`iter_span_records` yields."""
    return (
        span.trace_id, span.span_id, span.parent_id, span.name, span.start_ns, span.end_ns,
        span.status == StatusCode.ERROR, span.attributes,
    )  # fmt: skip


def iter_span_records(path: str | os.PathLike[str]) -> Iterator[list[tuple[Any, list[SpanRecord]]]]:
    """Per line, ``(resource service.name or None, span records)`` per scope (see
    :func:`span_records`), without building spans where the line allows; same errors and
    the same cut-off last line handling as :func:`iter_trace_lines`."""

    def decoded(batches: list[ResourceSpans]) -> list[tuple[Any, list[SpanRecord]]]:
        return [(b.resource.get("service.name"), [span_record(s) for s in b.spans]) for b in batches]

    def fast(raw: bytes) -> list[tuple[Any, list[SpanRecord]]] | None:
        records = typed_span_records(raw)
        return records if records is not None else span_records(raw)

    return _lines_fast_or_decoded(path, fast, decoded)


def expand_inputs(paths: Iterable[str], *, include_spools: bool = False) -> list[str]:
    """The trace files named by ``paths``: a directory stands for every ``*.jsonl`` (and
    ``*.jsonl.gz``) file directly inside it, in name order; spool files (``*-spool-*``,
    what an unreachable collector left) only with ``include_spools``. Raises
    ``TraceFileError`` for a directory with no trace file."""
    out: list[str] = []
    for path in paths:
        if not os.path.isdir(path):
            out.append(path)
            continue
        try:
            names = sorted(os.listdir(path))
        except OSError as exc:
            raise TraceFileError(f"{path}: cannot list ({exc.strerror or exc})") from None
        found = [
            os.path.join(path, n)
            for n in names
            if n.endswith((".jsonl", ".jsonl.gz"))
            and (include_spools or "-spool-" not in n)
            and os.path.isfile(os.path.join(path, n))
        ]
        if not found:
            spools = "" if include_spools else " (spool files are left out without --include-spools)"
            raise TraceFileError(f"{path}: no *.jsonl trace files in this directory{spools}")
        out.extend(found)
    return out


def iter_trace_file(path: str | os.PathLike[str]) -> Iterator[ResourceSpans]:
    """Every ``ResourceSpans`` in an OTLP JSON lines file, in file order, one line at a time.

    Raises ``TraceFileError`` naming the file (and line) when the file is missing,
    unreadable, or a line is not an OTLP/JSON trace request.
    """
    for _lineno, batches in iter_trace_lines(path):
        yield from batches


def count_spans(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Counts for ``sysspan stats``, in one streaming pass.

    Keys: ``total`` spans, ``lines`` (requests), ``traces`` (distinct trace ids),
    ``errors`` (status ERROR), ``by_name_kind`` ``{(name, kind name): count}``,
    ``by_name`` ``{name: count}``, ``duration_ns_by_name`` ``{name: summed duration}``,
    ``first_start_ns`` / ``last_end_ns`` (0 when there are no spans), ``services``
    ``{service.name: span count}``.
    """
    total = 0
    lines = 0
    errors = 0
    traces: set[int] = set()
    by_name_kind: Counter[tuple[str, str]] = Counter()
    by_name: Counter[str] = Counter()
    duration: Counter[str] = Counter()
    services: Counter[str] = Counter()
    first = 0
    last = 0
    for _lineno, batches in iter_trace_lines(path):
        lines += 1
        for batch in batches:
            services[str(batch.resource.get("service.name", ""))] += len(batch.spans)
            for span in batch.spans:
                total += 1
                traces.add(span.trace_id)
                kind = span.kind.name if isinstance(span.kind, SpanKind) else str(span.kind)
                by_name_kind[(span.name, kind)] += 1
                by_name[span.name] += 1
                duration[span.name] += max(0, span.end_ns - span.start_ns)
                if span.status == StatusCode.ERROR:
                    errors += 1
                if span.start_ns and (not first or span.start_ns < first):
                    first = span.start_ns
                if span.end_ns > last:
                    last = span.end_ns
    return {
        "total": total,
        "lines": lines,
        "traces": len(traces),
        "errors": errors,
        "by_name_kind": dict(by_name_kind),
        "by_name": dict(by_name),
        "duration_ns_by_name": dict(duration),
        "first_start_ns": first,
        "last_end_ns": last,
        "services": dict(services),
    }


def add_trace_files(parser: Any, metavar: str = "TRACE") -> None:
    """The ``files`` positional of the commands that read trace files."""
    parser.add_argument(
        "files",
        nargs="+",
        metavar=metavar,
        help="OTLP JSON lines file(s), .gz accepted, or directories of them",
    )


def add_spool_flag(parser: Any) -> None:
    """``--include-spools`` for the commands that take directories of trace files."""
    parser.add_argument(
        "--include-spools",
        action="store_true",
        help="with a directory, also read its spool files (*-spool-*.jsonl)",
    )
