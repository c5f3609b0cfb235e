"""Where the runtime finds ``sysspan.lambda_.wrapper.handler``.

awslambdaric (the runtime of every AWS Python runtime and container image) drops the
leading frames of a traceback whose file name contains ``/bootstrap.py``, its own. This
module is named so on purpose: the one frame sysspan adds while the runtime resolves the
handler is dropped with them, so an exception raised by the function's module while it
loads shows the same traceback with and without sysspan.

The runtime does ``getattr(module, "handler")`` on the wrapper module; that lands in
:func:`__getattr__`, which asks the runtime's own ``_get_handler`` for the function's
handler (``SYSSPAN_ORIG_HANDLER``), so a missing or malformed handler is the runtime's
``Runtime.HandlerNotFound`` / ``Runtime.MalformedHandlerName`` with its usual message, and
hooks the runtime's invocation loop (:mod:`sysspan.lambda_.ric`). The runtime then calls the
function's handler itself: no frame of sysspan's in its tracebacks.
"""

from __future__ import annotations

import os
import sys
from typing import Any

ORIG_HANDLER_ENV = "SYSSPAN_ORIG_HANDLER"


def __getattr__(name: str) -> Any:
    if name != "handler":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    spec = os.environ.get(ORIG_HANDLER_ENV, "")
    if not spec:
        raise RuntimeError(
            f"{ORIG_HANDLER_ENV} is not set: it names the function's handler (module.function) "
            "when the handler is sysspan.lambda_.wrapper.handler; /opt/sysspan-wrapper sets it"
        )
    from sysspan.lambda_ import ric

    runtime = ric.runtime_module(sys._getframe(1))
    if runtime is not None:
        fn = runtime._get_handler(spec)
        ric.install(runtime)
        return fn
    from sysspan.lambda_ import wrapper

    wrapper._warn(
        "this Python runtime is not awslambdaric's bootstrap: the handler runs inside a "
        "wrapping function (its tracebacks show sysspan's frames)"
    )
    return wrapper.wrap(wrapper.load_handler(spec))
