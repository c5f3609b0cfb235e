"""Files written in whole lines that survive a failing disk: what every sysspan output uses.

A write that fails (disk full, directory gone read-only, I/O error) is undone by truncating
the file back to the end of the last whole line, and the line goes to the next location:
the fallback directories (``$XDG_STATE_HOME/sysspan``, ``~/.local/state/sysspan``,
``/tmp/sysspan-<uid>``). A file deleted while it is being written (its directory removed
mid-run) is noticed after the next write and its content is copied out to the fallback, so
nothing written so far vanishes with the last descriptor. What cannot be written anywhere
is counted, never raised: the traced command's exit status must not depend on a disk.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping

from sysspan.fsutil import fallback_dirs, open_private

_COPY_CHUNK = 1 << 20


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _warn(msg: str) -> None:
    print(f"sysspan: warning: {msg}", file=sys.stderr)


class Fallback:
    """The fallback locations of one run, shared by all its files so the switch is
    announced once, not once per file."""

    def __init__(
        self, env: Mapping[str, str], announce: Callable[[str], None] | None = _warn
    ) -> None:
        self._env = env
        self._dirs: list[str] | None = None
        self.announce = announce
        self.announced = False

    @property
    def dirs(self) -> list[str]:
        """Worked out when first needed: finding the temporary directory imports tempfile
        and writes a probe file, which a run whose trace file works never needs."""
        if self._dirs is None:
            self._dirs = fallback_dirs(self._env)
        return self._dirs

    def tell(self, path: str, reason: str, new_path: str) -> None:
        if self.announced or self.announce is None:
            return
        self.announced = True
        self.announce(
            f"cannot write {path} ({reason}); writing the rest to {os.path.dirname(new_path)}"
        )


class WholeLineFile:
    """Appends whole lines (``O_APPEND``, mode 0600, parents 0700), opened on first use.

    ``write(data, items)`` writes ``data`` (one or more complete lines holding ``items``
    spans or lines) and never raises. ``written`` maps each path used to the items it got,
    in the order used; ``lost`` counts items no location took; ``error`` is why the first
    location failed.
    """

    def __init__(self, path: str, fallback: Fallback | None = None, *, truncate: bool = False) -> None:
        """``truncate``: empty ``path`` when opening it (``-o`` replaces, traces append)."""
        self.path = path
        self.first_path = path
        self._truncate_first = truncate
        self.fallback = fallback
        self.written: dict[str, int] = {}
        self.lost = 0
        self.truncated = 0
        self.error: str | None = None
        self._candidates = [path]  # the fallback's locations are added on the first failure
        self._next = 1
        self._fd: int | None = None
        self._good = 0  # offset just after our last whole line

    @property
    def items(self) -> int:
        return sum(self.written.values())

    @property
    def moved(self) -> bool:
        """True when some items went somewhere else than the first path."""
        return any(p != self.first_path for p in self.written)

    def write(self, data: bytes, items: int) -> bool:
        while True:
            if self._fd is None and not self._open():
                if not self._advance(self.error or "cannot open"):
                    self.lost += items
                    return False
                continue
            try:
                self._write_all(data)
            except OSError as exc:
                self._truncate()
                if not self._advance(_reason(exc)):
                    self.lost += items
                    return False
                continue
            self._good = self._offset()
            self.written[self.path] = self.written.get(self.path, 0) + items
            self._rescue_if_deleted()
            return True

    def close(self) -> None:
        if self._fd is not None:
            self._rescue_if_deleted()
            try:
                os.close(self._fd)
            except OSError as exc:
                self.error = self.error or _reason(exc)
            self._fd = None

    def _open(self) -> bool:
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND
        if self._truncate_first and self.path == self.first_path:
            flags |= os.O_TRUNC
        try:
            self._fd = open_private(self.path, flags)
        except OSError as exc:
            self._fd = None
            if self.error is None or self.path == self.first_path:
                self.error = _reason(exc)
            return False
        self._good = self._offset()
        return True

    def _offset(self) -> int:
        try:
            return os.lseek(self._fd, 0, os.SEEK_END)  # type: ignore[arg-type]
        except OSError:
            return 0  # a pipe or a terminal: nothing to truncate

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)  # type: ignore[arg-type]
            if n <= 0:
                raise OSError(28, os.strerror(28))
            view = view[n:]

    def _truncate(self) -> None:
        """Cut a partly written line off, so the file ends in a whole line."""
        try:
            if os.fstat(self._fd).st_size > self._good:  # type: ignore[arg-type]
                os.ftruncate(self._fd, self._good)  # type: ignore[arg-type]
                self.truncated += 1
        except OSError:
            pass

    def _advance(self, reason: str) -> bool:
        """Give up the current location for the next one. False when none is left."""
        if self.path == self.first_path and self.error is None:
            self.error = reason
        elif self.path == self.first_path:
            self.error = self.error or reason
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
        if self._next == 1 and len(self._candidates) == 1 and self.fallback is not None:
            name = os.path.basename(self.first_path) or "sysspan.jsonl"
            self._candidates += [os.path.join(d, name) for d in self.fallback.dirs]
        if self._next >= len(self._candidates):
            return False
        old = self.path
        self.path = self._candidates[self._next]
        self._next += 1
        if self.fallback is not None and old == self.first_path:
            self.fallback.tell(old, reason, self.path)
        return True

    def _rescue_if_deleted(self) -> None:
        """The file was unlinked under us (its directory removed): copy what it holds to
        the next location before the last descriptor takes it away."""
        try:
            if os.fstat(self._fd).st_nlink > 0:  # type: ignore[arg-type]
                return
        except OSError:
            return
        old_fd, old_path, size = self._fd, self.path, self._good
        self._fd = None
        moved = self.written.pop(old_path, 0)
        if self.path == self.first_path:
            self.error = self.error or "deleted while being written"
        while self._advance("deleted while being written"):
            if self._fd is None and not self._open():
                continue
            try:
                offset = 0
                while offset < size:
                    chunk = os.pread(old_fd, min(_COPY_CHUNK, size - offset), offset)  # type: ignore[arg-type]
                    if not chunk:
                        break
                    self._write_all(chunk)
                    offset += len(chunk)
            except OSError:
                self._truncate()
                continue
            self._good = self._offset()
            self.written[self.path] = self.written.get(self.path, 0) + moved
            break
        else:
            self.lost += moved
        try:
            os.close(old_fd)  # type: ignore[arg-type]
        except OSError:
            pass

    def describe(self, unit: Callable[[int], str]) -> list[str]:
        """One sentence per thing the user must know: where the items went, what was lost."""
        out: list[str] = []
        if not self.moved and not self.lost:
            return out
        where = [f"{unit(n)} in {p}" for p, n in self.written.items() if n]
        head = f"could not write {self.first_path} ({self.error or 'write failed'})"
        parts = []
        if where:
            parts.append("; ".join(where))
        if self.truncated:
            parts.append("the partial last line was truncated")
        if self.lost:
            parts.append(f"{unit(self.lost)} lost")
        out.append(head + ": " + ", ".join(parts))
        return out


class TextLines:
    """A text stream of whole lines over :class:`WholeLineFile` (``-o`` output): ``write``
    buffers, whole lines go out in blocks of about 64 KiB, and nothing raises."""

    BLOCK = 64 * 1024

    def __init__(self, path: str, fallback: Fallback | None = None) -> None:
        self.file = WholeLineFile(path, fallback, truncate=True)
        self._buf: list[str] = []
        self._size = 0

    def write(self, text: str) -> int:
        self._buf.append(text)
        self._size += len(text)
        if self._size >= self.BLOCK and text.endswith("\n"):
            self.flush()
        return len(text)

    def flush(self) -> None:
        if not self._buf:
            return
        text = "".join(self._buf)
        self._buf, self._size = [], 0
        cut = text.rfind("\n") + 1
        if cut < len(text):  # keep an unfinished line for the next block
            self._buf, self._size = [text[cut:]], len(text) - cut
            text = text[:cut]
        if text:
            self.file.write(text.encode("utf-8", "backslashreplace"), text.count("\n"))

    def close(self) -> None:
        if self._buf and not "".join(self._buf).endswith("\n"):
            self._buf.append("\n")
        self.flush()
        self.file.close()
