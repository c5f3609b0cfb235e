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
rewritten). Beside them an index of files (``files.<tag>.marshal``) maps a file's identity
(device, inode, size, mtime) to its build id, machine and loadable segments: a warm run then
neither opens nor reads the headers of a file whose facts the cache holds. Paths are strings and the build id is checked without a regular expression:
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
#: Files the index remembers (the oldest are dropped beyond it: rebuilt programs leave
#: identities behind that no file has any more).
MAX_FILES = 4096
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
    if not entry.dirty:
        return
    data = {"format": _FORMAT, "cfi": entry.cfi, "sym": entry.sym, "func": entry.func,
            "head": entry.head}
    if _write(file_name(entry.build_id), data):
        entry.dirty = False


def _index_name() -> str:
    return f"files.{sys.implementation.cache_tag}.marshal"


def load_index() -> dict:
    """The index of files: ``(st_dev, st_ino, st_size, st_mtime_ns)`` → ``(build id,
    machine, [(p_offset, p_vaddr, p_filesz, p_flags), ...])``; empty when the cache is off,
    or the index is missing or unreadable. Entries are checked as they are used
    (``indexed``)."""
    where = cache_dir()
    if where is None:
        return {}
    try:
        with open(os.path.join(where, _index_name()), "rb") as fh:
            data = marshal.loads(fh.read())
        if type(data) is dict and data.get("format") == _FORMAT and type(data["files"]) is dict:
            return data["files"]
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        pass
    return {}


def indexed(index: dict, identity: tuple[int, int, int, int]) -> tuple | None:
    """The index's ``(build id, machine, segments)`` of the file ``identity`` names, None
    when it has none or a malformed one."""
    known = index.get(identity)
    try:
        build_id, machine, loads = known  # type: ignore[misc]
        if (
            type(build_id) is str and _valid_build_id(build_id) and type(machine) is str
            and all(len(seg) == 4 and all(type(v) is int for v in seg) for seg in loads)
        ):
            return (build_id, machine, [tuple(seg) for seg in loads])
    except (TypeError, ValueError):
        pass
    return None


def save_index(index: dict) -> None:
    """Write the index (the newest ``MAX_FILES`` files); failures are silent."""
    if len(index) > MAX_FILES:
        index = dict(list(index.items())[-MAX_FILES:])
    _write(_index_name(), {"format": _FORMAT, "files": index})


def _write(name: str, data: dict) -> bool:
    """Write ``data`` to the cache file ``name`` atomically: whether it was written."""
    where = cache_dir()
    if where is None:
        return False
    try:
        os.makedirs(where, mode=0o700, exist_ok=True)
        raw = marshal.dumps(data)
        import tempfile  # only when something is written: a warm run never is, and it costs ~3 ms

        fd, tmp = tempfile.mkstemp(dir=where, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
        os.replace(tmp, os.path.join(where, name))
        return True
    except (OSError, ValueError, TypeError):
        return False
