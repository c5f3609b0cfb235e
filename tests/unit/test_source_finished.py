"""Finished processes' stacks still symbolise (``Unwinder.release`` keeps their caches), a
bounded number of them, found by pid without scanning the others."""

from __future__ import annotations

from sysspan.collector.source import unwind
from sysspan.collector.source.elfinfo import ARCHS
from sysspan.collector.source.unwind import Frame, Unwinder


def _ran(unwinder: Unwinder, pid: int, pc: int, path: str) -> None:
    """Pretend ``pid`` had a stack captured at ``pc`` (its frame 0 resolved to ``path``)."""
    proc = unwinder._procs[pid] = unwind._Proc()
    proc.top[pc] = (Frame(None, pc, pc, path, 0), unwind.KIND_FP, 0, 0, 0, (), None, False)


def test_finished_processes_are_kept_newest_first_and_bounded(monkeypatch):
    monkeypatch.setattr(unwind, "MAX_FINISHED", 3)
    u = Unwinder(None, ARCHS["x86_64"])
    _ran(u, 10, 0x1000, "first-10")
    u.release(10)
    _ran(u, 10, 0x1000, "second-10")  # the pid reused, the same address in another image
    u.release(10)
    _ran(u, 11, 0x2000, "only-11")
    u.release(11)
    # the newest image of a pid wins; the older one is still there for its own addresses
    assert [f.path for f in u.frames(10, (0x1000,))] == ["second-10"]
    assert [f.path for f in u.frames(11, (0x2000,))] == ["only-11"]
    _ran(u, 12, 0x3000, "only-12")
    u.release(12)  # a fourth: the oldest (the first pid 10) goes
    assert [f.path for f in u.frames(10, (0x1000,))] == ["second-10"]
    _ran(u, 13, 0x4000, "only-13")
    u.release(13)  # and then the second pid 10
    assert u.frames(10, (0x1000,)) == [None]
    assert [f.path for f in u.frames(13, (0x4000,))] == ["only-13"]
    assert sorted(u._dead_of) == [11, 12, 13]
    assert len(u._dead) == 3


def test_a_pid_never_seen_has_no_frames():
    u = Unwinder(None, ARCHS["x86_64"])
    _ran(u, 10, 0x1000, "only-10")
    u.release(10)
    assert u.frames(99, (0x1000, 0x2000)) == [None, None]
