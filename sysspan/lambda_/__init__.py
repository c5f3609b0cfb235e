"""AWS Lambda support: an external extension, a handler wrapper, and a layer builder.

* ``extension`` — the process Lambda starts from ``/opt/extensions/sysspan``. It registers
  with the Extensions API for INVOKE and SHUTDOWN, subscribes to the Telemetry API's platform
  events, receives the function's spans on a local OTLP/HTTP port (127.0.0.1:4318), and
  forwards them to the configured endpoint after each invocation's ``platform.runtimeDone``,
  *before* asking for the next event — so nothing waits in a frozen environment.
* ``wrapper`` — the Python handler wrapper installed by ``AWS_LAMBDA_EXEC_WRAPPER=
  /opt/sysspan-wrapper``: one SERVER span per invocation with ``faas.*``/``cloud.*``
  attributes, parented by the caller's context (event headers, client context, X-Ray).
* ``layer`` — ``sysspan lambda layer`` builds the layer zip.

Importing this package imports nothing heavy; each module loads what it needs.
"""

EXTENSION_NAME = "sysspan"
WRAPPER_HANDLER = "sysspan.lambda_.wrapper.handler"
#: Where the wrapper and the function's own OpenTelemetry SDK send spans by default.
DEFAULT_OTLP_PORT = 4318

__all__ = ["DEFAULT_OTLP_PORT", "EXTENSION_NAME", "WRAPPER_HANDLER"]
