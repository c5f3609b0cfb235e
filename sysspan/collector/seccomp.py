"""seccomp-bpf: stop the tracee only at the syscalls that ``-e trace=`` selects.

The filter returns SECCOMP_RET_TRACE for the traced numbers and SECCOMP_RET_ALLOW for
everything else, so untraced syscalls never enter the tracer (strace's --seccomp-bpf).
It is installed in the child after the tracer has seized it and before exec: a
RET_TRACE syscall without a tracer fails with ENOSYS, so the child must be traced first.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import struct
from collections.abc import Iterable

# BPF opcodes (linux/bpf_common.h)
_BPF_LD_W_ABS = 0x00 | 0x00 | 0x20  # BPF_LD | BPF_W | BPF_ABS
_BPF_JEQ_K = 0x05 | 0x10 | 0x00  # BPF_JMP | BPF_JEQ | BPF_K
_BPF_RET_K = 0x06 | 0x00  # BPF_RET | BPF_K

SECCOMP_RET_TRACE = 0x7FF00000
SECCOMP_RET_ALLOW = 0x7FFF0000
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
BPF_MAXINSNS = 4096

AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}

# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6]
_OFF_NR = 0
_OFF_ARCH = 4

_INSN = struct.Struct("<HBBI")


def build_filter(arch: str, traced: Iterable[int]) -> bytes:
    """The BPF program as raw ``struct sock_filter`` array bytes.

    Two instructions per traced number (``JEQ nr → next; RET TRACE``) keep every jump
    offset at 0 or 1, so any number of syscalls fits the 8-bit jump fields.
    """
    nrs = sorted(set(traced))
    insns = [
        (_BPF_LD_W_ABS, 0, 0, _OFF_ARCH),
        # other ABIs (i386 compat on x86_64) are not traced: allow
        (_BPF_JEQ_K, 1, 0, AUDIT_ARCH[arch]),
        (_BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
        (_BPF_LD_W_ABS, 0, 0, _OFF_NR),
    ]
    for nr in nrs:
        insns.append((_BPF_JEQ_K, 0, 1, nr))
        insns.append((_BPF_RET_K, 0, 0, SECCOMP_RET_TRACE))
    insns.append((_BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW))
    if len(insns) > BPF_MAXINSNS:
        raise ValueError(f"seccomp filter too long ({len(insns)} instructions)")
    return b"".join(_INSN.pack(*i) for i in insns)


def seccomp_available() -> bool:
    """The kernel offers the TRACE action and this process is not already filtered in a
    way that forbids more filters (no_new_privs can always be set unprivileged)."""
    try:
        with open("/proc/sys/kernel/seccomp/actions_avail") as fh:
            return "trace" in fh.read().split()
    except OSError:
        return False


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class PreparedFilter:
    """Everything the forked child needs, allocated in the parent: after fork the child only
    makes two prctl calls, no allocation, no library loading."""

    def __init__(self, program: bytes) -> None:
        self._buf = ctypes.create_string_buffer(program, len(program))
        self._prog = _SockFprog(len(program) // _INSN.size, ctypes.addressof(self._buf))
        self._prog_ref = ctypes.byref(self._prog)

    def install(self) -> int:
        """Install in the calling process; returns 0 or an errno."""
        if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return ctypes.get_errno() or 1
        if _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, self._prog_ref, 0, 0) != 0:
            return ctypes.get_errno() or 1
        return 0
