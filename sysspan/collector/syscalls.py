"""Syscall numbers, names and strace's ``-e trace=`` expressions for the supported architectures.

Why: the tracer and the seccomp filter work with numbers, users speak in names and strace's
classes (``%file``, ``%network`` ...). This module is the one place that translates between them,
for the architecture of the traced program (x86_64 or aarch64, 64-bit ABI only).
"""

from __future__ import annotations

import os
import re
from functools import cache
from importlib import import_module

from sysspan.errors import ConfigError, UsageError

ARCHES: tuple[str, ...] = ("x86_64", "aarch64")
_MACHINE_ALIASES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


def machine_arch() -> str:
    """The architecture name sysspan uses for this machine ("x86_64" or "aarch64").

    Raises ConfigError on any other machine, because the syscall tables and the decoder only
    know these two 64-bit ABIs.
    """
    machine = os.uname().machine  # platform.machine() without importing platform
    arch = _MACHINE_ALIASES.get(machine.lower())
    if arch is None:
        raise ConfigError(
            f"unsupported machine architecture {machine!r}: sysspan traces x86_64 and aarch64 only"
        )
    return arch


def _check_arch(arch: str) -> str:
    if arch not in ARCHES:
        raise ConfigError(f"unknown architecture {arch!r} (expected one of: {', '.join(ARCHES)})")
    return arch


@cache
def table(arch: str) -> dict[int, str]:
    """Syscall number -> name for ``arch`` (generated from the kernel UAPI headers).

    The returned dict is shared; treat it as read-only.
    """
    module = import_module(f"sysspan.collector.tables.{_check_arch(arch)}")
    return module.SYSCALLS


@cache
def _numbers(arch: str) -> dict[str, int]:
    return {name: nr for nr, name in table(arch).items()}


def number_of(name: str, arch: str) -> int | None:
    """The syscall number of ``name`` on ``arch``, or None when that arch has no such syscall."""
    return _numbers(arch).get(name)


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: strace's trace classes, by syscall name (names absent from an arch simply do not match there).
CLASSES: dict[str, frozenset[str]] = {
    "%file": _names(
        """
        access acct chdir chmod chown chroot creat execve execveat faccessat faccessat2
        fanotify_mark fchmodat fchownat fsconfig fspick futimesat getcwd getxattr
        inotify_add_watch lchown lgetxattr link linkat listxattr llistxattr lremovexattr
        lsetxattr lstat mkdir mkdirat mknod mknodat mount mount_setattr move_mount
        name_to_handle_at newfstatat open open_tree openat openat2 pivot_root quotactl
        readlink readlinkat removexattr rename renameat renameat2 rmdir setxattr stat
        statfs statx swapoff swapon symlink symlinkat truncate umount2 unlink unlinkat
        uselib utime utimensat utimes
        """
    ),
    "%ipc": _names(
        """
        msgctl msgget msgrcv msgsnd semctl semget semop semtimedop shmat shmctl shmdt
        shmget
        """
    ),
    "%network": _names(
        """
        accept accept4 bind connect getpeername getpmsg getsockname getsockopt listen
        putpmsg recvfrom recvmmsg recvmsg sendfile sendmmsg sendmsg sendto setsockopt
        shutdown socket socketpair
        """
    ),
    "%process": _names(
        """
        clone clone3 execve execveat exit exit_group fork kill pidfd_send_signal
        rt_sigqueueinfo rt_tgsigqueueinfo tgkill tkill vfork wait4 waitid
        """
    ),
    "%signal": _names(
        """
        io_uring_enter kill pause pidfd_send_signal rt_sigaction rt_sigpending
        rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
        rt_tgsigqueueinfo sigaltstack signalfd signalfd4 tgkill tkill
        """
    ),
    "%desc": _names(
        """
        bpf close copy_file_range creat dup dup2 dup3 epoll_create epoll_create1
        epoll_ctl epoll_pwait epoll_pwait2 epoll_wait eventfd eventfd2 execveat
        faccessat faccessat2 fadvise64 fallocate fanotify_init fanotify_mark fchdir
        fchmod fchmodat fchown fchownat fcntl fdatasync fgetxattr finit_module
        flistxattr flock fremovexattr fsconfig fsetxattr fsmount fsopen fspick fstat
        fstatfs fsync ftruncate futimesat getdents getdents64 inotify_add_watch
        inotify_init inotify_init1 inotify_rm_watch io_uring_enter io_uring_register
        io_uring_setup ioctl kexec_file_load landlock_add_rule landlock_create_ruleset
        landlock_restrict_self linkat lseek memfd_create memfd_secret mkdirat mknodat
        mmap mount_setattr move_mount mq_getsetattr mq_open mq_timedreceive mq_timedsend
        name_to_handle_at newfstatat open open_by_handle_at open_tree openat openat2
        perf_event_open pidfd_getfd pidfd_open pidfd_send_signal pipe pipe2 poll ppoll
        pread64 preadv preadv2 process_madvise process_mrelease pselect6 pwrite64
        pwritev pwritev2 quotactl_fd read readahead readlinkat readv renameat renameat2
        select sendfile setns signalfd signalfd4 splice statx symlinkat sync_file_range
        syncfs tee timerfd_create timerfd_gettime timerfd_settime unlinkat userfaultfd
        utimensat vmsplice write writev
        """
    ),
    "%memory": _names(
        """
        brk get_mempolicy io_destroy io_setup io_uring_register madvise mbind
        migrate_pages mincore mlock mlock2 mlockall mmap move_pages mprotect mremap
        msync munlock munlockall munmap pkey_mprotect remap_file_pages set_mempolicy
        set_mempolicy_home_node shmat shmdt
        """
    ),
    "%stat": _names(
        """
        stat
        """
    ),
    "%lstat": _names(
        """
        lstat
        """
    ),
    "%statfs": _names(
        """
        statfs
        """
    ),
    "%fstatfs": _names(
        """
        fstatfs
        """
    ),
    "%%statfs": _names(
        """
        fstatfs statfs ustat
        """
    ),
    "%fstat": _names(
        """
        fstat newfstatat statx
        """
    ),
    "%%stat": _names(
        """
        fstat lstat newfstatat stat statx
        """
    ),
    "%pure": _names(
        """
        getegid geteuid getgid getpgrp getpid getppid gettid getuid
        """
    ),
    "%creds": _names(
        """
        capget capset getegid geteuid getgid getgroups getresgid getresuid getuid prctl
        setfsgid setfsuid setgid setgroups setregid setresgid setresuid setreuid setuid
        """
    ),
    "%clock": _names(
        """
        adjtimex clock_adjtime clock_getres clock_gettime clock_settime gettimeofday
        settimeofday time
        """
    ),
}
CLASSES["%net"] = CLASSES["%network"]

#: Class names strace still accepts without the leading "%".
_LEGACY_CLASSES = {"file", "ipc", "network", "process", "signal", "desc", "memory"}


def _class_numbers(name: str, arch: str) -> frozenset[int]:
    nums = _numbers(arch)
    return frozenset(nums[n] for n in CLASSES[name] if n in nums)


def parse_trace_expr(expr: str, arch: str) -> frozenset[int]:
    """The syscall numbers selected by a strace ``-e trace=`` value on ``arch``.

    Accepts comma-separated syscall names (optionally ``name@64``), syscall numbers, ``%class``
    (and strace's legacy bare class names such as ``file``), ``/regex`` (searched in names),
    ``all`` and ``none``; a ``?`` before an element makes it optional (no error when unknown); a
    leading ``!`` negates the whole set (within the syscalls known on ``arch``).
    Raises UsageError naming the first bad element, as strace does.
    """
    _check_arch(arch)
    text = expr.strip()
    negate = text.startswith("!")
    if negate:
        text = text[1:].strip()
    if not text:
        raise UsageError("-e trace: empty syscall set (give names, %classes, all or none)")
    nums = _numbers(arch)
    everything = frozenset(table(arch))
    selected: set[int] = set()
    for raw in text.split(","):
        token = raw.strip()
        if not token:
            continue
        optional = token.startswith("?")
        if optional:
            token = token[1:]
        found = _lookup_token(token, arch, nums, everything)
        if found is None:
            if optional:
                continue
            if token.startswith("!"):
                raise UsageError(
                    f"-e trace: unknown syscall {token!r} (only a leading '!' negates, "
                    "and it applies to the whole set)"
                )
            what = "class" if token.startswith("%") else "syscall"
            raise UsageError(f"-e trace: unknown {what} {token!r}")
        selected |= found
    result = frozenset(selected)
    return everything - result if negate else result


def _lookup_token(
    token: str, arch: str, nums: dict[str, int], everything: frozenset[int]
) -> frozenset[int] | None:
    if token == "all":
        return everything
    if token == "none":
        return frozenset()
    if token.startswith("%"):
        return _class_numbers(token, arch) if token in CLASSES else None
    if token in _LEGACY_CLASSES:
        return _class_numbers("%" + token, arch)
    if token.startswith("/"):
        try:
            rx = re.compile(token[1:])
        except re.error as exc:
            raise UsageError(f"-e trace: invalid regular expression {token!r}: {exc}") from None
        hits = frozenset(nr for name, nr in nums.items() if rx.search(name))
        return hits or None
    if token.isdigit():
        nr = int(token)
        return frozenset({nr}) if nr in everything else None
    name = token[:-3] if token.endswith("@64") else token
    found = nums.get(name)
    return None if found is None else frozenset({found})
