"""The invocation span from inside awslambdaric's invocation loop.

awslambdaric's bootstrap runs each invocation in ``handle_event_request``: it builds the
context (``create_lambda_context``), decodes the event (``client.marshaller``), calls the
handler, encodes the result, and posts the result or the error to Lambda. :func:`install`
replaces the first two names in the bootstrap module by versions that take part without
standing between the runtime and the function:

* the context it builds is remembered (``context.w3c()``, request id, ARN);
* the marshaller's ``unmarshal_request`` returning the event starts the span (the handler
  is called next), ``marshal_response`` ends the handler part;
* ``post_invocation_result`` / ``post_invocation_error`` record the span *before* the answer
  goes to Lambda, with the error exactly as the runtime reports it (``Runtime.MarshalError``,
  ``Runtime.UnmarshalError`` and the function's own exceptions alike).

The handler is called by the runtime as it would be without sysspan, so error types,
messages and tracebacks are the runtime's own.
"""

from __future__ import annotations

import inspect
from types import FrameType, ModuleType
from typing import Any

from sysspan.lambda_.wrapper import ActiveInvocation, RuntimeErrorReport, state

_HOOKED = "__sysspan_hooked__"


def runtime_module(frame: FrameType | None) -> ModuleType | None:
    """awslambdaric's bootstrap module, when ``frame`` is its ``_get_handler``."""
    if frame is None or frame.f_code.co_name != "_get_handler":
        return None
    module = __import__("sys").modules.get(frame.f_globals.get("__name__", ""))
    needed = ("handle_event_request", "create_lambda_context", "_get_handler")
    if module is None or not all(callable(getattr(module, n, None)) for n in needed):
        return None
    return module


class _Invocation:
    """What the hooks know of the invocation the runtime is handling."""

    def __init__(self) -> None:
        self.context: Any = None
        self.active: ActiveInvocation | None = None

    def begin(self, event: Any) -> None:
        if self.active is None:
            self.active = state().begin(event, self.context)

    def finish(self, report: RuntimeErrorReport | None) -> None:
        if self.active is None:  # the event never reached the handler (bad event or context)
            self.begin(None)
        assert self.active is not None
        self.active.finish(report=report)


_current: _Invocation | None = None


class _Marshaller:
    def __init__(self, real: Any, inv: _Invocation) -> None:
        self._real = real
        self._inv = inv

    def unmarshal_request(self, *args: Any, **kwargs: Any) -> Any:
        event = self._real.unmarshal_request(*args, **kwargs)
        self._inv.begin(event)
        return event

    def marshal_response(self, response: Any) -> Any:
        if self._inv.active is not None:
            self._inv.active.handler_done(response)
        return self._real.marshal_response(response)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class _Client:
    def __init__(self, real: Any, inv: _Invocation) -> None:
        self._real = real
        self._inv = inv
        self.marshaller = _Marshaller(real.marshaller, inv)

    def post_invocation_result(self, *args: Any, **kwargs: Any) -> Any:
        self._inv.finish(None)
        return self._real.post_invocation_result(*args, **kwargs)

    def post_invocation_error(self, invoke_id: Any, error_response_data: Any, *args: Any, **kwargs: Any) -> Any:
        self._inv.finish(RuntimeErrorReport.from_runtime(error_response_data))
        return self._real.post_invocation_error(invoke_id, error_response_data, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def install(runtime: ModuleType) -> None:
    """Hook ``runtime`` (awslambdaric's bootstrap module) once."""
    if getattr(runtime, _HOOKED, False):
        return
    handle = runtime.handle_event_request
    make_context = runtime.create_lambda_context
    signature = inspect.signature(handle)

    def create_lambda_context(*args: Any, **kwargs: Any) -> Any:
        context = make_context(*args, **kwargs)
        if _current is not None:
            _current.context = context
        return context

    def handle_event_request(*args: Any, **kwargs: Any) -> Any:
        global _current
        bound = signature.bind(*args, **kwargs)
        inv = _Invocation()
        bound.arguments["lambda_runtime_client"] = _Client(bound.arguments["lambda_runtime_client"], inv)
        _current = inv
        try:
            return handle(*bound.args, **bound.kwargs)
        finally:
            _current = None

    runtime.create_lambda_context = create_lambda_context  # type: ignore[attr-defined]
    runtime.handle_event_request = handle_event_request  # type: ignore[attr-defined]
    setattr(runtime, _HOOKED, True)
