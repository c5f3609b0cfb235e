"""Kinds that print a register value alone: numbers, enums, flag sets (nothing is read)."""

from __future__ import annotations

from collections.abc import Callable

from sysspan.collector import constants as C
from sysspan.collector.decode.kinds.base import Kind, _Ctx
from sysspan.collector.decode.text import _U32, _flags, _i32

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any


class _Simple(Kind):
    def __init__(self, fn: Callable[[int], str]) -> None:
        self.fn = fn

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        return self.fn(c.args[i])


class _ArchFlags(Kind):
    """Flags whose table depends on the architecture (PROT_*, MAP_*, O_*)."""

    def __init__(self, tables: dict[str, C.Flags], zero: str = "0") -> None:
        self.tables = tables
        self.zero = zero

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        return _flags(c.args[i] & _U32, self.tables[c.dec.arch], self.zero)


class _Enum(Kind):
    def __init__(self, table_: dict[int, str], unknown: str, signed: bool = True) -> None:
        self.table = table_
        self.unknown = unknown
        self.signed = signed

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        v = _i32(c.args[i]) if self.signed else c.args[i] & _U32
        name = self.table.get(v)
        if name is not None:
            return name
        return f"{v & _U32:#x} /* {self.unknown} */"


class _FlagsK(Kind):
    def __init__(self, table_: C.Flags, zero: str = "0", mask: int = _U32) -> None:
        self.table = table_
        self.zero = zero
        self.mask = mask

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        return _flags(c.args[i] & self.mask, self.table, self.zero)


class _FieldFlags(Kind):
    """A value whose ``field`` bits pick one name and whose other bits are flags:
    ``SOCK_STREAM|SOCK_CLOEXEC``, ``AT_STATX_SYNC_AS_STAT|AT_EMPTY_PATH``."""

    def __init__(self, field: int, names: dict[int, str], unknown: str, flags: C.Flags) -> None:
        self.field = field
        self.names = names
        self.unknown = unknown  # appended to the hex of a field value without a name
        self.flags = flags

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        v = c.args[i] & _U32
        value = v & self.field
        name = self.names.get(value, f"{value:#x}{self.unknown}")
        rest = v & ~self.field
        return name + ("|" + _flags(rest, self.flags) if rest else "")
