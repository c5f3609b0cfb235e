"""sysspan spans → OpenTelemetry SDK ``ReadableSpan``: the comparison ``bench_export.py``
measures sysspan's own protobuf encoder and transport against.

Until the SDK export path left sysspan (it was ``--otlp-sdk``), this converter fed the SDK's
OTLP exporters; it lives here now so the benchmark can still show what that path costs.
Imports the SDK on first use.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sysspan.exporters.otlp_proto import clean_text
from sysspan.model import ResourceSpans, SpanKind, StatusCode


def _clean(value: Any) -> Any:
    """The SDK's protobuf encoder needs valid UTF-8 strings, in values and keys alike."""
    if type(value) is str:
        return clean_text(value)
    if type(value) is list or type(value) is tuple:
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    return value


class Converter:
    """sysspan ``ResourceSpans`` → SDK ``ReadableSpan`` (imports the SDK on first use)."""

    def __init__(self, remote_parent_ids: Collection[int]) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import Event, ReadableSpan
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace import SpanContext, TraceFlags
        from opentelemetry.trace import SpanKind as OtelKind
        from opentelemetry.trace.span import TraceState
        from opentelemetry.trace.status import Status
        from opentelemetry.trace.status import StatusCode as OtelStatus

        self.Resource, self.Event, self.ReadableSpan = Resource, Event, ReadableSpan
        self.Scope, self.SpanContext, self.TraceFlags = InstrumentationScope, SpanContext, TraceFlags
        self.TraceState, self.Status, self.OtelStatus = TraceState, Status, OtelStatus
        self.kinds = {
            SpanKind.UNSPECIFIED: OtelKind.INTERNAL,  # the SDK has no "unspecified"
            SpanKind.INTERNAL: OtelKind.INTERNAL,
            SpanKind.SERVER: OtelKind.SERVER,
            SpanKind.CLIENT: OtelKind.CLIENT,
            SpanKind.PRODUCER: OtelKind.PRODUCER,
            SpanKind.CONSUMER: OtelKind.CONSUMER,
        }
        self.remote = frozenset(remote_parent_ids)
        self._resources: dict[int, tuple[dict, Any]] = {}

    def _resource(self, attrs: dict) -> Any:
        cached = self._resources.get(id(attrs))
        if cached is not None and cached[0] is attrs:
            return cached[1]
        if len(self._resources) > 64:
            self._resources.clear()
        resource = self.Resource(_clean(attrs))
        self._resources[id(attrs)] = (attrs, resource)
        return resource

    def convert(self, batches: list[ResourceSpans]) -> list[Any]:
        out = []
        for batch in batches:
            resource = self._resource(batch.resource)
            scope = self.Scope(batch.scope_name, batch.scope_version or None)
            for s in batch.spans:
                flags = self.TraceFlags(s.flags & 0xFF)
                state = self.TraceState.from_header([s.trace_state]) if s.trace_state else None
                context = self.SpanContext(s.trace_id, s.span_id, False, flags, state)
                parent = None
                if s.parent_id:
                    parent = self.SpanContext(
                        s.trace_id, s.parent_id, s.parent_id in self.remote, flags, state
                    )
                if s.status == StatusCode.ERROR:
                    status = self.Status(self.OtelStatus.ERROR, _clean(s.status_message) or None)
                elif s.status == StatusCode.OK:
                    status = self.Status(self.OtelStatus.OK)
                else:
                    status = self.Status(self.OtelStatus.UNSET)
                events = [
                    self.Event(_clean(e.name), _clean(e.attributes), e.time_ns) for e in s.events
                ]
                out.append(
                    self.ReadableSpan(
                        name=_clean(s.name),
                        context=context,
                        parent=parent,
                        resource=resource,
                        attributes=_clean(s.attributes),
                        events=events,
                        kind=self.kinds.get(s.kind, self.kinds[SpanKind.INTERNAL]),
                        status=status,
                        start_time=s.start_ns,
                        end_time=s.end_ns,
                        instrumentation_scope=scope,
                    )
                )
        return out
