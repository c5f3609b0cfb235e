"""The Lambda extension and handler wrapper, for real: the extension runs as
``python -m sysspan lambda extension`` against the emulator in tests/lambda_emulator.py,
the function runs in awslambdaric (the runtime interface client of AWS's Python runtimes
and images) started the ways AWS starts it — a managed runtime through the real
``sysspan-wrapper`` script (AWS_LAMBDA_EXEC_WRAPPER), a container image's
``sysspan-wrapper python -m awslambdaric HANDLER``, the wrapper handler named directly —
and spans end at a loopback OTLP/HTTP receiver."""

from __future__ import annotations

import base64
import collections
import json
import os
import platform
import shlex
import socket
import stat
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from sysspan.errors import ConfigError
from sysspan.lambda_.extension import ExtensionConfig
from sysspan.lambda_.wrapper import Instrumentation, extract_parent, trigger_of
from tests.lambda_emulator import LambdaEmulator, xray_header
from tests.otlp_receiver import attrs
from tests.tracehelpers import REPO, load_spans, sysspan

WRAPPER_SCRIPT = REPO / "sysspan" / "lambda_" / "sysspan-wrapper"
SERVER = 2  # SpanKind.SERVER

# The function: uses the OpenTelemetry SDK the usual way (BatchSpanProcessor, OTLP/HTTP
# exporter configured by OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, which the wrapper script points
# at the extension). The batch processor would hold spans for a minute: only the wrapper's
# flush gets them out in time. On SIGTERM (Lambda's signal to the runtime before SHUTDOWN)
# it emits a few more spans, flushes and exits, as AWS's graceful-shutdown examples do:
# "spans emitted just before SHUTDOWN".
FUNCTION = textwrap.dedent(
    """
    import json, os, signal, sys
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "emulated-fn"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(), schedule_delay_millis=60000))
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("fn")

    def _hex(span):
        return format(span.get_span_context().span_id, "016x")

    def handler(event, context):
        ids = []
        with tracer.start_as_current_span("work") as work:
            ids.append(_hex(work))
            with tracer.start_as_current_span("child") as child:
                ids.append(_hex(child))
        if event.get("fail"):
            raise ValueError("asked to fail" + "!" * event.get("pad", 0))
        if event.get("exit"):
            os._exit(event["exit"])
        if event.get("unserialisable"):
            return {"value": object()}
        return {"statusCode": 200, "span_ids": ids, "traceparent": os.environ.get("TRACEPARENT")}

    def _last_gasp(signum, frame):
        ids = []
        for _ in range(int(os.environ.get("FN_LATE_SPANS", "0"))):
            with tracer.start_as_current_span("shutdown-work") as span:
                ids.append(_hex(span))
        provider.force_flush()
        if os.environ.get("FN_LATE_IDS"):
            with open(os.environ["FN_LATE_IDS"], "w") as fh:
                json.dump(ids, fh)
        sys.exit(0)

    signal.signal(signal.SIGTERM, _last_gasp)
    """
)

# What a managed Python runtime's bootstrap does: start awslambdaric with $_HANDLER.
MANAGED_BOOTSTRAP = '#!/bin/sh\nexec "$SYSSPAN_TEST_PYTHON" -m awslambdaric "$_HANDLER"\n'



def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clean_env() -> dict[str, str]:
    drop = ("OTEL_", "TRACE", "SYSSPAN_", "BAGGAGE", "AWS_", "_X_AMZN", "_HANDLER", "_LAMBDA")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def runtime_command(tmp_path: Path, style: str, handler: str = "fn.handler") -> tuple[list[str], dict[str, str]]:
    """The runtime's command and environment as AWS starts a Python function, in ``style``:
    ``managed`` (AWS_LAMBDA_EXEC_WRAPPER then a bootstrap reading $_HANDLER), ``image``
    (ENTRYPOINT ["/opt/sysspan-wrapper", "python", "-m", "awslambdaric"], CMD [handler]),
    ``direct`` (the wrapper handler named as the function's handler), or ``plain`` (no
    sysspan at all, to compare with)."""
    ric = [sys.executable, "-m", "awslambdaric"]
    if style == "managed":
        bootstrap = tmp_path / "bootstrap"
        bootstrap.write_text(MANAGED_BOOTSTRAP)
        bootstrap.chmod(0o755)
        return [str(WRAPPER_SCRIPT), str(bootstrap)], {"_HANDLER": handler, "SYSSPAN_TEST_PYTHON": sys.executable}
    if style == "image":
        return [str(WRAPPER_SCRIPT), *ric, handler], {}
    if style == "direct":
        return [*ric, "sysspan.lambda_.wrapper.handler"], {"SYSSPAN_ORIG_HANDLER": handler}
    assert style == "plain"
    return [*ric, handler], {}


class Harness:
    """Emulator + extension process + awslambdaric runtime process."""

    def __init__(
        self,
        tmp_path: Path,
        endpoint: str,
        *,
        late_spans: int = 0,
        style: str = "image",
        handler: str = "fn.handler",
        function: str = FUNCTION,
        **emulator: Any,
    ) -> None:
        self.tmp = tmp_path
        self.emu = LambdaEmulator(**emulator).start()
        self.port = _free_port()
        (tmp_path / "fn.py").write_text(function)
        self.spool = tmp_path / "spool.jsonl"
        self.late_ids_path = tmp_path / "late.json"
        base = {**_clean_env(), **self.emu.env(), "PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path}"}
        self.ext_env = {
            **base,
            "SYSSPAN_LAMBDA_OTLP_PORT": str(self.port),
            "SYSSPAN_LAMBDA_TELEMETRY_HOST": "127.0.0.1",
            "SYSSPAN_LAMBDA_SPOOL": str(self.spool),
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint,
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "3000",
        }
        self.command, extra = runtime_command(tmp_path, style, handler)
        local = f"http://127.0.0.1:{self.port}/v1/traces"
        self.rt_env = {
            **base,
            **extra,
            # Python 3.12+ runtimes poll for the next event in a thread, which leaves the
            # main thread free to run a SIGTERM handler (awslambdaric keys this on the name).
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
            "SYSSPAN_LAMBDA_OTLP_PORT": str(self.port),
            # What the function configured for itself: the wrapper script redirects it
            # (named directly, the function points its SDK at the extension itself).
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": local if style == "direct" else endpoint,
            "FN_LATE_SPANS": str(late_spans),
            "FN_LATE_IDS": str(self.late_ids_path),
        }
        self.ext_log = tmp_path / f"extension-{style}.log"
        self.rt_log = tmp_path / f"runtime-{style}.log"
        self.ext: subprocess.Popen | None = None
        self.runtime: subprocess.Popen | None = None

    def start(self, *, init_fails: bool = False) -> Harness:
        with open(self.ext_log, "wb") as log:
            self.ext = subprocess.Popen(
                [sys.executable, "-m", "sysspan", "lambda", "extension"],
                env=self.ext_env, cwd=self.tmp, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.emu.wait_ready(extensions=1, runtime=False)
        with open(self.rt_log, "wb") as log:
            self.runtime = subprocess.Popen(self.command, env=self.rt_env, cwd=self.tmp, stdout=log, stderr=subprocess.STDOUT)
        self.emu.attach_runtime(self.runtime)
        if not init_fails:
            self.emu.wait_ready(extensions=1, runtime=True)
        return self

    def shutdown(self, reason: str = "spindown") -> tuple[int, float]:
        """Lambda's Shutdown phase (SIGTERM to the runtime, then SHUTDOWN to the
        extension). Returns the extension's exit status and how long it took."""
        assert self.ext is not None
        began = time.monotonic()
        self.emu.shutdown(reason)
        code = self.ext.wait(10)
        return code, time.monotonic() - began

    def close(self) -> None:
        for proc in (self.runtime, self.ext):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        self.emu.stop()

    def log(self) -> str:
        return self.ext_log.read_text(errors="replace") + "\n--- runtime ---\n" + self.rt_log.read_text(errors="replace")


@pytest.fixture
def harness_factory(tmp_path: Path):
    made: list[Harness] = []

    def make(endpoint: str, **kwargs: Any) -> Harness:
        h = Harness(tmp_path, endpoint, **kwargs)
        made.append(h)
        return h.start()

    yield make
    for h in made:
        h.close()


class Seen:
    """Spans a receiver got, read incrementally (request by request)."""

    def __init__(self, receiver: Any) -> None:
        self.receiver = receiver
        self.index = 0
        self.count: collections.Counter[str] = collections.Counter()
        self.by_id: dict[str, tuple[dict, Any]] = {}

    def update(self) -> list[tuple[dict, Any]]:
        with self.receiver.cond:
            new = self.receiver.requests[self.index :]
            self.index = len(self.receiver.requests)
        out = []
        for request in new:
            for rs in request.resource_spans:
                resource = attrs(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        sid = span.span_id.hex()
                        self.count[sid] += 1
                        self.by_id[sid] = (resource, span)
                        out.append((resource, span))
        return out


def _tp(trace_hex: str, span_hex: str) -> str:
    return f"00-{trace_hex}-{span_hex}-01"


@pytest.mark.slow
def test_thousand_invocations_every_span_exactly_once(harness_factory, http_receiver) -> None:
    h = harness_factory(http_receiver.endpoint, late_spans=5, telemetry_linger_ms=1)
    seen = Seen(http_receiver)
    expected: set[str] = set()
    for i in range(1000):
        trace_hex = f"{i + 1:032x}"
        caller = f"{i + 7:016x}"
        xray, root, parent = xray_header()
        kind = i % 4
        payload: dict[str, Any] = {"n": i}
        client_context = None
        if kind in (0, 3):  # HTTP-style event; header names are case-insensitive
            payload["headers"] = {"TraceParent" if i % 8 == 0 else "traceparent": _tp(trace_hex, caller)}
        # client context: its w3c entry (context.w3c() in awslambdaric) or, from `aws lambda
        # invoke --client-context`, its custom entry
        entry = "w3c" if (i // 4) % 2 else "custom"
        if kind in (1, 3):
            other = trace_hex if kind == 1 else f"{i + 5000:032x}"
            client_context = {entry: {"traceparent": _tp(other, caller)}}
        inv = h.emu.invoke(payload, client_context=client_context, trace_header=xray)
        assert inv.error is None, (inv.error, h.log())
        # The invocation is over (runtime and extension back in next): its spans must
        # already be at the collector, or they would now sit in a frozen environment.
        new = seen.update()
        servers = [s for _, s in new if s.kind == SERVER]
        assert len(servers) == 1, (i, len(new), h.log())
        server = servers[0]
        sattrs = attrs(server.attributes)
        assert sattrs["faas.invocation_id"] == inv.request_id
        assert sattrs["faas.coldstart"] is (i == 0)
        assert sattrs["cloud.resource_id"] == h.emu.arn
        if kind == 2:
            assert server.trace_id.hex() == root[2:].replace("-", "")
            assert server.parent_span_id.hex() == parent
            assert sattrs["sysspan.parent.source"] == "xray"
        else:
            assert server.trace_id.hex() == trace_hex
            assert server.parent_span_id.hex() == caller
            source = {"w3c": "w3c", "custom": "client_context"}[entry] if kind == 1 else "headers"
            assert sattrs["sysspan.parent.source"] == source
        fn_ids = inv.response["span_ids"]
        assert inv.response["traceparent"] == _tp(server.trace_id.hex(), server.span_id.hex())
        assert {s.span_id.hex() for _, s in new} == {server.span_id.hex(), *fn_ids}
        work = seen.by_id[fn_ids[0]][1]
        assert work.parent_span_id == server.span_id and work.trace_id == server.trace_id
        expected.update(fn_ids)
        expected.add(server.span_id.hex())

    code, took = h.shutdown()
    seen.update()
    late = json.loads(h.late_ids_path.read_text())
    assert len(late) == 5
    expected.update(late)
    log = h.log()
    assert code == 0, log
    assert took < 2.0, f"shutdown took {took:.2f}s (Lambda's budget: 2 s)"
    assert set(seen.count) == expected
    assert max(seen.count.values()) == 1, [k for k, v in seen.count.items() if v > 1][:5]
    assert len(expected) == 3005
    assert "shutdown (spindown): 1000 invocation(s), 3005 spans received, 3005 delivered" in log, log
    assert "lost" not in log and "spooled" not in log, log


def test_batched_telemetry_and_handler_errors(harness_factory, http_receiver) -> None:
    # The subscription's own timeoutMs (25 ms) batches platform events, so runtimeDone often
    # arrives after the extension got INVOKE: it must wait for it, not flush early.
    h = harness_factory(http_receiver.endpoint, style="managed")
    seen = Seen(http_receiver)
    for i in range(20):
        inv = h.emu.invoke({"fail": i % 5 == 4})
        new = seen.update()
        server = next(s for _, s in new if s.kind == SERVER)
        if i % 5 == 4:
            assert inv.error is not None and inv.error["errorType"] == "ValueError"
            assert server.status.code == 2 and "asked to fail" in server.status.message
            assert [e.name for e in server.events] == ["exception"]
            assert attrs(server.attributes)["error.type"] == "ValueError"
        else:
            assert inv.error is None
            assert {s.span_id.hex() for _, s in new} == {server.span_id.hex(), *inv.response["span_ids"]}
    assert h.shutdown()[0] == 0
    assert max(seen.count.values()) == 1 and len(seen.count) == 60


def test_without_telemetry_api_the_wrapper_span_ends_the_invocation(harness_factory, http_receiver) -> None:
    h = harness_factory(http_receiver.endpoint, telemetry_api=False)
    seen = Seen(http_receiver)
    for _ in range(10):
        inv = h.emu.invoke({})
        new = {s.span_id.hex() for _, s in seen.update()}
        assert set(inv.response["span_ids"]) <= new
    assert h.shutdown()[0] == 0
    assert "Telemetry API unavailable" in h.log()
    assert len(seen.count) == 30 and max(seen.count.values()) == 1


@pytest.mark.slow
def test_unreachable_collector_spools_and_reports(harness_factory, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{_free_port()}/v1/traces"
    h = harness_factory(dead, telemetry_linger_ms=1)
    for _ in range(3):
        assert h.emu.invoke({}).error is None
    code, _took = h.shutdown()
    log = h.log()
    assert code == 0, log
    assert "not delivered" in log and "connection refused" in log, log
    assert "9 spans received, 0 delivered" in log and "9 spooled to" in log, log
    spooled = load_spans(h.spool)
    assert len(spooled) == 9 and len({s.span_id for s in spooled}) == 9


# --------------------------------------------------------------------------- as without sysspan

BROKEN_MODULE = "import json\n\ndef helper():\n    return json.loads('{nope')\n\nCONFIG = helper()\n"


def _init_error(tmp_path: Path, style: str, handler: str) -> tuple[Any, str]:
    """The error awslambdaric reports when Init fails, and the runtime's log."""
    emu = LambdaEmulator().start()
    try:
        command, extra = runtime_command(tmp_path, style, handler)
        env = {**_clean_env(), **emu.env(), **extra, "PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path}"}
        proc = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        (error,) = [json.loads(body) for phase, _, body in emu.errors if phase == "runtime-init"]
        return error, proc.stdout + proc.stderr
    finally:
        emu.stop()


def _invocation_errors(h: Harness) -> list[dict]:
    out = []
    for payload in ({"fail": True}, {"unserialisable": True}):
        inv = h.emu.invoke(payload)
        assert inv.error is not None, h.log()
        out.append({k: v for k, v in inv.error.items() if k != "requestId"})
    return out


@pytest.mark.slow
@pytest.mark.parametrize("style", ["managed", "image", "direct"])
def test_errors_are_the_ones_without_sysspan(style: str, harness_factory, http_receiver, tmp_path: Path) -> None:
    (tmp_path / "fn.py").write_text(FUNCTION)
    (tmp_path / "broken.py").write_text(BROKEN_MODULE)
    for handler, error_type in (
        ("fn.missing", "Runtime.HandlerNotFound"),
        ("fnhandler", "Runtime.MalformedHandlerName"),
        ("nomodule.handler", "Runtime.ImportModuleError"),
        ("broken.handler", "JSONDecodeError"),
    ):
        plain, _ = _init_error(tmp_path, "plain", handler)
        traced, log = _init_error(tmp_path, style, handler)
        assert plain["errorType"] == error_type, plain
        assert traced == plain, (handler, traced, plain)
        assert "sysspan" not in log, log

    plain_errors = _invocation_errors(harness_factory(http_receiver.endpoint, style="plain"))
    assert [e["errorType"] for e in plain_errors] == ["ValueError", "Runtime.MarshalError"]
    h = harness_factory(http_receiver.endpoint, style=style)
    seen = Seen(http_receiver)
    seen.update()
    assert _invocation_errors(h) == plain_errors
    assert "sysspan" not in json.dumps(plain_errors)
    servers = [s for _, s in seen.update() if s.kind == SERVER]
    assert [attrs(s.attributes)["error.type"] for s in servers] == ["ValueError", "Runtime.MarshalError"]
    assert all(s.status.code == 2 for s in servers)
    assert servers[1].status.message.startswith("Runtime.MarshalError: Unable to marshal response")
    stack = attrs(servers[0].events[0].attributes)["exception.stacktrace"]
    assert "fn.py" in stack and "sysspan" not in stack
    assert "sysspan" not in h.rt_log.read_text(), h.log()


def test_large_error_cause_and_a_runtime_that_exits(harness_factory, http_receiver) -> None:
    h = harness_factory(http_receiver.endpoint, telemetry_linger_ms=1)
    seen = Seen(http_receiver)
    # awslambdaric sends an X-Ray error cause of up to 1 MiB in a header: Lambda takes it.
    inv = h.emu.invoke({"fail": True, "pad": 300_000})
    assert inv.error["errorType"] == "ValueError" and len(inv.error_cause) > 300_000, inv.error_cause[:200]
    server = next(s for _, s in seen.update() if s.kind == SERVER)
    assert server.status.code == 2 and attrs(server.attributes)["error.type"] == "ValueError"
    assert h.emu.invoke({}).error is None  # the runtime carries on
    # A runtime that exits mid-invocation: Lambda ends the invocation with Runtime.ExitError.
    inv = h.emu.invoke({"exit": 3})
    assert inv.error["errorType"] == "Runtime.ExitError" and "exit status 3" in inv.error["errorMessage"]
    assert h.runtime is not None and h.runtime.wait(5) == 3
    code, _took = h.shutdown("failure")
    log = h.log()
    assert code == 0, log
    assert "shutdown (failure): 3 invocation(s)" in log and "lost" not in log, log


@pytest.mark.parametrize("telemetry_api", [True, False])
def test_unsampled_callers(harness_factory, http_receiver, telemetry_api: bool) -> None:
    """X-Ray Sampled=0 (no active tracing) is no parent; a W3C caller's -00 is followed by
    sysspan and leaves the function's own spans to its SDK. Without the Telemetry API the
    unsampled invocation span still ends the invocation for the extension (and is dropped)."""
    h = harness_factory(
        http_receiver.endpoint, style="managed", active_tracing=False, telemetry_api=telemetry_api, timeout_s=600
    )
    seen = Seen(http_receiver)
    inv = h.emu.invoke({})
    assert "Sampled=0" in inv.trace_header
    new = seen.update()
    (server,) = [s for _, s in new if s.kind == SERVER]
    assert server.parent_span_id == b"" and attrs(server.attributes)["sysspan.parent.source"] == "none"
    assert server.trace_id.hex() not in inv.trace_header.replace("-", "")
    work = seen.by_id[inv.response["span_ids"][0]][1]
    assert work.parent_span_id == server.span_id and work.trace_id == server.trace_id

    caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
    inv = h.emu.invoke({"headers": {"traceparent": caller}})
    new = seen.update()
    assert [s for _, s in new if s.kind == SERVER] == []
    assert inv.response["traceparent"] is None
    assert {s.span_id.hex() for _, s in new} == set(inv.response["span_ids"])
    assert all(s.trace_id.hex() != "4bf92f3577b34da6a3ce929d0e0e4736" for _, s in new)
    assert h.shutdown()[0] == 0
    log = h.log()
    assert "by the invocation's deadline" not in log and "2 invocation(s), 5 spans received, 5 delivered" in log, log


def test_wrapper_script_says_once_when_it_cannot_take_part(tmp_path: Path) -> None:
    show = [sys.executable, "-c", "import os, sys; print(sys.argv[1:], os.environ.get('SYSSPAN_ORIG_HANDLER'))"]
    env = {**_clean_env(), "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12"}
    res = subprocess.run([str(WRAPPER_SCRIPT), *show, "serve"], env=env, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0 and res.stdout.strip() == "['serve'] None"
    assert res.stderr.count("[sysspan wrapper]") == 1 and "no handler found" in res.stderr
    res = subprocess.run([str(WRAPPER_SCRIPT), *show, "-m", "awslambdaric", "app.handler"], env=env, capture_output=True, text=True, timeout=30)
    assert res.stdout.strip() == "['-m', 'awslambdaric', 'sysspan.lambda_.wrapper.handler'] app.handler"
    assert res.stderr == ""
    env["AWS_EXECUTION_ENV"] = "AWS_Lambda_nodejs20.x"
    res = subprocess.run([str(WRAPPER_SCRIPT), *show, "x"], env={**env, "_HANDLER": "index.handler"}, capture_output=True, text=True, timeout=30)
    assert res.stdout.strip() == "['x'] None" and res.stderr.count("not a Python runtime") == 1



def test_receiver_port_taken_is_logged_not_fatal(tmp_path: Path) -> None:
    # Another extension (an OpenTelemetry collector layer) may hold 4318 already: failing
    # Init would fail the function, so the extension says so and keeps answering Lambda.
    emu = LambdaEmulator().start()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        env = {**_clean_env(), **emu.env(), "PYTHONPATH": str(REPO), "SYSSPAN_LAMBDA_OTLP_PORT": str(blocker.getsockname()[1]), "SYSSPAN_LAMBDA_TELEMETRY_HOST": "127.0.0.1"}
        proc = subprocess.Popen([sys.executable, "-m", "sysspan", "lambda", "extension"], env=env, stderr=subprocess.PIPE, text=True)
        try:
            emu.wait_ready(extensions=1, runtime=False)
            emu.shutdown()
            assert proc.wait(10) == 0
            err = proc.stderr.read()
            assert "cannot listen on 127.0.0.1" in err and "SYSSPAN_LAMBDA_OTLP_PORT" in err, err
        finally:
            if proc.poll() is None:
                proc.kill()
            emu.stop()


# --------------------------------------------------------------------------- wrapper logic


class _Ctx:
    aws_request_id = "req-1"
    function_name = "fn"
    function_version = "7"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:111122223333:function:fn:live"

    def __init__(self, custom: dict | None = None) -> None:
        self.client_context = type("CC", (), {"custom": custom})() if custom is not None else None

    def get_remaining_time_in_millis(self) -> int:
        return 3000


TP_A = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TP_B = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
XRAY = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def test_parent_precedence_headers_client_context_xray() -> None:
    env = {"_X_AMZN_TRACE_ID": XRAY}
    ctx, source, _ = extract_parent({"headers": {"TRACEPARENT": TP_A, "TraceState": "v=1"}}, _Ctx({"traceparent": TP_B}), env)
    assert (ctx.traceparent, source) == (TP_A, "headers") and ctx.tracestate.get("v") == "1"
    ctx, source, _ = extract_parent({"headers": {"traceparent": "garbage"}}, _Ctx({"traceparent": TP_B}), env)
    assert (ctx.traceparent, source) == (TP_B, "client_context")
    ctx, source, _ = extract_parent({"multiValueHeaders": {"traceparent": [TP_A]}}, _Ctx(), env)
    assert source == "headers"
    ctx, source, _ = extract_parent([1, 2], _Ctx(), env)
    assert source == "xray" and ctx.trace_id_hex == "5759e988bd862e3fe1be46a994272793"
    assert ctx.span_id_hex == "53995c3f42cd8ad8" and ctx.sampled
    assert extract_parent({}, _Ctx(), {})[1] == "none"


@pytest.mark.parametrize(
    ("event", "trigger"),
    [
        ({"httpMethod": "GET", "path": "/x"}, "http"),
        ({"routeKey": "GET /items", "requestContext": {"http": {"method": "GET"}}}, "http"),
        ({"Records": [{"eventSource": "aws:sqs"}]}, "pubsub"),
        ({"Records": [{"EventSource": "aws:sns"}]}, "pubsub"),
        ({"Records": [{"eventSource": "aws:s3"}]}, "datasource"),
        ({"source": "aws.events", "detail-type": "Scheduled Event"}, "timer"),
        ({"anything": 1}, "other"),
        ("text", "other"),
    ],
)
def test_faas_trigger(event: Any, trigger: str) -> None:
    assert trigger_of(event) == trigger


def test_wrapper_span_over_otlp_json(http_receiver, monkeypatch) -> None:
    monkeypatch.delenv("_X_AMZN_TRACE_ID", raising=False)
    monkeypatch.delenv("TRACEPARENT", raising=False)
    inst = Instrumentation(
        {"SYSSPAN_LAMBDA_OTLP_ENDPOINT": http_receiver.endpoint, "AWS_LAMBDA_FUNCTION_NAME": "fn", "AWS_REGION": "eu-west-1"}
    )
    seen_env: list[str | None] = []

    def handler(event: Any, context: Any) -> dict:
        seen_env.append(os.environ.get("TRACEPARENT"))
        return {"statusCode": 503}

    event = {"routeKey": "POST /orders", "rawPath": "/orders", "requestContext": {"http": {"method": "post"}}, "headers": {"traceparent": TP_A}}
    inst.call(handler, event, _Ctx())
    inst.call(handler, event, _Ctx())
    assert os.environ.get("TRACEPARENT") is None  # restored after the call
    assert http_receiver.wait_for_spans(2, timeout=5)
    assert http_receiver.content_types == ["application/json", "application/json"]
    (res1, first), (_res2, second) = http_receiver.spans()
    a1 = attrs(first.attributes)
    assert first.kind == SERVER and first.name == "POST /orders"
    assert first.parent_span_id.hex() == "b7ad6b7169203331" and first.trace_id.hex() == "0af7651916cd43dd8448eb211c80319c"
    assert a1["faas.coldstart"] is True and attrs(second.attributes)["faas.coldstart"] is False
    assert a1["http.response.status_code"] == 503 and first.status.code == 2
    assert a1["cloud.account.id"] == "111122223333" and a1["faas.version"] == "7" and a1["faas.trigger"] == "http"
    assert seen_env[0] == f"00-{first.trace_id.hex()}-{first.span_id.hex()}-01"
    assert res1["cloud.platform"] == "aws_lambda" and res1["service.name"] == "fn"
    assert first.span_id != second.span_id


def test_wrapper_survives_missing_extension(capfd) -> None:
    inst = Instrumentation({"SYSSPAN_LAMBDA_OTLP_ENDPOINT": f"http://127.0.0.1:{_free_port()}/v1/traces"})
    assert inst.call(lambda e, c: "fine", {}, _Ctx()) == "fine"
    assert "lost: cannot send it to the sysspan extension" in capfd.readouterr().err


def test_bad_configuration_is_reported_not_fatal() -> None:
    # In Lambda an extension that exits during Init fails the function: telemetry mistakes
    # are named and replaced by defaults instead.
    env = {"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4318"}
    config = ExtensionConfig.from_env(env)
    assert config.settings is None and "own receiver" in config.problems[0]
    config = ExtensionConfig.from_env({**env, "OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://x", "SYSSPAN_LAMBDA_TELEMETRY_TIMEOUT_MS": "5"})
    assert config.settings is None and config.telemetry_timeout_ms == 25
    assert any("OTEL_EXPORTER_OTLP_ENDPOINT" in p for p in config.problems)
    assert any("SYSSPAN_LAMBDA_TELEMETRY_TIMEOUT_MS" in p for p in config.problems)
    with pytest.raises(ConfigError, match="AWS_LAMBDA_RUNTIME_API"):
        ExtensionConfig.from_env({})


# --------------------------------------------------------------------------- invoke helper


def test_invoke_prints_command_carrying_traceparent() -> None:
    res = sysspan("lambda", "invoke", "my-fn", "--payload", '{"order": 42}', "--in-payload", "--region", "eu-west-1", env={"TRACEPARENT": TP_A, "TRACESTATE": "k=v"})
    assert res.returncode == 0, res.stderr
    argv = shlex.split(res.stdout)
    assert argv[:5] == ["aws", "lambda", "invoke", "--function-name", "my-fn"]
    assert argv[-1] == "response.json"
    custom = json.loads(base64.b64decode(argv[argv.index("--client-context") + 1]))["custom"]
    assert custom == {"traceparent": TP_A, "tracestate": "k=v"}
    payload = json.loads(argv[argv.index("--payload") + 1])
    assert payload == {"order": 42, "headers": {"traceparent": TP_A, "tracestate": "k=v"}}
    assert argv[argv.index("--cli-binary-format") + 1] == "raw-in-base64-out"
    # What the wrapper makes of it: the caller's context, from the client context.
    ctx, source, _ = extract_parent({"order": 42}, _Ctx(custom), {})
    assert (ctx.traceparent, source) == (TP_A, "client_context")


def test_invoke_without_context_fails_clearly() -> None:
    res = sysspan("lambda", "invoke", "my-fn")
    assert res.returncode == 1 and "TRACEPARENT" in res.stderr and "Traceback" not in res.stderr
    res = sysspan("lambda", "invoke", "my-fn", "--payload", "{nope", "--traceparent", TP_A)
    assert res.returncode == 2 and "--payload" in res.stderr


# --------------------------------------------------------------------------- layer


def test_layer_layout_and_launcher(tmp_path: Path) -> None:
    out = tmp_path / "layer.zip"
    res = sysspan("lambda", "layer", "--out", str(out), "--skip-deps", "--arch", "arm64")
    assert res.returncode == 0, res.stderr
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        modes = {i.filename: i.external_attr >> 16 for i in zf.infolist()}
        zf.extractall(tmp_path / "opt")
    assert {"extensions/sysspan", "sysspan-wrapper", "python/sysspan/lambda_/extension.py"} <= names
    assert "python/sysspan/lambda_/sysspan-wrapper" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    for exe in ("extensions/sysspan", "sysspan-wrapper"):
        assert modes[exe] & stat.S_IXUSR and stat.S_ISREG(modes[exe])
    # Reproducible: the same input gives the same bytes.
    again = tmp_path / "again.zip"
    assert sysspan("lambda", "layer", "--out", str(again), "--skip-deps", "--arch", "arm64").returncode == 0
    assert again.read_bytes() == out.read_bytes()

    # The launcher registers the layer's own copy of sysspan as extension "sysspan".
    opt = tmp_path / "opt"
    for exe in ("extensions/sysspan", "sysspan-wrapper"):
        (opt / exe).chmod(0o755)  # zipfile.extractall drops modes
    emu = LambdaEmulator().start()
    try:
        env = {**_clean_env(), **emu.env(), "SYSSPAN_PYTHON": sys.executable, "SYSSPAN_LAMBDA_OTLP_PORT": str(_free_port()), "SYSSPAN_LAMBDA_TELEMETRY_HOST": "127.0.0.1"}
        proc = subprocess.Popen([str(opt / "extensions" / "sysspan")], env=env, cwd=opt / "python", stderr=subprocess.PIPE, text=True)
        try:
            emu.wait_ready(extensions=1, runtime=False, timeout=30)
            assert [e.name for e in emu.extensions.values()] == ["sysspan"]
            emu.shutdown()
            assert proc.wait(10) == 0
            assert "shutdown (spindown): 0 invocation(s)" in proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
    finally:
        emu.stop()


def test_layer_rejects_bad_options(tmp_path: Path) -> None:
    res = sysspan("lambda", "layer", "--out", str(tmp_path / "l.zip"), "--python", "3.9", "--skip-deps")
    assert res.returncode == 2 and "3.10" in res.stderr
    res = sysspan("lambda", "layer", "--out", str(tmp_path / "no" / "l.zip"), "--skip-deps")
    assert res.returncode == 2 and "does not exist" in res.stderr


LAYER_WHEELS = REPO / ".venv" / "layer-wheels"


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.timeout(660)  # pip installs a layer (its own limit: 600 s)
@pytest.mark.skipif(not LAYER_WHEELS.is_dir(), reason="no .venv/layer-wheels: `make test` downloads them from the package index (tools/layer_wheels.py)")
def test_layer_with_dependencies_from_wheels(tmp_path: Path) -> None:
    """pip for real, from wheels downloaded at install time (for this machine's Python and
    architecture, so the result can be imported here): the layer's python/ must be
    self-sufficient."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    arch = "arm64" if platform.machine().lower() in ("aarch64", "arm64") else "x86_64"
    out = tmp_path / "layer.zip"
    res = sysspan("lambda", "layer", "--out", str(out), "--python", version, "--arch", arch, "--wheel-dir", str(LAYER_WHEELS), timeout=600)
    assert res.returncode == 0, res.stderr
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        zf.extractall(tmp_path / "opt")
    assert any(n.startswith("python/xxhash/") for n in names)
    assert any(n.startswith("python/opentelemetry/proto/") for n in names)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "import sysspan.lambda_.extension, sysspan.lambda_.wrapper, xxhash; "
        "from opentelemetry.proto.collector.trace.v1 import trace_service_pb2; "
        "import sysspan; print(sysspan.__file__)"
    )
    check = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(tmp_path / "opt" / "python")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip().startswith(str(tmp_path / "opt" / "python"))
