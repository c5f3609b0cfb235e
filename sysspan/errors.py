"""The one exception hierarchy. ``cli.py`` turns these into one-line messages and exit codes."""

from __future__ import annotations


class SysspanError(Exception):
    """Base of every error sysspan reports to the user; ``exit_code`` is what the CLI returns."""

    exit_code = 1


class UsageError(SysspanError):
    """The command line asked for something malformed or impossible."""

    exit_code = 2


class ConfigError(SysspanError):
    """A configuration value (flag or environment variable) is invalid; the message names it."""

    exit_code = 2


class CommandNotFound(SysspanError):
    """The command to trace does not exist (shell convention: 127)."""

    exit_code = 127


class CommandNotExecutable(SysspanError):
    """The command exists but cannot be executed (shell convention: 126)."""

    exit_code = 126


class PtraceDenied(SysspanError):
    """The kernel refused ptrace; the message says why and how to allow it."""

    exit_code = 1


class TraceFileError(SysspanError):
    """A trace file could not be read or is not OTLP JSON lines."""

    exit_code = 1


class PropagationError(SysspanError):
    """An incoming trace context is invalid and ``--tp-required`` asked for one."""

    exit_code = 1


class EbpfUnavailable(SysspanError):
    """``--backend ebpf`` cannot run here; the message says what is missing and how to get it."""

    exit_code = 1
