"""The OTLP flags shared by the trace, ``span`` and ``replay`` commands (declared and read
back once, here)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from sysspan.config import PROTOCOLS, OtlpSettings, resolve_otlp


def positive_seconds(text: str) -> float:
    """argparse type of ``--otlp-timeout``: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def add_otlp_flags(
    group: argparse._ActionsContainer, endpoint_group: argparse._ActionsContainer | None = None
) -> None:
    """``--otlp-endpoint``, ``--otlp-protocol``, ``--otlp-header`` and ``--otlp-timeout``;
    ``--otlp-endpoint`` goes into ``endpoint_group`` when given (``span`` makes it exclusive
    with ``--trace-file``)."""
    (endpoint_group or group).add_argument("--otlp-endpoint", metavar="URL", help="ship spans over OTLP to URL (default: OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT)")
    group.add_argument("--otlp-protocol", choices=PROTOCOLS, help="OTLP protocol (default: OTEL_EXPORTER_OTLP_PROTOCOL, else grpc for port 4317, http/protobuf otherwise)")
    group.add_argument("--otlp-header", action="append", metavar="K=V", help="extra OTLP header/metadata, repeatable (adds to OTEL_EXPORTER_OTLP_HEADERS)")
    group.add_argument("--otlp-timeout", type=positive_seconds, metavar="SECONDS", help="OTLP export timeout per request, retries included (default: OTEL_EXPORTER_OTLP_TIMEOUT, else 10)")


def otlp_settings(
    env: Mapping[str, str], ns: argparse.Namespace, warnings: list[str] | None = None
) -> OtlpSettings | None:
    """:func:`sysspan.config.resolve_otlp` over the flags :func:`add_otlp_flags` declared."""
    return resolve_otlp(
        env,
        endpoint=ns.otlp_endpoint,
        protocol=ns.otlp_protocol,
        headers=ns.otlp_header,
        timeout_s=ns.otlp_timeout,
        warnings=warnings,
    )
