"""Kinds for sockets: sockaddrs, socklen pointers, socket types/protocols, options, msghdr."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from sysspan.collector import constants as C
from sysspan.collector.decode.kinds.base import (
    PLAN_U32LEN,
    Kind,
    PlanOp,
    _Ctx,
    _Directed,
    _TransferLimited,
    mem_op,
)
from sysspan.collector.decode.kinds.buffers import _read_iov
from sysspan.collector.decode.reading import (
    ARRAY_MAX_ITEMS,
    SOCKADDR_MAX,
    _read_exact,
    _read_u32,
)
from sysspan.collector.decode.text import _U32, _flags, _i32, _inet_ntop, _ntohs, _ptr, quote

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

    from sysspan.collector.decode.decoder import Decoder
    from sysspan.collector.decode.reading import MemoryReader

NUL = b"\0"


def sockaddr_text(data: bytes) -> str | None:
    """strace's rendering of a sockaddr (None when too short to show anything)."""
    if len(data) < 2:
        return None
    family = struct.unpack_from("<H", data)[0]
    fam = C.ADDRESS_FAMILIES.get(family, f"{family:#x} /* AF_??? */")
    head = f"{{sa_family={fam}"
    if family == C.AF_UNIX:
        path = data[2:]
        if not path:
            return head + "}"
        if path[0] == 0:
            return f"{head}, sun_path=@{quote(path[1:])}}}"
        return f"{head}, sun_path={quote(path.split(NUL, 1)[0])}}}"
    if family == C.AF_INET and len(data) >= 8:
        port = struct.unpack_from(">H", data, 2)[0]
        addr = _inet_ntop(4, data[4:8])
        return f'{head}, sin_port=htons({port}), sin_addr=inet_addr("{addr}")}}'
    if family == C.AF_INET6 and len(data) >= 24:
        port, flow = struct.unpack_from(">HI", data, 2)
        addr = _inet_ntop(6, data[8:24])
        text = (
            f"{head}, sin6_port=htons({port}), sin6_flowinfo=htonl({flow}), "
            f'inet_pton(AF_INET6, "{addr}", &sin6_addr)'
        )
        if len(data) >= 28:
            text += f", sin6_scope_id={struct.unpack_from('<I', data, 24)[0]}"
        return text + "}"
    if family == C.AF_NETLINK and len(data) >= 12:
        nl_pid, groups = struct.unpack_from("<II", data, 4)
        return f"{head}, nl_pid={nl_pid}, nl_groups={groups:08x}}}"
    if family == C.AF_PACKET and len(data) >= 8:
        proto = struct.unpack_from(">H", data, 2)[0]
        ifindex = struct.unpack_from("<i", data, 4)[0]
        pname = C.ETH_PROTOS.get(proto, f"{proto:#x}")
        return f"{head}, sll_protocol=htons({pname}), sll_ifindex={ifindex}, ...}}"
    return f"{head}, sa_data={quote(data[2:])}}}"


class _Sockaddr(_Directed):
    """A sockaddr whose length (or length pointer) is arg ``n``; NULL shows as ``NULL``."""

    def __init__(self, n: int, output: bool) -> None:
        super().__init__(output)
        self.n = n

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        if c.args[i] == 0:
            return "NULL"
        data = xv if self.output else ev
        text = sockaddr_text(data) if isinstance(data, bytes) else None
        return text or _ptr(c.args[i])


class _SockaddrIn(_Sockaddr):
    """A sockaddr the call reads (connect, bind, sendto); its length is arg ``n``."""

    def __init__(self, n: int) -> None:
        super().__init__(n, output=False)

    def plan(self, d: Decoder, i: int, at_exit: bool) -> tuple[PlanOp, ...] | None:
        return (mem_op(i, SOCKADDR_MAX, self.n, PLAN_U32LEN),)

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        size = min(args[self.n] & _U32, SOCKADDR_MAX)
        return _read_exact(r, pid, args[i], size) if size else None


class _SockaddrOut(_Sockaddr):
    """A sockaddr the kernel fills (accept, getsockname, recvfrom); length pointer is arg ``n``."""

    def __init__(self, n: int) -> None:
        super().__init__(n, output=True)

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        if not args[i] or not args[self.n]:
            return None
        length = _read_u32(r, pid, args[self.n])
        if not length:
            return None
        return _read_exact(r, pid, args[i], min(length, SOCKADDR_MAX))


class _Socklen(Kind):
    """A socklen_t pointer the kernel updates: ``[16]`` or ``[128 => 16]``."""

    has_entry = True
    has_exit = True

    def plan(self, d: Decoder, i: int, at_exit: bool) -> tuple[PlanOp, ...] | None:
        return (mem_op(i, 4),)

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        return _read_u32(r, pid, args[i])

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        return _read_u32(r, pid, args[i])

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        if c.args[i] == 0:
            return "NULL"
        before = ev if isinstance(ev, int) else None
        after = xv if isinstance(xv, int) else None
        if before is None and after is None:
            return _ptr(c.args[i])
        if before is None or after is None or before == after:
            return f"[{before if after is None else after}]"
        return f"[{before} => {after}]"


class _SocketProto(Kind):
    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        family = c.args[0] & _U32
        proto = _i32(c.args[i])
        if family in (C.AF_INET, C.AF_INET6):
            return C.IPPROTOS.get(proto, str(proto))
        if family == C.AF_NETLINK:
            return C.NETLINK_PROTOS.get(proto, str(proto))
        if family == C.AF_PACKET:
            be = _ntohs(proto & 0xFFFF)
            return f"htons({C.ETH_PROTOS.get(be, f'{be:#x}')})"
        return str(proto)


class _SockoptName(Kind):
    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        level = _i32(c.args[1])
        opt = _i32(c.args[i])
        names = C.SOCKOPT_NAMES.get(level)
        if names is None:
            return str(opt)
        return names.get(opt, str(opt))


def _sockopt_value(data: bytes | None, level: int, opt: int) -> str | None:
    if data is None:
        return None
    if level == 1 and opt == C.SO_LINGER and len(data) >= 8:
        onoff, linger = struct.unpack_from("<ii", data)
        return f"{{l_onoff={onoff}, l_linger={linger}}}"
    if len(data) == 4:
        return f"[{struct.unpack('<i', data)[0]}]"
    return None


class _SockoptVal(_Directed):
    """setsockopt's value (entry, length arg 4) or getsockopt's (exit, length pointer arg 4)."""

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        size = args[4] & _U32
        return _read_exact(r, pid, args[i], size) if size in (4, 8) else None

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        size = _read_u32(r, pid, args[4]) if args[4] else None
        return _read_exact(r, pid, args[i], size) if size in (4, 8) else None

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        data = xv if self.output else ev
        text = _sockopt_value(
            data if isinstance(data, bytes) else None, _i32(c.args[1]), _i32(c.args[2])
        )
        return text or _ptr(c.args[i])


class _Msghdr(_TransferLimited):
    """``struct msghdr``: sendmsg reads it at entry, recvmsg at exit (data limited to rval)."""

    def _capture(
        self, d: Decoder, args: Sequence[int], i: int, limit: int, pid: int, r: MemoryReader
    ) -> Any:
        hdr = _read_exact(r, pid, args[i], 56)
        if hdr is None:
            return None
        name, namelen, iov, iovlen, control, controllen, flags = struct.unpack("<QI4xQQQQi4x", hdr)
        name_data = None
        if name and namelen:
            name_data = _read_exact(r, pid, name, min(namelen, SOCKADDR_MAX))
        iovs = None
        if iov:
            iovs = _read_iov(d, iov, min(iovlen, ARRAY_MAX_ITEMS), limit, pid, r)
        return (name, namelen, iov, iovlen, control, controllen, flags, name_data, iovs)

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        cap = xv if self.output else ev
        if not (isinstance(cap, tuple) and len(cap) == 9):
            return _ptr(c.args[i])
        name, namelen, iov, iovlen, control, controllen, flags, name_data, iovs = cap
        if name == 0:
            name_text = "NULL"
        else:
            name_text = (sockaddr_text(name_data) if isinstance(name_data, bytes) else None) or (
                _ptr(name)
            )
        iov_text = c.dec.show_iov(iovs, iovlen) if isinstance(iovs, tuple) else _ptr(iov)
        parts = [f"msg_name={name_text}", f"msg_namelen={namelen}", f"msg_iov={iov_text}",
                 f"msg_iovlen={iovlen}"]  # fmt: skip
        if controllen:
            parts.append(f"msg_control={_ptr(control)}")
        parts.append(f"msg_controllen={controllen}")
        parts.append(f"msg_flags={_flags(flags & _U32, C.MSG_FLAGS)}")
        return "{" + ", ".join(parts) + "}"
