"""Kinds for system-wide facts: resource limits (getrlimit/setrlimit/prlimit64), uname."""

from __future__ import annotations

import struct

from sysspan.collector.decode.kinds.base import _Ctx, _FixedStruct
from sysspan.collector.decode.text import _U64, quote


def _rlim_value(v: int, infinity: str) -> str:
    if v == _U64:
        return infinity
    if v and v % 1024 == 0:
        return f"{v // 1024}*1024"
    return str(v)


class _Rlimit(_FixedStruct):
    """``struct rlimit``: the new limit (entry) or the old one (exit)."""

    size = 16

    def __init__(self, output: bool, infinity: str) -> None:
        super().__init__(output)
        self.infinity = infinity

    def show(self, c: _Ctx, data: bytes) -> str:
        cur, mx = struct.unpack("<QQ", data[:16])
        return (
            f"{{rlim_cur={_rlim_value(cur, self.infinity)}, "
            f"rlim_max={_rlim_value(mx, self.infinity)}}}"
        )


class _Uname(_FixedStruct):
    """``struct utsname`` (its sysname and nodename), read at exit."""

    size = 130

    def show(self, c: _Ctx, data: bytes) -> str:
        sysname = data[:65].split(b"\0", 1)[0]
        nodename = data[65:130].split(b"\0", 1)[0]
        return f"{{sysname={quote(sysname)}, nodename={quote(nodename)}, ...}}"
