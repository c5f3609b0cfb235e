"""The one place that resolves configuration: flags > OTEL_* / SYSSPAN_* environment > defaults.

Every bad value raises ``ConfigError`` with the name of the flag or variable at fault, so the
CLI can print one clear line; where a bad telemetry variable must not stop the traced
command, the resolvers take a ``warnings`` list and fall back to the default instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from sysspan.errors import ConfigError
from sysspan.plainrecord import Record

PROTOCOLS = ("grpc", "http/protobuf", "http/json")
COMPRESSIONS = ("none", "gzip")
DEFAULT_OUTPUT_DIR = "sysspan-traces"


class OtlpSettings(Record):
    """Where and how spans are shipped over OTLP. ``endpoint`` is final (HTTP path included)."""

    __slots__ = _FIELDS = ("endpoint", "protocol", "headers", "timeout_s", "compression",
                           "insecure", "certificate")

    def __init__(self, endpoint: str, protocol: str = "http/protobuf",
                 headers: dict[str, str] | None = None, timeout_s: float = 10.0,
                 compression: str = "none", insecure: bool = False,
                 certificate: str | None = None) -> None:
        self.endpoint = endpoint
        self.protocol = protocol
        self.headers: dict[str, str] = {} if headers is None else headers
        self.timeout_s = timeout_s
        self.compression = compression
        self.insecure = insecure
        self.certificate = certificate


def _pick(flag: object, env: Mapping[str, str], *names: str) -> tuple[object, str]:
    """First set value among the flag and the named variables, with the name it came from."""
    if flag is not None:
        return flag, "flag"
    for name in names:
        value = env.get(name)
        if value is not None and value.strip() != "":
            return value.strip(), name
    return None, ""


def parse_key_values(text: str, source: str) -> dict[str, str]:
    """Parse the W3C-baggage-like ``k1=v1,k2=v2`` lists used by OTEL_*_HEADERS and
    OTEL_RESOURCE_ATTRIBUTES (values percent-decoded)."""
    from urllib.parse import unquote  # imports ipaddress: only runs that set these pay for it

    result: dict[str, str] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{source}: expected key=value pairs separated by commas, got {item!r}")
        result[unquote(key)] = unquote(value.strip())
    return result


def _parse_bool(value: object, source: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", ""):
        return False
    raise ConfigError(f"{source}: expected true or false, got {value!r}")


def _parse_timeout(value: object, source: str) -> float:
    """OTEL_*_TIMEOUT is milliseconds; the --otlp-timeout flag is seconds (a float)."""
    in_seconds = source.startswith("-")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: expected a number, got {value!r}") from None
    if number <= 0:
        raise ConfigError(f"{source}: must be positive, got {value!r}")
    if number != number or number == float("inf"):
        raise ConfigError(f"{source}: expected a finite number, got {value!r}")
    return number if in_seconds else number / 1000.0


def _check_url(url: str, source: str) -> str:
    from urllib.parse import urlsplit  # imports ipaddress: only runs with an endpoint pay for it

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{source}: expected an http:// or https:// URL, got {url!r}")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ConfigError(f"{source}: invalid port in {url!r}") from None
    return url


def resolve_otlp(
    env: Mapping[str, str],
    *,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: list[str] | None = None,
    timeout_s: float | None = None,
    warnings: list[str] | None = None,
) -> OtlpSettings | None:
    """OTLP settings from flags and the standard OTEL_EXPORTER_OTLP_* variables (compression,
    insecure and the CA certificate have no flags: only the variables set them).

    Returns None when no endpoint is configured: the embedded default (JSONL file) applies.
    When the protocol is not given, port 4317 means gRPC and anything else HTTP/protobuf,
    which is what a user pointing at a collector's default ports expects.

    A bad flag raises ``ConfigError``. A bad variable does too, unless ``warnings`` is
    given: then the message (naming the variable and what is used instead) is appended to
    it and the default applies, so a telemetry setting never stops the traced command.
    """

    def lenient(exc: ConfigError, instead: str) -> None:
        if warnings is None:
            raise exc
        warnings.append(f"{exc}; {instead}")

    traces_ep = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    generic_ep = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if endpoint is not None:
        url, source, signal_specific = endpoint, "--otlp-endpoint", False
    elif traces_ep:
        url, source, signal_specific = traces_ep, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", True
    elif generic_ep:
        url, source, signal_specific = generic_ep, "OTEL_EXPORTER_OTLP_ENDPOINT", False
    else:
        return None
    from urllib.parse import urlsplit  # here, not at the top: see _check_url

    try:
        _check_url(url, source)
    except ConfigError as exc:
        if endpoint is not None:
            raise
        lenient(exc, "ignored: spans go to the JSONL file")
        return None

    proto, proto_src = _pick(
        protocol, env, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"
    )
    default_proto = "grpc" if urlsplit(url).port == 4317 else "http/protobuf"
    if proto is None:
        proto = default_proto
    elif proto not in PROTOCOLS:
        where = "--otlp-protocol" if proto_src == "flag" else proto_src
        bad = ConfigError(f"{where}: expected one of {', '.join(PROTOCOLS)}, got {proto!r}")
        if proto_src == "flag":
            raise bad
        lenient(bad, f"using {default_proto}")
        proto = default_proto

    if proto != "grpc" and not signal_specific:
        # The generic endpoint (and the flag) name the base URL; the signal path is appended.
        # A URL that already ends in /v1/traces is taken as the full traces URL.
        if not url.rstrip("/").endswith("/v1/traces"):
            url = url.rstrip("/") + "/v1/traces"

    hdrs: dict[str, str] = {}
    for name in ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"):
        if env.get(name):
            try:
                hdrs.update(parse_key_values(env[name], name))
            except ConfigError as exc:
                lenient(exc, "the variable is ignored")
    for item in headers or []:
        hdrs.update(parse_key_values(item, "--otlp-header"))

    tmo, tmo_src = _pick(
        timeout_s, env, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"
    )
    timeout = 10.0
    if tmo is not None:
        try:
            timeout = _parse_timeout(tmo, "--otlp-timeout" if tmo_src == "flag" else tmo_src)
        except ConfigError as exc:
            if tmo_src == "flag":
                raise
            lenient(exc, "using 10 s")
    comp, comp_src = _pick(
        None, env, "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION"
    )
    if comp is not None and comp not in COMPRESSIONS:
        lenient(
            ConfigError(f"{comp_src}: expected one of {', '.join(COMPRESSIONS)}, got {comp!r}"),
            "sending uncompressed",
        )
        comp = None
    ins, ins_src = _pick(None, env, "OTEL_EXPORTER_OTLP_TRACES_INSECURE", "OTEL_EXPORTER_OTLP_INSECURE")
    is_insecure = urlsplit(url).scheme == "http"
    if ins is not None:
        try:
            is_insecure = _parse_bool(ins, ins_src)
        except ConfigError as exc:
            lenient(exc, "deciding from the URL scheme")
    cert, cert_src = _pick(None, env, "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE")
    if cert is not None and not os.path.isfile(str(cert)):
        lenient(ConfigError(f"{cert_src}: no such file {cert!r}"), "using the system's CA certificates")
        cert = None

    return OtlpSettings(
        endpoint=url,
        protocol=str(proto),
        headers=hdrs,
        timeout_s=timeout,
        compression=str(comp) if comp is not None else "none",
        insecure=is_insecure,
        certificate=str(cert) if cert is not None else None,
    )


def resource_from_env(
    env: Mapping[str, str], executable_name: str, warnings: list[str] | None = None
) -> dict[str, str]:
    """OTEL_RESOURCE_ATTRIBUTES, then OTEL_SERVICE_NAME (which wins for service.name),
    else the executable name. With ``warnings``, a malformed OTEL_RESOURCE_ATTRIBUTES item
    is skipped and named there instead of raising ``ConfigError``."""
    attrs: dict[str, str] = {}
    raw = env.get("OTEL_RESOURCE_ATTRIBUTES", "")
    for item in raw.split(",") if raw.strip() else ():
        try:
            attrs.update(parse_key_values(item, "OTEL_RESOURCE_ATTRIBUTES"))
        except ConfigError as exc:
            if warnings is None:
                raise
            warnings.append(f"{exc}; that item is ignored")
    service = env.get("OTEL_SERVICE_NAME", "").strip()
    if service:
        attrs["service.name"] = service
    attrs.setdefault("service.name", executable_name)
    return attrs


def output_dir(env: Mapping[str, str], flag: str | None = None) -> str:
    """Directory for the embedded default JSONL files (``--output-dir`` > SYSSPAN_OUTPUT_DIR)."""
    value, _ = _pick(flag, env, "SYSSPAN_OUTPUT_DIR")
    return str(value) if value is not None else DEFAULT_OUTPUT_DIR


def env_warnings(env: Mapping[str, str]) -> list[str]:
    """Variables the trace command does not read itself but a user may expect it to: a bad
    value is named (the traced program's decision API would silently ignore it)."""
    from sysspan.decisions.sampling import parse_ratio

    out = []
    raw = env.get("SYSSPAN_DECISION_SAMPLE", "").strip()
    if raw:
        try:
            parse_ratio(raw, "SYSSPAN_DECISION_SAMPLE")
        except ValueError as exc:
            out.append(f"{exc}; ignored: every decision is kept (use --decision-sample RATIO)")
    return out
