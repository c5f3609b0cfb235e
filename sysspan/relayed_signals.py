"""The signals sysspan relays to the traced command (Ctrl-C and friends), keeping them away
from sysspan's own threads, and what the command's process resets before its exec.

The kernel gives a process-directed signal to any thread that does not block it. Only the
main thread runs Python's handlers, and it spends the run blocked in ``waitpid`` (the ptrace
loop's or, with ``--no-syscalls``, the command's): a signal the kernel handed to the ring
reader or the export thread would not interrupt that wait, and would reach the command
only once it had ended on its own.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

RELAYED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def ignored_at_start(sig: int) -> bool:
    """Whether sysspan was started with ``sig`` ignored (``nohup`` ignores SIGHUP, a
    non-interactive shell's background job SIGINT and SIGQUIT). Such a signal is neither
    relayed nor reset: sysspan and the command keep ignoring it, as the command would
    untraced. Python itself only ever ignores SIGPIPE and SIGXFSZ, so for the relayed
    signals an ignored disposition is the one sysspan was given."""
    return signal.getsignal(sig) == signal.SIG_IGN


def child_default_signals() -> tuple[int, ...]:
    """The signals the command's process sets to their defaults before its exec: SIGPIPE and
    SIGXFSZ, which Python ignores for itself (as subprocess restores them), and SIGINT and
    SIGTERM, whose Python handlers must not run in the child before the exec, unless sysspan
    was started with them ignored."""
    return (signal.SIGPIPE, signal.SIGXFSZ,
            *(s for s in (signal.SIGINT, signal.SIGTERM) if not ignored_at_start(s)))


@contextmanager
def relayed_signals_blocked() -> Iterator[None]:
    """Threads started inside inherit a mask without the relayed signals, so the kernel
    delivers those to the main thread, whose waitpid they interrupt."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, RELAYED_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
