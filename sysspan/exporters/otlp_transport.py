"""OTLP transports: one per protocol (gRPC, HTTP), and the one retry skeleton they share.

A transport sends one already-encoded request and says how that attempt went
(:class:`Attempt`); :func:`with_retries` repeats attempts the way the OTLP exporter
specification asks: retryable failures again after an exponential backoff with jitter (or
the server's own delay: gRPC ``RetryInfo``, HTTP ``Retry-After``), all within the export
timeout. The wait between attempts is an ``Event.wait``: setting the event (the sink's
``shutdown()``) ends it at once, and the failure so far is returned.
"""

from __future__ import annotations

import gzip
import http.client
import random
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from sysspan import __version__
from sysspan.config import OtlpSettings

MAX_ATTEMPTS = 6
_PROBE_TIMEOUT_S = 5.0
_RETRYABLE_HTTP = frozenset({429, 502, 503, 504})
_GRPC_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_HTTP2_ANSWER = (
    "the endpoint answered in HTTP/2, as a gRPC receiver does: use --otlp-protocol grpc "
    "(or OTEL_EXPORTER_OTLP_PROTOCOL=grpc), or the receiver's HTTP port (usually 4318)"
)


@dataclass(slots=True, frozen=True)
class Attempt:
    """How one attempt went: ``reason`` is None when the request was accepted."""

    reason: str | None
    retryable: bool = False
    delay_s: float | None = None  # the server's own "retry after", when it gave one


def backoff(attempt: int) -> float:
    """Exponential backoff (0.5 s, 1 s, 2 s, ...) with ±50% jitter so many clients that failed
    together do not retry together."""
    return min(0.5 * 2**attempt, 16.0) * random.uniform(0.5, 1.5)


def with_retries(
    attempt: Callable[[float], Attempt],
    timeout_s: float,
    stop: threading.Event,
    max_attempts: int | None = MAX_ATTEMPTS,
) -> str | None:
    """Call ``attempt(seconds left)`` until it succeeds (None), fails for good, the attempts
    or ``timeout_s`` run out, or ``stop`` is set while waiting; the last reason otherwise."""
    deadline = time.monotonic() + timeout_s
    reason = "export failed"
    n = 0
    while True:
        remaining = deadline - time.monotonic()
        if n and remaining <= 0:
            return reason
        result = attempt(max(remaining, 0.1))
        if result.reason is None:
            return None
        reason = result.reason
        if not result.retryable:
            return reason
        wait = result.delay_s if result.delay_s is not None else backoff(n)
        n += 1
        if n == max_attempts or wait > deadline - time.monotonic():
            return reason
        if stop.wait(wait):
            return reason


# --------------------------------------------------------------------------- reachability


def classify(text: str) -> str:
    """A short reason from an exception's text."""
    low = text.lower()
    if "refused" in low:
        return "connection refused"
    if "name or service not known" in low or "nodename nor servname" in low or "dns resolution" in low:
        return "cannot resolve host"
    if "certificate" in low or "ssl" in low or "handshake" in low:
        return "TLS error"
    if "deadline" in low or "timed out" in low or "timeout" in low:
        return "timed out"
    if "unavailable" in low:
        return "unavailable"
    if "unreachable" in low:
        return "network unreachable"
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:160] or "export failed"


def _probe(url: str, timeout: float) -> str | None:
    """Connect once to the endpoint's host:port. A reason string when nothing answers."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    proxies = urllib.request.getproxies()
    if any(proxies.get(k) for k in ("http", "https", "grpc", "all")) and not urllib.request.proxy_bypass(host):
        return None  # behind a proxy only the exporter itself can tell
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except ConnectionRefusedError:
        return "connection refused"
    except socket.gaierror:
        return f"cannot resolve host {host}"
    except TimeoutError:
        return f"no answer within {timeout:g}s"
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()


def probe_until_up(url: str, timeout_s: float, stop: threading.Event) -> str | None:
    """Connect to the endpoint, retried with backoff while the failure is transient (a
    collector still starting refuses; a compose service not yet in DNS does not resolve),
    within ``timeout_s``: what the OpenTelemetry SDK exporters do for their first export."""

    def once(remaining: float) -> Attempt:
        reason = _probe(url, min(remaining, _PROBE_TIMEOUT_S))
        transient = reason is not None and (
            reason == "connection refused" or reason.startswith("cannot resolve host")
        )
        return Attempt(reason, transient)

    return with_retries(once, timeout_s, stop, max_attempts=None)


# --------------------------------------------------------------------------- gRPC


class GrpcTransport:
    """``TraceService/Export`` calls with pre-encoded request bytes, over one channel."""

    def __init__(self, settings: OtlpSettings) -> None:
        import grpc

        self.settings = settings
        target = _grpc_target(settings.endpoint)
        options = [("grpc.primary_user_agent", f"sysspan/{__version__}")]
        if settings.insecure:
            self._channel = grpc.insecure_channel(target, options=options)
        else:
            roots = None
            if settings.certificate:
                with open(settings.certificate, "rb") as fh:
                    roots = fh.read()
            creds = grpc.ssl_channel_credentials(root_certificates=roots)
            self._channel = grpc.secure_channel(target, creds, options=options)
        # No serializers: the request is already bytes, the response is parsed only when it
        # reports a partial success.
        self._call = self._channel.unary_unary(_GRPC_METHOD)
        # gRPC metadata keys must be lowercase; HTTP header names are case-blind.
        self._metadata = tuple((k.lower(), v) for k, v in settings.headers.items()) or None
        self._compression = grpc.Compression.Gzip if settings.compression == "gzip" else None
        c = grpc.StatusCode
        self._retryable = frozenset(
            {c.CANCELLED, c.DEADLINE_EXCEEDED, c.ABORTED, c.OUT_OF_RANGE, c.UNAVAILABLE, c.DATA_LOSS}
        )
        self._exhausted = c.RESOURCE_EXHAUSTED
        self._rpc_error = grpc.RpcError

    def attempt(self, data: bytes, remaining: float) -> Attempt:
        try:
            response = self._call(
                data, timeout=remaining, metadata=self._metadata, compression=self._compression
            )
        except self._rpc_error as exc:
            code = exc.code()
            details = (exc.details() or "").lower()
            reason = code.name if code is not None else "gRPC error"
            if "refused" in details or "failed to connect" in details:
                reason = "connection refused"  # UNAVAILABLE: retried like the SDK does
            hint = _grpc_retry_delay(exc)
            retryable = code in self._retryable or (code == self._exhausted and hint is not None)
            return Attempt(reason, retryable, hint)
        return Attempt(partial_success(response))

    def close(self) -> None:
        self._channel.close()


def _grpc_target(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    if parts.scheme in ("http", "https") and parts.hostname:
        port = parts.port or (443 if parts.scheme == "https" else 4317)
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        return f"{host}:{port}"
    return endpoint


def _grpc_retry_delay(exc: Any) -> float | None:
    """The server's RetryInfo delay, from ``google.rpc.retryinfo-bin`` or inside
    ``grpc-status-details-bin`` (google.rpc.Status), in seconds."""
    try:
        trailers = dict(exc.trailing_metadata() or ())
    except Exception:
        return None
    try:
        from google.rpc.error_details_pb2 import RetryInfo
        from google.rpc.status_pb2 import Status
    except ImportError:  # googleapis-common-protos ships with opentelemetry-proto; be safe
        return None
    raw = trailers.get("google.rpc.retryinfo-bin")
    info = None
    if raw:
        info = RetryInfo()
        info.ParseFromString(raw)
    elif trailers.get("grpc-status-details-bin"):
        status = Status()
        status.ParseFromString(trailers["grpc-status-details-bin"])
        for detail in status.details:
            if detail.Is(RetryInfo.DESCRIPTOR):
                info = RetryInfo()
                detail.Unpack(info)
                break
    if info is None:
        return None
    return info.retry_delay.seconds + info.retry_delay.nanos / 1e9


# --------------------------------------------------------------------------- HTTP


class HttpTransport:
    """OTLP/HTTP POSTs (protobuf or JSON bodies) with urllib."""

    def __init__(self, settings: OtlpSettings, content_type: str) -> None:
        self.settings = settings
        self.content_type = content_type
        self._headers = {"User-Agent": f"sysspan/{__version__}", **settings.headers}
        self._headers["Content-Type"] = content_type
        if settings.compression == "gzip":
            self._headers["Content-Encoding"] = "gzip"
        self._ssl: ssl.SSLContext | None = None
        if settings.endpoint.startswith("https:"):
            self._ssl = ssl.create_default_context(cafile=settings.certificate)

    def prepare(self, body: bytes) -> bytes:
        """The body as it goes on the wire (compressed once, however many attempts)."""
        if self.settings.compression == "gzip":
            return gzip.compress(body, compresslevel=6)
        return body

    def attempt(self, body: bytes, remaining: float) -> Attempt:
        s = self.settings
        request = urllib.request.Request(s.endpoint, data=body, headers=self._headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=remaining, context=self._ssl) as resp:
                answer = resp.read()
        except urllib.error.HTTPError as exc:
            reason = f"HTTP {exc.code} {exc.reason}".strip()
            delay = _retry_after(exc.headers.get("Retry-After"))
            exc.close()
            return Attempt(reason, exc.code in _RETRYABLE_HTTP, delay)
        except urllib.error.URLError as exc:
            return Attempt(classify(str(exc.reason)), True)
        except http.client.BadStatusLine as exc:
            line = str(exc.args[0]) if exc.args else ""
            if _looks_like_http2(line):
                return Attempt(_HTTP2_ANSWER)
            return Attempt(f"not an HTTP/1.1 answer ({line[:40]!r})", True)
        except (OSError, ValueError, http.client.HTTPException) as exc:  # timeouts, resets, malformed URL
            return Attempt(classify(f"{type(exc).__name__}: {exc}"), True)
        if self.content_type == "application/x-protobuf":
            return Attempt(partial_success(answer))
        return Attempt(None)

    def close(self) -> None:
        pass


def _looks_like_http2(line: str) -> bool:
    """HTTP/2 starts with binary frames (a SETTINGS frame: NUL bytes), not a status line."""
    return "\x00" in line or line.startswith("PRI * HTTP/2") or any(ord(c) < 9 for c in line[:16])


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def partial_success(answer: bytes) -> str | None:
    """An ExportTraceServiceResponse that rejected spans is a (non-retryable) failure."""
    if not answer:
        return None
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    resp = ExportTraceServiceResponse()
    try:
        resp.ParseFromString(answer)
    except Exception:
        return None
    rejected = resp.partial_success.rejected_spans
    if rejected:
        msg = resp.partial_success.error_message
        return f"INVALID_ARGUMENT: receiver rejected {rejected} spans" + (f" ({msg})" if msg else "")
    return None
