"""Sinks: where finished spans go (OTLP JSON lines file, OTLP gRPC/HTTP, the span budget).

The package itself imports nothing: each module is imported where it is used, so the
default path (the JSONL file) never pays for the OTLP client stack at start-up, and no grpc
thread exists when the tracer forks the traced command.
"""
