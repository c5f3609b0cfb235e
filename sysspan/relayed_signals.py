"""The signals sysspan relays to the traced command (Ctrl-C and friends), and keeping them
away from sysspan's own threads.

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


@contextmanager
def relayed_signals_blocked() -> Iterator[None]:
    """Threads started inside inherit a mask without the relayed signals, so the kernel
    delivers those to the main thread, whose waitpid they interrupt."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, RELAYED_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
