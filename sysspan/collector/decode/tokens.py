"""Signature tokens → argument printers: the vocabulary ``SIGNATURES`` is written in.

A token is a name (``fd``, ``path``, ``oflags``) or a name with the number of a related
argument (``wbuf:2``: a buffer whose length is argument 2).
"""

from __future__ import annotations

from collections.abc import Callable

from sysspan.collector import constants as C
from sysspan.collector.decode.kinds.arrays import _CpuMask, _Dirents
from sysspan.collector.decode.kinds.base import Kind
from sysspan.collector.decode.kinds.buffers import _Buf, _IntPtr, _Iov, _ReadlinkBuf
from sysspan.collector.decode.kinds.fcntl_ioctl import _FcntlArg, _IoctlArg, _IoctlReq
from sysspan.collector.decode.kinds.files import (
    _AccessMode,
    _CStr,
    _Fd,
    _FileMode,
    _IntPair,
    _OpenFlags,
    _OpenHow,
    _OpenMode,
    _OutPath,
    _Path,
    _Stat,
    _Statx,
)
from sysspan.collector.decode.kinds.memory import _MmapFlags, _MremapNew
from sysspan.collector.decode.kinds.network import (
    _Msghdr,
    _SockaddrIn,
    _SockaddrOut,
    _SocketProto,
    _Socklen,
    _SockoptName,
    _SockoptVal,
)
from sysspan.collector.decode.kinds.process import (
    _Argv,
    _Clone,
    _CloneArgs,
    _Envp,
    _Prctl,
    _Rusage,
    _WaitStatus,
)
from sysspan.collector.decode.kinds.scalars import _ArchFlags, _Enum, _FieldFlags, _FlagsK, _Simple
from sysspan.collector.decode.kinds.signals import (
    _Sigaction,
    _Signal,
    _SigreturnMask,
    _Sigset,
)
from sysspan.collector.decode.kinds.statfs import _Statfs, _Sysinfo
from sysspan.collector.decode.kinds.system import _Rlimit, _Uname
from sysspan.collector.decode.kinds.timing import (
    _Futex,
    _Itimerval,
    _Pollfds,
    _Remaining,
    _Timespec,
)
from sysspan.collector.decode.text import _U32, _U64, _hex, _i32, _oct, _ptr, _s64

_TOKENS: dict[str, Kind] = {
    "i": _Simple(lambda v: str(_i32(v))),
    "l": _Simple(lambda v: str(_s64(v))),
    "u": _Simple(lambda v: str(v & _U64)),
    "u32": _Simple(lambda v: str(v & _U32)),
    "x": _Simple(lambda v: _hex(v & _U64)),
    "p": _Simple(_ptr),
    "o": _Simple(lambda v: _oct(v & 0o7777)),
    "fd": _Fd(),
    "dfd": _Fd(dirfd=True),
    "path": _Path(),
    "opath": _OutPath(),
    "str": _CStr(),
    "stat": _Stat(),
    "statx": _Statx(output=True),
    "statx_flags": _FieldFlags(0x6000, C.AT_STATX_SYNC_TYPES, "", C.AT_FLAGS),
    "fds2": _IntPair(),
    "sig": _Signal(),
    "oflags": _OpenFlags(),
    "oflags0": _OpenFlags(with_mode=False),
    "open_how": _OpenHow(output=False),
    "amode": _AccessMode(),
    "fmode": _FileMode(),
    "atflags": _FlagsK(C.AT_FLAGS),
    "rmflags": _FlagsK(C.AT_REMOVEDIR_FLAGS),
    "prot": _ArchFlags(C.PROT_FLAGS, zero="PROT_NONE"),
    "mflags": _MmapFlags(),
    "mremap_new": _MremapNew(),
    "argv": _Argv(),
    "envp": _Envp(),
    "clone": _Clone(),
    "clone3": _CloneArgs(),
    "wstatus": _WaitStatus(),
    "rusage": _Rusage(output=True),
    "sigact_in": _Sigaction(output=False),
    "sigact_out": _Sigaction(output=True),
    "sock_type": _FieldFlags(0xF, C.SOCK_TYPES, " /* SOCK_??? */", C.SOCK_FLAGS),
    "sock_proto": _SocketProto(),
    "sopt": _SockoptName(),
    "soptval_in": _SockoptVal(output=False),
    "soptval_out": _SockoptVal(output=True),
    "slen": _Socklen(),
    "msg_in": _Msghdr(output=False),
    "msg_out": _Msghdr(output=True),
    "fcntl_arg": _FcntlArg(),
    "ioctl_req": _IoctlReq(),
    "ioctl_arg": _IoctlArg(),
    "ts_in": _Timespec(output=False),
    "ts_out": _Timespec(output=True),
    "ts_rem": _Remaining(),
    "itv_in": _Itimerval(output=False),
    "itv_out": _Itimerval(output=True),
    "statfs": _Statfs(output=True),
    "sysinfo": _Sysinfo(output=True),
    "dirents": _Dirents(),
    "cpumask": _CpuMask(),
    "sigreturn": _SigreturnMask(),
    "rlim_in": _Rlimit(output=False, infinity="RLIM_INFINITY"),
    "rlim_out": _Rlimit(output=True, infinity="RLIM_INFINITY"),
    "rlim64_in": _Rlimit(output=False, infinity="RLIM64_INFINITY"),
    "rlim64_out": _Rlimit(output=True, infinity="RLIM64_INFINITY"),
    "uname": _Uname(output=True),
    "futex": _Futex(),
    "prctl": _Prctl(),
    "rlink": _ReadlinkBuf(),
    "int_out": _IntPtr(output=True),
    # enums
    "whence": _Enum(C.SEEK_WHENCE, "SEEK_???"),
    "fcntl_cmd": _Enum(C.FCNTL_CMDS, "F_???"),
    "sighow": _Enum(C.SIG_HOW, "SIG_???"),
    "af": _Enum(C.ADDRESS_FAMILIES, "AF_???"),
    "sol": _Enum({k: v for k, v in C.SOCKOPT_LEVELS.items()}, "SOL_???"),
    "shut": _Enum(C.SHUTDOWN_HOW, "SHUT_???"),
    "madv": _Enum(C.MADVISE, "MADV_???"),
    "rlimit": _Enum(C.RLIMITS, "RLIMIT_???"),
    "clock": _Enum(C.CLOCKS, "CLOCK_???"),
    "itimer": _Enum({0: "ITIMER_REAL", 1: "ITIMER_VIRTUAL", 2: "ITIMER_PROF"}, "ITIMER_???"),
    "idtype": _Enum(C.IDTYPES, "P_???"),
    "epoll_op": _Enum(C.EPOLL_CTL_OPS, "EPOLL_CTL_???"),
    "fadv": _Enum(C.FADVISE, "POSIX_FADV_???"),
    "arch_prctl": _Enum(C.ARCH_PRCTL, "ARCH_???"),
    "rusage_who": _Enum(C.RUSAGE_WHO, "RUSAGE_???"),
    "prio_which": _Enum(C.PRIO_WHICH, "PRIO_???"),
    "sched": _Enum(C.SCHED_POLICIES, "SCHED_???"),
    "seccomp_op": _Enum(C.SECCOMP_OPS, "SECCOMP_???"),
    "ptrace_req": _Enum(C.PTRACE_REQUESTS, "PTRACE_???"),
    # flags
    "msgflags": _FlagsK(C.MSG_FLAGS),
    "mremap_flags": _FlagsK(C.MREMAP_FLAGS),
    "msync": _FlagsK(C.MSYNC_FLAGS),
    "mcl": _FlagsK(C.MLOCKALL_FLAGS),
    "woptions": _FlagsK(C.WAIT_OPTIONS),
    "flock": _FlagsK(C.FLOCK_OPS),
    "falloc": _FlagsK(C.FALLOC_FLAGS),
    "close_range": _FlagsK(C.CLOSE_RANGE_FLAGS),
    "efd": _FlagsK(C.EFD_FLAGS),
    "tfd": _FlagsK(C.TFD_FLAGS),
    "tfd_timer": _FlagsK(C.TFD_TIMER_FLAGS),
    "sfd": _FlagsK(C.SFD_FLAGS),
    "in_init": _FlagsK(C.IN_INIT_FLAGS),
    "in_events": _FlagsK(C.IN_EVENTS),
    "epoll_flags": _FlagsK(C.EPOLL_CREATE_FLAGS),
    "mfd": _FlagsK(C.MFD_FLAGS),
    "rename": _FlagsK(C.RENAME_FLAGS),
    "grnd": _FlagsK(C.GRND_FLAGS),
    "timer_abs": _FlagsK(C.TIMER_ABSTIME_FLAGS),
    "sock_flags": _FlagsK(C.SOCK_FLAGS),
    "splice": _FlagsK(C.SPLICE_FLAGS),
    "umount": _FlagsK(C.UMOUNT_FLAGS),
    "clone_flags": _FlagsK(C.CLONE_FLAGS, mask=_U64),
    "statx_mask": _FlagsK(C.STATX_MASK),
}


def _param_kind(token: str) -> Kind:
    """Tokens with a numeric parameter, e.g. ``wbuf:2`` (buffer whose length is arg 2)."""
    name, _, num = token.partition(":")
    n = int(num)
    factories: dict[str, Callable[[int], Kind]] = {
        "wbuf": lambda n: _Buf(n, output=False),
        "rbuf": lambda n: _Buf(n, output=True),
        "hbuf": lambda n: _Buf(n, output=True, as_hex=True),
        "iov_in": lambda n: _Iov(n, output=False),
        "iov_out": lambda n: _Iov(n, output=True),
        "sigset_in": lambda n: _Sigset(n, output=False),
        "sigset_out": lambda n: _Sigset(n, output=True),
        "sa_in": _SockaddrIn,
        "sa_out": _SockaddrOut,
        "omode": _OpenMode,
        "pollfds": _Pollfds,
    }
    return factories[name](n)


def _kinds_for(signature: str) -> list[tuple[int, Kind]]:
    kinds: list[tuple[int, Kind]] = []
    i = 0
    for token in signature.split():
        kind = _TOKENS.get(token) or _param_kind(token)
        kinds.append((i, kind))
        i += kind.width
    return kinds
