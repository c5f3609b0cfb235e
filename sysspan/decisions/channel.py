"""The dedicated decision channel: a pipe whose write end every descendant of the traced
command inherits (``SYSSPAN_DECISION_FD``), read by a thread in sysspan.

Why a pipe and not stderr: writes to it cost the writer one ``write`` and no ptrace stop
on the content, work with ``--no-syscalls`` (no ptrace at all), and never mix with the
program's output. Any language can use it: write one JSON object per line::

    {"category": "codegen", "name": "integer_type", "input": {...}, "result": {...},
     "file": "src/x.rs", "line": 42, "column": 7, "start_ns": 1700000000000000000,
     "end_ns": 1700000000000500000, "pid": 1234, "tid": 1235}

``category`` and ``name`` are required strings; everything else is optional (``start_ns``
defaults to the time sysspan read the line, ``end_ns`` to ``start_ns``). ``skipped``: N
says the writer sampled N decisions away in-process since its previous line (counted as
dropped; the line itself is then not sampled again).

Back-pressure: writers are never made non-blocking (the file status flags would be
shared with every descendant and surprise them). The pipe buffer is enlarged to 1 MiB
where the kernel allows it, and the reader drains it in large chunks, so a writer only
blocks when sysspan falls more than 1 MiB behind; it then waits rather than losing
decisions. A line up to ``PIPE_BUF`` (4096 bytes) is written atomically even by concurrent
writers; longer lines from several processes at once may interleave and are then counted
as malformed. Lines over 64 KiB are dropped and counted.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import json.scanner
import os
import select
import threading
import time
from collections.abc import Callable

from sysspan.decisions.delivery import DecisionDelivery
from sysspan.decisions.model import Decision
from sysspan.decisions.sampling import DecisionGate
from sysspan.decisions.stderr_protocol import MAX_LINE, LineBuffer

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "decode_channel_object",
    "ENV_FD",
    "ENV_INO",
    "ENV_RATE",
    "ENV_SAMPLE",
    "DecisionChannel",
    "open_channel",
    "parse_channel_line",
]

ENV_FD = "SYSSPAN_DECISION_FD"
ENV_INO = "SYSSPAN_DECISION_INO"  # inode of the pipe: a writer checks its fd really is our pipe
ENV_SAMPLE = "SYSSPAN_DECISION_SAMPLE"
ENV_RATE = "SYSSPAN_DECISION_RATE"

_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_PIPE_SIZE = 1 << 20
_READ_CHUNK = 1 << 20
_U32 = 0xFFFFFFFF
_U64 = (1 << 64) - 1


def decode_channel_object(obj: Any, t_ns: int) -> tuple[Decision, int, bool] | int | None:
    """One decoded channel JSON value → ``(decision, skipped, presampled)``; the int
    ``skipped`` alone for an object that only reports in-process sampling
    (``{"skipped": N}``); None when malformed. ``presampled`` is True when the writer
    sampled in-process (the object has a ``skipped`` field). ``t_ns`` is the default start
    time. A field given as ``null`` counts as absent. Never raises."""
    if type(obj) is not dict:
        return None
    get = obj.get
    line = get("line") or 0
    column = get("column") or 0
    pid = get("pid") or 0
    tid = get("tid") or 0
    skipped = get("skipped") or 0
    start = get("start_ns") or t_ns
    end = get("end_ns") or start
    # one expression: this runs for every decision of a burst
    if not (
        type(line) is int
        and type(column) is int
        and type(pid) is int
        and type(tid) is int
        and type(skipped) is int
        and type(start) is int
        and type(end) is int
        and 0 <= line <= _U32
        and 0 <= column <= _U32
        and 0 <= pid <= _U32
        and 0 <= tid <= _U32
        and 0 <= skipped <= _U64
        and 0 <= start <= _U64
        and 0 <= end <= _U64
    ):
        return None
    category = get("category")
    name = get("name")
    if category is None and name is None and "skipped" in obj:
        return skipped
    if type(category) is not str or type(name) is not str or not category or not name:
        return None
    file = get("file") or ""
    if type(file) is not str:
        return None
    if end < start:
        end = start
    decision = Decision(
        category, name, get("input"), get("result"), file, line, column, start, end, pid, tid
    )
    return decision, skipped, "skipped" in obj


def parse_channel_line(line: bytes, t_ns: int) -> tuple[Decision, int, bool] | int | None:
    """One channel line (bytes, no newline) decoded as :func:`decode_channel_object`."""
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return decode_channel_object(obj, t_ns)


# typeshed types make_scanner's argument as the scanner class; a decoder is what it reads.
_DECODER: Any = json.JSONDecoder()
_scan_once = json.scanner.make_scanner(_DECODER)  # the C scanner, no regex per value
_BAD = object()


def _decode_lines(lines: list[bytes]) -> list[Any] | None:
    """Every line's JSON value (``_BAD`` for a line that is not exactly one JSON value),
    with one UTF-8 decode and one C scanner call per line instead of ``json.loads`` each
    (about twice as fast). None when the chunk is not valid UTF-8 (then per line)."""
    try:
        text = b"\n".join(lines).decode("utf-8")
    except UnicodeDecodeError:
        return None
    out: list[Any] = []
    append = out.append
    find = text.find
    size = len(text)
    pos = 0
    while pos < size:
        nl = find("\n", pos)
        stop = size if nl < 0 else nl
        try:
            value, end = _scan_once(text, pos)
        except (StopIteration, ValueError, RecursionError):
            append(_BAD)
        else:
            append(value if end == stop else _BAD)  # exactly the line, not more, not less
        pos = stop + 1
    return out


class DecisionChannel(DecisionDelivery):
    """A decision pipe plus the thread that reads it. Create it with :func:`open_channel`.

    ``child_fd``   the inheritable write end to hand to the command (keep its number:
                   ``os.fork``+``execve`` keeps it; ``subprocess.Popen`` needs
                   ``pass_fds=(channel.child_fd,)``)
    ``env()``      ``{"SYSSPAN_DECISION_FD": str(child_fd), "SYSSPAN_DECISION_INO": ...}``
                   plus ``SYSSPAN_DECISION_SAMPLE`` (the sampling ratio, when < 1) and
                   ``SYSSPAN_DECISION_RATE`` (the gate's per-second limit, when it has one),
                   to merge into the child's environment: the Python API then samples and
                   rate-limits before it writes, so a burst costs no pipe write per decision
    ``close()``    after the command has exited: closes sysspan's copy of the write end,
                   drains what is left, joins the reader
    ``received``   decisions parsed; ``skipped`` decisions writers sampled away in-process;
    ``malformed``  lines that did not parse (also added to the gate's ``malformed``)

    ``on_decision(decision)`` runs on the reader thread. With a ``gate`` only admitted
    decisions reach it (the gate counts all of them); without one every decision does.
    """

    def __init__(
        self,
        on_decision: Callable[[Decision], None] | None = None,
        *,
        gate: DecisionGate | None = None,
        sample_ratio: float | None = None,
        max_line: int = MAX_LINE,
    ) -> None:
        super().__init__(on_decision, gate)
        if sample_ratio is None:
            sample_ratio = gate.sampler.ratio if gate is not None else 1.0
        self.sample_ratio = sample_ratio
        self._lines = LineBuffer(max_line)
        read_fd, write_fd = os.pipe()  # both O_CLOEXEC
        with contextlib.suppress(OSError):
            fcntl.fcntl(write_fd, _F_SETPIPE_SZ, _PIPE_SIZE)
        os.set_inheritable(write_fd, True)
        self._read_fd = read_fd
        self._write_fd: int | None = write_fd
        self.child_fd = write_fd
        self.inode = os.fstat(write_fd).st_ino
        self._wake_r, self._wake_w = os.pipe()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="sysspan-decisions", daemon=True)
        self._thread.start()

    # -- public ---------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """Variables to add to the traced command's environment."""
        out = {ENV_FD: str(self.child_fd), ENV_INO: str(self.inode)}
        if self.sample_ratio < 1.0:
            out[ENV_SAMPLE] = repr(float(self.sample_ratio))
        if self.gate is not None and self.gate.limiter.per_second > 0:
            out[ENV_RATE] = str(self.gate.limiter.per_second)
        return out

    def attributes(self) -> dict[str, int]:
        """Run span attributes of this transport (the gate's counters cover the pipe)."""
        return {}

    def close_child_end(self) -> None:
        """Close sysspan's own copy of the write end (right after the command was started,
        or at :meth:`close`); the reader sees EOF once every writer has exited."""
        fd, self._write_fd = self._write_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self, timeout: float = 2.0) -> None:
        """Drain and stop. Waits up to ``timeout`` seconds for EOF (descendants that outlive
        the command and still hold the pipe); then reads what is buffered and stops anyway."""
        if self._closed:
            return
        self._closed = True
        self.close_child_end()
        self._thread.join(timeout)
        if self._thread.is_alive():
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")
            self._thread.join()
        for fd in (self._read_fd, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> DecisionChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reader thread --------------------------------------------------------------------
    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._read_fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        stopping = False
        while True:
            if stopping:
                # drain without blocking, then stop
                os.set_blocking(self._read_fd, False)
                while True:
                    try:
                        data = os.read(self._read_fd, _READ_CHUNK)
                    except (BlockingIOError, InterruptedError):
                        data = None
                    except OSError:
                        data = b""
                    if not data:
                        break
                    self._consume(data)
                break
            for fd, _events in poller.poll():
                if fd == self._wake_r:
                    stopping = True
            if stopping:
                continue
            try:
                data = os.read(self._read_fd, _READ_CHUNK)
            except InterruptedError:
                continue
            except OSError:
                break
            if not data:
                break  # EOF: every writer is gone
            self._consume(data)
        rest = self._lines.take_partial()
        if rest.strip():
            self._line(rest, time.time_ns())

    def _consume(self, data: bytes) -> None:
        before = self._lines.overlong
        lines = self._lines.feed(data)
        bad = self._lines.overlong - before
        if bad:
            self._malformed(bad)
        if not lines:
            return
        t_ns = time.time_ns()
        lines = [stripped for line in lines if (stripped := line.strip())]
        values = _decode_lines(lines)
        if values is None:
            for line in lines:
                self._line(line, t_ns)
            return
        handle = self._handle
        for value in values:
            handle(None if value is _BAD else decode_channel_object(value, t_ns), t_ns)

    def _line(self, line: bytes, t_ns: int) -> None:
        self._handle(parse_channel_line(line, t_ns), t_ns)

    def _handle(self, parsed: tuple[Decision, int, bool] | int | None, t_ns: int) -> None:
        if parsed is None:
            self._malformed(1)
            return
        if isinstance(parsed, int):
            self._skipped(parsed)
            return
        decision, skipped, presampled = parsed
        self._skipped(skipped)
        self._deliver(decision, t_ns, presampled)


def open_channel(
    on_decision: Callable[[Decision], None] | None = None,
    *,
    gate: DecisionGate | None = None,
    sample_ratio: float | None = None,
) -> DecisionChannel:
    """Create the decision pipe and start its reader thread (see :class:`DecisionChannel`).

    ``on_decision(decision)`` is called on the reader thread for every decision the
    ``gate`` admits (all of them without a gate). ``sample_ratio`` (default: the gate's)
    < 1 is passed to writers as ``SYSSPAN_DECISION_SAMPLE`` through
    :meth:`DecisionChannel.env`, so the Python API samples before it writes (cheapest).
    """
    return DecisionChannel(on_decision, gate=gate, sample_ratio=sample_ratio)
