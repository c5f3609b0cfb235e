"""sysspan: turn what a program does into OpenTelemetry traces."""

__version__ = "0.1.0"
