"""Sinks: where finished spans go (OTLP JSON lines file, OTLP gRPC/HTTP, ...).

Importing this package does not import the OpenTelemetry SDK or grpc: ``OtlpSink`` loads
them at its first export, so the tracer can fork the traced command before any grpc thread
exists.
"""

from sysspan.exporters.base import Sink, SinkReport
from sysspan.exporters.jsonl import JsonlSink, default_trace_path
from sysspan.exporters.otlp import OtlpSink
from sysspan.exporters.pipeline import Pipeline

__all__ = ["JsonlSink", "OtlpSink", "Pipeline", "Sink", "SinkReport", "default_trace_path"]
