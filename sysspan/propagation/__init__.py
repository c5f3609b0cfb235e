"""Where a trace comes from and where it goes next (docs/architecture.md §6).

Pure functions over strings and mappings: W3C ``traceparent`` / ``tracestate`` / ``baggage``
parsing and formatting, the environment-variable and carrier-file carriers, and detection of
the resource attributes the environment reveals (CI, container, AWS Lambda).
"""


TYPE_CHECKING = False

if TYPE_CHECKING:
    from sysspan.propagation.baggage import (
        InvalidBaggage,
        format_baggage,
        parse_baggage,
        parse_baggage_counted,
    )
    from sysspan.propagation.carriers import (
        BAGGAGE,
        TRACEPARENT,
        TRACESTATE,
        env_name,
        extract,
        inject,
        read_carrier_file,
        resolve_incoming,
        write_carrier_file,
    )
    from sysspan.propagation.detect import detect_resource
    from sysspan.propagation.traceparent import (
        FLAG_RANDOM,
        FLAG_SAMPLED,
        NEW_TRACE_FLAGS,
        InvalidTraceContext,
        SpanContext,
        format_traceparent,
        parse_traceparent,
        xray_to_traceparent,
    )
    from sysspan.propagation.tracestate import TraceState

# Name -> submodule: a submodule is imported when one of its names is first used, so a run
# that needs only the trace context does not build the baggage and tracestate parsers.
_HOME = {
    "InvalidBaggage": "baggage",
    "format_baggage": "baggage",
    "parse_baggage": "baggage",
    "parse_baggage_counted": "baggage",
    "BAGGAGE": "carriers",
    "TRACEPARENT": "carriers",
    "TRACESTATE": "carriers",
    "env_name": "carriers",
    "extract": "carriers",
    "inject": "carriers",
    "read_carrier_file": "carriers",
    "resolve_incoming": "carriers",
    "write_carrier_file": "carriers",
    "detect_resource": "detect",
    "FLAG_RANDOM": "traceparent",
    "FLAG_SAMPLED": "traceparent",
    "NEW_TRACE_FLAGS": "traceparent",
    "InvalidTraceContext": "traceparent",
    "SpanContext": "traceparent",
    "format_traceparent": "traceparent",
    "parse_traceparent": "traceparent",
    "xray_to_traceparent": "traceparent",
    "TraceState": "tracestate",
}


def __getattr__(name: str) -> object:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "BAGGAGE",
    "FLAG_RANDOM",
    "FLAG_SAMPLED",
    "NEW_TRACE_FLAGS",
    "TRACEPARENT",
    "TRACESTATE",
    "InvalidBaggage",
    "InvalidTraceContext",
    "SpanContext",
    "TraceState",
    "detect_resource",
    "env_name",
    "extract",
    "format_baggage",
    "format_traceparent",
    "inject",
    "parse_baggage",
    "parse_baggage_counted",
    "parse_traceparent",
    "read_carrier_file",
    "resolve_incoming",
    "write_carrier_file",
    "xray_to_traceparent",
]
