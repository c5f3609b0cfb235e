"""Reading and writing the Ruchy/renacer decision files, so their tools read ours and we read theirs.

``.ruchy/decisions.msgpack``
    MessagePack, as ``rmp_serde::to_vec(&Vec<DecisionTrace>)`` writes it: one array of
    positional records ``[timestamp_us, category, name, input, result, source_location,
    decision_id]``. ``timestamp_us`` is microseconds since the transpiler started (Ruchy) or
    since the Unix epoch (what sysspan writes; values ≥ 10^15 are taken as epoch times).
    ``source_location`` is nil, a ``"file:line"`` / ``"file:line:column"`` string (what
    renacer writes; a trailing `` function`` is ignored) or a ``{file, line, column}`` map;
    ``decision_id`` is nil or the u64 FNV id. Read liberally: several concatenated arrays
    (a writer that flushed twice), bare records, records as maps (``to_vec_named``), the
    zero padding a memory-mapped writer leaves at the end.

``.ruchy/decision_manifest.json``
    ``{"version": "2.0.0", "git_commit": ..., "transpiler_version": ..., "0x<HEX>": entry,
    ...}`` where every entry is ``{decision_id, category, name, source: {file, line,
    column?}, input, result}``. renacer writes keys as ``0x{:X}`` (upper case, unpadded);
    sysspan writes ``0x`` + 16 upper-case hex digits; both are read (any case, any width).

Bad input never raises: truncated msgpack, invalid JSON, records of the wrong shape, and
manifest entries whose key (or ``decision_id``) disagrees with the FNV id recomputed from
category/name/file/line are counted in :class:`ImportCounters` ``malformed``, and
:meth:`ImportCounters.summary` gives the one line to print.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgpack

from sysspan.decisions.model import Decision, cached_decision_id
from sysspan.errors import TraceFileError
from sysspan.fsutil import make_private_dirs, private_open

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "MSGPACK_NAME",
    "DecisionWriter",
    "ImportCounters",
    "ManifestEntry",
    "import_dir",
    "parse_source_location",
    "read_manifest",
    "read_msgpack",
    "ruchy_dir",
    "write_dir",
]

MSGPACK_NAME = "decisions.msgpack"
MANIFEST_NAME = "decision_manifest.json"
MANIFEST_VERSION = "2.0.0"

_EPOCH_US = 10**15  # 2001-09-09 in µs since the epoch: smaller timestamps are relative
_U32 = 0xFFFFFFFF
_U64 = (1 << 64) - 1
_KEY = re.compile(r"0[xX]([0-9a-fA-F]{1,16})")
_SOURCE = re.compile(r"(.*?):(\d+)(?::(\d+))?(?:\s.*)?", re.S)
_MAX_PROBLEMS = 5


@dataclass
class ImportCounters:
    """What an import found: ``decisions`` read, ``malformed`` records/lines/entries
    (including ``id_mismatch`` manifest entries and ``truncated`` files), the ``files`` read."""

    decisions: int = 0
    malformed: int = 0
    id_mismatch: int = 0
    truncated: int = 0
    files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str, n: int = 1) -> None:
        self.malformed += n
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(text)

    def summary(self) -> str:
        """One line: ``N decisions from FILES; M malformed (first problem, ...)``."""
        text = f"{self.decisions} decisions from {', '.join(self.files) or 'nothing'}"
        if self.malformed:
            text += f"; {self.malformed} malformed"
            details = []
            if self.id_mismatch:
                details.append(f"{self.id_mismatch} wrong id")
            if self.truncated:
                details.append(f"{self.truncated} truncated file")
            if self.problems:
                details.append(f"first: {self.problems[0]}")
            if details:
                text += " (" + "; ".join(details) + ")"
        return text


@dataclass(slots=True)
class ManifestEntry:
    """One manifest entry (its id verified against category/name/file/line)."""

    decision_id: int
    category: str
    name: str
    file: str
    line: int
    column: int = 0
    input: Any = None
    result: Any = None


def parse_source_location(value: Any) -> tuple[str, int, int] | None:
    """``(file, line, column)`` from nil / ``"file:line[:col][ function]"`` / a map / a
    ``[file, line, col]`` list; None when absent or unusable."""
    if value is None:
        return None
    if isinstance(value, str):
        if not value:
            return None
        m = _SOURCE.fullmatch(value)
        if m is None:
            return value, 0, 0
        line = int(m.group(2))
        column = int(m.group(3)) if m.group(3) else 0
        if line > _U32 or column > _U32:
            return None
        return m.group(1), line, column
    if isinstance(value, dict):
        file, line, column = value.get("file", ""), value.get("line", 0), value.get("column", 0)
    elif isinstance(value, (list, tuple)) and 1 <= len(value) <= 3:
        file, line, column = (list(value) + [0, 0])[:3]
    else:
        return None
    if file is None:
        file = ""
    if column is None:
        column = 0
    if not isinstance(file, str) or type(line) is not int or type(column) is not int:
        return None
    if not (0 <= line <= _U32 and 0 <= column <= _U32):
        return None
    return file, line, column


# --------------------------------------------------------------------------- msgpack


def _is_array(byte: int) -> bool:
    return 0x90 <= byte <= 0x9F or byte in (0xDC, 0xDD)


def _record_fields(obj: Any) -> tuple | None:
    """A record as the 7-tuple, from an array or a named map; None if the shape is wrong."""
    if isinstance(obj, (list, tuple)):
        if not 5 <= len(obj) <= 7:
            return None
        fields = list(obj) + [None] * (7 - len(obj))
        return tuple(fields)
    if isinstance(obj, dict):
        if "category" not in obj or "name" not in obj:
            return None
        return (
            obj.get("timestamp_us", 0),
            obj.get("category"),
            obj.get("name"),
            obj.get("input"),
            obj.get("result"),
            obj.get("source_location"),
            obj.get("decision_id"),
        )
    return None


def _iter_raw(data: bytes, counters: ImportCounters, name: str) -> Iterator[tuple]:
    """Raw 7-tuples from a msgpack buffer (see module docstring for what is accepted)."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, unicode_errors="replace")
    unpacker.feed(data)
    size = len(data)
    while True:
        pos = unpacker.tell()
        if pos >= size:
            return
        if not data[pos:].strip(b"\x00"):
            return  # zero padding left by a pre-sized (memory-mapped) writer
        try:
            if _is_array(data[pos]):
                n = unpacker.read_array_header()
                if n == 0:
                    continue
                first = unpacker.unpack()
                if isinstance(first, (list, tuple, dict)):
                    # an array of records
                    items: Iterator[Any] = _chain_first(first, unpacker, n)
                    for obj in items:
                        rec = _record_fields(obj)
                        if rec is None:
                            counters.problem(f"{name}: record of unexpected shape")
                        else:
                            yield rec
                else:
                    # a bare record [ts, category, ...]
                    rest = [unpacker.unpack() for _ in range(n - 1)]
                    rec = _record_fields([first, *rest])
                    if rec is None:
                        counters.problem(f"{name}: record of unexpected shape")
                    else:
                        yield rec
            else:
                obj = unpacker.unpack()
                rec = _record_fields(obj)
                if rec is None:
                    counters.problem(f"{name}: unexpected {type(obj).__name__} at byte {pos}")
                    return
                yield rec
        except msgpack.OutOfData:
            counters.truncated += 1
            counters.problem(f"{name}: truncated at byte {size}")
            return
        except Exception as exc:  # noqa: BLE001 - corrupt data of any kind: count, stop
            counters.problem(f"{name}: corrupt msgpack at byte {unpacker.tell()} ({exc})")
            return


def _chain_first(first: Any, unpacker: msgpack.Unpacker, n: int) -> Iterator[Any]:
    yield first
    for _ in range(n - 1):
        yield unpacker.unpack()


def _decision_from_raw(
    rec: tuple,
    base_ns: int,
    manifest: dict[int, ManifestEntry] | None,
    counters: ImportCounters,
    name: str,
) -> Decision | None:
    ts, category, dname, value, result, source, did = rec
    if isinstance(ts, float) and ts == ts and ts >= 0:
        ts = int(ts)
    if type(ts) is not int or ts < 0 or ts > _U64:
        counters.problem(f"{name}: bad timestamp {ts!r}")
        return None
    if not isinstance(category, str) or not isinstance(dname, str) or not category or not dname:
        counters.problem(f"{name}: record without category/name")
        return None
    if did is not None and (type(did) is not int or not 0 <= did <= _U64):
        counters.problem(f"{name}: bad decision_id {did!r}")
        return None
    loc = parse_source_location(source)
    if source is not None and loc is None:
        counters.problem(f"{name}: bad source_location {source!r}")
        return None
    if loc is None and did is not None and manifest:
        entry = manifest.get(did)
        if entry is not None and entry.category == category and entry.name == dname:
            loc = (entry.file, entry.line, entry.column)
    file, line, column = loc or ("", 0, 0)
    if (
        did is not None
        and loc is not None
        and did != cached_decision_id(category, dname, file, line)
    ):
        counters.id_mismatch += 1
        counters.problem(
            f"{name}: decision_id 0x{did:016X} does not match {category}::{dname} at {file}:{line}"
        )
    start = ts * 1000 if ts >= _EPOCH_US else base_ns + ts * 1000
    return Decision(
        category=category,
        name=dname,
        input=value,
        result=result,
        file=file,
        line=line,
        column=column,
        start_ns=start,
        end_ns=start,
    )


def read_msgpack(
    path: str | os.PathLike[str],
    *,
    manifest: dict[int, ManifestEntry] | None = None,
    base_ns: int | None = None,
    counters: ImportCounters | None = None,
) -> Iterator[Decision]:
    """Decisions from a ``decisions.msgpack`` file, in file order (instants).

    Relative (Ruchy) timestamps are placed so that the last decision falls at the file's
    modification time, unless ``base_ns`` (the epoch time of ``timestamp_us`` 0) is given.
    A record with a ``decision_id`` but no source location takes its location from the
    ``manifest`` entry of that id. A record whose ``decision_id`` disagrees with its
    category/name/location is counted (``id_mismatch``, ``malformed``) and still returned.
    An unreadable file is counted and yields nothing.
    """
    counters = counters if counters is not None else ImportCounters()
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            data = fh.read()
        mtime = os.stat(name).st_mtime_ns
    except OSError as exc:
        counters.problem(f"{name}: {exc.strerror or exc}")
        return
    raw = list(_iter_raw(data, counters, name))
    if base_ns is None:
        relative = [r[0] for r in raw if type(r[0]) is int and 0 <= r[0] < _EPOCH_US]
        base_ns = mtime - max(relative, default=0) * 1000
    for rec in raw:
        decision = _decision_from_raw(rec, base_ns, manifest, counters, name)
        if decision is not None:
            counters.decisions += 1
            yield decision


# --------------------------------------------------------------------------- manifest


def _entry(
    key_id: int, obj: Any, counters: ImportCounters, name: str, key: str
) -> ManifestEntry | None:
    if not isinstance(obj, dict):
        counters.problem(f"{name}: entry {key} is not an object")
        return None
    category, dname = obj.get("category"), obj.get("name")
    if not isinstance(category, str) or not isinstance(dname, str) or not category or not dname:
        counters.problem(f"{name}: entry {key} without category/name")
        return None
    loc = parse_source_location(obj.get("source"))
    if loc is None:
        counters.problem(f"{name}: entry {key} without a usable source")
        return None
    file, line, column = loc
    did = obj.get("decision_id", key_id)
    if type(did) is not int:
        counters.problem(f"{name}: entry {key} decision_id is not an integer")
        return None
    expected = cached_decision_id(category, dname, file, line)
    if key_id != expected or did != expected:
        counters.id_mismatch += 1
        counters.problem(
            f"{name}: entry {key} does not match the id of {category}::{dname} at {file}:{line} (0x{expected:016X})"
        )
        return None
    result = obj.get("result")
    return ManifestEntry(expected, category, dname, file, line, column, obj.get("input"), result)


def read_manifest(
    path: str | os.PathLike[str], *, counters: ImportCounters | None = None
) -> dict[int, ManifestEntry]:
    """The verified entries of a ``decision_manifest.json``, by decision id.

    Entries whose key or ``decision_id`` is not the FNV id recomputed from category, name,
    ``source.file`` and ``source.line`` are counted as malformed (``id_mismatch``) and left
    out; so are entries of the wrong shape. Invalid JSON counts one and returns ``{}``.
    """
    counters = counters if counters is not None else ImportCounters()
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            doc = json.loads(fh.read())
    except OSError as exc:
        counters.problem(f"{name}: {exc.strerror or exc}")
        return {}
    except (ValueError, RecursionError) as exc:
        counters.problem(f"{name}: invalid JSON ({exc})")
        return {}
    if not isinstance(doc, dict):
        counters.problem(f"{name}: not a JSON object")
        return {}
    items = list(doc.items())
    nested = doc.get("entries")
    if isinstance(nested, dict):
        items.extend(nested.items())
    out: dict[int, ManifestEntry] = {}
    for key, obj in items:
        m = _KEY.fullmatch(key) if isinstance(key, str) else None
        if m is None:
            continue  # version, git_commit, transpiler_version, unknown fields
        entry = _entry(int(m.group(1), 16), obj, counters, name, key)
        if entry is not None:
            out[entry.decision_id] = entry
    return out


# --------------------------------------------------------------------------- directories


def ruchy_dir(path: str | os.PathLike[str]) -> str:
    """Where the two files live for ``path``: ``path`` itself when it is named ``.ruchy``,
    else ``path/.ruchy``."""
    name = os.fspath(path)
    if os.path.basename(os.path.normpath(name)) == ".ruchy":
        return name
    return os.path.join(name, ".ruchy")


def import_dir(path: str | os.PathLike[str]) -> tuple[list[Decision], ImportCounters]:
    """Decisions of a Ruchy project directory (``DIR/.ruchy/``) or of the directory holding
    the files itself.

    With a ``decisions.msgpack``, every record is a decision (the manifest, when present,
    supplies source locations by id). With only a manifest, each entry becomes one instant
    decision at the manifest's modification time. Raises ``TraceFileError`` when neither
    file exists; anything wrong inside them is counted, never raised.
    """
    name = os.fspath(path)
    if not os.path.isdir(name):
        raise TraceFileError(f"{name}: no such directory")
    candidates = [ruchy_dir(name), name]
    base = next(
        (
            d
            for d in candidates
            if os.path.isfile(os.path.join(d, MSGPACK_NAME))
            or os.path.isfile(os.path.join(d, MANIFEST_NAME))
        ),
        None,
    )
    if base is None:
        raise TraceFileError(f"{name}: no .ruchy/{MSGPACK_NAME} or .ruchy/{MANIFEST_NAME} found")
    counters = ImportCounters()
    mpath = os.path.join(base, MANIFEST_NAME)
    dpath = os.path.join(base, MSGPACK_NAME)
    manifest: dict[int, ManifestEntry] = {}
    if os.path.isfile(mpath):
        counters.files.append(mpath)
        manifest = read_manifest(mpath, counters=counters)
    if os.path.isfile(dpath):
        counters.files.append(dpath)
        decisions = list(read_msgpack(dpath, manifest=manifest, counters=counters))
        return decisions, counters
    try:
        when = os.stat(mpath).st_mtime_ns
    except OSError:
        when = 0
    decisions = [
        Decision(
            category=e.category,
            name=e.name,
            input=e.input,
            result=e.result,
            file=e.file,
            line=e.line,
            column=e.column,
            start_ns=when,
            end_ns=when,
        )
        for e in manifest.values()
    ]
    counters.decisions += len(decisions)
    return decisions, counters


def _source_string(d: Decision) -> str | None:
    if not d.file and not d.line:
        return None
    text = f"{d.file}:{d.line}"
    if d.column:
        text += f":{d.column}"
    return text


def _packable(value: Any) -> Any:
    """``value`` unchanged if msgpack takes it, else its JSON text."""
    try:
        msgpack.packb(value, use_bin_type=True)
        return value
    except (TypeError, ValueError, OverflowError):
        from sysspan.decisions.model import json_text

        return json_text(value)


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value, allow_nan=False)
        return value
    except (TypeError, ValueError, OverflowError, RecursionError):
        from sysspan.decisions.model import json_text

        return json_text(value)


class DecisionWriter:
    """Streams decisions into ``decisions.msgpack`` and collects the manifest (one entry per
    decision id, the last input/result seen wins, as renacer's writer does).

    Memory: constant for the msgpack file (the array length is patched in at the end);
    the manifest holds one entry per distinct decision site.
    """

    def __init__(self, path: str | os.PathLike[str], *, transpiler_version: str = "") -> None:
        self.dir = ruchy_dir(path)
        make_private_dirs(self.dir)
        self.transpiler_version = transpiler_version
        self.count = 0
        self._entries: dict[int, dict[str, Any]] = {}
        self._packer = msgpack.Packer(use_bin_type=True)
        self._tmp = os.path.join(self.dir, f".{MSGPACK_NAME}.{os.getpid()}.tmp")
        self._fh = private_open(self._tmp, "wb")  # noqa: SIM115 - closed in close()
        self._fh.write(b"\xdd\x00\x00\x00\x00")  # array32 header, count patched at close

    def add(self, d: Decision) -> None:
        did = d.id
        source = _source_string(d)
        rec = [max(0, d.start_ns) // 1000, d.category, d.name, d.input, d.result, source, did]
        try:
            data = self._packer.pack(rec)
        except (TypeError, ValueError, OverflowError):
            self._packer.reset()
            rec[3], rec[4] = _packable(d.input), _packable(d.result)
            data = self._packer.pack(rec)
        self._fh.write(data)
        self.count += 1
        src: dict[str, Any] = {"file": d.file, "line": d.line}
        if d.column:
            src["column"] = d.column
        self._entries[did] = {
            "decision_id": did,
            "category": d.category,
            "name": d.name,
            "source": src,
            "input": d.input,
            "result": d.result,
        }

    def close(self) -> tuple[str, str]:
        """Finish both files (each replaced atomically); returns their paths."""
        self._fh.seek(1)
        self._fh.write(struct.pack(">I", min(self.count, _U32)))
        self._fh.close()
        dpath = os.path.join(self.dir, MSGPACK_NAME)
        os.replace(self._tmp, dpath)
        doc: dict[str, Any] = {
            "version": MANIFEST_VERSION,
            "git_commit": None,
            "transpiler_version": self.transpiler_version or None,
        }
        for did in sorted(self._entries):
            entry = self._entries[did]
            entry["input"] = _jsonable(entry["input"])
            entry["result"] = _jsonable(entry["result"])
            doc[f"0x{did:016X}"] = entry
        mpath = os.path.join(self.dir, MANIFEST_NAME)
        tmp = mpath + f".{os.getpid()}.tmp"
        with private_open(tmp, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2, ensure_ascii=False)
            fh.write("\n")
        os.replace(tmp, mpath)
        return dpath, mpath

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._fh.close()
        with contextlib.suppress(OSError):
            os.unlink(self._tmp)


def write_dir(
    path: str | os.PathLike[str], decisions: Iterable[Decision], *, transpiler_version: str = ""
) -> int:
    """Write ``decisions.msgpack`` and ``decision_manifest.json`` into ``ruchy_dir(path)``
    (``path/.ruchy/`` unless ``path`` is already named ``.ruchy``). Returns the count.

    Timestamps are written as epoch microseconds, source locations as renacer's
    ``"file:line[:column]"`` strings, ids as the FNV id (what renacer's reader expects).
    Durations are not part of the format and are lost.
    """
    writer = DecisionWriter(path, transpiler_version=transpiler_version)
    try:
        for d in decisions:
            writer.add(d)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return writer.count
