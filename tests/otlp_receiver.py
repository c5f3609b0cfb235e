"""Real in-process OTLP receivers for tests: gRPC and HTTP on 127.0.0.1 ephemeral ports.

They decode what arrives with the official protobuf classes (and, for OTLP/JSON, with
protobuf's own ``json_format`` after turning the hex ids into base64), so a test that passes
proves a real collector would have understood the bytes. Each receiver can be told to fail
the next N requests (HTTP status + Retry-After, or a gRPC status code), or hold every
request until released (a slow collector).
"""

from __future__ import annotations

import base64
import gzip
import json
import socket
import threading
import zlib
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanPb

try:  # google.rpc.RetryInfo lets a gRPC failure say "retry now" (keeps tests fast)
    from google.rpc.error_details_pb2 import RetryInfo
except ImportError:  # pragma: no cover - googleapis-common-protos comes with the exporter
    RetryInfo = None  # type: ignore[assignment,misc]

ExportTraceServiceRequest = trace_service_pb2.ExportTraceServiceRequest


def _hex_ids_to_base64(obj: Any) -> Any:
    """OTLP/JSON writes ids as hex; protobuf's canonical JSON wants base64 bytes."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                out[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
            else:
                out[key] = _hex_ids_to_base64(value)
        return out
    if isinstance(obj, list):
        return [_hex_ids_to_base64(v) for v in obj]
    return obj


def otlp_json_to_proto(text: str | bytes) -> Any:
    """Parse one OTLP/JSON request with protobuf's ``json_format`` (strict: unknown fields
    are an error), the way a collector would."""
    doc = json.loads(text)
    request = ExportTraceServiceRequest()
    json_format.ParseDict(_hex_ids_to_base64(doc), request)
    return request


def decode_request(data: bytes) -> Any:
    """Parse protobuf request bytes with the official classes, the way a collector would."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(data)
    return request


def any_value(value: AnyValue) -> Any:
    """A protobuf ``AnyValue`` as a plain Python value."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, which)


def attrs(repeated: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in repeated}


class _Store:
    """What a receiver got, guarded by a condition so tests can wait without sleeping."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.requests: list[Any] = []
        self.headers: list[dict[str, str]] = []
        self.attempts = 0
        self.held = 0  # requests waiting at a closed gate now
        self._failures: list[Any] = []
        self._gate = threading.Event()
        self._gate.set()

    def hold(self) -> None:
        """Make every request wait (before it is looked at) until :meth:`release`."""
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def _pass_gate(self) -> None:
        if self._gate.is_set():
            return
        with self.cond:
            self.held += 1
            self.cond.notify_all()
        self._gate.wait(60)
        with self.cond:
            self.held -= 1

    def wait_held(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until ``count`` requests are waiting at the gate."""
        with self.cond:
            return self.cond.wait_for(lambda: self.held >= count, timeout)

    def fail_next(self, n: int, failure: Any) -> None:
        with self.cond:
            self._failures.extend([failure] * n)

    def _take_failure(self) -> Any:
        with self.cond:
            self.attempts += 1
            return self._failures.pop(0) if self._failures else None

    def _record(self, request: Any, headers: dict[str, str]) -> None:
        with self.cond:
            self.requests.append(request)
            self.headers.append(headers)
            self.cond.notify_all()

    def wait_for_spans(self, count: int, timeout: float = 10.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.spans()) >= count, timeout)

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        """Every span received, flattened: ``(resource attributes, Span protobuf)``."""
        out = []
        for request in list(self.requests):
            for rs in request.resource_spans:
                resource = attrs(rs.resource.attributes)
                for ss in rs.scope_spans:
                    out.extend((resource, span) for span in ss.spans)
        return out

    def scopes(self) -> list[tuple[str, str]]:
        return [
            (ss.scope.name, ss.scope.version)
            for request in list(self.requests)
            for rs in request.resource_spans
            for ss in rs.scope_spans
        ]


class GrpcReceiver(_Store):
    """``TraceService/Export`` on 127.0.0.1:<port>. ``accept_gzip=False`` makes the server
    refuse gzip-compressed messages (proves the client really compressed)."""

    def __init__(self, accept_gzip: bool = True) -> None:
        super().__init__()
        options = [] if accept_gzip else [("grpc.compression_enabled_algorithms_bitset", 1)]
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=options)
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Servicer(self), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def start(self) -> GrpcReceiver:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop(grace=None).wait()

    def fail(self, n: int, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE, retry_after_s: float | None = 0.0) -> None:
        """Answer the next ``n`` requests with ``code`` (and a RetryInfo delay, if given)."""
        self.fail_next(n, (code, retry_after_s))


class _Servicer(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, store: GrpcReceiver) -> None:
        self.store = store

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 - gRPC name
        self.store._pass_gate()
        failure = self.store._take_failure()
        if failure is not None:
            code, delay = failure
            if delay is not None and RetryInfo is not None:
                info = RetryInfo(retry_delay=Duration(seconds=int(delay), nanos=int((delay % 1) * 1e9)))
                context.set_trailing_metadata((("google.rpc.retryinfo-bin", info.SerializeToString()),))
            context.set_code(code)
            context.set_details("test receiver told to fail")
            return trace_service_pb2.ExportTraceServiceResponse()
        headers = {md.key: md.value for md in context.invocation_metadata()}
        self.store._record(request, headers)
        return trace_service_pb2.ExportTraceServiceResponse()


class HttpReceiver(_Store):
    """``POST /v1/traces`` on 127.0.0.1:<port>; protobuf or JSON bodies, gzip/deflate.
    ``port`` 0 picks a free one; a fixed one lets a test start a collector late."""

    def __init__(self, port: int = 0) -> None:
        super().__init__()
        self.content_types: list[str] = []
        self.encodings: list[str] = []
        self._open: set[socket.socket] = set()
        store = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with store.cond:
                    store._open.add(self.connection)

            def finish(self) -> None:
                with store.cond:
                    store._open.discard(self.connection)
                super().finish()

            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server name
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                store._pass_gate()
                failure = store._take_failure()
                if failure is not None:
                    status, retry_after = failure
                    extra = {"Retry-After": str(retry_after)} if retry_after is not None else {}
                    self._answer(status, b"", "text/plain", extra)
                    return
                if self.path != "/v1/traces":
                    self._answer(404, b"not found", "text/plain")
                    return
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
                try:
                    if ctype == "application/x-protobuf":
                        request = ExportTraceServiceRequest()
                        request.ParseFromString(body)
                        answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                    elif ctype == "application/json":
                        request = otlp_json_to_proto(body)
                        answer = b"{}"
                    else:
                        self._answer(415, b"unsupported content type", "text/plain")
                        return
                except Exception as exc:  # a real collector answers 400 to a bad body
                    self._answer(400, str(exc).encode(), "text/plain")
                    return
                with store.cond:
                    store.content_types.append(ctype)
                    store.encodings.append(encoding)
                store._record(request, {k.lower(): v for k, v in self.headers.items()})
                self._answer(200, answer, ctype)

            def _answer(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}/v1/traces"
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.02},  # how long stop() waits for the loop to notice
            name="otlp-http-receiver",
            daemon=True,
        )

    def start(self) -> HttpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and drop kept-alive connections too, like a collector that dies."""
        self.server.shutdown()
        self.server.server_close()
        with self.cond:
            for conn in list(self._open):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._thread.join()

    def fail(self, n: int, status: int = 503, retry_after_s: int | None = 0) -> None:
        """Answer the next ``n`` requests with ``status`` (and ``Retry-After``, if given)."""
        self.fail_next(n, (status, retry_after_s))


__all__ = [
    "GrpcReceiver",
    "HttpReceiver",
    "SpanPb",
    "any_value",
    "attrs",
    "decode_request",
    "otlp_json_to_proto",
]
