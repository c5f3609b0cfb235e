"""ptrace from Python: the only module that imports python-ptrace (GPL-2.0).

The stop loop (``_stoploop.c``) makes its own ptrace requests, and also reads the registers
``--source``/``-k`` capture (``_stoploop.getregs``). What Python still needs is here: tracee
memory (:meth:`Ptrace.read`), and seize / resume / syscall info for the tests and benchmarks
that drive a tracee by hand. python-ptrace supplies the option and event constants, imported
on first use only: ``--source`` needs none of them, and importing python-ptrace costs a run
several milliseconds (its libc lookup starts a subprocess). The requests are direct libc
calls through ctypes with preallocated buffers, one foreign call each.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

# PTRACE_EVENT_EXEC, PTRACE_O_TRACECLONE, PTRACE_O_TRACEEXEC and PTRACE_O_TRACESYSGOOD are
# python-ptrace's, served by the module __getattr__ below.
__all__ = [
    "PTRACE_O_EXITKILL",
    "OP_ENTRY",
    "OP_EXIT",
    "Ptrace",
    "PtraceFailed",
]

PTRACE_SYSCALL = 24
PTRACE_SEIZE = 0x4206
PTRACE_GET_SYSCALL_INFO = 0x420E

PTRACE_O_EXITKILL = 0x100000

# struct ptrace_syscall_info: op, arch, ip, sp, then a union. Entry and seccomp stops carry
# nr + 6 args; exit stops carry (s64 rval, u8 is_error) in the first two union words.
SYSCALL_INFO_SIZE = 88
_INFO = struct.Struct("<B3xIQQQ6Q")
OP_ENTRY, OP_EXIT = 1, 2  # its op field at an entry and an exit stop

# The interpreter's own symbols include libc's: no ctypes.util.find_library, which runs
# ldconfig in a subprocess.
_libc = ctypes.CDLL(None, use_errno=True)
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


_FROM_PYTHON_PTRACE = frozenset(
    ("PTRACE_EVENT_EXEC", "PTRACE_O_TRACECLONE", "PTRACE_O_TRACEEXEC", "PTRACE_O_TRACESYSGOOD")
)


def __getattr__(name: str) -> int:
    if name in _FROM_PYTHON_PTRACE:
        from ptrace.binding import func

        value: int = getattr(func, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class PtraceFailed(OSError):
    """A ptrace request failed; ``errno`` tells which way (ESRCH: tracee gone)."""


def _fail(request: str, pid: int) -> PtraceFailed:
    err = ctypes.get_errno()
    return PtraceFailed(err, f"{request}({pid}): {os.strerror(err)}")


class Ptrace:
    """ptrace requests and tracee memory reads with the buffers they need allocated once."""

    def __init__(self) -> None:
        self._info = ctypes.create_string_buffer(SYSCALL_INFO_SIZE)
        self._info_addr = ctypes.addressof(self._info)
        self._mem = ctypes.create_string_buffer(4096)
        self._local = _IoVec(ctypes.addressof(self._mem), 4096)
        self._remote = _IoVec(0, 0)
        self._local_p = ctypes.pointer(self._local)
        self._remote_p = ctypes.pointer(self._remote)
        self._mem_fallback: dict[int, int] = {}

    # -- requests -----------------------------------------------------------------------
    def seize(self, pid: int, options: int) -> None:
        if _ptrace(PTRACE_SEIZE, pid, None, options) == -1:
            raise _fail("PTRACE_SEIZE", pid)

    def syscall(self, pid: int, sig: int = 0) -> None:
        """Resume to the next syscall stop; a vanished tracee (ESRCH) is not an error."""
        if _ptrace(PTRACE_SYSCALL, pid, None, sig) == -1 and ctypes.get_errno() != errno.ESRCH:
            raise _fail("PTRACE_SYSCALL", pid)

    def syscall_info(self, pid: int) -> tuple[int, ...]:
        """(op, arch, ip, sp, w0..w6): the union's first seven words.

        Entry/seccomp stops: w0 = nr, w1..w6 = the six arguments. Exit stops: w0 = the return
        value as unsigned 64-bit, w1 = is_error.
        """
        if _ptrace(PTRACE_GET_SYSCALL_INFO, pid, SYSCALL_INFO_SIZE, self._info_addr) <= 0:
            raise _fail("PTRACE_GET_SYSCALL_INFO", pid)
        return _INFO.unpack_from(self._info)

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
