"""The colour class of a syscall in the reports, from strace's classes in
:data:`sysspan.collector.syscalls.CLASSES` (the table ``-e trace=%file`` also uses).

strace puts a call in several classes (``openat`` is ``%file`` and ``%desc``); a colour
needs one, the first of :data:`PRECEDENCE` that holds it: the most specific class wins over
``desc``, which strace gives every call that takes a descriptor, and ``signal`` (a call
that only takes a signal mask, as ``io_uring_enter`` does, is not a signal call) comes last. Calls strace classes
nowhere get their colour from :data:`_UNCLASSED`, which may only name such calls (a test
checks), so no call has two sources.
"""

from __future__ import annotations

from sysspan.collector.syscalls import CLASSES as STRACE_CLASSES

#: Colour classes, in the order the report's legend and data use them. Index = position.
CLASSES = ("file", "desc", "network", "process", "memory", "signal", "ipc", "other")

#: strace class -> colour, in the order that decides for a call in several classes.
PRECEDENCE = (
    ("%file", "file"), ("%network", "network"), ("%ipc", "ipc"), ("%memory", "memory"),
    ("%process", "process"), ("%creds", "process"), ("%pure", "process"), ("%desc", "desc"),
    ("%signal", "signal"),
)  # fmt: skip

# Calls in no strace class (strace 6.1, which the collector's table follows), by colour.
# close_range and fchmodat2 are newer than that strace; later ones class them %desc and
# %file/%desc. futex and membarrier are synchronisation and memory ordering, which strace
# leaves unclassed.
_UNCLASSED = {
    "file": "fchmodat2",
    "desc": "close_range",
    "ipc": "futex futex_waitv mq_notify mq_unlink",
    "memory": "membarrier pkey_alloc pkey_free",
    "signal": "alarm",
    "process": (
        "arch_prctl get_robust_list set_robust_list getpgid getsid setpgid setsid getpriority "
        "setpriority getrlimit setrlimit prlimit64 personality ptrace rseq sched_yield "
        "sched_getaffinity sched_setaffinity seccomp set_tid_address unshare"
    ),
}


def _colours() -> dict[str, int]:
    index: dict[str, int] = {}
    for strace_class, colour in reversed(PRECEDENCE):  # earlier entries overwrite later ones
        for name in STRACE_CLASSES[strace_class]:
            index[name] = CLASSES.index(colour)
    for colour, names in _UNCLASSED.items():
        for name in names.split():
            index[name] = CLASSES.index(colour)
    return index


#: Syscall name -> index in :data:`CLASSES` (absent: ``other``).
CLASS_OF: dict[str, int] = _colours()
OTHER = CLASSES.index("other")


def syscall_class(name: str) -> str:
    """The colour class of a syscall name (``other`` when unknown)."""
    return CLASSES[CLASS_OF.get(name, OTHER)]


def unclassed_names() -> dict[str, str]:
    """The calls whose colour strace's classes do not give: name -> colour."""
    return {name: colour for colour, names in _UNCLASSED.items() for name in names.split()}
