"""The invocation span: one SERVER span per Lambda invocation, in the caller's trace.

The runtime reaches it through ``sysspan.lambda_.wrapper.handler``, the handler name the
exec wrapper (``/opt/sysspan-wrapper``) gives the runtime in place of the function's own,
which it moves to ``SYSSPAN_ORIG_HANDLER``. Under awslambdaric (every AWS Python runtime
and image) :mod:`sysspan.lambda_.ric` then records the span from inside the runtime's own
invocation loop, so the function's errors and tracebacks are exactly what they are without
sysspan; other runtimes get a wrapping handler (and one log line saying so). Code can also
decorate its handler with :func:`wrap`.

For each invocation:

* the parent is the caller's context, first found of: ``event["headers"]["traceparent"]``
  (header names case-insensitive, API Gateway / ALB / function URLs), ``context.w3c()``
  (the client context's ``w3c`` entry), the client context's ``custom["traceparent"]``
  (``aws lambda invoke --client-context``, see ``sysspan lambda invoke``), the X-Ray header
  ``_X_AMZN_TRACE_ID`` with ``Sampled=1`` converted to W3C; else a new trace;
* sampling: a caller's context that is not sampled (``-00``) is followed: no span is
  recorded and the function is handed nothing (its own SDK decides for itself). A span is
  never recorded under a parent that is not recorded (an X-Ray ``Sampled=0`` header is
  not a parent);
* the span carries ``faas.trigger``, ``faas.invocation_id`` (the request id),
  ``faas.coldstart`` (true only for the first invocation of the environment),
  ``faas.name``, ``faas.version``, ``cloud.provider``/``cloud.platform``,
  ``cloud.resource_id`` (the invoked ARN), ``cloud.account.id``, HTTP attributes for HTTP
  triggers, and ``sysspan.parent.source`` saying where the parent came from;
* the handler runs with ``TRACEPARENT``/``TRACESTATE``/``BAGGAGE`` pointing at the span, for
  its own outgoing calls and child processes; when the function uses the OpenTelemetry API,
  the span is also the active context, so the function's spans nest under it, and its
  tracer provider is flushed when the handler returns;
* the span is sent (OTLP/HTTP JSON) to the sysspan extension's local receiver *before* the
  runtime's answer goes back to Lambda, so it is in the extension's buffer when Lambda
  reports ``platform.runtimeDone``.

Telemetry never breaks the function: every failure here is one line on stderr.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import sys
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sysspan import __version__
from sysspan.lambda_ import DEFAULT_OTLP_PORT
from sysspan.lambda_.bootstrap import ORIG_HANDLER_ENV
from sysspan.model import ResourceSpans, Span, SpanEvent, SpanKind, StatusCode
from sysspan.propagation.traceparent import (
    NEW_TRACE_FLAGS,
    InvalidTraceContext,
    SpanContext,
    parse_traceparent,
    xray_to_traceparent,
)
from sysspan.propagation.tracestate import TraceState

ENDPOINT_ENV = "SYSSPAN_LAMBDA_OTLP_ENDPOINT"
SCOPE_NAME = "sysspan.lambda"
_SEND_TIMEOUT_S = 2.0

Handler = Callable[[Any, Any], Any]


def _warn(msg: str) -> None:
    print(f"[sysspan wrapper] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the caller's context


def _lower_keys(mapping: Any) -> dict[str, Any]:
    if not isinstance(mapping, Mapping):
        return {}
    return {str(k).lower(): v for k, v in mapping.items()}


def _header(event: Any, name: str) -> str | None:
    """A header of an HTTP-triggered event (``headers``, else ``multiValueHeaders``)."""
    if not isinstance(event, Mapping):
        return None
    value = _lower_keys(event.get("headers")).get(name)
    if isinstance(value, str) and value.strip():
        return value
    multi = _lower_keys(event.get("multiValueHeaders")).get(name)
    if isinstance(multi, list) and multi and isinstance(multi[0], str):
        return multi[0]
    return None


def _client_custom(context: Any) -> dict[str, Any]:
    client_context = getattr(context, "client_context", None)
    if isinstance(client_context, Mapping):
        custom = client_context.get("custom") or client_context.get("Custom")
    else:
        custom = getattr(client_context, "custom", None)
    return _lower_keys(custom)


def _with_state(ctx: SpanContext, state: Any) -> SpanContext:
    if not isinstance(state, str) or not state.strip():
        return ctx
    try:
        parsed = TraceState.parse(state)
    except InvalidTraceContext:
        return ctx
    return SpanContext(ctx.trace_id, ctx.span_id, ctx.flags, parsed, True) if parsed else ctx


def _w3c(context: Any) -> dict[str, Any]:
    """awslambdaric's ``context.w3c()``: the client context's ``w3c`` entry (which the
    runtime removes from ``context.client_context``)."""
    method = getattr(context, "w3c", None)
    if not callable(method):
        return {}
    try:
        return _lower_keys(method())
    except Exception:
        return {}


def extract_parent(event: Any, context: Any, env: Mapping[str, str]) -> tuple[SpanContext | None, str, str | None]:
    """The caller's context, where it came from (``headers``, ``w3c``, ``client_context``,
    ``xray`` or ``none``) and its baggage header. Invalid values are skipped (one warning),
    and the next source is tried. An X-Ray header counts only with ``Sampled=1``: otherwise
    X-Ray records nothing of that trace, and a span under it would have a parent no
    backend ever receives."""
    for source, get in (
        ("headers", lambda name: _header(event, name)),
        ("w3c", lambda name: _w3c(context).get(name)),
        ("client_context", lambda name: _client_custom(context).get(name)),
    ):
        raw = get("traceparent")
        if not isinstance(raw, str) or not raw.strip():
            continue
        try:
            ctx = parse_traceparent(raw)
        except InvalidTraceContext as exc:
            _warn(f"ignoring invalid traceparent in the {source.replace('_', ' ')} ({exc})")
            continue
        baggage = get("baggage")
        return _with_state(ctx, get("tracestate")), source, baggage if isinstance(baggage, str) else None
    xray = env.get("_X_AMZN_TRACE_ID", "")
    if xray:
        xray_ctx = xray_to_traceparent(xray)
        if xray_ctx is not None and xray_ctx.sampled:
            return xray_ctx, "xray", None
    return None, "none", None


# --------------------------------------------------------------------------- attributes


def trigger_of(event: Any) -> str:
    """``faas.trigger`` from the event's shape: http, pubsub, datasource, timer or other."""
    if not isinstance(event, Mapping):
        return "other"
    request_context = event.get("requestContext")
    if "httpMethod" in event or "routeKey" in event or (
        isinstance(request_context, Mapping) and ("http" in request_context or "elb" in request_context)
    ):
        return "http"
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], Mapping):
        source = str(records[0].get("eventSource") or records[0].get("EventSource") or "")
        if source in ("aws:sqs", "aws:sns", "aws:kinesis", "aws:kafka", "aws:mq", "aws:rmq"):
            return "pubsub"
        if source in ("aws:s3", "aws:dynamodb"):
            return "datasource"
    if event.get("source") == "aws.events" and event.get("detail-type") == "Scheduled Event":
        return "timer"
    return "other"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _http_attributes(event: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    attrs: dict[str, Any] = {}
    rc = _mapping(event.get("requestContext"))
    http = _mapping(rc.get("http"))
    method = event.get("httpMethod") or http.get("method")
    path = event.get("rawPath") or event.get("path") or http.get("path")
    route = event.get("routeKey") if event.get("routeKey") not in (None, "$default") else None
    if route and " " in str(route):
        route = str(route).split(" ", 1)[1]
    route = route or event.get("resource")
    if isinstance(method, str):
        attrs["http.request.method"] = method.upper()
    if isinstance(path, str):
        attrs["url.path"] = path
    if isinstance(route, str):
        attrs["http.route"] = route
    name = None
    if isinstance(method, str):
        name = f"{method.upper()} {route}" if isinstance(route, str) else method.upper()
    return attrs, name


def _arn_attributes(arn: str | None) -> dict[str, Any]:
    if not isinstance(arn, str) or not arn.startswith("arn:"):
        return {}
    parts = arn.split(":")
    attrs: dict[str, Any] = {"cloud.resource_id": arn}
    if len(parts) > 4 and parts[4]:
        attrs["cloud.account.id"] = parts[4]
    if len(parts) > 3 and parts[3]:
        attrs["cloud.region"] = parts[3]
    return attrs


# --------------------------------------------------------------------------- OpenTelemetry API


def _attach_otel(ctx: SpanContext) -> Any:
    """Make the invocation span the active OpenTelemetry context, if (and only if) the
    function already imported the OpenTelemetry API: its spans then nest under ours."""
    if "opentelemetry.trace" not in sys.modules or "opentelemetry.context" not in sys.modules:
        return None
    try:
        from opentelemetry import context as otel_context
        from opentelemetry import trace as otel_trace
        from opentelemetry.trace.span import TraceState as OtelTraceState

        state = OtelTraceState(list(ctx.tracestate.items())) if ctx.tracestate else None
        span_context = otel_trace.SpanContext(
            ctx.trace_id, ctx.span_id, True, otel_trace.TraceFlags(ctx.flags & 0xFF), state
        )
        return otel_context.attach(otel_trace.set_span_in_context(otel_trace.NonRecordingSpan(span_context)))
    except Exception as exc:  # an API mismatch must not break the function
        _warn(f"cannot activate the invocation context for OpenTelemetry: {exc}")
        return None


def _detach_otel(token: Any) -> None:
    if token is None:
        return
    try:
        from opentelemetry import context as otel_context

        otel_context.detach(token)
    except Exception:
        pass


def _flush_otel(deadline_ms: int | None) -> None:
    """Flush the function's own tracer provider so its spans reach the extension before the
    runtime reports the invocation done (BatchSpanProcessor would otherwise hold them)."""
    trace_module = sys.modules.get("opentelemetry.trace")
    if trace_module is None:
        return
    try:
        provider = trace_module.get_tracer_provider()
        flush = getattr(provider, "force_flush", None)
        if flush is None:
            return
        timeout_ms = 5000
        if deadline_ms:
            timeout_ms = max(100, min(timeout_ms, deadline_ms - int(time.time() * 1000) - 100))
        flush(timeout_millis=timeout_ms)
    except Exception as exc:
        _warn(f"flushing the function's OpenTelemetry spans failed: {exc}")


# --------------------------------------------------------------------------- instrumentation


class RuntimeErrorReport:
    """An error as the runtime reported it to Lambda (type, message, formatted trace)."""

    def __init__(self, error_type: str, message: str, stacktrace: str) -> None:
        self.type = error_type or "Runtime.Unknown"
        self.message = message
        self.stacktrace = stacktrace

    @classmethod
    def from_exception(cls, exc: BaseException) -> RuntimeErrorReport:
        return cls(type(exc).__qualname__, str(exc), "".join(traceback.format_exception(exc)))

    @classmethod
    def from_runtime(cls, body: Any) -> RuntimeErrorReport:
        """From the JSON the runtime posts to ``/invocation/{id}/error``."""
        try:
            doc = json.loads(body) if isinstance(body, (str, bytes)) else body
        except ValueError:
            doc = None
        if not isinstance(doc, Mapping):
            return cls("Runtime.Unknown", str(body)[:1000], "")
        trace = doc.get("stackTrace")
        lines = [str(x) for x in trace] if isinstance(trace, list) else []
        return cls(str(doc.get("errorType") or ""), str(doc.get("errorMessage") or ""), "".join(lines))


@dataclass
class ActiveInvocation:
    """One invocation between the event reaching the handler and the runtime answering."""

    inst: Instrumentation
    ctx: SpanContext
    parent: SpanContext | None
    source: str
    event: Any
    context: Any
    coldstart: bool
    #: False when the caller's context is not sampled: no span, nothing handed over.
    recorded: bool
    start: int = field(default_factory=time.time_ns)
    result: Any = None
    _saved: dict[str, str | None] | None = None
    _token: Any = None
    _handler_running: bool = True
    _finished: bool = False

    def hand_over(self, baggage: str | None) -> None:
        """``TRACEPARENT``/``TRACESTATE``/``BAGGAGE`` and the OpenTelemetry context point
        at the invocation span while the handler runs."""
        self._saved = {k: os.environ.get(k) for k in ("TRACEPARENT", "TRACESTATE", "BAGGAGE")}
        os.environ["TRACEPARENT"] = self.ctx.traceparent
        header = self.ctx.tracestate.to_header() if self.ctx.tracestate else ""
        if header:
            os.environ["TRACESTATE"] = header
        else:
            os.environ.pop("TRACESTATE", None)
        if baggage:
            os.environ["BAGGAGE"] = baggage
        self._token = _attach_otel(self.ctx)

    def handler_done(self, result: Any) -> None:
        """The handler returned (or raised): undo :meth:`hand_over` and flush the
        function's own spans so they reach the extension before the runtime answers."""
        if not self._handler_running:
            return
        self._handler_running = False
        self.result = result
        if self._saved is not None:
            _detach_otel(self._token)
            for key, value in self._saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            self._saved = None
        deadline_ms = None
        remaining = getattr(self.context, "get_remaining_time_in_millis", None)
        if callable(remaining):
            try:
                deadline_ms = int(time.time() * 1000) + int(remaining())
            except Exception:
                deadline_ms = None
        _flush_otel(deadline_ms)

    def finish(self, *, exception: BaseException | None = None, report: RuntimeErrorReport | None = None) -> None:
        """Send the span before the runtime's answer goes to Lambda. Unsampled (flags 0)
        it still tells the extension the invocation is over, which then drops it."""
        self.handler_done(self.result)
        if self._finished:
            return
        self._finished = True
        error = report or (RuntimeErrorReport.from_exception(exception) if exception is not None else None)
        try:
            self.inst.send(self.inst._span(self, error))
        except Exception as exc:  # never let telemetry change the function's outcome
            _warn(f"invocation span not recorded: {type(exc).__name__}: {exc}")


class Instrumentation:
    """The state shared by all invocations of one execution environment."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        from sysspan.ids import SpanIds, new_nonce
        from sysspan.propagation.detect import resource_for

        self.env = os.environ if env is None else env
        self.coldstart = True
        self.ids = SpanIds(new_nonce())
        self.seq = 0
        self.pid = os.getpid()
        name = self.env.get("AWS_LAMBDA_FUNCTION_NAME", "") or "lambda"
        self.resource: dict[str, Any] = resource_for(self.env, name)
        port = self.env.get("SYSSPAN_LAMBDA_OTLP_PORT", "").strip() or str(DEFAULT_OTLP_PORT)
        self.endpoint = self.env.get(ENDPOINT_ENV, "").strip() or f"http://127.0.0.1:{port}/v1/traces"
        self.failures = 0

    def begin(self, event: Any, context: Any) -> ActiveInvocation:
        """The handler is about to run: decide the span's context and hand it to the
        function (environment and OpenTelemetry context) when it is to be recorded."""
        coldstart, self.coldstart = self.coldstart, False
        self.seq += 1
        parent, source, baggage = extract_parent(event, context, os.environ)
        recorded = parent is None or parent.sampled
        if parent is not None:
            trace_id, flags, state = parent.trace_id, parent.flags, parent.tracestate
        else:
            from sysspan.ids import new_trace_id

            trace_id, flags, state = new_trace_id(), NEW_TRACE_FLAGS, None
        ctx = SpanContext(trace_id, self.ids.make(self.pid, 0, self.seq), flags, state, remote=False)
        active = ActiveInvocation(self, ctx, parent, source, event, context, coldstart, recorded)
        if recorded:
            active.hand_over(baggage)
        return active

    def call(self, fn: Handler, event: Any, context: Any) -> Any:
        """Run ``fn`` inside an invocation span (the decorator form; the runtime hooks in
        :mod:`sysspan.lambda_.ric` leave no frame of ours in the function's tracebacks)."""
        active = self.begin(event, context)
        try:
            result = fn(event, context)
        except BaseException as exc:
            active.handler_done(None)
            active.finish(exception=exc)
            raise
        active.handler_done(result)
        active.finish()
        return result

    def _span(self, active: ActiveInvocation, error: RuntimeErrorReport | None) -> Span:
        ctx, parent, source, event, context = active.ctx, active.parent, active.source, active.event, active.context
        coldstart, result, start = active.coldstart, active.result, active.start
        name = getattr(context, "function_name", None) or self.env.get("AWS_LAMBDA_FUNCTION_NAME", "") or "lambda"
        trigger = trigger_of(event)
        attrs: dict[str, Any] = {
            "faas.trigger": trigger,
            "faas.invocation_id": str(getattr(context, "aws_request_id", "") or ""),
            "faas.coldstart": coldstart,
            "faas.name": name,
            "cloud.provider": "aws",
            "cloud.platform": "aws_lambda",
        }
        version = getattr(context, "function_version", None) or self.env.get("AWS_LAMBDA_FUNCTION_VERSION")
        if version:
            attrs["faas.version"] = str(version)
        attrs.update(_arn_attributes(getattr(context, "invoked_function_arn", None)))
        attrs["sysspan.parent.source"] = source
        span_name = name
        status, message = StatusCode.UNSET, ""
        if trigger == "http" and isinstance(event, Mapping):
            http_attrs, http_name = _http_attributes(event)
            attrs.update(http_attrs)
            span_name = http_name or name
            code = result.get("statusCode") if isinstance(result, Mapping) else None
            if isinstance(code, int) and not isinstance(code, bool):
                attrs["http.response.status_code"] = code
                if code >= 500:
                    status, message = StatusCode.ERROR, f"HTTP {code}"
        events: list[SpanEvent] = []
        if error is not None:
            status = StatusCode.ERROR
            message = f"{error.type}: {error.message}"[:1000] if error.message else error.type
            attrs["error.type"] = error.type
            events.append(
                SpanEvent(
                    "exception",
                    time.time_ns(),
                    {
                        "exception.type": error.type,
                        "exception.message": error.message[:1000],
                        "exception.stacktrace": error.stacktrace[-8000:],
                    },
                )
            )
        return Span(
            trace_id=ctx.trace_id,
            span_id=ctx.span_id,
            parent_id=parent.span_id if parent else 0,
            name=span_name,
            start_ns=start,
            end_ns=time.time_ns(),
            kind=SpanKind.SERVER,
            attributes=attrs,
            status=status,
            status_message=message,
            events=events,
            trace_state=ctx.tracestate.to_header() if ctx.tracestate else "",
            flags=ctx.flags & 0xFF,
        )

    def send(self, span: Span) -> bool:
        """POST the span to the extension as OTLP/JSON; one stderr line on failure."""
        from sysspan.exporters.otlp_json import encode_line_bytes

        body = encode_line_bytes(ResourceSpans(self.resource, [span], SCOPE_NAME, __version__))
        request = urllib.request.Request(
            self.endpoint, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=_SEND_TIMEOUT_S) as resp:
                resp.read()
            return True
        except (urllib.error.URLError, OSError, ValueError) as exc:
            self.failures += 1
            reason = getattr(exc, "reason", None) or exc
            _warn(
                f"invocation span {span.span_id:016x} lost: cannot send it to the sysspan extension "
                f"at {self.endpoint} ({reason}); is the sysspan layer's extension running? "
                f"({self.failures} lost so far)"
            )
            return False


@functools.cache
def state() -> Instrumentation:
    """The execution environment's instrumentation, made on first use."""
    return Instrumentation()


def load_handler(spec: str) -> Handler:
    """Import ``module.function`` (``dir/module.function`` as the Python runtime allows),
    for runtimes other than awslambdaric's bootstrap (which resolves it itself)."""
    module_path, _, func = spec.strip().rpartition(".")
    if not module_path or not func:
        raise ImportError(f"{ORIG_HANDLER_ENV}={spec!r}: expected module.function")
    module = importlib.import_module(module_path.replace("/", "."))
    try:
        fn = getattr(module, func)
    except AttributeError:
        raise AttributeError(f"handler {func!r} not found in module {module_path!r}") from None
    if not callable(fn):
        raise TypeError(f"handler {spec!r} is not callable")
    return fn


def wrap(fn: Handler) -> Handler:
    """Decorator form: ``handler = sysspan.lambda_.wrapper.wrap(handler)``."""

    def wrapped(event: Any, context: Any) -> Any:
        return state().call(fn, event, context)

    wrapped.__name__ = getattr(fn, "__name__", "handler")
    wrapped.__doc__ = fn.__doc__
    return wrapped


# ``sysspan.lambda_.wrapper.handler`` (the name the exec wrapper gives the runtime) is
# resolved on first access by the runtime, from code whose file name lets awslambdaric
# drop its frames from tracebacks as it drops its own: see sysspan/lambda_/bootstrap.py.
from sysspan.lambda_.bootstrap import __getattr__  # noqa: E402,F401
