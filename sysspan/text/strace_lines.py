"""strace-style text output (``-o FILE``): a line per syscall, or strace's split form with ``-f``."""

from __future__ import annotations

import time

from sysspan.collector.decode import Decoded
from sysspan.redact import redact
from sysspan.text.interleave import Call, Interleaver

TYPE_CHECKING = False

if TYPE_CHECKING:  # an interface for mypy; nothing needs it at run time
    from typing import Protocol

    class TextOut(Protocol):
        """Where lines go: a text stream, or the -o file's :class:`TextLines`."""

        def write(self, text: str, /) -> int: ...

        def flush(self) -> None: ...


class LineWriter:
    """Formats syscalls the way strace prints them, with strace's -f/-T/-t/-tt/-ttt options.

    With ``interleave`` (``-f`` under the ptrace tracer, whose records carry their stop
    order), lines come in strace's order and a call that another thread's line interrupted
    is split into ``<unfinished ...>`` and ``<... NAME resumed>`` halves (see
    ``interleave``); otherwise each call is one line, written when it completes. The
    timestamp is the entry time (the exit time on a resumed half, as strace has it).
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
        interleave: bool = False,
    ) -> None:
        self.out = out
        self.with_pid = with_pid
        self.show_time = show_time
        self.timestamps = timestamps
        self.quiet = quiet
        self.lines = 0
        self.order = Interleaver(self) if interleave else None

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
        self, tid: int, t0: int, t1: int, seq0: int, seq1: int, d: Decoded,
        typed: dict | None = None,
    ) -> None:
        if self.order is not None:
            self.order.call(Call(tid, t0, t1, d, typed), seq0, seq1)
            return
        self._result(f"{self._prefix(tid, t0)}{d.name}({d.args})", d.ret, t1 - t0)

    def _result(self, call: str, ret: str, dt: int) -> None:
        # strace pads the " = ret" column to 40 characters
        line = f"{call:<39} = {ret}"
        if self.show_time and ret != "?":
            line += f" <{dt // 1_000_000_000}.{(dt // 1000) % 1_000_000:06d}>"
        self.out.write(line + "\n")
        self.lines += 1

    def stack(self, lines: list[str]) -> None:
        """strace -k: the symbolised stack under its syscall line."""
        if self.order is not None:
            self.order.stack(lines)
            return
        self._stack(lines)

    def _stack(self, lines: list[str]) -> None:
        for text in lines:
            self.out.write(redact(text) + "\n")

    def event(self, tid: int, text: str | None, seq: int = 0) -> None:
        """A signal or exit line (``text`` None: stop ``seq`` prints nothing)."""
        if self.order is not None:
            self.order.event(tid, text, seq)
        elif text is not None:
            self.event_line(tid, text)

    # -- what the interleaver writes through ---------------------------------------------
    def whole(self, call: Call, tid: int) -> None:
        d = call.d
        self._result(f"{self._prefix(tid, call.t0)}{d.name}({d.args})", d.ret, call.t1 - call.t0)
        if call.stack:
            self._stack(call.stack)

    def unfinished(self, call: Call) -> None:
        d = call.d
        head = d.args if d.split < 0 else d.args[: d.split]
        self.out.write(f"{self._prefix(call.tid, call.t0)}{d.name}({head} <unfinished ...>\n")

    def resumed(self, call: Call, tid: int) -> None:
        d = call.d
        rest = "" if d.split < 0 else d.args[d.split :]
        self._result(f"{self._prefix(tid, call.t1)}<... {d.name} resumed>{rest})", d.ret,
                     call.t1 - call.t0)
        if call.stack:
            self._stack(call.stack)

    def event_line(self, tid: int, text: str) -> None:
        if self.quiet >= 2 and text.startswith("+++ exited with "):
            return
        self.out.write(f"{self._prefix(tid, time.time_ns())}{text}\n")

    def close(self) -> None:
        if self.order is not None:
            self.order.flush()
        self.out.flush()
