"""The Decoder compiles a syscall on its first use and reads the stop loop's plans straight
from the signatures: the plans must line up with the compiled captures, and what a syscall
renders must not depend on which use came first."""

from __future__ import annotations

import pytest

from sysspan.collector.decode import Decoder
from sysspan.collector.syscalls import table

PID = 4242


class Strings:
    """A MemoryReader where every address holds the same short string."""

    def read(self, pid: int, addr: int, size: int) -> bytes:
        return b"/etc/hosts\0padding-and-more-bytes"[:size]

    def read_cstr(self, pid: int, addr: int, limit: int) -> bytes | None:
        return b"/etc/hosts"[:limit]


def _settings() -> list[dict]:
    return [
        {"decode_fds": fds, "capture_data": data}
        for fds in (False, True) for data in (False, True)
    ]


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
@pytest.mark.parametrize("settings", _settings())
def test_plans_line_up_with_the_compiled_captures(arch: str, settings: dict) -> None:
    dec = Decoder(arch, strsize=16, fd_path=lambda pid, fd: f"/fd/{fd}", **settings)
    plans = dec.plans()
    checked = 0
    for nr in table(arch):
        spec = dec._spec(nr)
        if spec is None:
            assert plans[nr] is None
            continue
        entry, entry_py, exit_, exit_py = plans[nr]
        # the reads of the kinds the compiled captures read at entry, in capture order
        want_entry: list | None = []
        for (i, kind), pos in zip(spec.kinds, spec.entry_pos, strict=True):
            if pos is not None and want_entry is not None:
                got = kind.plan(dec, i, False)
                want_entry = None if got is None else [*want_entry, *got]
        want_exit: list | None = []
        for (i, kind), pos in zip(spec.kinds, spec.exit_pos, strict=True):
            if pos is not None and want_exit is not None:
                got = kind.plan(dec, i, True)
                want_exit = None if got is None else [*want_exit, *got]
        if spec.ret_link_pos is not None or spec.exit_on_error:
            want_exit = None
        assert entry_py == (want_entry is None), spec.name
        assert exit_py == (want_exit is None), spec.name
        assert list(entry) == (want_entry or []), spec.name
        assert list(exit_) == (want_exit or []), spec.name
        checked += 1
    assert checked > 250


@pytest.mark.parametrize("settings", _settings())
def test_rendering_does_not_depend_on_the_first_use(settings: dict) -> None:
    """A syscall's first use (a format, a capture, after the plans) gives what a decoder
    that has compiled every syscall already gives."""
    arch = "x86_64"
    args = (3, 0x7000, 0x8000, 2, 0x9000, 5)
    make = lambda: Decoder(arch, strsize=8, fd_path=lambda pid, fd: f"/fd/{fd}", **settings)  # noqa: E731
    reader = Strings()
    warm = make()
    for nr in table(arch):
        warm.format(nr, args, 0, None, None)
    format_first, capture_first, plans_first = make(), make(), make()
    plans_first.plans()
    for nr in table(arch):
        for rval in (4, -2):
            entry = warm.capture_entry(nr, args, PID, reader)
            exit_ = warm.capture_exit(nr, args, rval, PID, reader)
            want = warm.format(nr, args, rval, entry, exit_)
            assert format_first.format(nr, args, rval, entry, exit_) == want
            assert capture_first.capture_entry(nr, args, PID, reader) == entry
            assert capture_first.capture_exit(nr, args, rval, PID, reader) == exit_
            assert capture_first.format(nr, args, rval, entry, exit_) == want
            assert plans_first.capture_exit(nr, args, rval, PID, reader) == exit_
            assert plans_first.format(nr, args, rval, entry, exit_) == want
