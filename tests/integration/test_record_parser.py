"""The C record parser (``_records.h``) shared by the stop loop and the libbpf loader."""

from __future__ import annotations

import os
import shutil
import struct
from typing import NamedTuple

import pytest

from sysspan.collector import _stoploop
from sysspan.collector import tracer as tracer_module
from sysspan.collector.decode import Decoder
from sysspan.collector.records import (
    ProcessExec,
    ProcessExit,
    ProcessStart,
    RawSyscall,
    Signal,
    Snapshot,
    Syscall,
    record_parser,
)
from sysspan.collector.syscalls import machine_arch, table
from sysspan.collector.tracer import Tracer

try:
    from sysspan.collector.ebpf import _bpf
except ImportError:
    _bpf = None  # type: ignore[assignment]

ARCH = machine_arch()
NR = {name: nr for nr, name in table(ARCH).items()}
R_SIGNAL = 4


def _chunks(monkeypatch, argv: list[str]) -> list[bytes]:
    """The chunks the stop loop drained while tracing argv for real."""
    seen: list[bytes] = []
    parse = tracer_module.parse_records

    def keep(chunk: bytes):
        seen.append(bytes(chunk))
        return parse(chunk)

    monkeypatch.setattr(tracer_module, "parse_records", keep)
    t = Tracer(Decoder(ARCH), follow=True, execve_nrs=frozenset({NR["execve"], NR["execveat"]}),
               stderr_nrs=frozenset({NR["write"]}), stderr_max=4096)
    path = shutil.which(argv[0])
    assert path
    t.spawn(path, argv, dict(os.environ))
    status = t.run(lambda rec: None)
    assert status is not None and os.WIFEXITED(status)
    assert seen
    return seen


def _plain(x: object) -> object:
    """Records with their types and snapshots' contents spelled out, to compare."""
    if isinstance(x, Snapshot):
        return ("Snapshot", x.mem, x.cstr)
    if isinstance(x, (tuple, list)):
        return (type(x).__name__, [_plain(i) for i in x])
    return (type(x).__name__, x)


def test_a_real_trace_parses_into_typed_records(monkeypatch):
    chunks = _chunks(monkeypatch, ["sh", "-c", "ls /no-such-dir; (exit 3) & wait; kill -CHLD $$"])
    records = [r for c in chunks for r in _stoploop.parse_records(c)]
    kinds = {type(r) for r in records}
    assert {ProcessStart, ProcessExec, ProcessExit, Signal} <= kinds
    assert kinds & {Syscall, RawSyscall}
    starts = [r for r in records if type(r) is ProcessStart]
    assert all(type(r.attached) is bool for r in starts)
    execs = [r for r in records if type(r) is ProcessExec]
    assert execs[0].argv[:2] == ["sh", "-c"] and isinstance(execs[0].path, str)
    calls = [r.call if type(r) is RawSyscall else r for r in records
             if type(r) in (Syscall, RawSyscall)]
    for call in calls:
        assert len(call.args) == 6 and all(type(a) is int and a >= 0 for a in call.args)
        assert call.rval is None or type(call.rval) is int
        assert call.t0 <= call.t1 and call.seq0 < call.seq1
    # ls's complaint, written to fd 2, carries its bytes (for the decision protocol)
    assert any(c.stderr and b"no-such-dir" in c.stderr for c in calls)
    seqs = [s for r in records for s in ((r.call.seq0,) if type(r) is RawSyscall else
                                        (r.seq0,) if type(r) is Syscall else (r.seq,))]
    assert len(set(seqs)) == len(seqs)


@pytest.mark.skipif(_bpf is None, reason="the libbpf loader was not built here")
def test_both_extensions_parse_a_chunk_alike(monkeypatch):
    chunks = _chunks(monkeypatch, ["sh", "-c", "ls / >/dev/null; echo x >&2"])
    bpf_parse = record_parser(_bpf)
    for chunk in chunks:
        assert _plain(bpf_parse(chunk)) == _plain(_stoploop.parse_records(chunk))


def test_a_cut_or_corrupt_chunk_is_an_error_naming_the_offset(monkeypatch):
    chunk = _chunks(monkeypatch, ["true"])[0]
    with pytest.raises(ValueError, match="offset"):
        _stoploop.parse_records(chunk[: len(chunk) - 3])
    zero = struct.pack("<IHHii", 0, R_SIGNAL, 0, 1, 1)  # a size of 0 would never advance
    with pytest.raises(ValueError, match="offset 0 claims 0 bytes"):
        _stoploop.parse_records(zero)


def test_a_signal_record_without_the_sigchld_fields_reads_them_as_absent():
    # the BPF program's signal record ends after si_uid: 56 bytes, the last of a chunk
    rec = struct.pack("<IHHiiQQiiiiII", 56, R_SIGNAL, 0, 7, 6, 1000, 42, 10, 0, -6, 0, 0, 0)
    (sig,) = _stoploop.parse_records(rec)
    assert sig == Signal(tid=7, tgid=6, sig=10, t=1000, info=None, seq=42)


def test_the_record_classes_are_checked_when_handed_over():
    class Short(NamedTuple):
        tid: int

    with pytest.raises(TypeError, match="Short is not a named tuple of 13 fields"):
        _stoploop.set_record_types(Short, RawSyscall, object, ProcessStart, ProcessExec, Signal,
                                   ProcessExit, ProcessExit)
    record_parser(_stoploop)  # the real classes again, for the rest of the session
