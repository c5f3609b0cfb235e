"""Kinds for processes: execve's argv/envp, clone/clone3, wait statuses, rusage, prctl."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from sysspan.collector import constants as C
from sysspan.collector.decode.kinds.base import Kind, PlanOp, _Ctx, _FixedStruct, mem_op
from sysspan.collector.decode.kinds.signals import _signame
from sysspan.collector.decode.kinds.timing import timeval_pair
from sysspan.collector.decode.reading import (
    ARG_STRLEN_MAX,
    ARGV_MAX_BYTES,
    ARGV_MAX_ITEMS,
    _count_ptr_array,
    _read_exact,
    _read_i32,
    _read_ptr_array,
    _read_u32,
)
from sysspan.collector.decode.text import _U32, _flags, _hex, _i32, _ptr, _text

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

    from sysspan.collector.decode.decoder import Decoder
    from sysspan.collector.decode.reading import MemoryReader


class _Argv(Kind):
    """execve's argv, read in full at entry (strings shown cut to -s, at most -s elements)."""

    has_entry = True

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        if args[i] == 0:
            return None
        got = _read_ptr_array(r, pid, args[i], ARGV_MAX_ITEMS)
        if got is None:
            return None
        ptrs, complete = got
        items: list[bytes | int] = []
        budget = ARGV_MAX_BYTES
        for p in ptrs:
            s = r.read_cstr(pid, p, min(ARG_STRLEN_MAX, max(budget, 0))) if budget > 0 else None
            if s is None:
                items.append(p)
                if budget <= 0:
                    complete = False
                    break
            else:
                items.append(bytes(s))
                budget -= len(s) + 1
        return tuple(items), complete

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        if not (isinstance(ev, tuple) and len(ev) == 2 and isinstance(ev[0], tuple)):
            return _ptr(c.args[i])
        items, complete = ev
        c.argv = [_text(s) for s in items if isinstance(s, bytes)]
        strsize = c.dec.strsize
        shown = []
        for item in items[:strsize]:
            if isinstance(item, bytes):
                shown.append(c.dec.show_str(item, len(item)))
            else:
                shown.append(_ptr(item))
        if len(items) > strsize or not complete:
            shown.append("...")
        return "[" + ", ".join(shown) + "]"


class _Envp(Kind):
    """execve's envp: only counted, never read (environment values may hold secrets)."""

    has_entry = True

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        return _count_ptr_array(r, pid, args[i]) if args[i] else None

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        addr = c.args[i]
        if addr == 0:
            return "NULL"
        if isinstance(ev, int) and not isinstance(ev, bool):
            return f"{_ptr(addr)} /* {ev} vars */"
        return _ptr(addr)


def _clone_flags_text(flags: int, table_: C.Flags, with_signal: bool) -> str:
    sig = flags & C.CSIGNAL if with_signal else 0
    rest = flags & ~C.CSIGNAL if with_signal else flags
    text = _flags(rest, table_, zero="")
    if sig:
        text = f"{text}|{_signame(sig)}" if text else _signame(sig)
    return text or "0"


class _Clone(Kind):
    """clone(2): strace's named-argument form; the arg order differs per architecture."""

    width = 5
    has_exit = True

    @staticmethod
    def _slots(arch: str, args: Sequence[int]) -> tuple[int, int, int, int, int]:
        if arch == "aarch64":  # CLONE_BACKWARDS: flags, stack, parent_tid, tls, child_tid
            return args[0], args[1], args[2], args[4], args[3]
        return args[0], args[1], args[2], args[3], args[4]

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        flags, _, ptid, _, _ = self._slots(d.arch, args)
        if rval > 0 and flags & (C.CLONE_PARENT_SETTID | C.CLONE_PIDFD) and ptid:
            return _read_i32(r, pid, ptid)
        return None

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        flags, stack, ptid, ctid, tls = self._slots(c.dec.arch, c.args)
        parts = [
            f"child_stack={_ptr(stack)}",
            f"flags={_clone_flags_text(flags, C.CLONE_FLAGS, True)}",
        ]
        if flags & (C.CLONE_PARENT_SETTID | C.CLONE_PIDFD):
            label = "parent_tid" if flags & C.CLONE_PARENT_SETTID else "pidfd"
            parts.append(f"{label}=[{xv}]" if isinstance(xv, int) else f"{label}={_ptr(ptid)}")
        if flags & C.CLONE_SETTLS:
            parts.append(f"tls={_ptr(tls)}")
        if flags & (C.CLONE_CHILD_SETTID | C.CLONE_CHILD_CLEARTID):
            parts.append(f"child_tidptr={_ptr(ctid)}")
        return ", ".join(parts)

    def entry_chars(self, text: str) -> int:
        # child_stack and flags at entry; the ids the kernel stores, tls and child_tidptr
        # when the call returns (strace's order)
        end = text.find(", ", text.find("flags="))
        return end if end >= 0 else len(text)


class _CloneArgs(Kind):
    """clone3's ``struct clone_args``, read at entry; the ids the kernel stored, at exit."""

    has_entry = True
    has_exit = True

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        if rval <= 0:
            return None
        head = _read_exact(r, pid, args[i], 32)
        if head is None:
            return None
        flags, pidfd, _, parent_tid = struct.unpack("<4Q", head)
        stored = []
        for bit, label, addr in ((C.CLONE_PIDFD, "pidfd", pidfd),
                                 (C.CLONE_PARENT_SETTID, "parent_tid", parent_tid)):  # fmt: skip
            if flags & bit and addr:
                value = _read_i32(r, pid, addr)
                if value is not None:
                    stored.append((label, value))
        return tuple(stored)

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        size = min(args[i + 1], 88)
        return _read_exact(r, pid, args[i], size) if size >= 64 else None

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        if not isinstance(ev, bytes) or len(ev) < 64:
            return _ptr(c.args[i])
        data = ev.ljust(88, b"\0")
        (flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
         set_tid, set_tid_size, cgroup) = struct.unpack("<11Q", data[:88])  # fmt: skip
        parts = [f"flags={_clone_flags_text(flags, C.CLONE3_FLAGS, False)}"]
        if flags & C.CLONE_PIDFD:
            parts.append(f"pidfd={_ptr(pidfd)}")
        if flags & (C.CLONE_CHILD_SETTID | C.CLONE_CHILD_CLEARTID):
            parts.append(f"child_tid={_ptr(child_tid)}")
        if flags & C.CLONE_PARENT_SETTID:
            parts.append(f"parent_tid={_ptr(parent_tid)}")
        parts.append(f"exit_signal={_signame(exit_signal) if exit_signal < 65 else exit_signal}")
        parts.append(f"stack={_ptr(stack)}")
        parts.append(f"stack_size={_hex(stack_size)}")
        if flags & C.CLONE_SETTLS:
            parts.append(f"tls={_ptr(tls)}")
        if set_tid_size:
            parts.append(f"set_tid={_ptr(set_tid)}, set_tid_size={set_tid_size}")
        if flags & C.CLONE_INTO_CGROUP:
            parts.append(f"cgroup={cgroup}")
        text = "{" + ", ".join(parts) + "}"
        if isinstance(xv, tuple) and xv:
            text += " => {" + ", ".join(f"{label}=[{value}]" for label, value in xv) + "}"
        return text

    def entry_chars(self, text: str) -> int:
        end = text.find(" => ")  # the struct at entry, the ids stored in it at exit
        return end if end >= 0 else len(text)


def _wait_status(s: int) -> str:
    s &= _U32
    low = s & 0x7F
    if s == 0xFFFF:
        return "[{WIFCONTINUED(s)}]"
    if low == 0:
        text = f"{{WIFEXITED(s) && WEXITSTATUS(s) == {(s >> 8) & 0xFF}}}"
        rest = s & ~0xFFFF
    elif low == 0x7F:
        text = f"{{WIFSTOPPED(s) && WSTOPSIG(s) == {_signame((s >> 8) & 0xFF)}}}"
        event = s >> 16
        if event:
            name = C.PTRACE_EVENTS.get(event)
            return f"[{text}|{name} << 16]" if name else f"[{text}|{event:#x} << 16]"
        rest = 0
    else:
        core = " && WCOREDUMP(s)" if s & 0x80 else ""
        text = f"{{WIFSIGNALED(s) && WTERMSIG(s) == {_signame(low)}{core}}}"
        rest = s & ~0xFFFF
    return f"[{text}|{rest:#x}]" if rest else f"[{text}]"


class _WaitStatus(Kind):
    has_exit = True

    def plan(self, d: Decoder, i: int, at_exit: bool) -> tuple[PlanOp, ...] | None:
        return (mem_op(i, 4),)

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        if rval <= 0:
            return None
        return _read_u32(r, pid, args[i])

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        if isinstance(xv, int) and not isinstance(xv, bool):
            return _wait_status(xv)
        return _ptr(c.args[i])


class _Rusage(_FixedStruct):
    """``struct rusage`` (its user and system times), read at exit."""

    size = 32

    def show(self, c: _Ctx, data: bytes) -> str:
        return "{" + timeval_pair(data, "ru_utime", "ru_stime") + ", ...}"


#: prctl options that take no argument / exactly one pointer argument.
_PRCTL_NO_ARG = frozenset({3, 7, 21, 39, 42})  # PR_GET_DUMPABLE, _KEEPCAPS, _SECCOMP, ...
_PRCTL_ONE_PTR = frozenset({2, 15, 16, 37, 40})  # PR_GET_PDEATHSIG, PR_SET/GET_NAME, ...


class _Prctl(Kind):
    """prctl(2): the option by name, then as many arguments as that option uses."""

    width = 5

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        a = c.args
        option = _i32(a[0])
        name = C.PRCTL_OPTIONS.get(option, f"{option & _U32:#x} /* PR_??? */")
        if option == 1:  # PR_SET_PDEATHSIG
            return f"{name}, {_signame(_i32(a[1]))}"
        if option in _PRCTL_NO_ARG:
            return name
        if option in _PRCTL_ONE_PTR:
            return f"{name}, {_ptr(a[1])}"
        return ", ".join([name] + [_hex(x) for x in a[1:5]])
