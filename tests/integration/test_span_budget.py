"""The span budget on a real build: a small C project compiled with ``make -j2`` under
``sysspan -f``, exported over OTLP/gRPC to a loopback receiver with the default budget and
written in full to the JSONL file in the same run."""

from __future__ import annotations

import re
import shutil
import sys
from collections import Counter, defaultdict

import pytest

from tests.cproject import make_project
from tests.otlp_receiver import attrs
from tests.tracehelpers import load_spans, sysspan

pytestmark = pytest.mark.skipif(
    shutil.which("gcc") is None or shutil.which("make") is None, reason="needs gcc and make"
)

_SUMMARY_ROW = re.compile(
    r"^\s*([\d.]+)\s+([\d.]+)\s+(\d+)\s+(\d+)\s+(\d*)\s+(\w+)\s*$"
)


def parse_c_table(stderr: str) -> dict[str, tuple[float, int, int]]:
    """strace's -c table: syscall -> (seconds, calls, errors)."""
    rows = {}
    for line in stderr.splitlines():
        m = _SUMMARY_ROW.match(line)
        if m and m.group(6) != "total":
            rows[m.group(6)] = (float(m.group(2)), int(m.group(4)), int(m.group(5) or 0))
    return rows


@pytest.mark.slow
def test_build_fits_the_budget_and_summaries_equal_the_c_table(tmp_path, grpc_receiver):
    project = tmp_path / "proj"
    project.mkdir()
    make_project(project)
    trace_file = tmp_path / "full.jsonl"
    proc = sysspan(
        "-f", "-c", "--trace-file", str(trace_file), "--otlp-protocol", "grpc",
        "--", "make", "-j2", "-s",
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": grpc_receiver.endpoint},
        cwd=project,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (project / "prog").exists()

    table = parse_c_table(proc.stderr)
    full = load_spans(trace_file)
    full_syscalls = [s for s in full if s.is_syscall]
    # The JSONL file of the same run holds every span: one per call the -c table counts.
    assert len(full_syscalls) == sum(calls for _, calls, _ in table.values())
    assert len(full_syscalls) > 20_000  # a real build, far beyond the budget

    received = grpc_receiver.spans()
    got_syscalls = [pb for _, pb in received if any(kv.key == "syscall.name" for kv in pb.attributes)]
    assert 0 < len(got_syscalls) <= 10_000
    assert sum(r.ByteSize() for r in grpc_receiver.requests) <= 4_000_000
    assert len({pb.trace_id for _, pb in received}) == 1

    # Every (syscall, errno) pair of the run arrives at least once.
    pairs = {(s.attrs["syscall.name"], s.attrs["error.type"]) for s in full_syscalls if "error.type" in s.attrs}
    got_attrs = [attrs(pb.attributes) for pb in got_syscalls]
    got_pairs = {(a["syscall.name"], a["error.type"]) for a in got_attrs if "error.type" in a}
    assert pairs and pairs == got_pairs
    # ENOENT probes do not crowd out the rest: every syscall name of the run is there.
    assert {a["syscall.name"] for a in got_attrs} == {s.attrs["syscall.name"] for s in full_syscalls}

    # What arrived is what the file holds, span for span.
    by_id = {s.span_id: s for s in full}
    for pb, a in zip(got_syscalls, got_attrs, strict=True):
        ref = by_id[pb.span_id.hex()]
        assert a == ref.attrs and pb.parent_span_id.hex() == ref.parent_id

    # Summaries on process (and run) spans add up to the -c table exactly.
    per_name: dict[str, Counter] = defaultdict(Counter)
    process_spans = 0
    for _, pb in received:
        a = attrs(pb.attributes)
        if "process.parent_pid" in a:
            process_spans += 1
        for key, value in a.items():
            if key.startswith("syscall.summary.") and key.count(".") == 3:
                name, field = key.split(".")[2:]
                per_name[name][field] += value
    assert process_spans == sum(1 for s in full if s.is_process)
    assert set(per_name) == set(table)
    for name, (seconds, calls, errors) in table.items():
        assert per_name[name]["count"] == calls, name
        assert per_name[name]["errors"] == errors, name
        assert f"{per_name[name]['total_ns'] / 1e9:.6f}" == f"{seconds:.6f}", name
        assert per_name[name]["min_ns"] <= per_name[name]["max_ns"]

    line = next(ln for ln in proc.stderr.splitlines() if "syscall spans for otlp" in ln)
    assert f"kept {len(got_syscalls):,} of {len(full_syscalls):,} syscall spans" in line
    assert "--syscall-spans all sends every one" in line


@pytest.mark.parametrize("mode", ["errors", "none"])
def test_errors_and_none_modes(tmp_path, grpc_receiver, mode):
    trace_file = tmp_path / "t.jsonl"
    proc = sysspan(
        "-f", "--syscall-spans", mode, "--trace-file", str(trace_file),
        "--otlp-protocol", "grpc", "--", "sh", "-c", "cat /nonexistent /etc/hostname; ls /nope; true",
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": grpc_receiver.endpoint},
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    # An explicit mode applies to the JSONL file too.
    for spans in (load_spans(trace_file), None):
        if spans is None:
            spans_attrs = [attrs(pb.attributes) for _, pb in grpc_receiver.spans()]
        else:
            spans_attrs = [s.attrs for s in spans]
        syscalls = [a for a in spans_attrs if "syscall.name" in a]
        if mode == "none":
            assert syscalls == []
        else:
            assert syscalls and all("error.type" in a for a in syscalls)
        summaries = [a for a in spans_attrs if "syscall.summary.count" in a]
        assert summaries
        assert sum(a["syscall.summary.errors"] for a in summaries) >= 2


def test_span_budget_flag_is_checked(tmp_path):
    proc = sysspan("--span-budget", "lots", "--", "true", cwd=tmp_path)
    assert proc.returncode == 2
    assert "--span-budget: expected a number" in proc.stderr


def test_syscalls_inside_a_decision_survive_a_tiny_budget(tmp_path, grpc_receiver):
    prog = tmp_path / "prog.py"
    prog.write_text(
        "import sysspan.decisions as d\n"
        "with d.decision('inline', 'should_inline', input={'fn': 'foo'}) as dec:\n"
        "    for _ in range(5):\n"
        "        open('/etc/hostname').read()\n"
        "    dec.result = True\n"
    )
    trace_file = tmp_path / "t.jsonl"
    proc = sysspan(
        "--span-budget", "100", "--trace-file", str(trace_file), "--otlp-protocol", "grpc",
        "--", sys.executable, str(prog),
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": grpc_receiver.endpoint},
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    full = load_spans(trace_file)
    (decision,) = [s for s in full if "decision.id" in s.attrs]
    inside = {s.span_id for s in full if s.is_syscall and s.parent_id == decision.span_id}
    assert len(inside) >= 10  # 5 x (openat, read..., close)
    got = {pb.span_id.hex() for _, pb in grpc_receiver.spans() if any(kv.key == "syscall.name" for kv in pb.attributes)}
    assert len(got) <= 100 < len([s for s in full if s.is_syscall])
    assert inside <= got
