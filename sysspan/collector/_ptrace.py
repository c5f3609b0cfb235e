"""Thin ptrace layer: the only module that imports python-ptrace (GPL-2.0).

python-ptrace supplies the option/event constants and /proc bookkeeping; the requests it
lacks or that sit on the hot path (PTRACE_SEIZE, PTRACE_GET_SYSCALL_INFO, process_vm_readv)
are direct libc calls through ctypes with preallocated buffers, so a stop costs one
foreign call and one ``struct.unpack_from``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct

from ptrace.binding.func import (
    PTRACE_EVENT_CLONE,
    PTRACE_EVENT_EXEC,
    PTRACE_EVENT_EXIT,
    PTRACE_EVENT_FORK,
    PTRACE_EVENT_VFORK,
    PTRACE_O_TRACECLONE,
    PTRACE_O_TRACEEXEC,
    PTRACE_O_TRACEFORK,
    PTRACE_O_TRACESYSGOOD,
    PTRACE_O_TRACEVFORK,
)
from ptrace.linux_proc import readProcessStat

__all__ = [
    "PTRACE_EVENT_CLONE",
    "PTRACE_EVENT_EXEC",
    "PTRACE_EVENT_EXIT",
    "PTRACE_EVENT_FORK",
    "PTRACE_EVENT_VFORK",
    "PTRACE_EVENT_STOP",
    "PTRACE_EVENT_SECCOMP",
    "PTRACE_O_TRACECLONE",
    "PTRACE_O_TRACEEXEC",
    "PTRACE_O_TRACEFORK",
    "PTRACE_O_TRACESYSGOOD",
    "PTRACE_O_TRACEVFORK",
    "PTRACE_O_TRACESECCOMP",
    "PTRACE_O_EXITKILL",
    "Ptrace",
    "PtraceFailed",
    "parent_pid",
]

PTRACE_CONT = 7
PTRACE_DETACH = 17
PTRACE_SYSCALL = 24
PTRACE_GETEVENTMSG = 0x4201
PTRACE_GETSIGINFO = 0x4202
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_LISTEN = 0x4208
PTRACE_GET_SYSCALL_INFO = 0x420E
PTRACE_GETREGSET = 0x4204
NT_PRSTATUS = 1

PTRACE_EVENT_STOP = 128
PTRACE_EVENT_SECCOMP = 7
PTRACE_O_TRACESECCOMP = 0x80
PTRACE_O_EXITKILL = 0x100000

# struct ptrace_syscall_info: op, arch, ip, sp, then a union. Entry and seccomp stops carry
# nr + 6 args; exit stops carry (s64 rval, u8 is_error) in the first two union words.
SYSCALL_INFO_SIZE = 88
_INFO = struct.Struct("<B3xIQQQ6Q")
OP_NONE, OP_ENTRY, OP_EXIT, OP_SECCOMP = 0, 1, 2, 3

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_ptrace = _libc.ptrace
_ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
_ptrace.restype = ctypes.c_long


class _IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


_readv = _libc.process_vm_readv
_readv.argtypes = [
    ctypes.c_int,
    ctypes.POINTER(_IoVec),
    ctypes.c_ulong,
    ctypes.POINTER(_IoVec),
    ctypes.c_ulong,
    ctypes.c_ulong,
]
_readv.restype = ctypes.c_ssize_t


class PtraceFailed(OSError):
    """A ptrace request failed; ``errno`` tells which way (ESRCH: tracee gone)."""


def _fail(request: str, pid: int) -> PtraceFailed:
    err = ctypes.get_errno()
    return PtraceFailed(err, f"{request}({pid}): {os.strerror(err)}")


def parent_pid(pid: int) -> int:
    """Parent pid from /proc (bookkeeping for attached processes)."""
    return int(readProcessStat(pid).ppid)


class Ptrace:
    """ptrace requests with the buffers they need allocated once."""

    def __init__(self) -> None:
        self._info = ctypes.create_string_buffer(SYSCALL_INFO_SIZE)
        self._info_addr = ctypes.addressof(self._info)
        self._msg = ctypes.c_ulong()
        self._msg_addr = ctypes.addressof(self._msg)
        self._siginfo = ctypes.create_string_buffer(128)
        self._mem = ctypes.create_string_buffer(4096)
        self._local = _IoVec(ctypes.addressof(self._mem), 4096)
        self._remote = _IoVec(0, 0)
        self._local_p = ctypes.pointer(self._local)
        self._remote_p = ctypes.pointer(self._remote)
        self._mem_fallback: dict[int, int] = {}
        self._regs = ctypes.create_string_buffer(64 * 8)
        self._regs_iov = _IoVec(ctypes.addressof(self._regs), 64 * 8)

    # -- requests -----------------------------------------------------------------------
    def seize(self, pid: int, options: int) -> None:
        if _ptrace(PTRACE_SEIZE, pid, None, options) == -1:
            raise _fail("PTRACE_SEIZE", pid)

    def interrupt(self, pid: int) -> bool:
        return _ptrace(PTRACE_INTERRUPT, pid, None, None) != -1

    def syscall(self, pid: int, sig: int = 0) -> None:
        """Resume to the next syscall stop; a vanished tracee (ESRCH) is not an error."""
        if _ptrace(PTRACE_SYSCALL, pid, None, sig) == -1 and ctypes.get_errno() != errno.ESRCH:
            raise _fail("PTRACE_SYSCALL", pid)

    def cont(self, pid: int, sig: int = 0) -> None:
        if _ptrace(PTRACE_CONT, pid, None, sig) == -1 and ctypes.get_errno() != errno.ESRCH:
            raise _fail("PTRACE_CONT", pid)

    def listen(self, pid: int) -> None:
        if _ptrace(PTRACE_LISTEN, pid, None, None) == -1 and ctypes.get_errno() != errno.ESRCH:
            raise _fail("PTRACE_LISTEN", pid)

    def detach(self, pid: int, sig: int = 0) -> bool:
        return _ptrace(PTRACE_DETACH, pid, None, sig) != -1

    def event_msg(self, pid: int) -> int:
        if _ptrace(PTRACE_GETEVENTMSG, pid, None, self._msg_addr) == -1:
            return 0
        return self._msg.value

    def siginfo(self, pid: int) -> tuple[int, int, int, int] | None:
        """(si_signo, si_code, si_pid, si_uid) of the pending signal, or None."""
        if _ptrace(PTRACE_GETSIGINFO, pid, None, ctypes.addressof(self._siginfo)) == -1:
            return None
        signo, _errno, code, _pad, spid, suid = struct.unpack_from("<iiiiiI", self._siginfo)
        return signo, code, spid, suid

    def syscall_info(self, pid: int) -> tuple[int, ...]:
        """(op, arch, ip, sp, w0..w6): the union's first seven words.

        Entry/seccomp stops: w0 = nr, w1..w6 = the six arguments. Exit stops: w0 = the return
        value as unsigned 64-bit, w1 = is_error.
        """
        if _ptrace(PTRACE_GET_SYSCALL_INFO, pid, SYSCALL_INFO_SIZE, self._info_addr) <= 0:
            raise _fail("PTRACE_GET_SYSCALL_INFO", pid)
        return _INFO.unpack_from(self._info)

    def getregs(self, pid: int) -> tuple[int, ...]:
        """General registers (NT_PRSTATUS) as u64 words: x86_64 ``user_regs_struct`` order
        (r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx, rdx, rsi, rdi, orig_rax,
        rip, cs, eflags, rsp, ss, ...), aarch64 ``user_pt_regs`` (x0..x30, sp, pc, pstate).
        Only the unwinder (``--source``/``-k``) pays for this call."""
        self._regs_iov.iov_len = ctypes.sizeof(self._regs)
        if _ptrace(PTRACE_GETREGSET, pid, NT_PRSTATUS, ctypes.addressof(self._regs_iov)) == -1:
            raise _fail("PTRACE_GETREGSET", pid)
        n = self._regs_iov.iov_len // 8
        return struct.unpack_from(f"<{n}Q", self._regs)

    # -- memory ---------------------------------------------------------------------------
    def read(self, pid: int, addr: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``addr`` (fewer at the end of a mapping, b"" on fault)."""
        if size <= 0 or addr == 0:
            return b""
        out = b""
        while size > 0:
            chunk = min(size, 4096)
            self._remote.iov_base = addr
            self._remote.iov_len = chunk
            self._local.iov_len = chunk
            got = _readv(pid, self._local_p, 1, self._remote_p, 1, 0)
            if got <= 0:
                if got < 0 and ctypes.get_errno() in (errno.ENOSYS, errno.EPERM):
                    return out + self._read_procmem(pid, addr, size)
                break
            out += self._mem.raw[:got]
            if got < chunk:
                break
            addr += got
            size -= got
        return out

    def read_cstr(self, pid: int, addr: int, limit: int) -> bytes | None:
        """NUL-terminated string at ``addr``, at most ``limit`` bytes; None on fault.

        Reads stop at page boundaries first so a short string near the end of a mapping
        does not fault the whole read.
        """
        if addr == 0:
            return None
        out = b""
        while len(out) < limit:
            room = 4096 - (addr & 4095)
            want = min(room, limit - len(out) + 1)
            data = self.read(pid, addr, want)
            if not data:
                return out if out else None
            nul = data.find(b"\0")
            if nul >= 0:
                return out + data[:nul]
            out += data
            addr += len(data)
        return out[:limit]

    def _read_procmem(self, pid: int, addr: int, size: int) -> bytes:
        # Where process_vm_readv is unavailable (old kernels, some sandboxes), /proc/PID/mem
        # gives the same bytes to the tracer.
        try:
            fd = self._mem_fallback.get(pid)
            if fd is None:
                fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
                self._mem_fallback[pid] = fd
            return os.pread(fd, size, addr)
        except OSError:
            return b""

    def forget(self, pid: int) -> None:
        fd = self._mem_fallback.pop(pid, None)
        if fd is not None:
            os.close(fd)
