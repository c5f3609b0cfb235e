"""Kinds for memory mappings: mmap's flags, mremap's optional new address."""

from __future__ import annotations

from sysspan.collector import constants as C
from sysspan.collector.decode.kinds.base import Kind, _Ctx
from sysspan.collector.decode.text import _U32, _flags, _ptr

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any


class _MmapFlags(Kind):
    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        v = c.args[i] & _U32
        mtype = v & C.MAP_TYPE_MASK
        tname = C.MAP_TYPES.get(mtype, f"{mtype:#x} /* MAP_??? */")
        huge = (v >> C.MAP_HUGE_SHIFT) & C.MAP_HUGE_MASK
        rest = v & ~C.MAP_TYPE_MASK & ~(C.MAP_HUGE_MASK << C.MAP_HUGE_SHIFT)
        parts = [tname]
        if rest:
            parts.append(_flags(rest, C.MAP_FLAGS[c.dec.arch]))
        if huge:
            parts.append(f"{huge}<<MAP_HUGE_SHIFT")
        return "|".join(parts)


class _MremapNew(Kind):
    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        return _ptr(c.args[i]) if c.args[3] & C.MREMAP_FIXED else None
