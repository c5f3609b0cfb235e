"""The report's colour classes come from strace's classes in the collector's table; only
calls strace classes nowhere have a colour of their own."""

from __future__ import annotations

import pytest

from sysspan.collector.syscalls import CLASSES as STRACE_CLASSES
from sysspan.collector.syscalls import table
from sysspan.reporters.syscall_classes import CLASSES, PRECEDENCE, syscall_class, unclassed_names


def _strace_classes_of(name: str) -> list[str]:
    return [cls for cls, names in STRACE_CLASSES.items() if name in names]


def test_every_classed_call_takes_the_first_strace_class_that_holds_it():
    for cls, names in STRACE_CLASSES.items():
        for name in names:
            held = [colour for strace_class, colour in PRECEDENCE if name in STRACE_CLASSES[strace_class]]
            expected = held[0] if held else "other"  # e.g. %clock: no colour of its own
            assert syscall_class(name) == expected, (name, cls)


def test_the_own_colours_name_only_calls_strace_leaves_unclassed():
    own = unclassed_names()
    for name in own:
        assert not _strace_classes_of(name), f"{name} is in {_strace_classes_of(name)}: take it from there"
    # No typo names a call that does not exist (fchmodat2, Linux 6.6, is newer than the
    # headers the number tables were generated from; spans name it all the same).
    known = {n for arch in ("x86_64", "aarch64") for n in table(arch).values()} | {"fchmodat2"}
    assert set(own) <= known, set(own) - known


@pytest.mark.parametrize(
    ("name", "colour"),
    [
        # The four that had drifted between the report and the collector's table.
        ("fchmodat2", "file"),  # like fchmodat (%file), which strace >= 6.6 also says
        ("close_range", "desc"),  # like close (%desc)
        ("futex", "ipc"),  # synchronisation between threads and processes
        ("membarrier", "memory"),  # memory ordering across CPUs
        # Calls in several strace classes.
        ("openat", "file"),  # %file and %desc
        ("mmap", "memory"),  # %memory and %desc
        ("execve", "file"),  # %file and %process
        ("kill", "process"),  # %process and %signal
        ("io_uring_enter", "desc"),  # %desc and %signal (it takes a signal mask)
        ("sendfile", "network"),  # %network and %desc
        ("getpid", "process"),  # %pure
        ("setuid", "process"),  # %creds
        ("clock_gettime", "other"),  # %clock has no colour
        ("connect", "network"),
        ("rt_sigaction", "signal"),
        ("no_such_call", "other"),
    ],
)
def test_colours(name, colour):
    assert syscall_class(name) == colour
    assert colour in CLASSES
