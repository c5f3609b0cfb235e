"""A local emulator of the AWS Lambda Runtime, Extensions and Telemetry APIs, for tests.

Built from the AWS documentation (Lambda "Runtime API", "Extensions API" and "Telemetry
API" references), on one HTTP server bound to 127.0.0.1 (the ``AWS_LAMBDA_RUNTIME_API``):

* Runtime API ``2018-06-01``: ``GET /runtime/invocation/next`` (long poll; the event as the
  body, ``Lambda-Runtime-Aws-Request-Id``, ``-Deadline-Ms``, ``-Invoked-Function-Arn``,
  ``-Trace-Id``, ``-Client-Context`` headers), ``POST /runtime/invocation/{id}/response``
  and ``/error``, ``POST /runtime/init/error``.
* Extensions API ``2020-01-01``: ``POST /extension/register`` (``Lambda-Extension-Name``;
  answers ``Lambda-Extension-Identifier``), ``GET /extension/event/next`` (INVOKE with
  ``requestId``, ``deadlineMs``, ``invokedFunctionArn``, ``tracing``; SHUTDOWN with
  ``shutdownReason`` and ``deadlineMs``), ``POST /extension/init/error`` and ``/exit/error``.
* Telemetry API ``2022-07-01``: ``PUT /telemetry`` (validated: schema version, types,
  buffering limits, HTTP destination); the subscriber then gets ``POST``ed JSON arrays of
  ``platform.initRuntimeDone``, ``platform.start``, ``platform.runtimeDone`` and
  ``platform.report`` events, batched for up to the subscription's ``timeoutMs``.

Lifecycle as Lambda runs it: Init ends when the runtime and every extension wait in their
``next`` call; ``invoke()`` gives the INVOKE to the extensions and the event to the runtime,
and the invocation ends only when the runtime *and every extension* are back in ``next``
(the environment then "freezes": no extension gets another event until the next
``invoke()``, and never before it asked). ``shutdown()`` sends SHUTDOWN with a 2-second
deadline.

Where Lambda is stricter or rougher than a kind server, the emulator is too: request headers
up to 1 MiB (awslambdaric's X-Ray error cause), X-Ray headers with ``Sampled=0`` unless the
function has active tracing, a runtime that exits mid-invocation ends that invocation with
``Runtime.ExitError`` (:meth:`LambdaEmulator.attach_runtime`), and ``shutdown()`` sends the
runtime SIGTERM, then SIGKILL 500 ms later, before SHUTDOWN reaches the extensions. The
runtime in the tests is the real one: ``python -m awslambdaric HANDLER``.
"""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

RUNTIME = "/2018-06-01/runtime"
EXTENSION = "/2020-01-01/extension"
TELEMETRY = "/2022-07-01/telemetry"
SCHEMA_VERSIONS = ("2022-07-01", "2022-12-13", "2025-01-29")
TELEMETRY_TYPES = ("platform", "function", "extension")
SHUTDOWN_DEADLINE_MS = 2000
#: How long the runtime has between SIGTERM and SIGKILL at shutdown.
RUNTIME_SIGTERM_GRACE_S = 0.5
#: Lambda takes an X-Ray error cause of up to 1 MiB in a request header; http.client's
#: header parser (which http.server uses) stops at 64 KiB unless told otherwise.
MAX_HEADER_LINE = 1024 * 1024 + 4096
http.client._MAXLINE = max(http.client._MAXLINE, MAX_HEADER_LINE)  # type: ignore[attr-defined]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _iso(ts: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if ts is None else ts, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def xray_header(sampled: bool = True) -> tuple[str, str, str]:
    """A fresh X-Ray trace header as Lambda makes one: (header, root, parent)."""
    root = f"1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
    parent = uuid.uuid4().hex[:16]
    return f"Root={root};Parent={parent};Sampled={int(sampled)}", root, parent


# --------------------------------------------------------------------------- state


@dataclass
class Invocation:
    request_id: str
    payload: Any
    deadline_ms: int
    trace_header: str
    client_context: dict | None
    response: Any = None
    error: Any = None
    error_type: str = ""
    error_cause: str = ""
    done: bool = False
    started: float = field(default_factory=time.time)
    finished: float = 0.0


@dataclass
class _Extension:
    ident: str
    name: str
    events: list[str]
    queue: deque = field(default_factory=deque)
    waiting: bool = False
    next_calls: int = 0


@dataclass
class _Subscriber:
    ident: str
    uri: str
    types: list[str]
    max_items: int
    timeout_ms: int
    queue: list = field(default_factory=list)
    delivered: int = 0
    failed: int = 0


class LambdaEmulator:
    """One execution environment. ``telemetry_linger_ms`` overrides how long events wait
    for a batch (default: the subscription's ``timeoutMs``, as Lambda does);
    ``telemetry_api=False`` answers the subscription with 404 (an environment without the
    Telemetry API); ``active_tracing=False`` makes X-Ray headers say ``Sampled=0``, as for
    a function without active tracing."""

    def __init__(
        self,
        *,
        function_name: str = "sysspan-emulated",
        version: str = "$LATEST",
        region: str = "us-east-1",
        account: str = "123456789012",
        memory_mb: int = 128,
        timeout_s: float = 30.0,
        telemetry_linger_ms: int | None = None,
        telemetry_api: bool = True,
        active_tracing: bool = True,
    ) -> None:
        self.active_tracing = active_tracing
        self.runtime: subprocess.Popen | None = None
        self.runtime_exit: int | None = None
        self.function_name = function_name
        self.version = version
        self.region = region
        self.account = account
        self.memory_mb = memory_mb
        self.timeout_s = timeout_s
        self.arn = f"arn:aws:lambda:{region}:{account}:function:{function_name}"
        self.telemetry_linger_ms = telemetry_linger_ms
        self.telemetry_api = telemetry_api
        self.cond = threading.Condition()
        self.extensions: dict[str, _Extension] = {}
        self.subscribers: list[_Subscriber] = []
        self.invocations: list[Invocation] = []
        self.errors: list[tuple[str, str, Any]] = []  # (phase, ident/request id, body)
        self.telemetry_log: list[dict] = []
        self.runtime_waiting = False
        self.runtime_next_calls = 0
        self._runtime_queue: deque[Invocation] = deque()
        self._by_id: dict[str, Invocation] = {}
        self._current: Invocation | None = None
        self._init_done = False
        self._init_started = time.time()
        self._stopping = False
        self._shutdown_sent = False
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="lambda-emulator", daemon=True)
        self._dispatcher = threading.Thread(target=self._dispatch_telemetry, name="telemetry", daemon=True)

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> LambdaEmulator:
        self._thread.start()
        self._dispatcher.start()
        return self

    def stop(self) -> None:
        with self.cond:
            self._stopping = True
            self.cond.notify_all()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
        self._dispatcher.join(5)

    def env(self) -> dict[str, str]:
        """The variables Lambda sets for the runtime and the extensions."""
        return {
            "AWS_LAMBDA_RUNTIME_API": self.address,
            "AWS_LAMBDA_FUNCTION_NAME": self.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": self.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"2024/01/01/[$LATEST]{uuid.uuid4().hex}",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}",
            "LAMBDA_TASK_ROOT": "/var/task",
        }

    def wait_ready(self, extensions: int, runtime: bool = True, timeout: float = 30.0) -> None:
        """Wait for the end of Init: ``extensions`` registered and waiting in ``event/next``
        (and the runtime in ``invocation/next``)."""

        def ready() -> bool:
            waiting = sum(1 for e in self.extensions.values() if e.waiting and not e.queue)
            return waiting >= extensions and (self.runtime_waiting or not runtime)

        with self.cond:
            if not self.cond.wait_for(ready, timeout):
                raise TimeoutError(
                    f"Init did not finish: {len(self.extensions)} extension(s) registered, "
                    f"runtime waiting: {self.runtime_waiting}, errors: {self.errors}"
                )
            if runtime and not self._init_done:
                self._init_done = True
                self._emit("platform.initRuntimeDone", {"initializationType": "on-demand", "phase": "init", "status": "success"})
                self._emit(
                    "platform.initReport",
                    {
                        "initializationType": "on-demand",
                        "phase": "init",
                        "status": "success",
                        "metrics": {"durationMs": round((time.time() - self._init_started) * 1000, 3)},
                    },
                )

    def attach_runtime(self, proc: subprocess.Popen) -> None:
        """Watch the runtime process as Lambda does: an exit during an invocation ends it
        with ``Runtime.ExitError``; ``shutdown()`` stops it with SIGTERM."""
        self.runtime = proc

        def watch() -> None:
            code = proc.wait()
            with self.cond:
                self.runtime_exit = code
                self.runtime_waiting = False
                inv = self._current
                if inv is not None and not inv.done:
                    how = f"signal: {signal.Signals(-code).name.lower()}" if code < 0 else f"exit status {code}"
                    inv.error = {"errorType": "Runtime.ExitError", "errorMessage": f"RequestId: {inv.request_id} Error: Runtime exited with error: {how}"}
                    inv.error_type = "Runtime.ExitError"
                    inv.done = True
                    self._emit("platform.runtimeDone", {"requestId": inv.request_id, "status": "failure", "errorType": "Runtime.ExitError", "tracing": self._tracing(inv)})
                self.cond.notify_all()

        threading.Thread(target=watch, name="runtime-watch", daemon=True).start()

    def _frozen(self) -> bool:
        """Runtime (unless it died) and every extension wait in ``next`` with nothing queued."""
        return (
            (self.runtime_waiting or self.runtime_exit is not None)
            and not self._runtime_queue
            and all(e.waiting and not e.queue for e in self.extensions.values())
        )

    def invoke(
        self,
        payload: Any,
        *,
        client_context: dict | None = None,
        trace_header: str | None = None,
        timeout: float = 30.0,
    ) -> Invocation:
        """One invocation, start to end (the runtime and all extensions back in ``next``)."""
        with self.cond:
            if not self.cond.wait_for(self._frozen, timeout):
                raise TimeoutError("the environment is not idle: an extension or the runtime is not in next")
            if not self._init_done:
                raise RuntimeError("call wait_ready() first")
            if self.runtime_exit is not None:
                raise RuntimeError(f"the runtime exited ({self.runtime_exit}): the environment needs a new Init")
            inv = Invocation(
                request_id=str(uuid.uuid4()),
                payload=payload,
                deadline_ms=_now_ms() + int(self.timeout_s * 1000),
                trace_header=trace_header or xray_header(self.active_tracing)[0],
                client_context=client_context,
            )
            self.invocations.append(inv)
            self._by_id[inv.request_id] = inv
            self._current = inv
            event = {
                "eventType": "INVOKE",
                "deadlineMs": inv.deadline_ms,
                "requestId": inv.request_id,
                "invokedFunctionArn": self.arn,
                "tracing": {"type": "X-Amzn-Trace-Id", "value": inv.trace_header},
            }
            for ext in self.extensions.values():
                if "INVOKE" in ext.events:
                    ext.queue.append(dict(event))
            self._runtime_queue.append(inv)
            self._emit("platform.start", {"requestId": inv.request_id, "version": self.version, "tracing": self._tracing(inv)})
            self.cond.notify_all()
            if not self.cond.wait_for(lambda: inv.done, timeout):
                raise TimeoutError(f"no response for {inv.request_id}")
            if not self.cond.wait_for(self._frozen, timeout):
                raise TimeoutError(f"invocation {inv.request_id}: an extension never came back to event/next")
            inv.finished = time.time()
            duration = round((inv.finished - inv.started) * 1000, 3)
            self._emit(
                "platform.report",
                {
                    "requestId": inv.request_id,
                    "status": "success" if inv.error is None else "error",
                    "metrics": {
                        "durationMs": duration,
                        "billedDurationMs": int(duration) + 1,
                        "memorySizeMB": self.memory_mb,
                        "maxMemoryUsedMB": 64,
                    },
                    "tracing": self._tracing(inv),
                },
            )
            self._current = None
            return inv

    def shutdown(self, reason: str = "spindown") -> int:
        """Lambda's Shutdown phase: SIGTERM to the attached runtime (SIGKILL if it is still
        there 500 ms later), then SHUTDOWN to the extensions registered for it; returns the
        extensions' deadline (ms)."""
        deadline = _now_ms() + SHUTDOWN_DEADLINE_MS
        proc = self.runtime
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(RUNTIME_SIGTERM_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        with self.cond:
            self._shutdown_sent = True
            for ext in self.extensions.values():
                if "SHUTDOWN" in ext.events:
                    ext.queue.append({"eventType": "SHUTDOWN", "shutdownReason": reason, "deadlineMs": deadline})
            self.cond.notify_all()
        return deadline

    def _tracing(self, inv: Invocation) -> dict:
        return {"spanId": uuid.uuid4().hex[:16], "type": "X-Amzn-Trace-Id", "value": inv.trace_header}

    # -- telemetry -----------------------------------------------------------------

    def _emit(self, kind: str, record: dict) -> None:
        """Queue a platform event for every subscriber (caller holds ``cond``)."""
        event = {"time": _iso(), "type": kind, "record": record}
        self.telemetry_log.append(event)
        for sub in self.subscribers:
            if "platform" in sub.types:
                sub.queue.append((time.monotonic(), event))
        self.cond.notify_all()

    def _dispatch_telemetry(self) -> None:
        """Deliver each subscriber's queue in order, batched for up to its linger time."""
        while True:
            with self.cond:
                self.cond.wait_for(lambda: self._stopping or any(s.queue for s in self.subscribers), 0.5)
                if self._stopping:
                    return
                now = time.monotonic()
                ready: list[tuple[_Subscriber, list[dict]]] = []
                next_due = None
                for sub in self.subscribers:
                    if not sub.queue:
                        continue
                    linger = (self.telemetry_linger_ms if self.telemetry_linger_ms is not None else sub.timeout_ms) / 1000
                    due = sub.queue[0][0] + linger
                    if due <= now or len(sub.queue) >= sub.max_items:
                        batch = [e for _, e in sub.queue[: sub.max_items]]
                        del sub.queue[: len(batch)]
                        ready.append((sub, batch))
                    else:
                        next_due = due if next_due is None else min(next_due, due)
                if not ready:
                    self.cond.wait(max(0.0005, (next_due or now + 0.5) - now))
                    continue
            for sub, batch in ready:
                ok = self._post(sub.uri, batch)
                with self.cond:
                    if ok:
                        sub.delivered += len(batch)
                    else:
                        sub.failed += len(batch)

    @staticmethod
    def _post(uri: str, batch: list[dict]) -> bool:
        parts = urlsplit(uri)
        host = "127.0.0.1" if parts.hostname == "sandbox.localdomain" else parts.hostname
        body = json.dumps(batch).encode()
        for _attempt in range(3):
            conn = http.client.HTTPConnection(host or "127.0.0.1", parts.port or 80, timeout=5)
            try:
                conn.request("POST", parts.path or "/", body=body, headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                if resp.status < 300:
                    return True
            except OSError:
                time.sleep(0.01)
            finally:
                conn.close()
        return False

    # -- HTTP ----------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        emu = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: without this, Nagle's algorithm
            # and the client's delayed ACK add ~40 ms to every answer.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None, raw: bytes | None = None) -> None:
                data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                try:
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # a runtime that exited (or was killed) does not read its answer

            def _error(self, status: int, error_type: str, message: str) -> None:
                self._send(status, {"errorType": error_type, "errorMessage": message})

            def do_GET(self) -> None:  # noqa: N802
                if self.path == f"{RUNTIME}/invocation/next":
                    emu._runtime_next(self)
                elif self.path == f"{EXTENSION}/event/next":
                    emu._extension_next(self)
                else:
                    self._error(404, "InvalidRequest", f"no such path {self.path}")

            def do_POST(self) -> None:  # noqa: N802
                body = self._body()
                path = self.path
                if path == f"{EXTENSION}/register":
                    emu._register(self, body)
                elif path in (f"{EXTENSION}/init/error", f"{EXTENSION}/exit/error"):
                    with emu.cond:
                        emu.errors.append((path.rsplit("/", 2)[-2], self.headers.get("Lambda-Extension-Identifier", ""), body))
                    self._send(202, {"status": "OK"})
                elif path == f"{RUNTIME}/init/error":
                    with emu.cond:
                        emu.errors.append(("runtime-init", "", body))
                        emu.cond.notify_all()
                    self._send(202, {"status": "OK"})
                elif path.startswith(f"{RUNTIME}/invocation/") and path.endswith(("/response", "/error")):
                    emu._runtime_result(self, path, body, self.headers)
                else:
                    self._error(404, "InvalidRequest", f"no such path {path}")

            def do_PUT(self) -> None:  # noqa: N802
                body = self._body()
                if self.path.rstrip("/") == TELEMETRY:
                    emu._subscribe(self, body)
                else:
                    self._error(404, "InvalidRequest", f"no such path {self.path}")

        return Handler

    # Runtime API

    def _runtime_next(self, h: Any) -> None:
        with self.cond:
            self.runtime_waiting = True
            self.runtime_next_calls += 1
            self.cond.notify_all()
            self.cond.wait_for(lambda: self._runtime_queue or self._stopping)
            if self._stopping:
                self.runtime_waiting = False
                h._error(500, "Runtime.Stopping", "environment stopping")
                return
            inv = self._runtime_queue.popleft()
            self.runtime_waiting = False
        headers = {
            "Lambda-Runtime-Aws-Request-Id": inv.request_id,
            "Lambda-Runtime-Deadline-Ms": str(inv.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": self.arn,
            "Lambda-Runtime-Trace-Id": inv.trace_header,
        }
        if inv.client_context is not None:
            headers["Lambda-Runtime-Client-Context"] = json.dumps(inv.client_context)
        h._send(200, inv.payload, headers)

    def _runtime_result(self, h: Any, path: str, body: bytes, headers: Any) -> None:
        request_id = path[len(f"{RUNTIME}/invocation/") :].rsplit("/", 1)[0]
        is_error = path.endswith("/error")
        with self.cond:
            inv = self._by_id.get(request_id)
            if inv is None or inv.done:
                h._error(400, "InvalidRequestID", f"unknown or finished request {request_id}")
                return
            try:
                value = json.loads(body) if body else None
            except ValueError:
                value = body.decode(errors="replace")
            if is_error:
                inv.error = value
                inv.error_type = headers.get("Lambda-Runtime-Function-Error-Type", "")
                inv.error_cause = headers.get("Lambda-Runtime-Function-XRay-Error-Cause", "")
            else:
                inv.response = value
            inv.done = True
            elapsed = round((time.time() - inv.started) * 1000, 3)
            self._emit(
                "platform.runtimeDone",
                {
                    "requestId": request_id,
                    "status": "error" if is_error else "success",
                    "metrics": {"durationMs": elapsed, "producedBytes": len(body)},
                    "spans": [{"name": "responseLatency", "start": _iso(inv.started), "durationMs": elapsed}],
                    "tracing": self._tracing(inv),
                },
            )
        h._send(202, {"status": "OK"})

    # Extensions API

    def _register(self, h: Any, body: bytes) -> None:
        name = h.headers.get("Lambda-Extension-Name", "")
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            h._error(400, "InvalidRequest", "body is not JSON")
            return
        events = doc.get("events") if isinstance(doc, dict) else None
        if not name:
            h._error(400, "Extension.InvalidName", "Lambda-Extension-Name header missing")
            return
        if not isinstance(events, list) or not set(events) <= {"INVOKE", "SHUTDOWN"}:
            h._error(400, "Extension.InvalidEvents", f"invalid events {events!r}")
            return
        with self.cond:
            if self._init_done:
                h._error(403, "Extension.InvalidRequest", "register is only allowed during Init")
                return
            if any(e.name == name for e in self.extensions.values()):
                h._error(409, "Extension.AlreadyRegistered", f"{name} already registered")
                return
            ident = str(uuid.uuid4())
            self.extensions[ident] = _Extension(ident, name, list(events))
            self.cond.notify_all()
        h._send(
            200,
            {"functionName": self.function_name, "functionVersion": self.version, "handler": "fn.handler"},
            {"Lambda-Extension-Identifier": ident},
        )

    def _extension_next(self, h: Any) -> None:
        ident = h.headers.get("Lambda-Extension-Identifier", "")
        with self.cond:
            ext = self.extensions.get(ident)
            if ext is None:
                h._error(403, "Extension.Unknown", "unknown Lambda-Extension-Identifier")
                return
            ext.waiting = True
            ext.next_calls += 1
            self.cond.notify_all()
            self.cond.wait_for(lambda: ext.queue or self._stopping)
            if self._stopping and not ext.queue:
                ext.waiting = False
                h._error(500, "Extension.Stopping", "environment stopping")
                return
            event = ext.queue.popleft()
            ext.waiting = False
            self.cond.notify_all()
        h._send(200, event, {"Lambda-Extension-Event-Identifier": str(uuid.uuid4())})

    # Telemetry API

    def _subscribe(self, h: Any, body: bytes) -> None:
        if not self.telemetry_api:
            h._error(404, "InvalidRequest", "the Telemetry API is not available here")
            return
        ident = h.headers.get("Lambda-Extension-Identifier", "")
        try:
            doc = json.loads(body)
        except ValueError:
            h._error(400, "ValidationError", "body is not JSON")
            return
        problem = _validate_subscription(doc)
        if problem:
            h._error(400, "ValidationError", problem)
            return
        buffering = doc.get("buffering") or {}
        with self.cond:
            if ident not in self.extensions:
                h._error(403, "AccessDeniedException", "unknown Lambda-Extension-Identifier")
                return
            self.subscribers.append(
                _Subscriber(
                    ident=ident,
                    uri=doc["destination"]["URI"],
                    types=list(doc["types"]),
                    max_items=int(buffering.get("maxItems", 1000)),
                    timeout_ms=int(buffering.get("timeoutMs", 1000)),
                )
            )
        h._send(200, raw=b"OK")


def _validate_subscription(doc: Any) -> str | None:
    if not isinstance(doc, dict):
        return "body must be an object"
    if doc.get("schemaVersion") not in SCHEMA_VERSIONS:
        return f"schemaVersion must be one of {SCHEMA_VERSIONS}"
    types = doc.get("types")
    if not isinstance(types, list) or not types or not set(types) <= set(TELEMETRY_TYPES):
        return f"types must be a non-empty subset of {TELEMETRY_TYPES}"
    dest = doc.get("destination")
    if not isinstance(dest, dict) or dest.get("protocol") != "HTTP" or not str(dest.get("URI", "")).startswith("http://"):
        return "destination must be {protocol: HTTP, URI: http://...} (TCP is not emulated)"
    buffering = doc.get("buffering", {})
    limits = {"maxItems": (1000, 10000), "maxBytes": (262144, 1048576), "timeoutMs": (25, 30000)}
    for key, (low, high) in limits.items():
        if key in buffering and not (isinstance(buffering[key], int) and low <= buffering[key] <= high):
            return f"buffering.{key} must be an integer in {low}..{high}"
    return None
