"""Kinds for signals: signal numbers and names, sigset_t, struct sigaction."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from sysspan.collector import constants as C
from sysspan.collector.decode.kinds.base import Kind, _Ctx, _FixedStruct
from sysspan.collector.decode.reading import _read_exact
from sysspan.collector.decode.text import _flags, _i32, _ptr

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

    from sysspan.collector.decode.decoder import Decoder
    from sysspan.collector.decode.reading import MemoryReader


def _signame(sig: int) -> str:
    """``SIGTERM``, ``SIGRT_2``; decimal for numbers that are no signal (``0``, ``99``)."""
    name = C.SIGNALS.get(sig)
    if name is not None:
        return name
    if C.SIGRTMIN < sig <= C.NSIG:
        return f"SIGRT_{sig - C.SIGRTMIN}"
    return str(sig)


def _sigset_name(sig: int) -> str:
    if sig == C.SIGRTMIN:
        return "RTMIN"
    if sig > C.SIGRTMIN:
        return f"RT_{sig - C.SIGRTMIN}"
    return C.SIGNALS[sig][3:]


def _sigset(data: bytes) -> str:
    """``[INT TERM]``, or ``~[...]`` listing the unset signals when most are set."""
    bits = int.from_bytes(data[: C.SIGSET_SIZE].ljust(C.SIGSET_SIZE, b"\0"), "little")
    nbits = len(data[: C.SIGSET_SIZE]) * 8
    prefix = ""
    if bin(bits).count("1") > nbits // 2:
        prefix = "~"
        bits = ~bits & ((1 << nbits) - 1)
    names = [_sigset_name(i + 1) for i in range(nbits) if bits >> i & 1]
    return prefix + "[" + " ".join(names) + "]"


class _Signal(Kind):
    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        return _signame(_i32(c.args[i]))


class _Sigset(_FixedStruct):
    """A sigset_t pointer whose size is in arg ``n`` (read at entry or at exit)."""

    size = C.SIGSET_SIZE

    def __init__(self, n: int, output: bool) -> None:
        super().__init__(output)
        self.n = n

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        if args[self.n] != C.SIGSET_SIZE:
            return None
        return _read_exact(r, pid, args[i], C.SIGSET_SIZE)

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        return self.entry(d, args, i, pid, r)

    def show(self, c: _Ctx, data: bytes) -> str:
        return _sigset(data)


class _Sigaction(_FixedStruct):
    """``struct sigaction``: the new action (entry) or the old one (exit)."""

    size = 32

    def show(self, c: _Ctx, data: bytes) -> str:
        handler, flags, restorer = struct.unpack_from("<QQQ", data)
        text = (
            f"{{sa_handler={C.SIG_HANDLERS.get(handler) or _ptr(handler)}, "
            f"sa_mask={_sigset(data[24:32])}, sa_flags={_flags(flags, C.SA_FLAGS)}"
        )
        if flags & C.SA_RESTORER:
            text += f", sa_restorer={_ptr(restorer)}"
        return text + "}"


# Where the interrupted context's signal mask (uc_sigmask) lies above the stack pointer at
# rt_sigreturn's entry: on x86_64 the handler's return popped pretcode, so the stack pointer
# is the ucontext (flags 8, link 8, stack_t 24, sigcontext 256); on aarch64 the frame is
# siginfo (128) then the ucontext, whose mask follows flags, link and stack_t.
_SIGRETURN_MASK_OFFSET = {"x86_64": 8 + 8 + 24 + 256, "aarch64": 128 + 8 + 8 + 24}


def _stack_pointer(pid: int) -> int | None:
    """The stack pointer of a task stopped in a syscall, from /proc/PID/syscall (its
    second-to-last field). Only rt_sigreturn needs it, and that call is rare."""
    try:
        with open(f"/proc/{pid}/syscall", "rb") as f:
            fields = f.read().split()
    except OSError:
        return None
    if len(fields) < 9:
        return None
    try:
        return int(fields[-2], 16)
    except ValueError:
        return None


class _SigreturnMask(Kind):
    """rt_sigreturn's ``{mask=[...]}``: the signal mask the return restores, read from the
    signal frame on the stack at entry. The registers the decoder gets are the syscall's
    arguments only, so the stack pointer comes from /proc (a tracer that also passes the
    stack pointer could hand it over instead)."""

    has_entry = True

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        offset = _SIGRETURN_MASK_OFFSET.get(d.arch)
        sp = _stack_pointer(pid)
        if offset is None or sp is None:
            return None
        return _read_exact(r, pid, sp + offset, C.SIGSET_SIZE)

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        if not isinstance(ev, bytes):
            return ""
        return f"{{mask={_sigset(ev)}}}"


_SI_CODES = {
    0: "SI_USER",
    0x80: "SI_KERNEL",
    -1: "SI_QUEUE",
    -2: "SI_TIMER",
    -3: "SI_MESGQ",
    -4: "SI_ASYNCIO",
    -5: "SI_SIGIO",
    -6: "SI_TKILL",
    -7: "SI_DETHREAD",
    -60: "SI_ASYNCNL",
}
_CLD_CODES = {
    1: "CLD_EXITED",
    2: "CLD_KILLED",
    3: "CLD_DUMPED",
    4: "CLD_TRAPPED",
    5: "CLD_STOPPED",
    6: "CLD_CONTINUED",
}
_SIGCHLD = 17
_SENDER_CODES = frozenset({0, -1, -6})  # SI_USER, SI_QUEUE, SI_TKILL carry si_pid/si_uid


def siginfo_text(info: Sequence[int]) -> str:
    """strace's ``{si_signo=..., si_code=..., ...}`` for a signal-delivery stop.

    ``info`` is ``(signo, code, pid, uid)`` and, for SIGCHLD, optionally ``status, utime,
    stime`` after them (the child's exit status or signal and its CPU ticks); fields that
    were not given are left out.
    """
    signo, code = info[0], info[1]
    name = _signame(signo)
    parts = [f"si_signo={name}"]
    if signo == _SIGCHLD and code in _CLD_CODES:
        parts.append(f"si_code={_CLD_CODES[code]}")
        parts.append(f"si_pid={info[2]}, si_uid={info[3]}")
        if len(info) >= 7:
            status = info[4]
            shown = _signame(status) if code in (2, 3, 5) else str(status)
            parts.append(f"si_status={shown}, si_utime={info[5]}, si_stime={info[6]}")
        return "{" + ", ".join(parts) + "}"
    parts.append(f"si_code={_SI_CODES.get(code, str(code))}")
    if code in _SENDER_CODES:
        parts.append(f"si_pid={info[2]}, si_uid={info[3]}")
    return "{" + ", ".join(parts) + "}"
