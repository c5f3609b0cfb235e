"""Typed attributes beside strace's text: the arguments people filter on in a backend.

``syscall.args`` is strace's rendering, good to read and useless to query. Next to it a
syscall span gets, where the call has them:

- ``syscall.fd`` (int): the descriptor the call operates on (its first ``fd`` argument; a
  directory fd such as openat's ``AT_FDCWD`` is not one);
- ``file.path``: set by the decoder already (the path argument, or with ``-y`` the fd's);
- ``syscall.flags`` (array of names): the call's flags argument split the way strace
  prints it (``["O_RDONLY", "O_CLOEXEC"]``; unknown bits stay as strace's hex);
- ``syscall.size`` (int): the byte count asked for (read/write/send/recv/mmap/... length);
- ``network.peer.address`` / ``network.peer.port`` for the remote end of connect, accept,
  sendto, recvfrom and getpeername; ``network.local.address`` / ``network.local.port``
  for bind and getsockname (a unix socket's path is its address);
- ``network.transport`` (``tcp``, ``udp``, ``unix``) and ``network.type`` (``ipv4``,
  ``ipv6``): from socket()'s arguments, for accept from the call itself, and for later
  calls on the same descriptor from what socket() said about it in the same process.

Names follow the OpenTelemetry semantic conventions where they define one (``network.*``,
``file.path``). Each syscall number compiles once into a plan of what to extract, so calls
without typed arguments cost one dict lookup.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

from sysspan.collector import constants as C
from sysspan.collector.decode.kinds.base import _Ctx
from sysspan.collector.decode.kinds.buffers import _Buf
from sysspan.collector.decode.kinds.files import _Fd, _OpenFlags
from sysspan.collector.decode.kinds.memory import _MmapFlags
from sysspan.collector.decode.kinds.network import _SockaddrIn, _SockaddrOut
from sysspan.collector.decode.kinds.scalars import _FieldFlags, _FlagsK
from sysspan.collector.decode.text import _U32, _i32, _inet_ntop

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

    from sysspan.collector.decode.decoder import Decoder

    Attrs = dict[str, Any]
    # step(args, rval, entry captures, exit captures, tgid, out): adds attributes to ``out``
    _Step = Callable[[Sequence[int], int | None, tuple, tuple, int, Attrs], None]

# Syscalls whose second argument is a length in bytes (memory mappings).
_LENGTH_ARG1 = frozenset({"mmap", "munmap", "mprotect", "madvise", "mremap", "msync", "mlock",
                          "munlock"})
# Calls whose sockaddr is this end of the socket rather than the peer.
_LOCAL_ADDR = frozenset({"bind", "getsockname"})
_STREAM_ONLY = frozenset({"accept", "accept4"})
# Calls on a socket descriptor that get the transport socket() recorded for it.
_SOCKET_CALLS = frozenset({
    "connect", "bind", "listen", "shutdown", "sendto", "recvfrom", "sendmsg", "recvmsg",
    "sendmmsg", "recvmmsg", "getsockname", "getpeername", "setsockopt", "getsockopt",
})
_SOCK_STREAM, _SOCK_DGRAM, _SOCK_SEQPACKET = 1, 2, 5
_FLAGS_SEEN_MAX = 1024  # distinct flag values remembered per syscall
_FAMILY_TYPE = {C.AF_INET: "ipv4", C.AF_INET6: "ipv6"}


def flag_names(text: str | None) -> list[str]:
    """strace's ``A|B|0x40`` as ``["A", "B", "0x40"]``; [] for ``0`` or nothing."""
    if not text or text == "0":
        return []
    return [part.strip() for part in text.split("|") if part.strip()]


def sockaddr_fields(data: bytes) -> tuple[str | None, str | None, int | None]:
    """(network.type or "unix", address, port) of a raw sockaddr; Nones when unknown."""
    if len(data) < 2:
        return None, None, None
    family = struct.unpack_from("<H", data)[0]
    if family == C.AF_UNIX:
        path = data[2:]
        if path[:1] == b"\0":  # abstract socket, shown as strace does
            return "unix", "@" + path[1:].split(b"\0", 1)[0].decode("utf-8", "replace"), None
        return "unix", path.split(b"\0", 1)[0].decode("utf-8", "replace") or None, None
    if family == C.AF_INET and len(data) >= 8:
        port = struct.unpack_from(">H", data, 2)[0]
        return "ipv4", _inet_ntop(4, data[4:8]), port
    if family == C.AF_INET6 and len(data) >= 24:
        port = struct.unpack_from(">H", data, 2)[0]
        return "ipv6", _inet_ntop(6, data[8:24]), port
    return None, None, None


def _transport(family: int, sock_type: int) -> str | None:
    if family == C.AF_UNIX:
        return "unix"
    if family in (C.AF_INET, C.AF_INET6):
        base = sock_type & 0xF
        if base == _SOCK_STREAM:
            return "tcp"
        if base == _SOCK_DGRAM:
            return "udp"
    return None


class TypedArgs:
    """Computes the typed attributes of decoded syscalls (one instance per trace; not
    thread-safe: call it from the export thread only)."""

    def __init__(self, decoder: Decoder, max_sockets: int = 65536) -> None:
        self.dec = decoder
        self._plans: dict[int, tuple[_Step, ...]] = {}
        # (tgid, fd) -> (transport, network.type), learned from socket()/accept()
        self._sockets: dict[tuple[int, int], tuple[str | None, str | None]] = {}
        self._max_sockets = max_sockets
        self._stateful: set[int] = set()  # syscalls whose attributes depend on earlier calls

    def stateless(self, nr: int) -> bool:
        """Whether syscall ``nr``'s attributes are a function of its own registers and
        captures only (not of the sockets earlier calls created), so they can be reused."""
        if nr not in self._plans:
            self._plans[nr] = self._compile(nr)
        return nr not in self._stateful

    def attributes(
        self, tgid: int, nr: int, args: Sequence[int], rval: int | None,
        entry: object, exit: object,
    ) -> Attrs:
        """The typed attributes of one syscall ({} when it has none). Never raises."""
        plan = self._plans.get(nr)
        if plan is None:
            plan = self._plans[nr] = self._compile(nr)
        out: Attrs = {}
        if not plan:
            return out
        ent = entry if type(entry) is tuple else ()
        ext = exit if type(exit) is tuple else ()
        for step in plan:
            try:
                step(args, rval, ent, ext, tgid, out)
            except Exception:  # noqa: BLE001,S112 - odd registers or captures: leave the attribute out
                continue
        return out

    # -- compiling a plan per syscall ----------------------------------------------------

    def _compile(self, nr: int) -> tuple[_Step, ...]:
        spec = self.dec._spec(nr)
        if spec is None:
            return ()
        steps: list[_Step] = []
        name = spec.name
        kinds = spec.kinds
        fd_at = next((i for i, k in kinds if isinstance(k, _Fd) and not k.dirfd), None)
        if fd_at is not None:
            steps.append(_fd_step(fd_at))
        flags = next(
            ((i, k) for i, k in kinds
             if isinstance(k, _OpenFlags | _MmapFlags | _FlagsK | _FieldFlags)),
            None,
        )
        if flags is not None:
            steps.append(_flags_step(self.dec, *flags))
        buf = next(((i, k) for i, k in kinds if isinstance(k, _Buf)), None)
        if buf is not None:
            steps.append(_size_step(buf[1].n))
        elif name in _LENGTH_ARG1:
            steps.append(_size_step(1))
        for pos, (_i, kind) in enumerate(kinds):
            if isinstance(kind, _SockaddrIn):
                index = spec.entry_pos[pos]
                if index is not None:
                    steps.append(_sockaddr_step(index, name, from_exit=False))
            elif isinstance(kind, _SockaddrOut):
                index = spec.exit_pos[pos]
                if index is not None:
                    steps.append(_sockaddr_step(index, name, from_exit=True))
        if name in ("socket", "close") or name in _STREAM_ONLY or name in _SOCKET_CALLS:
            steps.append(self._socket_step(name, fd_at))
            self._stateful.add(nr)
        return tuple(steps)

    def _socket_step(self, name: str, fd_at: int | None) -> _Step:
        """Remember what socket() created; name the transport of calls on that fd."""
        sockets = self._sockets

        def step(args: Sequence[int], rval: int | None, ent: tuple, ext: tuple, tgid: int,
                 out: Attrs) -> None:
            ok = rval is not None and rval >= 0
            if name == "socket":
                transport = _transport(args[0] & 0xFFFF, args[1] & _U32)
                net_type = _FAMILY_TYPE.get(args[0] & 0xFFFF)
                if ok:
                    self._remember((tgid, rval or 0), (transport, net_type))
                _put_transport(out, transport, net_type)
                return
            fd = _i32(args[fd_at]) if fd_at is not None else -1
            if name == "close":
                if ok and sockets:
                    sockets.pop((tgid, fd), None)
                return
            known = sockets.get((tgid, fd))
            if name in _STREAM_ONLY:
                # accept only works on connection-oriented sockets: the new one is the same kind
                family_type = out.get("network.type") or (known[1] if known else None)
                transport = out.get("network.transport") or (
                    "tcp" if family_type in ("ipv4", "ipv6") else known[0] if known else None
                )
                if ok:
                    self._remember((tgid, rval or 0), (transport, family_type))
                _put_transport(out, transport, family_type)
                return
            if known is not None:
                _put_transport(out, known[0], known[1])

        return step

    def _remember(self, key: tuple[int, int], value: tuple[str | None, str | None]) -> None:
        if len(self._sockets) >= self._max_sockets:
            self._sockets.clear()  # bounded; later calls just lose network.transport
        self._sockets[key] = value


def _put_transport(out: Attrs, transport: str | None, net_type: str | None) -> None:
    if transport is not None and "network.transport" not in out:
        out["network.transport"] = transport
    if net_type is not None and "network.type" not in out:
        out["network.type"] = net_type


def _fd_step(i: int) -> _Step:
    def step(args: Sequence[int], rval: int | None, ent: tuple, ext: tuple, tgid: int,
             out: Attrs) -> None:
        fd = _i32(args[i])
        if fd >= 0:
            out["syscall.fd"] = fd

    return step


def _flags_step(dec: Decoder, i: int, kind: Any) -> _Step:
    # The flag kinds render from their own argument alone, so each value is split once;
    # bounded like the decoder's other caches.
    seen: dict[int, tuple[str, ...]] = {}

    def step(args: Sequence[int], rval: int | None, ent: tuple, ext: tuple, tgid: int,
             out: Attrs) -> None:
        value = args[i]
        names = seen.get(value)
        if names is None:
            names = tuple(flag_names(kind.render(_Ctx(dec, args, rval), i, None, None)))
            if len(seen) >= _FLAGS_SEEN_MAX:
                seen.clear()
            seen[value] = names
        if names:
            out["syscall.flags"] = list(names)

    return step


def _size_step(n: int) -> _Step:
    def step(args: Sequence[int], rval: int | None, ent: tuple, ext: tuple, tgid: int,
             out: Attrs) -> None:
        out["syscall.size"] = args[n] & 0xFFFFFFFFFFFFFFFF

    return step


def _sockaddr_step(index: int, name: str, *, from_exit: bool) -> _Step:
    prefix = "network.local." if name in _LOCAL_ADDR else "network.peer."
    datagram_call = name in ("sendto", "recvfrom")

    def step(args: Sequence[int], rval: int | None, ent: tuple, ext: tuple, tgid: int,
             out: Attrs) -> None:
        captured = ext if from_exit else ent
        data = captured[index] if index < len(captured) else None
        if not isinstance(data, bytes):
            return
        net_type, address, port = sockaddr_fields(data)
        if address is not None:
            out[prefix + "address"] = address
        if port is not None:
            out[prefix + "port"] = port
        if net_type == "unix":
            out["network.transport"] = "unix"
        elif net_type is not None:
            out["network.type"] = net_type
            if datagram_call and "network.transport" not in out:
                # an explicit address per datagram: connected TCP sockets pass none
                out["network.transport"] = "udp"

    return step
