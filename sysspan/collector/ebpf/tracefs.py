"""What both kernel sides of ``--backend ebpf`` need from tracefs, and whom they trace.

Kept apart from ``program`` (the bpftrace program's generator) so that the libbpf path loads
nothing of bpftrace's: every module imported is start-up time of every traced command.
"""

from __future__ import annotations

import os

TRACEFS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")


class Target:
    """Whom to trace: ``root`` tgid; ``follow`` its new processes as they fork; ``thread_only``
    (a spawned command without -f: only its first thread, as ptrace without -f);
    ``ready_pid``, the process whose getpgid call triggers the R line (bpftrace). A plain
    class: a NamedTuple would import typing, and a namedtuple build its class with exec, on
    every traced run's start."""

    __slots__ = ("root", "follow", "thread_only", "ready_pid")

    def __init__(self, root: int, follow: bool, thread_only: bool, ready_pid: int) -> None:
        self.root = root
        self.follow = follow
        self.thread_only = thread_only
        self.ready_pid = ready_pid


def syscall_tracepoints() -> frozenset[str] | None:
    """Names of the syscalls with tracepoints here, or None when tracefs is not mounted."""
    for base in TRACEFS:
        try:
            names = os.listdir(os.path.join(base, "events", "syscalls"))
        except OSError:
            continue
        return frozenset(n[len("sys_enter_"):] for n in names if n.startswith("sys_enter_"))
    return None


def tracepoint_fields(name: str) -> list[str]:
    """The argument fields of ``sys_enter_<name>``, in order (from its tracefs format)."""
    return syscall_fields(name) or []


def syscall_fields(name: str) -> list[str] | None:
    """The argument fields of ``sys_enter_<name>``, or None when this kernel has no such
    tracepoint (or tracefs is not mounted). Asking for the selected syscalls this way spares a
    listing of all of them: tracefs builds its directories as they are read (0.4 ms)."""
    for base in TRACEFS:
        try:
            with open(os.path.join(base, "events", "syscalls", f"sys_enter_{name}", "format")) as fh:
                text = fh.read()
        except OSError:
            continue
        fields: list[str] = []
        for line in text.splitlines():
            line = line.strip()
            if not line.startswith("field:") or "common_" in line or "__syscall_nr" in line:
                continue
            decl = line[len("field:"):].split(";", 1)[0]
            fields.append(decl.split()[-1].lstrip("*"))
        return fields
    return None
