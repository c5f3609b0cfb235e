"""strace-style text output (``-o FILE``): one line per completed syscall."""

from __future__ import annotations

import time
from typing import Protocol

from sysspan.collector.decode import Decoded
from sysspan.redact import redact


class TextOut(Protocol):
    """Where lines go: a text stream, or the -o file's :class:`TextLines`."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


class LineWriter:
    """Formats syscalls the way strace prints them, with strace's -f/-T/-t/-tt/-ttt options.

    Lines are written when the syscall completes, so calls from different threads never
    interleave as ``<unfinished ...>`` pairs; the timestamp is the syscall's entry time.
    ``quiet`` is strace's -q count: from 2 on, ``+++ exited with N +++`` lines are left out
    (``+++ killed by SIG +++`` stays, as in strace).
    """

    def __init__(
        self,
        out: TextOut,
        *,
        with_pid: bool,
        show_time: bool = False,
        timestamps: int = 0,
        quiet: int = 0,
    ) -> None:
        self.out = out
        self.with_pid = with_pid
        self.show_time = show_time
        self.timestamps = timestamps
        self.quiet = quiet
        self.lines = 0

    def _prefix(self, tid: int, t_ns: int) -> str:
        parts = []
        if self.with_pid:
            # strace's "%-5d ": one space after a 5-digit pid, more after shorter ones
            parts.append(f"{tid:<5}")
        if self.timestamps == 1:
            parts.append(time.strftime("%H:%M:%S", time.localtime(t_ns // 1_000_000_000)))
        elif self.timestamps == 2:
            secs = time.strftime("%H:%M:%S", time.localtime(t_ns // 1_000_000_000))
            parts.append(f"{secs}.{(t_ns // 1000) % 1_000_000:06d}")
        elif self.timestamps >= 3:
            parts.append(f"{t_ns // 1_000_000_000}.{(t_ns // 1000) % 1_000_000:06d}")
        return (" ".join(parts) + " ") if parts else ""

    def syscall(
        self, tid: int, t0: int, t1: int, _flags: int, d: Decoded, _typed: dict | None = None
    ) -> None:
        call = f"{self._prefix(tid, t0)}{d.name}({d.args})"
        ret = d.ret
        # strace pads the " = ret" column to 40 characters
        line = f"{call:<39} = {ret}"
        if self.show_time and ret != "?":
            dt = t1 - t0
            line += f" <{dt // 1_000_000_000}.{(dt // 1000) % 1_000_000:06d}>"
        self.out.write(line + "\n")
        self.lines += 1

    def stack(self, lines: list[str]) -> None:
        """strace -k: the symbolised stack under its syscall line."""
        for text in lines:
            self.out.write(redact(text) + "\n")

    def event(self, tid: int, text: str) -> None:
        if self.quiet >= 2 and text.startswith("+++ exited with "):
            return
        self.out.write(f"{self._prefix(tid, time.time_ns())}{text}\n")

    def close(self) -> None:
        self.out.flush()
