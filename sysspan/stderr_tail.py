"""``--stderr-tail N``: what the command said last, on the run span when it failed.

Only with the flag does sysspan stand between the command and the terminal: the command's
fd 2 becomes a pipe, and a thread copies every byte to sysspan's own stderr unchanged
while keeping the last N lines. Without the flag the command writes to the inherited
stderr directly, because a pipe is not a terminal: programs that check ``isatty(2)``
(colours, progress bars, line buffering) would behave differently.

The lines kept are redacted with ``sysspan.redact`` before they reach a span, each cut to
``max_line`` bytes, so memory stays bounded however much the command writes.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from collections.abc import Iterator

from sysspan.model import SpanEvent
from sysspan.redact import redact_arg, redact_argv, redact_text

EVENT_NAME = "stderr.tail"


def redact_line(line: str) -> str:
    """A line of output with anything that looks like a credential masked: quoted or URL
    credentials, argv-style ``--password x`` / ``token=x`` words, and everything after a
    header such as ``Authorization:``."""
    words = redact_argv(redact_text(line).split(" "))
    for i in range(len(words)):
        # a header or assignment anywhere in the line masks the rest of it
        rest = " ".join(words[i:])
        masked = redact_arg(rest)
        if masked != rest:
            return " ".join([*words[:i], masked])
    return " ".join(words)


class StderrTail:
    """Copies the command's stderr through and remembers its last ``lines`` lines."""

    def __init__(self, lines: int, *, max_line: int = 4096) -> None:
        self.lines = lines
        self.max_line = max_line
        self._tail: deque[bytes] = deque(maxlen=max(lines, 1))
        self._partial = bytearray()
        self._out = os.dup(2)  # the real stderr, where the bytes go
        self._read_fd, self._write_fd = os.pipe()
        # Started once the command is forked: forking a multi-threaded process is where
        # deadlocks come from (the pipe holds what the command writes until then).
        self._thread = threading.Thread(target=self._copy, name="sysspan-stderr", daemon=True)

    @contextlib.contextmanager
    def child_stderr(self) -> Iterator[None]:
        """While the command is started (fork/exec inherit fd 2), fd 2 is the pipe."""
        saved = os.dup(2)
        os.dup2(self._write_fd, 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(self._write_fd)
            self._write_fd = -1
            self._thread.start()

    def _copy(self) -> None:
        while True:
            try:
                data = os.read(self._read_fd, 65536)
            except InterruptedError:
                continue
            except OSError:
                return
            if not data:
                return
            view = memoryview(data)
            while view:
                try:
                    written = os.write(self._out, view)
                except InterruptedError:
                    continue
                except OSError:
                    break  # our own stderr is gone; keep draining so the command never blocks
                view = view[written:]
            self._remember(data)

    def _remember(self, data: bytes) -> None:
        partial = self._partial
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                room = self.max_line - len(partial)
                if room > 0:
                    partial += data[start:start + room]
                return
            room = self.max_line - len(partial)
            if room > 0:
                partial += data[start:min(end, start + room)]
            self._tail.append(bytes(partial))
            partial.clear()
            start = end + 1

    def finish(self, timeout: float = 1.0) -> list[str]:
        """Wait (briefly: a background process may keep the pipe open) for the copy to end;
        the last lines, redacted."""
        if self._write_fd >= 0:  # the command never started
            os.close(self._write_fd)
            self._write_fd = -1
            self._thread.start()
        self._thread.join(timeout)
        lines = list(self._tail)
        if self._partial:
            lines.append(bytes(self._partial))
        lines = lines[-self.lines:] if self.lines else []
        return [redact_line(raw.decode("utf-8", "replace").rstrip("\r")) for raw in lines]

    @staticmethod
    def event(lines: list[str], t_ns: int) -> SpanEvent | None:
        """The run span's event for ``lines`` (None when there were none)."""
        if not lines:
            return None
        return SpanEvent(
            EVENT_NAME,
            t_ns,
            {"stderr.tail": "\n".join(lines), "stderr.tail.lines": len(lines)},
        )
