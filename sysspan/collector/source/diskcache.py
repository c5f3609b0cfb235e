"""What ``--source`` and ``-k`` learned about an ELF file, kept on disk by build id.

Parsing a file's call-frame information and DWARF is the fixed cost of a ``--source`` run.
The results for the addresses a run met (compiled unwind rules, symbolised inline chains)
depend only on the file's contents, which its build id names, so they are written at the end
of a run and read back when a later run meets the same file: a program traced again costs
a dictionary lookup per address instead of a parse.

Where: ``$SYSSPAN_SOURCE_CACHE`` (``off`` disables the cache), else
``$XDG_CACHE_HOME/sysspan/source``, else ``~/.cache/sysspan/source``; one file per build id and
Python version, in :mod:`marshal`'s format (the fastest to read, and imported with the
interpreter: msgpack cost a warm run 1.5 ms of imports), written atomically, in a directory
only its owner can read. A file that cannot be read or does not parse is ignored (and
rewritten). Paths are strings and the build id is checked without a regular expression:
pathlib and a compiled expression were a third of what a warm run's imports cost.
"""

from __future__ import annotations

import marshal
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_FORMAT = 4
#: Entries kept per file (a long run on a big program stops adding after this many).
MAX_ENTRIES = 200_000
_HEX = frozenset("0123456789abcdef")


def _valid_build_id(build_id: str) -> bool:
    """8 to 80 lowercase hex digits (a build id names a file: nothing else may get in)."""
    return 8 <= len(build_id) <= 80 and _HEX.issuperset(build_id)


def file_name(build_id: str) -> str:
    """The cache file of ``build_id``: marshal's format may change between Python versions."""
    return f"{build_id}.{sys.implementation.cache_tag}.marshal"


def cache_dir() -> str | None:
    """The cache directory, or None when the cache is off."""
    explicit = os.environ.get("SYSSPAN_SOURCE_CACHE")
    if explicit is not None:
        return None if explicit.strip().lower() in ("", "off", "0", "none") else explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "sysspan", "source")


class FileCache:
    """The cached facts of one ELF file: ``cfi`` (vaddr → rule), ``sym`` (vaddr → (chain,
    symbol, offset)) and ``func`` (vaddr → (function symbol, offset) or None, what the
    tail-call check asks) and ``head`` (name → what the section headers answered:
    ``"mixed"`` links a language runtime in, ``"plt"`` the PLT address ranges; a warm run
    then never reads them). ``dirty`` says whether this run added something."""

    __slots__ = ("build_id", "cfi", "sym", "func", "head", "dirty")

    def __init__(
        self, build_id: str, cfi: dict, sym: dict, func: dict | None = None, head: dict | None = None
    ) -> None:
        self.build_id = build_id
        self.cfi: dict[int, Any] = cfi
        self.sym: dict[int, Any] = sym
        self.func: dict[int, Any] = func if func is not None else {}
        self.head: dict[str, Any] = head if head is not None else {}
        self.dirty = False


def load(build_id: str | None) -> FileCache | None:
    """The cache of the file with ``build_id`` (empty when nothing was kept); None when the
    file has no build id or the cache is off."""
    where = cache_dir()
    if build_id is None or where is None or not _valid_build_id(build_id):
        return None
    try:
        with open(os.path.join(where, file_name(build_id)), "rb") as fh:
            data = marshal.loads(fh.read())
        if type(data) is not dict or data.get("format") != _FORMAT:
            raise ValueError("other format")
        parts = (data["cfi"], data["sym"], data["func"], data["head"])
        if any(type(part) is not dict for part in parts):
            raise ValueError("other format")
        # marshal made fresh dictionaries: no copies (a libc's entry can hold thousands)
        return FileCache(build_id, *parts)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, EOFError):
        return FileCache(build_id, {}, {})


def save(entry: FileCache) -> None:
    """Write ``entry`` if this run added to it; failures are silent (the cache is an
    optimisation: the next run parses again)."""
    where = cache_dir()
    if where is None or not entry.dirty:
        return
    try:
        os.makedirs(where, mode=0o700, exist_ok=True)
        data = marshal.dumps(
            {"format": _FORMAT, "cfi": entry.cfi, "sym": entry.sym, "func": entry.func,
             "head": entry.head}
        )
        import tempfile  # only when something is written: a warm run never is, and it costs ~3 ms

        fd, tmp = tempfile.mkstemp(dir=where, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, os.path.join(where, file_name(entry.build_id)))
        entry.dirty = False
    except (OSError, ValueError, TypeError):
        pass
