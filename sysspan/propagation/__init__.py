"""Where a trace comes from and where it goes next (docs/architecture.md §6).

Pure functions over strings and mappings: W3C ``traceparent`` / ``tracestate`` / ``baggage``
parsing and formatting, the environment-variable and carrier-file carriers, and detection of
the resource attributes the environment reveals (CI, container, AWS Lambda).
"""

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
