"""Choosing the sinks of a run from flags and the OTEL_* environment (docs/architecture.md §8)."""

from __future__ import annotations

import argparse
from collections.abc import Collection, Mapping

from sysspan import __version__
from sysspan.config import output_dir
from sysspan.exporters.jsonl import JsonlSink, default_trace_path
from sysspan.exporters.wholeline import Fallback
from sysspan.otlp_flags import otlp_settings

TYPE_CHECKING = False

if TYPE_CHECKING:
    from sysspan.exporters.base import Sink


def build_sinks(
    ns: argparse.Namespace,
    env: Mapping[str, str],
    resource: dict,
    name: str,
    trace_id: int,
    remote_parent_ids: Collection[int] = (),
    fallback: Fallback | None = None,
    warnings: list[str] | None = None,
) -> list[Sink]:
    """The JSONL file when no OTLP endpoint is configured or ``--trace-file`` asks for one,
    and the OTLP sink (spooling to ``<output dir>/<name>-spool-...jsonl``) when one is.

    ``ns`` carries the shared flags: ``otlp_endpoint``, ``otlp_protocol``, ``otlp_header``,
    ``otlp_timeout``, ``output_dir`` and ``trace_file``. Files that
    cannot be written move to ``fallback`` (default: the fallback locations of ``env``).
    With ``warnings``, bad OTEL_* variables are named there instead of raising.
    """
    if fallback is None:
        fallback = Fallback(env)
    settings = otlp_settings(env, ns, warnings)
    out_dir = output_dir(env, ns.output_dir)
    sinks: list[Sink] = []
    if ns.trace_file or settings is None:
        path = ns.trace_file or default_trace_path(out_dir, name, trace_id)
        sinks.append(JsonlSink(path, resource, __version__, fallback))
    if settings is not None:
        # Imported here: the OTLP client stack is heavy and the default path never needs it.
        from sysspan.exporters.otlp import OtlpSink

        spool = default_trace_path(out_dir, name + "-spool", trace_id)
        sinks.append(
            OtlpSink(
                settings,
                resource,
                spool,
                __version__,
                remote_parent_ids=remote_parent_ids,
                fallback=fallback,
            )
        )
    return sinks
