"""The sysspan Lambda extension: buffer the function's spans, flush them before the freeze.

Lifecycle (AWS Lambda Extensions API ``2020-01-01`` and Telemetry API ``2022-07-01``):

1. Bind two local HTTP listeners: the OTLP/HTTP receiver for the function's spans
   (``127.0.0.1:4318``, protobuf and JSON, ``/v1/traces``) and the Telemetry API listener
   (``sandbox.localdomain`` in Lambda, 127.0.0.1 elsewhere, any free port).
2. ``POST /2020-01-01/extension/register`` with ``Lambda-Extension-Name: sysspan`` for
   ``INVOKE`` and ``SHUTDOWN``; the ``Lambda-Extension-Identifier`` answer goes on every later
   call.
3. ``PUT /2022-07-01/telemetry``: platform events, pushed by Lambda to our listener in
   batches.
4. Loop on ``GET /2020-01-01/extension/event/next``:

   * ``INVOKE`` (``requestId``, ``deadlineMs``): wait for ``platform.runtimeDone`` of that
     ``requestId`` (the runtime has answered; the function's spans are in), flush the buffer
     to ``OTEL_EXPORTER_OTLP_*``, and only then call ``event/next`` again. Lambda freezes the
     environment as soon as the runtime and every extension are waiting in ``next``, so a
     flush after that call could sit frozen for minutes or be lost with the environment.
   * ``SHUTDOWN`` (``deadlineMs``): flush what is left within the deadline (Lambda gives
     extensions at most 2 s) and exit.

What cannot be delivered is appended to a spool file under /tmp (OTLP JSON lines,
``sysspan replay`` sends it later) and reported on stderr (CloudWatch Logs) with counts:
never silently dropped. Without an endpoint, spans go to a JSON lines file in /tmp.

Configuration: ``OTEL_EXPORTER_OTLP_*`` (where spans go), ``SYSSPAN_LAMBDA_OTLP_PORT``
(receiver port, default 4318), ``SYSSPAN_LAMBDA_TELEMETRY_HOST``/``_PORT`` (listener),
``SYSSPAN_LAMBDA_TELEMETRY_TIMEOUT_MS`` (Telemetry API buffering, 25-30000),
``SYSSPAN_LAMBDA_SPOOL`` (spool file), ``SYSSPAN_LAMBDA_MAX_BUFFER`` (spans held before an
early flush), ``SYSSPAN_LAMBDA_DEBUG=1`` (a line per flush).
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import signal
import sys
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from sysspan import __version__
from sysspan.config import OtlpSettings, resolve_otlp
from sysspan.envnum import env_number
from sysspan.errors import ConfigError, SysspanError, TraceFileError
from sysspan.exporters.jsonl import JsonlAppender
from sysspan.exporters.otlp import OtlpSink
from sysspan.lambda_ import DEFAULT_OTLP_PORT, EXTENSION_NAME
from sysspan.model import ResourceSpans
from sysspan.propagation.traceparent import FLAG_SAMPLED

EXTENSION_API = "/2020-01-01/extension"
TELEMETRY_API = "/2022-07-01/telemetry"
TELEMETRY_SCHEMA = "2022-12-13"
#: Lambda gives extensions at most 2 s after SHUTDOWN; keep a margin for exiting.
SHUTDOWN_BUDGET_S = 2.0
_EXIT_MARGIN_S = 0.15
#: Spans per OTLP request when flushing.
_REQUEST_SPANS = 1000
_MAX_BODY = 64 * 1024 * 1024
#: If no platform.runtimeDone arrives, wait this long past the invocation's deadline.
_DONE_GRACE_S = 2.0
#: The wrapper's invocation span comes from this instrumentation scope.
WRAPPER_SCOPE = "sysspan.lambda"


def _log(msg: str) -> None:
    # One line each: CloudWatch Logs shows extension output with the function's.
    print(f"[sysspan extension] {msg}", file=sys.stderr, flush=True)


def _spans(n: int) -> str:
    return f"{n} span" if n == 1 else f"{n} spans"


# --------------------------------------------------------------------------- configuration


@dataclass
class ExtensionConfig:
    """Everything the extension needs, resolved once from the environment."""

    runtime_api: str
    name: str = EXTENSION_NAME
    otlp_host: str = "127.0.0.1"
    otlp_port: int = DEFAULT_OTLP_PORT
    telemetry_host: str = "127.0.0.1"
    telemetry_port: int = 0
    telemetry_timeout_ms: int = 25
    spool_path: str = "/tmp/sysspan-lambda-spool.jsonl"
    output_dir: str = "/tmp/sysspan-traces"
    max_buffer: int = 20_000
    settings: OtlpSettings | None = None
    debug: bool = False
    #: Configuration mistakes, logged at start. In Lambda an extension that exits during
    #: Init fails the function's Init, so a bad telemetry setting falls back to a default
    #: (or to the /tmp file instead of the endpoint) and is reported instead.
    problems: list[str] = field(default_factory=list)

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, name: str | None = None, otlp_port: int | None = None) -> ExtensionConfig:
        """Only a missing ``AWS_LAMBDA_RUNTIME_API`` raises ``ConfigError``; every other
        bad value is named in ``problems`` and replaced by its default."""
        api = env.get("AWS_LAMBDA_RUNTIME_API", "").strip()
        if not api:
            raise ConfigError(
                "AWS_LAMBDA_RUNTIME_API is not set: 'sysspan lambda extension' runs inside AWS "
                "Lambda, started by the layer's /opt/extensions/sysspan"
            )
        problems: list[str] = []
        api = api.removeprefix("http://").rstrip("/")
        in_lambda = bool(env.get("AWS_LAMBDA_FUNCTION_NAME", "").strip())
        port = otlp_port if otlp_port is not None else env_number(env, "SYSSPAN_LAMBDA_OTLP_PORT", DEFAULT_OTLP_PORT, int, 0, 65535, problems)
        try:
            settings = resolve_otlp(env)
        except ConfigError as exc:
            problems.append(f"{exc}; writing spans to /tmp instead of an endpoint")
            settings = None
        if settings is not None:
            url = urlsplit(settings.endpoint)
            if url.hostname in ("127.0.0.1", "localhost", "::1") and (url.port or 80) == port:
                problems.append(
                    f"OTEL_EXPORTER_OTLP_ENDPOINT: {settings.endpoint} is the extension's own "
                    f"receiver (port {port}); point it at your collector, or move the receiver with "
                    "SYSSPAN_LAMBDA_OTLP_PORT; writing spans to /tmp instead"
                )
                settings = None
        return cls(
            runtime_api=api,
            name=name or env.get("SYSSPAN_LAMBDA_EXTENSION_NAME", "").strip() or EXTENSION_NAME,
            otlp_port=port,
            telemetry_host=env.get("SYSSPAN_LAMBDA_TELEMETRY_HOST", "").strip()
            or ("sandbox.localdomain" if in_lambda else "127.0.0.1"),
            telemetry_port=env_number(env, "SYSSPAN_LAMBDA_TELEMETRY_PORT", 0, int, 0, 65535, problems),
            telemetry_timeout_ms=env_number(env, "SYSSPAN_LAMBDA_TELEMETRY_TIMEOUT_MS", 25, int, 25, 30_000, problems),
            spool_path=env.get("SYSSPAN_LAMBDA_SPOOL", "").strip() or "/tmp/sysspan-lambda-spool.jsonl",
            output_dir=env.get("SYSSPAN_OUTPUT_DIR", "").strip() or "/tmp/sysspan-traces",
            max_buffer=env_number(env, "SYSSPAN_LAMBDA_MAX_BUFFER", 20_000, int, 1, 10_000_000, problems),
            settings=settings,
            debug=env.get("SYSSPAN_LAMBDA_DEBUG", "").strip().lower() in ("1", "true", "yes"),
            problems=problems,
        )


# --------------------------------------------------------------------------- Lambda APIs


class LambdaApiError(SysspanError):
    """The Extensions or Telemetry API answered with an error (or not at all)."""


class ExtensionsClient:
    """The Extensions API and the Telemetry API subscription, over plain HTTP/1.1."""

    def __init__(self, runtime_api: str) -> None:
        host, _, port = runtime_api.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"AWS_LAMBDA_RUNTIME_API: expected host:port, got {runtime_api!r}")
        self.host, self.port = host, int(port)
        self.identifier = ""

    def _call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, timeout: float | None = 10.0
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        data = None if body is None else json.dumps(body).encode()
        hdrs = dict(headers or {})
        if self.identifier:
            hdrs["Lambda-Extension-Identifier"] = self.identifier
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise LambdaApiError(f"{method} {path}: {str(exc) or type(exc).__name__}") from None
        finally:
            conn.close()

    def register(self, name: str, events: list[str]) -> dict[str, Any]:
        status, headers, body = self._call(
            "POST", f"{EXTENSION_API}/register", {"events": events}, {"Lambda-Extension-Name": name}
        )
        if status != 200:
            raise LambdaApiError(f"register: HTTP {status}: {body[:200].decode(errors='replace')}")
        ident = headers.get("Lambda-Extension-Identifier", "")
        if not ident:
            raise LambdaApiError("register: no Lambda-Extension-Identifier in the answer")
        self.identifier = ident
        try:
            info = json.loads(body or b"{}")
        except ValueError:
            info = {}
        return info if isinstance(info, dict) else {}

    def next_event(self) -> dict[str, Any]:
        """Blocks until Lambda has the next event for us (no timeout: the environment may
        stay frozen in this call for hours)."""
        status, _headers, body = self._call("GET", f"{EXTENSION_API}/event/next", timeout=None)
        if status != 200:
            raise LambdaApiError(f"event/next: HTTP {status}: {body[:200].decode(errors='replace')}")
        try:
            event = json.loads(body)
        except ValueError:
            raise LambdaApiError(f"event/next: not JSON: {body[:200]!r}") from None
        if not isinstance(event, dict):
            raise LambdaApiError(f"event/next: expected an object, got {body[:200]!r}")
        return event

    def subscribe_telemetry(self, uri: str, timeout_ms: int) -> int:
        """Subscribe to platform events; returns the HTTP status (200: subscribed)."""
        status, _headers, body = self._call(
            "PUT",
            TELEMETRY_API,
            {
                "schemaVersion": TELEMETRY_SCHEMA,
                "types": ["platform"],
                "buffering": {"maxItems": 1000, "maxBytes": 256 * 1024, "timeoutMs": timeout_ms},
                "destination": {"protocol": "HTTP", "URI": uri},
            },
        )
        if status >= 300:
            raise LambdaApiError(f"telemetry subscribe: HTTP {status}: {body[:200].decode(errors='replace')}")
        return status


# --------------------------------------------------------------------------- buffering


class InvocationTracker:
    """Which invocations the runtime has finished (``platform.runtimeDone``), so the main
    loop can wait for "the function's spans are all in" without sleeping."""

    def __init__(self, keep: int = 4096) -> None:
        self._cond = threading.Condition()
        self._done: OrderedDict[str, str] = OrderedDict()
        self._keep = keep

    def mark_done(self, request_id: str, status: str) -> None:
        with self._cond:
            self._done[request_id] = status
            while len(self._done) > self._keep:
                self._done.popitem(last=False)
            self._cond.notify_all()

    def wait_done(self, request_id: str, timeout: float) -> str | None:
        """The runtimeDone status of ``request_id``, or None when ``timeout`` passed first."""
        with self._cond:
            self._cond.wait_for(lambda: request_id in self._done, max(timeout, 0.0))
            return self._done.get(request_id)


class Forwarder:
    """Holds received spans until a flush; sends them over OTLP, spooling what fails.

    ``add`` is called from the receiver's threads, ``flush`` from the main loop (and from a
    receiver thread when more than ``max_buffer`` spans are waiting, so memory stays
    bounded). Sends never overlap.
    """

    def __init__(self, config: ExtensionConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._batches: list[ResourceSpans] = []
        self._pending = 0
        self._sink: OtlpSink | None = None
        self._file: JsonlAppender | None = None
        self.received = 0
        self.sent = 0
        self.spooled = 0
        self.lost = 0

    @property
    def pending(self) -> int:
        with self._lock:
            return self._pending

    def add(self, batches: list[ResourceSpans]) -> int:
        count = sum(len(b.spans) for b in batches)
        if not count:
            return 0
        with self._lock:
            self._batches.extend(b for b in batches if b.spans)
            self._pending += count
            self.received += count
            over = self._pending >= self.config.max_buffer
        if over:
            self.flush("buffer full")
        return count

    def _take(self) -> tuple[list[ResourceSpans], int]:
        with self._lock:
            batches, count = self._batches, self._pending
            self._batches, self._pending = [], 0
        return batches, count

    def flush(self, why: str, budget_s: float | None = None) -> int:
        """Send everything buffered; returns the number of spans that could not be sent.
        ``budget_s`` bounds the time spent (SHUTDOWN)."""
        with self._send_lock:
            batches, count = self._take()
            if not count:
                return 0
            settings = self.config.settings
            if settings is None:
                return self._write_file(batches, count, why)
            temporary = budget_s is not None and budget_s < settings.timeout_s
            if temporary:
                sink = self._new_sink(settings.replace(timeout_s=max(budget_s or 0.0, 0.05)))
            else:
                if self._sink is None:
                    self._sink = self._new_sink(settings)
                sink = self._sink
            before = (sink.sent, sink.spooled, sink.lost)
            for chunk in _chunks(batches, _REQUEST_SPANS):
                sink.export_batches(chunk)
            sink.flush()  # the sink sends on its own thread; count what it finished
            sent = sink.sent - before[0]
            spooled = sink.spooled - before[1]
            lost = sink.lost - before[2]
            self.sent += sent
            self.spooled += spooled
            self.lost += lost
            reason = sink.endpoint_down
            if temporary:
                sink.close()
            elif reason is not None:
                # Retry a fresh connection at the next flush instead of spooling forever.
                sink.close()
                self._sink = None
            if spooled or lost:
                parts = []
                if spooled:
                    parts.append(f"spooled to {self.config.spool_path} (sysspan replay sends it later)")
                if lost:
                    parts.append(f"{_spans(lost)} lost: cannot write the spool")
                _log(
                    f"{why}: {_spans(spooled + lost)} of {count} not delivered to "
                    f"{settings.endpoint} ({reason or 'rejected by the endpoint'}): " + "; ".join(parts)
                )
            elif self.config.debug:
                _log(f"{why}: sent {_spans(sent)} to {settings.endpoint}")
            return spooled + lost

    def _new_sink(self, settings: OtlpSettings) -> OtlpSink:
        return OtlpSink(settings, {}, self.config.spool_path, __version__)

    def _write_file(self, batches: list[ResourceSpans], count: int, why: str) -> int:
        if self._file is None:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            path = os.path.join(self.config.output_dir, f"lambda-{stamp}-{os.getpid()}.jsonl")
            self._file = JsonlAppender(path)
            _log(f"no OTEL_EXPORTER_OTLP_ENDPOINT: writing spans to {path} (lost with the environment)")
        if self._file.append(batches, count):
            self.sent += count
            if self.config.debug:
                _log(f"{why}: wrote {_spans(count)} to {self._file.path}")
            return 0
        self.lost += count
        _log(f"{why}: {_spans(count)} lost: cannot write {self._file.path} ({self._file.error})")
        return count

    def close(self) -> None:
        with self._send_lock:
            if self._sink is not None:
                self._sink.close()
                self._sink = None
            if self._file is not None:
                self._file.close()

    @property
    def destination(self) -> str:
        if self.config.settings is not None:
            return self.config.settings.endpoint
        return self._file.path if self._file is not None else self.config.output_dir


def _chunks(batches: list[ResourceSpans], limit: int) -> list[list[ResourceSpans]]:
    out: list[list[ResourceSpans]] = []
    current: list[ResourceSpans] = []
    size = 0
    for batch in batches:
        spans = batch.spans
        while spans:
            room = limit - size
            part, spans = spans[:room], spans[room:]
            current.append(ResourceSpans(batch.resource, part, batch.scope_name, batch.scope_version))
            size += len(part)
            if size >= limit:
                out.append(current)
                current, size = [], 0
    if current:
        out.append(current)
    return out


# --------------------------------------------------------------------------- HTTP listeners


def _read_body(handler: BaseHTTPRequestHandler) -> bytes | None:
    """The request body (Content-Length or chunked); None when it is too large."""
    if "chunked" in (handler.headers.get("Transfer-Encoding") or "").lower():
        parts: list[bytes] = []
        total = 0
        while True:
            line = handler.rfile.readline(1024)
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            total += size
            if total > _MAX_BODY:
                return None
            parts.append(handler.rfile.read(size))
            handler.rfile.readline(8)
    length = int(handler.headers.get("Content-Length") or 0)
    if length > _MAX_BODY:
        return None
    return handler.rfile.read(length) if length else b""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"sysspan-extension/{__version__}"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        pass

    def _answer(self, status: int, body: bytes = b"", ctype: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)


class _OtlpHandler(_Handler):
    """OTLP/HTTP ``POST /v1/traces``: protobuf or JSON, gzip/deflate, as a collector takes it."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        server: OtlpReceiver = self.server  # type: ignore[assignment]
        path = self.path.split("?", 1)[0].rstrip("/")
        try:
            body = _read_body(self)
        except ValueError:
            self.close_connection = True
            self._answer(400, b"malformed chunked body")
            return
        if body is None:
            self.close_connection = True
            self._answer(413, b"request body too large")
            return
        if path != "/v1/traces":
            self._answer(404, f"sysspan extension: only /v1/traces is received, not {path}".encode())
            return
        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        try:
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            elif encoding not in ("identity", ""):
                self._answer(415, f"unsupported Content-Encoding {encoding}".encode())
                return
        except (OSError, EOFError, zlib.error) as exc:
            self._answer(400, f"cannot decompress: {exc}".encode())
            return
        ctype = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        try:
            if ctype == "application/x-protobuf":
                batches = server.decode_protobuf(body)
                answer, answer_type = b"", "application/x-protobuf"
            elif ctype == "application/json":
                batches = server.decode_json(body)
                answer, answer_type = b"{}", "application/json"
            else:
                self._answer(415, b"Content-Type must be application/x-protobuf or application/json")
                return
        except Exception as exc:  # any malformed payload: 400, as a collector answers
            self._answer(400, f"cannot decode the request: {exc}".encode()[:500])
            return
        server.on_spans(batches)
        self._answer(200, answer, answer_type)


class OtlpReceiver(ThreadingHTTPServer):
    """The local OTLP/HTTP receiver the function (and the wrapper) export to."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, port: int, on_spans: Callable[[list[ResourceSpans]], None]) -> None:
        super().__init__((host, port), _OtlpHandler)
        self.on_spans = on_spans
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        from sysspan.exporters.otlp_json import decode_line, from_proto

        self._request_type = ExportTraceServiceRequest
        self._from_proto = from_proto
        self._decode_line = decode_line

    def decode_protobuf(self, body: bytes) -> list[ResourceSpans]:
        request = self._request_type()
        request.ParseFromString(body)
        return self._from_proto(request)

    def decode_json(self, body: bytes) -> list[ResourceSpans]:
        try:
            return self._decode_line(body.decode("utf-8"))
        except TraceFileError as exc:
            raise ValueError(str(exc)) from None


class _TelemetryHandler(_Handler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        server: TelemetryListener = self.server  # type: ignore[assignment]
        try:
            body = _read_body(self)
            events = json.loads(body or b"[]")
        except ValueError:
            self._answer(400, b"expected a JSON array of events")
            return
        if not isinstance(events, list):
            events = [events]
        server.on_events(events)
        self._answer(200)

    do_PUT = do_POST  # noqa: N815 - http.server's name


class TelemetryListener(ThreadingHTTPServer):
    """Receives the Telemetry API's batches; records ``platform.runtimeDone``."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, port: int, tracker: InvocationTracker) -> None:
        super().__init__((host, port), _TelemetryHandler)
        self.tracker = tracker
        self.events = 0

    def on_events(self, events: list[Any]) -> None:
        for event in events:
            self.events += 1
            if not isinstance(event, dict) or event.get("type") != "platform.runtimeDone":
                continue
            record = event.get("record")
            if isinstance(record, dict) and isinstance(record.get("requestId"), str):
                self.tracker.mark_done(record["requestId"], str(record.get("status", "")))


def _serve(server: ThreadingHTTPServer, name: str) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name=name, daemon=True)
    thread.start()
    return thread


# --------------------------------------------------------------------------- the extension


class Extension:
    """One extension process: ``run()`` returns the exit status."""

    def __init__(self, config: ExtensionConfig) -> None:
        self.config = config
        self.api = ExtensionsClient(config.runtime_api)
        self.tracker = InvocationTracker()
        self.forwarder = Forwarder(config)
        self.receiver: OtlpReceiver | None = None
        self.telemetry: TelemetryListener | None = None
        self.subscribed = False
        self.invocations = 0
        self._wrapper_done = InvocationTracker()

    # -- receiving

    def _on_spans(self, batches: list[ResourceSpans]) -> None:
        # The wrapper's invocation span is sent when the handler has returned: a second
        # "this invocation is over" signal, used when the Telemetry API is unavailable. It
        # comes unsampled (flags 0) when the caller's context was: a signal only, not kept.
        kept: list[ResourceSpans] = []
        for batch in batches:
            if batch.scope_name == WRAPPER_SCOPE:
                for span in batch.spans:
                    rid = span.attributes.get("faas.invocation_id")
                    if isinstance(rid, str):
                        self._wrapper_done.mark_done(rid, "wrapper")
                batch = batch.replace(spans=[s for s in batch.spans if s.flags & FLAG_SAMPLED])
            if batch.spans:
                kept.append(batch)
        self.forwarder.add(kept)

    def _bind(self) -> None:
        """Bind both listeners. A port already taken (another extension, e.g. an OpenTelemetry
        collector layer on 4318) is logged, not fatal: failing here would fail the function's
        Init."""
        try:
            self.receiver = OtlpReceiver(self.config.otlp_host, self.config.otlp_port, self._on_spans)
        except OSError as exc:
            _log(
                f"cannot listen on {self.config.otlp_host}:{self.config.otlp_port} for OTLP "
                f"({exc.strerror or exc}): another extension may use the port; set "
                "SYSSPAN_LAMBDA_OTLP_PORT on the function. Spans are not received by sysspan."
            )
        try:
            self.telemetry = TelemetryListener(self.config.telemetry_host, self.config.telemetry_port, self.tracker)
        except OSError as exc:
            _log(
                f"cannot listen on {self.config.telemetry_host}:{self.config.telemetry_port} for the "
                f"Telemetry API ({exc.strerror or exc}); set SYSSPAN_LAMBDA_TELEMETRY_HOST/_PORT"
            )

    def _subscribe(self) -> None:
        if self.telemetry is None:
            return
        port = self.telemetry.server_address[1]
        uri = f"http://{self.config.telemetry_host}:{port}"
        try:
            status = self.api.subscribe_telemetry(uri, self.config.telemetry_timeout_ms)
        except LambdaApiError as exc:
            _log(
                f"Telemetry API unavailable ({exc}): an invocation's spans are flushed when the "
                "wrapper's invocation span arrives (AWS_LAMBDA_EXEC_WRAPPER=/opt/sysspan-wrapper)"
            )
            return
        self.subscribed = status == 200
        if not self.subscribed:
            _log(f"Telemetry API accepted the subscription with HTTP {status}; events may not arrive")

    # -- the loop

    def _wait_for_invocation_end(self, request_id: str, deadline_ms: Any) -> None:
        if isinstance(deadline_ms, (int, float)) and deadline_ms > 0:
            timeout = deadline_ms / 1000.0 - time.time() + _DONE_GRACE_S
        else:
            timeout = 900.0 + _DONE_GRACE_S  # the longest Lambda timeout
        tracker = self.tracker if self.subscribed else self._wrapper_done
        status = tracker.wait_done(request_id, timeout)
        if status is None:
            signal_name = "platform.runtimeDone" if self.subscribed else "the wrapper's invocation span"
            _log(
                f"request {request_id}: no {signal_name} by the invocation's deadline; "
                f"flushing the {_spans(self.forwarder.pending)} received so far"
            )

    def _shutdown(self, event: Mapping[str, Any]) -> int:
        deadline_ms = event.get("deadlineMs")
        budget = SHUTDOWN_BUDGET_S
        if isinstance(deadline_ms, (int, float)) and deadline_ms > 0:
            budget = min(budget, deadline_ms / 1000.0 - time.time())
        end = time.monotonic() + budget - _EXIT_MARGIN_S
        reason = event.get("shutdownReason", "")
        self.forwarder.flush(f"shutdown ({reason})", budget_s=end - time.monotonic())
        self._stop_listeners()
        if self.forwarder.pending and end - time.monotonic() > 0.05:
            self.forwarder.flush(f"shutdown ({reason})", budget_s=end - time.monotonic())
        left = self.forwarder.pending
        self.forwarder.close()
        f = self.forwarder
        line = (
            f"shutdown ({reason or 'unknown'}): {self.invocations} invocation(s), "
            f"{_spans(f.received)} received, {f.sent} delivered to {f.destination}"
        )
        if f.spooled:
            line += f", {f.spooled} spooled to {self.config.spool_path}"
        if f.lost or left:
            line += f", {f.lost + left} lost"
        _log(line)
        return 0

    def _stop_listeners(self) -> None:
        for server in (self.receiver, self.telemetry):
            if server is not None:
                server.shutdown()
                server.server_close()
        self.receiver = self.telemetry = None

    def run(self) -> int:
        self._bind()
        try:
            self.api.register(self.config.name, ["INVOKE", "SHUTDOWN"])
        except LambdaApiError as exc:
            _log(f"cannot register with the Extensions API at {self.config.runtime_api}: {exc}")
            self._stop_listeners()
            return 1
        if self.receiver is not None:
            _serve(self.receiver, "sysspan-otlp-receiver")
        if self.telemetry is not None:
            _serve(self.telemetry, "sysspan-telemetry-listener")
        self._subscribe()
        if self.config.debug and self.receiver is not None:
            _log(
                f"registered; receiving OTLP on http://{self.config.otlp_host}:"
                f"{self.receiver.server_address[1]}/v1/traces, forwarding to {self.forwarder.destination}"
            )
        try:
            return self._loop()
        except (KeyboardInterrupt, SystemExit):
            # Lambda ends extensions with SHUTDOWN, not signals: a signal means a local run
            # was interrupted. Send what we hold, then go.
            self.forwarder.flush("interrupted", budget_s=SHUTDOWN_BUDGET_S)
            self.forwarder.close()
            raise

    def _loop(self) -> int:
        while True:
            try:
                event = self.api.next_event()
            except LambdaApiError as exc:
                _log(f"lost the Extensions API ({exc}); flushing and exiting")
                self.forwarder.flush("exit", budget_s=SHUTDOWN_BUDGET_S)
                self.forwarder.close()
                return 1
            kind = event.get("eventType")
            if kind == "INVOKE":
                self.invocations += 1
                if self.receiver is None:
                    continue  # nothing can arrive: do not hold the invocation up
                request_id = str(event.get("requestId", ""))
                self._wait_for_invocation_end(request_id, event.get("deadlineMs"))
                self.forwarder.flush(f"request {request_id}")
            elif kind == "SHUTDOWN":
                return self._shutdown(event)
            else:
                _log(f"ignoring unknown event type {kind!r}")


def main(env: Mapping[str, str] | None = None, *, name: str | None = None, otlp_port: int | None = None) -> int:
    """Entry point of ``sysspan lambda extension``."""
    config = ExtensionConfig.from_env(os.environ if env is None else env, name=name, otlp_port=otlp_port)
    for problem in config.problems:
        _log(f"configuration error: {problem}")
    extension = Extension(config)

    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    return extension.run()
