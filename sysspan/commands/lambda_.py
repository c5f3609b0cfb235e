"""``sysspan lambda layer|extension|invoke``: AWS Lambda support (see ``sysspan.lambda_``).

* ``layer`` builds the layer zip (extension launcher, handler wrapper, sysspan + deps);
* ``extension`` is what the layer's ``/opt/extensions/sysspan`` runs;
* ``invoke`` prints the ``aws lambda invoke`` command line that carries the caller's
  ``traceparent`` into an invocation (in the client context, and optionally in the
  payload's ``headers``). It never calls AWS itself.
"""

from __future__ import annotations

import argparse
import base64
import json
import shlex
import sys

from sysspan.errors import PropagationError, UsageError
from sysspan.propagation.carriers import resolve_incoming

#: Lambda's limit for the base64 client context.
CLIENT_CONTEXT_LIMIT = 3583


def prepare_parser(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="lambda_command", required=True, metavar="{layer,extension,invoke}")

    layer = sub.add_parser(
        "layer",
        help="build the Lambda layer zip",
        description="Build a Lambda layer: extensions/sysspan (the extension), sysspan-wrapper "
        "(for AWS_LAMBDA_EXEC_WRAPPER) and python/ with sysspan and its dependencies for the "
        "target runtime (pip --platform manylinux... --only-binary=:all:).",
    )
    layer.add_argument("--out", required=True, metavar="ZIP", help="layer zip to write")
    layer.add_argument("--python", default="3.12", metavar="X.Y", help="target runtime's Python version (default 3.12)")
    layer.add_argument("--arch", default="x86_64", choices=("x86_64", "arm64"), help="target architecture (default x86_64)")
    layer.add_argument("--skip-deps", "--no-deps", dest="skip_deps", action="store_true", help="put only sysspan in the layer (its dependencies must come from elsewhere)")
    layer.add_argument("--wheel-dir", metavar="DIR", help="install dependencies from wheels in DIR only (pip --no-index --find-links DIR)")
    layer.add_argument("--pip-arg", action="append", default=[], metavar="ARG", help="extra argument for pip install (repeatable), e.g. --pip-arg=--index-url=URL")

    ext = sub.add_parser(
        "extension",
        help="run the Lambda extension (what /opt/extensions/sysspan starts)",
        description="Register with the Lambda Extensions API, receive the function's spans on "
        "127.0.0.1:4318 (OTLP/HTTP) and forward them to OTEL_EXPORTER_OTLP_* after each "
        "invocation, before the environment freezes. Needs AWS_LAMBDA_RUNTIME_API.",
    )
    ext.add_argument("--name", default=None, help="extension name (the file name in /opt/extensions; default sysspan)")
    ext.add_argument("--otlp-port", type=int, default=None, metavar="PORT", help="local OTLP/HTTP receiver port (default SYSSPAN_LAMBDA_OTLP_PORT, else 4318)")

    inv = sub.add_parser(
        "invoke",
        help="print the 'aws lambda invoke' command that carries the current traceparent",
        description="Print (not run) an 'aws lambda invoke' command line whose client context "
        "carries the caller's traceparent (--traceparent > --tp-carrier > TRACEPARENT), so "
        "the function's invocation span joins the caller's trace. Run it with eval.",
    )
    inv.add_argument("function", metavar="FUNCTION", help="function name or ARN")
    inv.add_argument("--payload", default="{}", metavar="JSON", help="event payload (JSON; default {})")
    inv.add_argument("--traceparent", metavar="TP", help="parent context (wins over --tp-carrier and TRACEPARENT)")
    inv.add_argument("--tp-carrier", metavar="FILE", help="read the parent context from this carrier file")
    inv.add_argument("--in-payload", action="store_true", help="also put the context in the payload's headers (works for asynchronous invocations too)")
    inv.add_argument("--invocation-type", choices=("RequestResponse", "Event", "DryRun"), help="aws --invocation-type")
    inv.add_argument("--qualifier", metavar="VERSION", help="aws --qualifier (version or alias)")
    inv.add_argument("--region", help="aws --region")
    inv.add_argument("--profile", help="aws --profile")
    inv.add_argument("--out", default="response.json", metavar="FILE", help="response file for the aws CLI (default response.json)")


def run(ns: argparse.Namespace, env: dict[str, str]) -> int:
    if ns.lambda_command == "layer":
        return _layer(ns)
    if ns.lambda_command == "extension":
        from sysspan.lambda_.extension import main

        if ns.otlp_port is not None and not 0 <= ns.otlp_port <= 65535:
            raise UsageError(f"--otlp-port {ns.otlp_port}: not a port number")
        return main(env, name=ns.name, otlp_port=ns.otlp_port)
    return _invoke(ns, env)


def _mib(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MiB"


def _layer(ns: argparse.Namespace) -> int:
    from sysspan.lambda_.layer import LAYER_LIMIT, build_layer

    if not ns.skip_deps:
        print(f"sysspan: installing dependencies for Python {ns.python} on {ns.arch} with pip ...", file=sys.stderr)
    report = build_layer(
        ns.out,
        python=ns.python,
        arch=ns.arch,
        skip_deps=ns.skip_deps,
        wheel_dir=ns.wheel_dir,
        pip_args=ns.pip_arg,
    )
    deps = f"sysspan and {len(report.dependencies)} requirement(s)" if report.deps_installed else "sysspan only (--skip-deps)"
    print(
        f"sysspan: wrote {report.path}: {report.files} files, {_mib(report.zip_bytes)} zipped, "
        f"{_mib(report.unzipped_bytes)} unzipped; Python {report.python}, {report.arch}; {deps}",
        file=sys.stderr,
    )
    if report.unzipped_bytes > LAYER_LIMIT:
        print("sysspan: warning: over Lambda's 250 MB unzipped limit for layers", file=sys.stderr)
    print(
        "sysspan: publish it with: aws lambda publish-layer-version --layer-name sysspan "
        f"--zip-file fileb://{report.path} --compatible-runtimes python{report.python} "
        f"--compatible-architectures {report.arch}",
        file=sys.stderr,
    )
    return 0


def client_context(ctx_traceparent: str, tracestate: str, baggage: str | None) -> str:
    """The base64 ``--client-context``: ``{"custom": {"traceparent": ...}}``."""
    custom = {"traceparent": ctx_traceparent}
    if tracestate:
        custom["tracestate"] = tracestate
    if baggage:
        custom["baggage"] = baggage
    raw = json.dumps({"custom": custom}, separators=(",", ":")).encode()
    return base64.b64encode(raw).decode("ascii")


def _invoke(ns: argparse.Namespace, env: dict[str, str]) -> int:
    try:
        payload = json.loads(ns.payload)
    except ValueError as exc:
        raise UsageError(f"--payload: not valid JSON ({exc})") from None
    ctx, baggage, warnings = resolve_incoming(ns.traceparent, ns.tp_carrier, env)
    for w in warnings:
        print(f"sysspan: warning: {w}", file=sys.stderr)
    if ctx is None:
        raise PropagationError(
            "lambda invoke: no trace context to pass on: set TRACEPARENT or give --traceparent/"
            "--tp-carrier (e.g. run it inside 'sysspan --no-syscalls -- sh -c ...', which sets "
            "TRACEPARENT)"
        )
    state = ctx.tracestate.to_header() if ctx.tracestate is not None else ""
    encoded = client_context(ctx.traceparent, state, baggage)
    if len(encoded) > CLIENT_CONTEXT_LIMIT:
        encoded = client_context(ctx.traceparent, "", None)  # tracestate/baggage too large
        print("sysspan: warning: tracestate/baggage left out: client context over 3583 bytes", file=sys.stderr)
    if ns.in_payload:
        if not isinstance(payload, dict):
            raise UsageError("--in-payload: the payload must be a JSON object to carry headers")
        headers = payload.get("headers")
        if headers is not None and not isinstance(headers, dict):
            raise UsageError("--in-payload: the payload's 'headers' must be an object")
        headers = dict(headers or {})
        headers["traceparent"] = ctx.traceparent
        if state:
            headers["tracestate"] = state
        payload = {**payload, "headers": headers}
    cmd = ["aws", "lambda", "invoke", "--function-name", ns.function]
    if ns.qualifier:
        cmd += ["--qualifier", ns.qualifier]
    if ns.invocation_type:
        cmd += ["--invocation-type", ns.invocation_type]
    if ns.region:
        cmd += ["--region", ns.region]
    if ns.profile:
        cmd += ["--profile", ns.profile]
    cmd += [
        "--cli-binary-format", "raw-in-base64-out",
        "--payload", json.dumps(payload, separators=(",", ":")),
        "--client-context", encoded,
        ns.out,
    ]  # fmt: skip
    if ns.invocation_type == "Event" and not ns.in_payload:
        print(
            "sysspan: warning: Lambda passes the client context to synchronous invocations only; "
            "add --in-payload for --invocation-type Event",
            file=sys.stderr,
        )
    print(f"sysspan: the invocation's span will be a child of {ctx.traceparent}", file=sys.stderr)
    print(shlex.join(cmd))
    return 0


class Lambda:
    name = "lambda"
    help = "AWS Lambda: build the layer, run the extension, carry a trace into an invocation"
    description = "AWS Lambda support: a layer with the sysspan extension and handler wrapper."
    prepare_parser = staticmethod(prepare_parser)
    run = staticmethod(run)


COMMAND = Lambda()
