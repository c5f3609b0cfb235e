"""``-o FILE --json``: the strace lines as JSON records, with typed fields.

One JSON object per line, in the order ``-o`` writes its text lines:

- a syscall: ``pid`` (the thread, as ``strace -f`` shows it), ``start_ns`` (epoch ns of
  the entry), ``duration_ns``, ``syscall``, ``args`` (strace's text), ``return`` (the
  number strace shows, ``-1`` on failure, null when unfinished), ``ret`` (strace's text
  of the result), ``error`` (errno name or null), and the typed fields under the names
  the spans use: ``syscall.fd``, ``file.path``, ``syscall.flags``, ``syscall.size``,
  ``network.peer.address``, ``network.peer.port``, ``network.transport``, ...;
- a signal or exit: ``pid``, ``start_ns``, ``event`` (strace's ``--- SIGCHLD ... ---``);
- with ``-k``: ``stack``, the symbolised frames of the syscall before it.
"""

from __future__ import annotations

import json
import re
import time

from sysspan.collector.decode import Decoded
from sysspan.text.strace_lines import LineWriter

_NUMBER = re.compile(r"-?(?:0x[0-9a-fA-F]+|\d+)")


def return_value(ret: str) -> int | None:
    """The number at the start of strace's result text, or None (``?``)."""
    match = _NUMBER.match(ret)
    return int(match.group(0), 0) if match else None


class JsonLineWriter(LineWriter):
    """LineWriter's records as JSON objects, one per line."""

    def _write(self, record: dict) -> None:
        self.out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        self.lines += 1

    def syscall(
        self, tid: int, t0: int, t1: int, _seq0: int, _seq1: int, d: Decoded,
        typed: dict | None = None,
    ) -> None:
        record: dict = {
            "pid": tid,
            "start_ns": t0,
            "duration_ns": t1 - t0 if d.ret != "?" else None,
            "syscall": d.name,
            "args": d.args,
            "return": return_value(d.ret),
            "ret": d.ret,
            "error": d.error,
        }
        if d.path is not None:
            record["file.path"] = d.path
        if typed:
            record.update(typed)
        self._write(record)

    def stack(self, lines: list[str]) -> None:
        self._write({"stack": [text.strip() for text in lines]})

    def event(self, tid: int, text: str | None, _seq: int = 0) -> None:
        if text is not None:
            self._write({"pid": tid, "start_ns": time.time_ns(), "event": text})
