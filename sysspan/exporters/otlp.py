"""OTLP sink: ships span batches to a Collector, Jaeger or Tempo, and never loses them.

* ``grpc`` and ``http/protobuf`` go through the OpenTelemetry SDK's own OTLP exporters (their
  TLS, compression, header and retry handling is what users configure with ``OTEL_*``);
  sysspan spans are converted to ``ReadableSpan`` for them.
* ``http/json`` POSTs the same OTLP/JSON line the embedded default writes, via urllib.
* A batch that cannot be delivered is appended to a spool file (OTLP JSON lines, the same
  format) so ``sysspan replay SPOOL`` can send it later; ``close()`` says so once.
* A dead endpoint must not hang the run: before the first batch a TCP connect probes the
  endpoint (skipped behind a proxy), and the first batch that fails for a reason that will
  not go away by itself (refused, unreachable, timed out, unavailable after the SDK's
  retries) marks the endpoint down, so later batches go straight to the spool.
  The worst case is therefore one SDK timeout (``settings.timeout_s``), not one per batch.
* The SDK logs tracebacks and retry warnings on failure; those records are captured while
  exporting (never shown), and used to say why the export failed.
"""

from __future__ import annotations

import gzip
import http.client
import logging
import random
import re
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from sysspan import __version__
from sysspan.config import OtlpSettings
from sysspan.exporters.base import SinkReport
from sysspan.exporters.jsonl import JsonlAppender
from sysspan.exporters.otlp_json import encode_line
from sysspan.exporters.otlp_proto import ProtoEncoder
from sysspan.exporters.wholeline import Fallback
from sysspan.model import ResourceSpans, Span, SpanKind, StatusCode

_RETRYABLE_HTTP = frozenset({429, 502, 503, 504})
_MAX_ATTEMPTS = 6
_PROBE_TIMEOUT_S = 5.0
# Rejections of one payload rather than of the whole endpoint: only that batch is spooled.
_PAYLOAD_REJECTIONS = ("INVALID_ARGUMENT", "HTTP 400", "HTTP 413", "RESOURCE_EXHAUSTED")

# --------------------------------------------------------------------------- SDK log capture

_SDK_LOGGERS = ("opentelemetry", "grpc")
_capture_lock = threading.Lock()
_capture_depth = 0
_saved_propagate: dict[str, bool] = {}


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.messages.append(record.getMessage())
        except Exception:  # a badly formatted SDK record must not break the export
            self.messages.append(str(record.msg))


@contextmanager
def _sdk_logs_captured() -> Iterator[list[str]]:
    """Route the SDK's warnings and tracebacks into a list instead of the user's terminal
    (and instead of any handler the CLI installed on the root logger)."""
    global _capture_depth
    handler = _Collect()
    loggers = [logging.getLogger(name) for name in _SDK_LOGGERS]
    with _capture_lock:
        if _capture_depth == 0:
            for lg in loggers:
                _saved_propagate[lg.name] = lg.propagate
                lg.propagate = False
        _capture_depth += 1
        for lg in loggers:
            lg.addHandler(handler)
    try:
        yield handler.messages
    finally:
        with _capture_lock:
            for lg in loggers:
                lg.removeHandler(handler)
            _capture_depth -= 1
            if _capture_depth == 0:
                for lg in loggers:
                    lg.propagate = _saved_propagate.pop(lg.name, True)


def _classify(text: str) -> str:
    """A short reason from SDK log text or an exception message."""
    low = text.lower()
    if "refused" in low:
        return "connection refused"
    if "name or service not known" in low or "nodename nor servname" in low or "dns resolution" in low:
        return "cannot resolve host"
    if "certificate" in low or "ssl" in low or "handshake" in low:
        return "TLS error"
    match = re.search(r"statuscode\.([a-z_]+)", low)
    if match:
        return match.group(1).upper()
    match = re.search(r"batch code: (\d{3}), reason: ([^|]*)", text)
    if match:
        return f"HTTP {match.group(1)} {match.group(2).strip()}".strip()
    if "deadline" in low or "timed out" in low or "timeout" in low:
        return "timed out"
    if "unavailable" in low:
        return "unavailable"
    if "unreachable" in low:
        return "network unreachable"
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:160] or "export failed"


def _endpoint_down(reason: str) -> bool:
    return not any(reason.startswith(p) for p in _PAYLOAD_REJECTIONS)


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


def _transient(reason: str) -> bool:
    """A collector that is still starting (refused) or a name not yet in DNS (a compose
    service coming up): worth retrying within the export timeout."""
    return reason == "connection refused" or reason.startswith("cannot resolve host")


def _probe_until_up(url: str, timeout_s: float) -> str | None:
    """:func:`_probe`, retried with backoff while the failure is transient, for at most
    ``timeout_s`` (what the OpenTelemetry SDK exporters do for their first export)."""
    deadline = time.monotonic() + timeout_s
    attempt = 0
    while True:
        remaining = deadline - time.monotonic()
        reason = _probe(url, max(min(remaining, _PROBE_TIMEOUT_S), 0.1))
        if reason is None or not _transient(reason):
            return reason
        wait = _backoff(attempt)
        attempt += 1
        if wait >= deadline - time.monotonic():
            return reason
        time.sleep(wait)  # backoff between connection attempts, bounded by the deadline


_HTTP2_ANSWER = (
    "the endpoint answered in HTTP/2, as a gRPC receiver does: use --otlp-protocol grpc "
    "(or OTEL_EXPORTER_OTLP_PROTOCOL=grpc), or the receiver's HTTP port (usually 4318)"
)


def _looks_like_http2(line: str) -> bool:
    """HTTP/2 starts with binary frames (a SETTINGS frame: NUL bytes), not a status line."""
    return "\x00" in line or line.startswith("PRI * HTTP/2") or any(ord(c) < 9 for c in line[:16])


def _spans(n: int) -> str:
    return f"{n} span" if n == 1 else f"{n} spans"


# --------------------------------------------------------------------------- conversion


def _clean(value: Any) -> Any:
    """Protobuf needs valid UTF-8: escape lone surrogates the way the JSONL files do."""
    if type(value) is str:
        if value.isascii():
            return value
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if type(value) is list or type(value) is tuple:
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    return value


class _Converter:
    """sysspan ``ResourceSpans`` → SDK ``ReadableSpan`` (imports the SDK on first use)."""

    def __init__(self, remote_parent_ids: Collection[int]) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import Event, ReadableSpan
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace import SpanContext, TraceFlags
        from opentelemetry.trace import SpanKind as OtelKind
        from opentelemetry.trace.span import TraceState
        from opentelemetry.trace.status import Status
        from opentelemetry.trace.status import StatusCode as OtelStatus

        self.Resource, self.Event, self.ReadableSpan = Resource, Event, ReadableSpan
        self.Scope, self.SpanContext, self.TraceFlags = InstrumentationScope, SpanContext, TraceFlags
        self.TraceState, self.Status, self.OtelStatus = TraceState, Status, OtelStatus
        self.kinds = {
            SpanKind.UNSPECIFIED: OtelKind.INTERNAL,  # the SDK has no "unspecified"
            SpanKind.INTERNAL: OtelKind.INTERNAL,
            SpanKind.SERVER: OtelKind.SERVER,
            SpanKind.CLIENT: OtelKind.CLIENT,
            SpanKind.PRODUCER: OtelKind.PRODUCER,
            SpanKind.CONSUMER: OtelKind.CONSUMER,
        }
        self.remote = frozenset(remote_parent_ids)
        self._resources: dict[int, tuple[dict, Any]] = {}

    def _resource(self, attrs: dict) -> Any:
        cached = self._resources.get(id(attrs))
        if cached is not None and cached[0] is attrs:
            return cached[1]
        if len(self._resources) > 64:
            self._resources.clear()
        resource = self.Resource(_clean(attrs))
        self._resources[id(attrs)] = (attrs, resource)
        return resource

    def convert(self, batches: list[ResourceSpans]) -> list[Any]:
        out = []
        for batch in batches:
            resource = self._resource(batch.resource)
            scope = self.Scope(batch.scope_name, batch.scope_version or None)
            for s in batch.spans:
                flags = self.TraceFlags(s.flags & 0xFF)
                state = self.TraceState.from_header([s.trace_state]) if s.trace_state else None
                context = self.SpanContext(s.trace_id, s.span_id, False, flags, state)
                parent = None
                if s.parent_id:
                    parent = self.SpanContext(
                        s.trace_id, s.parent_id, s.parent_id in self.remote, flags, state
                    )
                if s.status == StatusCode.ERROR:
                    status = self.Status(self.OtelStatus.ERROR, _clean(s.status_message) or None)
                elif s.status == StatusCode.OK:
                    status = self.Status(self.OtelStatus.OK)
                else:
                    status = self.Status(self.OtelStatus.UNSET)
                events = [
                    self.Event(_clean(e.name), _clean(e.attributes), e.time_ns) for e in s.events
                ]
                out.append(
                    self.ReadableSpan(
                        name=_clean(s.name),
                        context=context,
                        parent=parent,
                        resource=resource,
                        attributes=_clean(s.attributes),
                        events=events,
                        kind=self.kinds.get(s.kind, self.kinds[SpanKind.INTERNAL]),
                        status=status,
                        start_time=s.start_ns,
                        end_time=s.end_ns,
                        instrumentation_scope=scope,
                    )
                )
        return out


# --------------------------------------------------------------------------- the sink


class OtlpSink:
    """Sends batches over OTLP (``settings.protocol``), spooling what cannot be delivered.

    ``resource`` is the resource of spans given to :meth:`export`; :meth:`export_batches`
    sends pre-grouped batches with their own resources (``replay``). ``remote_parent_ids``
    are parent span ids that came from an incoming ``traceparent``: their parent context is
    marked remote in the OTLP span flags.
    """

    name = "otlp"

    def __init__(
        self,
        settings: OtlpSettings,
        resource: dict[str, Any],
        spool_path: str,
        scope_version: str,
        *,
        remote_parent_ids: Collection[int] = (),
        native: bool = True,
        fallback: Fallback | None = None,
    ) -> None:
        self.settings = settings
        # native: sysspan's own protobuf encoder and gRPC/HTTP transport (the fast path);
        # otherwise the OpenTelemetry SDK's exporters.
        self.native = native
        # The protobuf encoder, shared with a BudgetSink in front (it sizes spans with it).
        self.encoder: ProtoEncoder | None = None
        if native and settings.protocol != "http/json":
            self.encoder = ProtoEncoder(remote_parent_ids=frozenset(remote_parent_ids))
        self._channel: Any = None
        self._grpc_call: Any = None
        self.resource = resource
        self.spool_path = spool_path
        self.scope_version = scope_version
        self._remote = remote_parent_ids
        self._spool = JsonlAppender(spool_path, fallback)
        self._exporter: Any = None
        self._converter: _Converter | None = None
        self._ssl: ssl.SSLContext | None = None
        self._probed = False
        self._down: str | None = None  # reason the endpoint was given up on
        self._reasons: list[str] = []
        self.sent = 0
        self.spooled = 0
        self.lost = 0
        self.batches_sent = 0

    # -- public

    @property
    def reasons(self) -> list[str]:
        """Why batches failed so far, each reason once."""
        return list(self._reasons)

    def switch_spool(self, path: str, fallback: Fallback | None = None) -> JsonlAppender:
        """From now on spool to ``path``; returns the previous spool, closed (``replay``
        keeps one spool per source file)."""
        old = self._spool
        old.close()
        self._spool = JsonlAppender(path, fallback)
        self.spool_path = path
        return old

    @property
    def endpoint_down(self) -> str | None:
        """Why the endpoint was given up on (later batches are spooled directly), or None."""
        return self._down

    def export(self, spans: list[Span]) -> None:
        if spans:
            self.export_batches(
                [ResourceSpans(self.resource, spans, "sysspan", self.scope_version)]
            )

    def export_batches(self, batches: list[ResourceSpans]) -> None:
        """Send one request holding ``batches``; spool it on failure. Never raises."""
        count = sum(len(b.spans) for b in batches)
        if not count:
            return
        if self._down is None:
            try:
                reason = self._send(batches)
            except Exception as exc:  # an SDK bug or a bad certificate: spool, don't crash
                reason = _classify(f"{type(exc).__name__}: {exc}")
                self._down = reason
            if reason is None:
                self.sent += count
                self.batches_sent += 1
                return
            if reason not in self._reasons:
                self._reasons.append(reason)
            if self._down is None and _endpoint_down(reason):
                self._down = reason
        if self.encoder is not None:
            self.encoder.discard(s for b in batches for s in b.spans)
        if self._spool.append(batches, count):
            self.spooled += count
        else:
            self.lost += count

    def close(self) -> SinkReport:
        if self._channel is not None:
            self._channel.close()
            self._channel = self._grpc_call = None
        if self._exporter is not None:
            with _sdk_logs_captured():
                try:
                    self._exporter.shutdown()
                except Exception:
                    pass
            self._exporter = None
        self._spool.close()
        spool = self._spool.file
        self.spooled, self.lost = spool.items, spool.lost
        url = self.settings.endpoint
        report = SinkReport(
            name=self.name,
            spans_written=self.sent,
            spans_failed=self.spooled + self.lost,
            path=spool.path if self.spooled else None,
            degraded=spool.moved,
        )
        if self.sent or not (self.spooled or self.lost):
            report.messages.append(
                f"sent {_spans(self.sent)} to {url} ({self.settings.protocol})"
            )
        if self.spooled or self.lost:
            why = ", ".join(self._reasons) or "export failed"
            if self._down is not None:
                head = f"could not reach {url} ({why}); stopped trying after the first failure"
            else:
                head = f"{url} did not accept some spans ({why})"
            parts = [
                f"{_spans(n)} spooled to {p} (send later: sysspan replay {p})"
                for p, n in spool.written.items()
                if n
            ]
            if spool.moved or self.lost:
                parts += self._spool.describe()
            report.messages.append(head + ": " + "; ".join(parts))
        return report

    # -- sending

    def _send(self, batches: list[ResourceSpans]) -> str | None:
        """None on success, else a short reason."""
        if not self._probed:
            self._probed = True
            reason = _probe_until_up(self.settings.endpoint, self.settings.timeout_s)
            if reason is not None:
                self._down = reason
                return reason
        if self.settings.protocol == "http/json":
            body = encode_line(batches).encode("utf-8", "backslashreplace")
            return self._post(body, "application/json")
        if self.encoder is not None:
            data = self.encoder.request(batches)
            if self.settings.protocol == "grpc":
                return self._grpc_export(data)
            return self._post(data, "application/x-protobuf")
        with _sdk_logs_captured() as messages:
            if self._exporter is None:
                self._exporter = self._make_exporter()
                self._converter = _Converter(self._remote)
            assert self._converter is not None
            spans = self._converter.convert(batches)
            result = self._exporter.export(spans)
        if getattr(result, "name", "") == "SUCCESS":
            return None
        # The HTTP exporter's last word ("due to timeout, max retries or shutdown") hides the
        # cause; the retry warnings before it name it.
        telling = [m for m in messages if "max retries or shutdown" not in m] or messages
        return _classify(" | ".join(reversed(telling))) if telling else "export failed"

    def _make_exporter(self) -> Any:
        s = self.settings
        gz = s.compression == "gzip"
        if s.protocol == "grpc":
            import grpc
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcExporter,
            )

            credentials = None
            if not s.insecure and s.certificate:
                with open(s.certificate, "rb") as fh:
                    credentials = grpc.ssl_channel_credentials(root_certificates=fh.read())
            return GrpcExporter(
                endpoint=s.endpoint,
                insecure=s.insecure,
                credentials=credentials,
                # gRPC metadata keys must be lowercase; HTTP header names are case-blind.
                headers=tuple((k.lower(), v) for k, v in s.headers.items()) or None,
                timeout=s.timeout_s,
                compression=grpc.Compression.Gzip if gz else grpc.Compression.NoCompression,
            )
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter(
            endpoint=s.endpoint,
            certificate_file=s.certificate,
            headers=dict(s.headers) or None,
            timeout=s.timeout_s,
            compression=Compression.Gzip if gz else Compression.NoCompression,
        )

    def _grpc_export(self, data: bytes) -> str | None:
        """One ``TraceService/Export`` call with pre-encoded bytes, retried like the OTLP
        exporter specification asks: retryable codes with exponential backoff and jitter,
        a server's RetryInfo delay honoured, all within ``timeout_s``."""
        import grpc

        s = self.settings
        if self._grpc_call is None:
            target = _grpc_target(s.endpoint)
            options = [("grpc.primary_user_agent", f"sysspan/{__version__}")]
            if s.insecure:
                self._channel = grpc.insecure_channel(target, options=options)
            else:
                roots = None
                if s.certificate:
                    with open(s.certificate, "rb") as fh:
                        roots = fh.read()
                creds = grpc.ssl_channel_credentials(root_certificates=roots)
                self._channel = grpc.secure_channel(target, creds, options=options)
            # No serializers: the request is already bytes, the response is parsed only
            # when it reports a partial success.
            self._grpc_call = self._channel.unary_unary(_GRPC_METHOD)
        metadata = tuple((k.lower(), v) for k, v in s.headers.items()) or None
        compression = grpc.Compression.Gzip if s.compression == "gzip" else None
        deadline = time.monotonic() + s.timeout_s
        reason = "export failed"
        for attempt in range(_MAX_ATTEMPTS):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return reason
            try:
                response = self._grpc_call(
                    data, timeout=remaining, metadata=metadata, compression=compression
                )
                return _partial_success(response)
            except grpc.RpcError as exc:
                code = exc.code()
                details = exc.details() or ""
                reason = code.name if code is not None else "gRPC error"
                if "refused" in details.lower() or "failed to connect" in details.lower():
                    reason = "connection refused"  # UNAVAILABLE: retried like the SDK does
                hint = _grpc_retry_delay(exc)
                if code not in _RETRYABLE_GRPC and not (
                    code == grpc.StatusCode.RESOURCE_EXHAUSTED and hint is not None
                ):
                    return reason
            wait = hint if hint is not None else _backoff(attempt)
            if attempt + 1 == _MAX_ATTEMPTS or wait > deadline - time.monotonic():
                return reason
            time.sleep(wait)  # backoff between retries, bounded by the deadline above
        return reason

    def _post(self, body: bytes, content_type: str) -> str | None:
        """OTLP/HTTP (protobuf or JSON) with the SDK's retry policy: 429/502/503/504 and
        connection errors are retried with exponential backoff and jitter (or the server's
        ``Retry-After``) within ``timeout_s``."""
        s = self.settings
        headers = {"User-Agent": f"sysspan/{__version__}", **s.headers}
        headers["Content-Type"] = content_type
        if s.compression == "gzip":
            body = gzip.compress(body, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        if self._ssl is None and s.endpoint.startswith("https:"):
            self._ssl = ssl.create_default_context(cafile=s.certificate)
        deadline = time.monotonic() + s.timeout_s
        reason = "export failed"
        for attempt in range(_MAX_ATTEMPTS):
            wait: float | None = None
            request = urllib.request.Request(s.endpoint, data=body, headers=headers, method="POST")
            try:
                remaining = max(deadline - time.monotonic(), 0.1)
                with urllib.request.urlopen(request, timeout=remaining, context=self._ssl) as resp:
                    answer = resp.read()
                if content_type == "application/x-protobuf":
                    return _partial_success(answer)
                return None
            except urllib.error.HTTPError as exc:
                reason = f"HTTP {exc.code} {exc.reason}".strip()
                wait = _retry_after(exc.headers.get("Retry-After"))
                exc.close()
                if exc.code not in _RETRYABLE_HTTP:
                    return reason
            except urllib.error.URLError as exc:
                reason = _classify(str(exc.reason))
            except http.client.BadStatusLine as exc:
                line = str(exc.args[0]) if exc.args else ""
                if _looks_like_http2(line):
                    return _HTTP2_ANSWER
                reason = f"not an HTTP/1.1 answer ({line[:40]!r})"
            except (OSError, ValueError, http.client.HTTPException) as exc:  # timeouts, resets, malformed URL
                reason = _classify(f"{type(exc).__name__}: {exc}")
            if wait is None:
                wait = _backoff(attempt)
            if attempt + 1 == _MAX_ATTEMPTS or wait > deadline - time.monotonic():
                return reason
            time.sleep(wait)  # backoff between retries, bounded by the deadline above
        return reason


_GRPC_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _retryable_grpc() -> frozenset:
    import grpc

    c = grpc.StatusCode
    return frozenset(
        {c.CANCELLED, c.DEADLINE_EXCEEDED, c.ABORTED, c.OUT_OF_RANGE, c.UNAVAILABLE, c.DATA_LOSS}
    )


class _LazyCodes:
    """The retryable gRPC codes, built on first use so importing this module stays light."""

    _codes: frozenset | None = None

    def __contains__(self, code: object) -> bool:
        if self._codes is None:
            self._codes = _retryable_grpc()
        return code in self._codes


_RETRYABLE_GRPC = _LazyCodes()


def _backoff(attempt: int) -> float:
    """Exponential backoff (0.5 s, 1 s, 2 s, ...) with ±50% jitter so many clients that failed
    together do not retry together."""
    return min(0.5 * 2**attempt, 16.0) * random.uniform(0.5, 1.5)


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
    except ImportError:  # googleapis-common-protos ships with the OTLP exporter; be safe
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


def _partial_success(answer: bytes) -> str | None:
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
