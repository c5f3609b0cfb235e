"""Which syscall spans each sink gets: the ``--syscall-spans`` and ``--span-budget`` options
and the sinks with that policy applied. Apart from ``budget.py`` (the ``BudgetSink`` that
enforces it), so a run whose sinks all take every span (the default JSONL file) does not
import the sink and its encoders.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

TYPE_CHECKING = False

if TYPE_CHECKING:
    from sysspan.exporters.base import Sink

MODES = ("all", "budget", "errors", "none")
DEFAULT_LIMIT = 10_000


def add_options(group: argparse._ArgumentGroup) -> None:
    """``--syscall-spans`` and ``--span-budget`` on the trace command's OpenTelemetry group."""
    group.add_argument(
        "--syscall-spans",
        choices=MODES,
        metavar="{all,budget,errors,none}",
        help="which syscall spans a sink gets (default: budget for OTLP, all for the JSONL "
        "file; given explicitly, it applies to every sink); the rest is summarised on the "
        "process spans",
    )
    group.add_argument(
        "--span-budget",
        type=_budget,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"at most N syscall spans per trace in budget mode (default {DEFAULT_LIMIT:,}; "
        "the trace also stays under 4 MB encoded)",
    )


def _budget(text: str) -> int:
    try:
        value = int(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--span-budget: expected a number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("--span-budget: must not be negative")
    return value


def apply_budget(
    sinks: Sequence[Sink], ns: argparse.Namespace, run_span_id: int
) -> list[Sink]:
    """The sinks with the span policy in front: the OTLP sink gets the budget unless
    ``--syscall-spans`` says otherwise; an explicit mode applies to every sink."""
    explicit = getattr(ns, "syscall_spans", None)
    limit = getattr(ns, "span_budget", DEFAULT_LIMIT)
    out: list[Sink] = []
    for sink in sinks:
        mode = explicit or ("budget" if getattr(sink, "name", "") == "otlp" else "all")
        if mode == "all":
            out.append(sink)
        else:
            from sysspan.exporters.budget import BudgetSink

            out.append(BudgetSink(sink, run_span_id=run_span_id, mode=mode, limit=limit))
    return out
