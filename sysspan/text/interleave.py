"""strace's ``<unfinished ...>`` / ``<... NAME resumed>`` form for ``-f -o`` lines.

strace writes a call's line in two steps, its arguments at entry and its result at exit; when
another thread prints something in between, the first half is closed with
`` <unfinished ...>`` and the call is finished later on a line of its own,
``<... NAME resumed>REST) = RESULT``. sysspan learns of a call when it returns, but every
record carries its place in the tracer's stop order (``seq0``/``seq1`` for a syscall's
entry and exit, ``seq`` for a signal, an exit, a process start or an exec), one counter
without gaps. ``Interleaver`` holds the records until the order is complete up to them, then
replays the stops the way strace prints them.

A call still in progress leaves a gap that holds back everything after it (a parent in
``wait4`` while its child runs). Past ``max_held`` waiting stops the oldest gap is given up:
what it would have split is written as whole lines, and the call that leaves it, when it
returns, is one whole line too.
"""

from __future__ import annotations

from sysspan.collector.decode import Decoded

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any, Protocol

MAX_HELD = 100_000


class Call:
    """One syscall on its way to the ``-o`` file."""

    __slots__ = ("tid", "t0", "t1", "d", "typed", "stack", "cut")

    def __init__(self, tid: int, t0: int, t1: int, d: Decoded, typed: dict | None) -> None:
        self.tid = tid
        self.t0 = t0
        self.t1 = t1
        self.d = d
        self.typed = typed
        self.stack: list[str] | None = None  # -k: the frames printed under its line
        self.cut = False  # its line was closed with <unfinished ...>


if TYPE_CHECKING:  # an interface for mypy; nothing needs it at run time
    class LineSink(Protocol):
        """What the interleaver writes through (the ``LineWriter``)."""

        def whole(self, call: Call, tid: int) -> None: ...

        def unfinished(self, call: Call) -> None: ...

        def resumed(self, call: Call, tid: int) -> None: ...

        def event_line(self, tid: int, text: str) -> None: ...


_ENTRY, _EXIT, _LATE, _EVENT = range(4)


class Interleaver:
    """Replays calls and lines in stop order, writing them through ``sink``."""

    def __init__(self, sink: LineSink, *, max_held: int = MAX_HELD) -> None:
        self.sink = sink
        self.max_held = max_held
        self.held: dict[int, tuple[int, Any, Any]] = {}
        self.next = 1  # the first stop number not replayed yet
        self.open: Call | None = None  # the call whose line strace would have left open
        # the newest call, placed when the next thing arrives: its -k frames come after it
        self.waiting: tuple[Call, int, int] | None = None
        # the leader a non-leader's execve replaced: strace finishes that execve under it
        self.superseded: dict[int, int] = {}

    def call(self, call: Call, seq0: int, seq1: int) -> None:
        self._settle()
        self.waiting = (call, seq0, seq1)

    def event(self, tid: int, text: str | None, seq: int) -> None:
        """A line of its own at stop ``seq`` (None: a stop that prints nothing)."""
        self._settle()
        self._put(seq, (_EVENT, tid, text))

    def stack(self, lines: list[str]) -> None:
        """``-k``: the frames of the call given last."""
        if self.waiting is not None:
            self.waiting[0].stack = lines

    def flush(self) -> None:
        """Replay everything held, whatever gaps are left (the end of the trace)."""
        self._settle()
        while self.held:
            self.next = min(self.held)
            self._release()

    def _settle(self) -> None:
        if self.waiting is None:
            return
        call, seq0, seq1 = self.waiting
        self.waiting = None
        if seq0 < self.next:  # its entry's gap was given up on
            self._put(seq1, (_LATE, call, None))
        else:
            self.held[seq0] = (_ENTRY, call, None)
            self._put(seq1, (_EXIT, call, None))

    def _put(self, seq: int, item: tuple[int, Any, Any]) -> None:
        if seq < self.next:
            self._replay(item)
            return
        self.held[seq] = item
        self._release()
        if len(self.held) > self.max_held:
            self.next = min(self.held)
            self._release()

    def _release(self) -> None:
        held = self.held
        while self.next in held:
            self._replay(held.pop(self.next))
            self.next += 1

    def _close_open(self) -> None:
        call = self.open
        if call is not None:
            self.sink.unfinished(call)
            call.cut = True
            self.open = None

    def _replay(self, item: tuple[int, Any, Any]) -> None:
        what, a, b = item
        sink = self.sink
        if what == _ENTRY:
            self._close_open()
            self.open = a
        elif what == _EXIT:
            call: Call = a
            if self.open is call:
                self.open = None
                sink.whole(call, call.tid)
            else:
                self._close_open()
                tid = call.tid
                if call.d.name in ("execve", "execveat") and tid in self.superseded:
                    tid = self.superseded.pop(tid)
                (sink.resumed if call.cut else sink.whole)(call, tid)
        elif what == _LATE:
            self._close_open()
            sink.whole(a, a.tid)
        elif b is not None:
            self._close_open()
            if b.startswith("+++ superseded by execve in pid "):
                self.superseded[int(b.split()[-2])] = a
            sink.event_line(a, b)

