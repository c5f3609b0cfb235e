"""The renacer/Ruchy stderr decision protocol, decoded from what a traced process writes to fd 2.

Lines (anything else is the program's ordinary output and is ignored)::

    [DECISION] category::name input=<JSON>
    [RESULT] name = <JSON>
    [RESULT] category::name result=<JSON>

A ``[DECISION]`` opens a decision at the time of the write that completed its line. A
``[RESULT]`` closes the most recently opened, still open decision of that name (and
category, when given) in the same process and sets its end to the result's time, so a
decision with a result is a timed span. A decision that never gets a result is an instant
(``end_ns == start_ns``); it is handed out when the process exits (:meth:`StderrDecoder.flush`)
or when more than ``max_open`` decisions are open (the oldest goes first).

Source location: the protocol has none, so when the JSON input is an object carrying
``"file"`` (string) and ``"line"`` (integer, optionally ``"column"``) those are used;
otherwise the decision has file ``""`` and line 0 (and its id is computed from those).

Lines split across several ``write`` calls are reassembled; a line longer than
``max_line`` bytes (64 KiB) is counted in ``malformed`` and dropped, so a program that
writes megabytes without a newline cannot grow sysspan's memory. Lines that start like the
protocol but do not parse (no ``category::name``, invalid JSON, a result with no open
decision) are counted in ``malformed`` too. Nothing here raises on any input.
"""

from __future__ import annotations

import json
import json.scanner
from collections import OrderedDict

from sysspan.decisions.model import Decision

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

__all__ = ["MAX_LINE", "LineBuffer", "StderrDecoder", "source_from_input"]

MAX_LINE = 64 * 1024

_DECISION = b"[DECISION]"
_RESULT = b"[RESULT]"
_U32 = 0xFFFFFFFF


class LineBuffer:
    """Reassembles newline-terminated lines from arbitrary chunks, in bounded memory.

    ``feed`` returns the complete lines (without the newline). A line longer than
    ``max_line`` bytes is dropped as a whole (also its parts already buffered or still to
    come) and counted in ``overlong``.
    """

    __slots__ = ("max_line", "_parts", "_size", "_discarding", "overlong")

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._parts: list[bytes] = []
        self._size = 0
        self._discarding = False
        self.overlong = 0

    def feed(self, data: bytes) -> list[bytes]:
        if not data:
            return []
        if b"\n" not in data:
            self._append(data)
            return []
        pieces = data.split(b"\n")
        rest = pieces.pop()
        first: bytes | None = pieces[0]
        if self._discarding:
            self._discarding = False
            pieces[0] = b""
            first = None
        elif self._parts:
            self._parts.append(pieces[0])
            first = b"".join(self._parts)
            self._parts = []
            self._size = 0
            pieces[0] = first
        out: list[bytes] = []
        limit = self.max_line
        for i, line in enumerate(pieces):
            if i == 0 and first is None:
                continue  # tail of an overlong line
            if len(line) > limit:
                self.overlong += 1
            else:
                out.append(line)
        if rest:
            self._append(rest)
        return out

    def _append(self, data: bytes) -> None:
        if self._discarding:
            return
        self._size += len(data)
        if self._size > self.max_line:
            self._parts = []
            self._size = 0
            self._discarding = True
            self.overlong += 1
        else:
            self._parts.append(data)

    def gap(self, until_newline: bool = True) -> None:
        """Bytes of the stream were skipped: the line in progress is broken, so it is dropped
        (counted in ``overlong``) up to the next newline, where reading resynchronises.
        ``until_newline=False``: the skipped bytes ran to the end of a write, so reading
        resumes with the next write (writers of the protocol write whole lines)."""
        if not self._discarding or not until_newline:
            self.overlong += 1
        self._parts = []
        self._size = 0
        self._discarding = until_newline

    def take_partial(self) -> bytes:
        """The unterminated rest (at end of stream), and forget it."""
        rest = b"".join(self._parts)
        self._parts = []
        self._size = 0
        self._discarding = False
        return rest

    @property
    def pending(self) -> int:
        """Bytes waiting for their newline."""
        return self._size


def source_from_input(value: Any) -> tuple[str, int, int]:
    """``(file, line, column)`` carried by a JSON input object, else ``("", 0, 0)``."""
    if isinstance(value, dict):
        file = value.get("file")
        line = value.get("line")
        if isinstance(file, str) and type(line) is int and 0 <= line <= _U32:
            column = value.get("column")
            if type(column) is not int or not 0 <= column <= _U32:
                column = 0
            return file, line, column
    return "", 0, 0


# typeshed types make_scanner's argument as the scanner class; a decoder is what it reads.
_DECODER: Any = json.JSONDecoder()
_scan_once = json.scanner.make_scanner(_DECODER)  # the C scanner, no regex


def _json(text: str) -> tuple[bool, Any]:
    """``(True, value)`` when ``text`` is exactly one JSON value (surrounding blanks aside)."""
    text = text.strip()
    try:
        value, end = _scan_once(text, 0)
    except (StopIteration, ValueError, RecursionError):
        return False, None
    return (True, value) if end == len(text) else (False, None)


def _qualified(token: str) -> tuple[str, str] | None:
    category, sep, name = token.partition("::")
    if not sep or not category or not name:
        return None
    return category, name


class StderrDecoder:
    """Decodes the stderr decision protocol of one traced process (create one per process).

    ``feed(data, t_ns, pid, tid)`` takes the bytes of one ``write`` to fd 2 and returns the
    decisions that were closed by it (by a ``[RESULT]``, or pushed out because more than
    ``max_open`` were open). ``flush(t_ns)`` returns everything still open when the process
    exits (as instants), plus a final unterminated line. ``malformed`` counts bad and
    overlong lines; ``opened`` counts ``[DECISION]`` lines accepted.
    """

    __slots__ = (
        "lines",
        "max_open",
        "malformed",
        "opened",
        "_open",
        "_stacks",
        "_seq",
        "_last_t",
        "_last_pid",
        "_last_tid",
    )

    def __init__(self, *, max_line: int = MAX_LINE, max_open: int = 4096) -> None:
        self.lines = LineBuffer(max_line)
        self.max_open = max(1, max_open)
        self.malformed = 0
        self.opened = 0
        self._open: OrderedDict[int, Decision] = OrderedDict()  # seq -> open decision, oldest first
        self._stacks: dict[str, list[int]] = {}  # name -> seqs of open decisions, oldest first
        self._seq = 0
        self._last_t = 0
        self._last_pid = 0
        self._last_tid = 0

    def feed(self, data: bytes, t_ns: int, pid: int, tid: int) -> list[Decision]:
        self._last_t, self._last_pid, self._last_tid = t_ns, pid, tid
        before = self.lines.overlong
        lines = self.lines.feed(data)
        self.malformed += self.lines.overlong - before
        if not lines:
            return []
        out: list[Decision] = []
        for line in lines:
            self._line(line, t_ns, pid, tid, out)
        return out

    def gap(self, until_newline: bool = True) -> None:
        """Part of a write was not read (see :meth:`LineBuffer.gap`)."""
        before = self.lines.overlong
        self.lines.gap(until_newline)
        self.malformed += self.lines.overlong - before

    def flush(self, t_ns: int) -> list[Decision]:
        """Close the stream: parse an unterminated last line (stamped with the time of its
        last write, ``t_ns`` if there was none) and return every open decision as an instant."""
        out: list[Decision] = []
        before = self.lines.overlong
        rest = self.lines.take_partial()
        self.malformed += self.lines.overlong - before
        if rest:
            self._line(rest, self._last_t or t_ns, self._last_pid, self._last_tid, out)
        out.extend(self._open.values())
        self._open.clear()
        self._stacks.clear()
        return out

    @property
    def open_count(self) -> int:
        return len(self._open)

    # -- parsing ---------------------------------------------------------------------------
    def _line(self, raw: bytes, t_ns: int, pid: int, tid: int, out: list[Decision]) -> None:
        raw = raw.strip()
        if raw.startswith(_DECISION):
            kind = 0
            body = raw[len(_DECISION) :]
        elif raw.startswith(_RESULT):
            kind = 1
            body = raw[len(_RESULT) :]
        else:
            return
        text = body.decode("utf-8", "replace").strip()
        parts = text.split(None, 1)
        if not parts:
            self.malformed += 1
            return
        token = parts[0]
        rest = parts[1] if len(parts) > 1 else ""
        if kind == 0:
            self._decision(token, rest, t_ns, pid, tid, out)
        else:
            self._result(token, rest, t_ns, out)

    def _decision(
        self, token: str, rest: str, t_ns: int, pid: int, tid: int, out: list[Decision]
    ) -> None:
        qual = _qualified(token)
        if qual is None:
            self.malformed += 1
            return
        value: Any = None
        if rest:
            if not rest.startswith("input="):
                self.malformed += 1
                return
            ok, value = _json(rest[6:])
            if not ok:
                self.malformed += 1
                return
        file, line, column = source_from_input(value)
        decision = Decision(
            category=qual[0],
            name=qual[1],
            input=value,
            file=file,
            line=line,
            column=column,
            start_ns=t_ns,
            end_ns=t_ns,
            pid=pid,
            tid=tid,
        )
        self.opened += 1
        self._seq += 1
        seq = self._seq
        self._open[seq] = decision
        self._stacks.setdefault(decision.name, []).append(seq)
        while len(self._open) > self.max_open:
            old_seq, old = self._open.popitem(last=False)
            stack = self._stacks[old.name]
            stack.remove(old_seq)
            if not stack:
                del self._stacks[old.name]
            out.append(old)

    def _result(self, token: str, rest: str, t_ns: int, out: list[Decision]) -> None:
        if rest.startswith("result="):
            payload = rest[7:]
        elif rest.startswith("="):
            payload = rest[1:]
        else:
            self.malformed += 1
            return
        ok, value = _json(payload.strip())
        if not ok:
            self.malformed += 1
            return
        if "::" in token:
            qual = _qualified(token)
            if qual is None:
                self.malformed += 1
                return
            category, name = qual
        else:
            category, name = None, token
        stack = self._stacks.get(name)
        if stack:
            for i in range(len(stack) - 1, -1, -1):
                decision = self._open[stack[i]]
                if category is None or decision.category == category:
                    del self._open[stack[i]]
                    del stack[i]
                    if not stack:
                        del self._stacks[name]
                    decision.result = value
                    if t_ns > decision.start_ns:
                        decision.end_ns = t_ns
                    out.append(decision)
                    return
        self.malformed += 1  # a result with no open decision to attach to
