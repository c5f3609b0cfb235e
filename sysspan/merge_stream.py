"""``merge`` over files larger than memory should allow: an index instead of the spans.

The merge decisions (duplicates, causal order, clock skew) need only each span's ids,
times and name, plus a digest of the rest to tell a conflicting duplicate. The first pass
keeps that much (a :class:`SpanRef`, which says where the span is: the byte offset of its
line and its position in it); the write pass reads the spans back line by line, in causal
order, through a small cache of decoded lines. Peak memory is the index plus the cache,
not every span with its attributes.
"""

from __future__ import annotations

import json
import sys
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from sysspan.merge import Entry, MergeResult, _shift_span, merge_spans
from sysspan.model import ResourceSpans, Span
from sysspan.tracefile import _decode, _open, _raw_lines

_CACHED_LINES = 32
_NO_RESOURCE: dict = {}  # read back with the span; one shared placeholder until then


@dataclass(slots=True)
class SpanRef:
    """What the merge keeps of one span: the fields its decisions read, a digest of the
    rest, and where to read it back (``offset`` of the line, ``index`` in it)."""

    trace_id: int
    span_id: int
    parent_id: int
    name: str
    start_ns: int
    end_ns: int
    digest: int
    offset: int
    index: int


def _digest(span: Span) -> int:
    attrs = sorted(span.attributes.items(), key=lambda kv: kv[0])
    return hash(repr(attrs))


def index_files(paths: Sequence[str]) -> list[Entry]:
    """One :class:`Entry` holding a :class:`SpanRef` per span of every file, file order kept."""
    entries: list[Entry] = []
    names: dict[str, str] = {}
    for source, path in enumerate(paths):
        for offset, lineno, raw in _raw_lines(path):
            batches = _decode(raw, lineno, path)
            if batches is None:
                break
            index = 0
            for batch in batches:
                for s in batch.spans:
                    name = names.setdefault(s.name, s.name)
                    ref = SpanRef(s.trace_id, s.span_id, s.parent_id, name, s.start_ns,
                                  s.end_ns, _digest(s), offset, index)  # fmt: skip
                    entries.append(Entry(ref, source, _NO_RESOURCE, "", ""))  # type: ignore[arg-type]
                    index += 1
    return entries


def merge_files_streaming(paths: Sequence[str], *, fix_skew: bool = False) -> MergeResult:
    """:func:`sysspan.merge.merge_spans` over the index of ``paths``; read the merged spans
    with :func:`read_back`."""
    return merge_spans(index_files(paths), list(paths), fix_skew=fix_skew, shift=False)


class _Reader:
    """Decoded lines of the sources by offset, the most recent few kept."""

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = paths
        self.handles: dict[int, IO[bytes]] = {}
        self.cache: OrderedDict[tuple[int, int], list[tuple[Span, dict, str, str]]] = OrderedDict()
        self.resources: dict[str, dict] = {}

    def span(self, source: int, offset: int, index: int) -> tuple[Span, dict, str, str]:
        key = (source, offset)
        line = self.cache.get(key)
        if line is None:
            line = self._load(source, offset)
            self.cache[key] = line
            if len(self.cache) > _CACHED_LINES:
                self.cache.popitem(last=False)
        else:
            self.cache.move_to_end(key)
        return line[index]

    def _load(self, source: int, offset: int) -> list[tuple[Span, dict, str, str]]:
        handle = self.handles.get(source)
        if handle is None:
            handle = self.handles[source] = _open(self.paths[source])
        handle.seek(offset)
        raw = handle.readline()
        batches: list[ResourceSpans] = _decode(raw, 0, self.paths[source]) or []
        out = []
        for batch in batches:
            key = json.dumps(batch.resource, sort_keys=True, default=repr)
            resource = self.resources.setdefault(key, batch.resource)
            out += [(s, resource, batch.scope_name, batch.scope_version) for s in batch.spans]
        return out

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()


def read_back(result: MergeResult) -> Iterator[Entry]:
    """The merged spans in causal order, read from their files (timestamps shifted when the
    merge was asked to fix skew)."""
    reader = _Reader(result.sources)
    try:
        for entry in result.entries:
            ref: Any = entry.span
            span, resource, scope, version = reader.span(entry.source, ref.offset, ref.index)
            delta = result.shifts_ns.get(entry.source)
            if delta:
                span = _shift_span(span, delta)
            yield Entry(span, entry.source, resource, scope, version)
    finally:
        reader.close()


def index_bytes(entries: Sequence[Entry]) -> int:
    """What the index holds, in bytes (objects only, shared strings once): the figure the
    merge's peak memory is compared with."""
    if not entries:
        return 0
    one = entries[0]
    ref: Any = one.span
    per = sys.getsizeof(one) + sys.getsizeof(ref)
    per += sum(sys.getsizeof(getattr(ref, f)) for f in ("trace_id", "span_id", "parent_id", "start_ns", "end_ns", "digest", "offset", "index"))
    return per * len(entries) + sys.getsizeof(entries)


__all__ = ["SpanRef", "index_bytes", "index_files", "merge_files_streaming", "read_back"]
