"""Chrome trace-event JSON (the format Perfetto UI, chrome://tracing and speedscope open).

Every syscall, decision, process and run span becomes one ``"ph": "X"`` complete event on
its process (pid) and thread (tid) track, plus ``"M"`` metadata events naming processes and
threads. Timestamps are microseconds (fractional, so nanosecond precision survives) relative to
the first span of the trace, whose absolute time is kept in ``otherData.base_unix_ns``:
absolute epoch microseconds would lose the sub-microsecond digits in a JSON double.

Writing needs one event per span, so unlike the other reporters this one streams the trace
files of the :class:`~sysspan.reporters.model.Report` a second time; the report supplies what
a span does not carry itself (the pid of a syscall's process) and the time base.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

from sysspan.exporters.otlp_json_fast import SpanRecord
from sysspan.fsutil import private_open
from sysspan.reporters.model import Report
from sysspan.reporters.syscall_classes import syscall_class
from sysspan.span_roles import DECISION, PROCESS, RUN, SYSCALL, role_of
from sysspan.tracefile import iter_span_records

__all__ = ["write_perfetto"]

_ARG_MAX = 500


def _us(ns: int) -> float:
    return round(ns / 1000.0, 3)


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _ARG_MAX:
        return value[: _ARG_MAX - 1] + "…"
    if isinstance(value, (list, dict)):
        return _short(json.dumps(value, ensure_ascii=False, default=str))
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return value


def write_perfetto(
    report: Report,
    out_path: str | os.PathLike[str],
    records: Callable[[str | os.PathLike[str]], Iterable[SpanRecord]] | None = None,
) -> int:
    """Write ``{"traceEvents": [...]}`` for the spans of the report's files to ``out_path``.

    ``records`` reads a file's spans (default: the fast reader, without Span objects).
    Returns the number of events written.
    """
    base = report.start_ns
    names: dict[int, str] = {}
    threads: dict[tuple[int, int], str] = {}
    n = 0
    with private_open(out_path, "w", encoding="utf-8", errors="backslashreplace") as fh:
        fh.write('{"displayTimeUnit":"ns","otherData":')
        fh.write(json.dumps({"generator": "sysspan", "base_unix_ns": str(base)}))
        fh.write(',"traceEvents":[\n')
        sep = ""
        for path in report.files:
            for record in (records or _file_records)(path):
                event = _event(record, report, base, names, threads)
                if event is None:
                    continue
                fh.write(sep + json.dumps(event, ensure_ascii=False, separators=(",", ":")))
                sep = ",\n"
                n += 1
        for pid, name in sorted(names.items()):
            fh.write(sep + json.dumps(
                {"ph": "M", "name": "process_name", "pid": pid, "tid": pid, "args": {"name": name}}
            ))
            sep = ",\n"
            n += 1
        for (pid, tid), name in sorted(threads.items()):
            if not name:
                proc = names.get(pid, "").rsplit(" (", 1)[0] or f"pid {pid}"
                name = proc if tid == pid else f"{proc} thread {tid}"
            fh.write(sep + json.dumps(
                {"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": name}}
            ))
            sep = ",\n"
            n += 1
        fh.write("\n]}\n")
    return n


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _file_records(path: str | os.PathLike[str]) -> Iterable[SpanRecord]:
    for scopes in iter_span_records(path):
        for _service, records in scopes:
            yield from records


def _event(record: SpanRecord, report: Report, base: int, names: dict, threads: dict) -> dict | None:
    _trace_id, span_id, parent_id, name, start, end, _failed, attrs = record
    role = role_of(attrs)
    dur = max(0, end - start)
    ev: dict[str, Any] = {
        "ph": "X",
        "name": name,
        "ts": _us(start - base),
        "dur": _us(dur),
    }
    if role == SYSCALL:
        tid = _int(attrs.get("thread.id"), 0)
        pid = report.pid_of(parent_id)
        if pid is None:
            pid = tid
        # Categories are comma-separated: filter on "syscall" or on the class ("file"...).
        ev["cat"] = "syscall," + syscall_class(str(attrs.get("syscall.name", name)))
        args: dict[str, Any] = {}
        for key in ("syscall.args", "syscall.return", "error.type", "file.path",
                    "code.function.name", "code.file.path", "code.line.number",
                    "code.stacktrace"):  # fmt: skip
            if key in attrs:
                args[key] = _short(attrs[key])
        ev["args"] = args
        if (pid, tid) not in threads:
            threads[(pid, tid)] = ""  # named at the end, when process names are known
    elif role == DECISION:
        pid = report.pid_of(parent_id) or 0
        tid = _int(attrs.get("thread.id"), pid)
        ev["cat"] = "decision"
        ev["args"] = {k: _short(v) for k, v in attrs.items() if k.startswith(("decision.", "code."))}
    elif role == PROCESS:
        pid = _int(attrs.get("process.pid"), 0)
        tid = pid
        ev["cat"] = "process"
        ev["args"] = {k: _short(v) for k, v in attrs.items()}
        names[pid] = f"{name} ({pid})"
        threads.setdefault((pid, pid), "")
    elif role == RUN:
        pid = _int(attrs.get("process.pid"), 0)
        tid = 0
        ev["cat"] = "run"
        ev["args"] = {k: _short(v) for k, v in attrs.items()}
        names.setdefault(pid, f"{name} ({pid})")
        threads[(pid, 0)] = "sysspan run"
    else:
        return None
    ev["args"]["span.id"] = f"{span_id:016x}"  # to find the span in Jaeger/Tempo
    ev["pid"] = pid
    ev["tid"] = tid
    return ev
