"""strace's ``-c`` table: % time, seconds, usecs/call, calls, errors, syscall.

Times are wall-clock latencies from syscall entry to exit as seen by the tracer (what
strace prints with ``-c -w``), so they include the tracer's own stop overhead.
"""

from __future__ import annotations

from collections.abc import Mapping

TYPE_CHECKING = False

if TYPE_CHECKING:  # an interface for mypy; nothing needs it at run time
    from typing import Protocol

    class _Stat(Protocol):
        calls: int
        errors: int
        total_ns: int


_RULE = "------ ----------- ----------- --------- --------- ----------------"


def render_summary(stats: Mapping[str, _Stat]) -> str:
    total_ns = sum(s.total_ns for s in stats.values())
    total_calls = sum(s.calls for s in stats.values())
    total_errors = sum(s.errors for s in stats.values())
    lines = ["% time     seconds  usecs/call     calls    errors syscall", _RULE]
    rows = sorted(stats.items(), key=lambda kv: (-kv[1].total_ns, -kv[1].calls, kv[0]))
    for name, s in rows:
        pct = 100.0 * s.total_ns / total_ns if total_ns else 0.0
        per_call = (s.total_ns // 1000) // s.calls if s.calls else 0
        errors = str(s.errors) if s.errors else ""
        lines.append(
            f"{pct:6.2f} {s.total_ns / 1e9:11.6f} {per_call:11d} {s.calls:9d} {errors:>9} {name}"
        )
    lines.append(_RULE)
    per_call = (total_ns // 1000) // total_calls if total_calls else 0
    errors = str(total_errors) if total_errors else ""
    lines.append(
        f"{100.0 if total_ns else 0.0:6.2f} {total_ns / 1e9:11.6f} {per_call:11d} "
        f"{total_calls:9d} {errors:>9} total"
    )
    return "\n".join(lines) + "\n"
