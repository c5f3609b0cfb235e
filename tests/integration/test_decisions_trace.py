"""Decisions recorded during a real trace: the channel (Python API), the stderr protocol,
--no-syscalls, the circuit breaker and the Ruchy files."""

from __future__ import annotations

import sys
import textwrap

from sysspan.ids import decision_id
from tests.tracehelpers import load_spans, sysspan

API_PROG = textwrap.dedent(
    """\
    import sysspan.decisions as d
    d.record("codegen", "int_width", input={"var": "x"}, result="i32")
    with d.decision("inline", "should_inline", input={"fn": "foo"}) as dec:
        open("/etc/hostname").read()
        dec.result = True
    """
)


def _decisions(spans):
    return [s for s in spans if "decision.id" in s.attrs]


def test_python_api_decisions_parent_the_syscalls_inside_them(tmp_path):
    prog = tmp_path / "prog.py"
    prog.write_text(API_PROG)
    out = tmp_path / "t.jsonl"
    proc = sysspan("--trace-file", str(out), "-f", "--", sys.executable, str(prog), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    spans = load_spans(out)
    by_name = {s.name: s for s in _decisions(spans)}
    assert set(by_name) == {"codegen::int_width", "inline::should_inline"}
    width = by_name["codegen::int_width"]
    assert width.attrs["code.file.path"] == str(prog)
    assert width.attrs["code.line.number"] == 2
    assert width.attrs["decision.id"] == f"{decision_id('codegen', 'int_width', str(prog), 2):016x}"
    assert width.attrs["decision.result"] == '"i32"'
    inline = by_name["inline::should_inline"]
    assert inline.end > inline.start
    # the read of /etc/hostname happened inside the timed decision: it is its child
    opens = [s for s in spans if s.is_syscall and s.attrs.get("file.path") == "/etc/hostname"]
    assert opens and all(s.parent_id == inline.span_id for s in opens)
    # decisions hang under the process that made them
    proc_span = next(s for s in spans if s.is_process and s.attrs["process.pid"] == inline.attrs["process.pid"])
    assert inline.parent_id == proc_span.span_id
    run = next(s for s in spans if s.is_run)
    assert run.attrs["decision.count"] == 2 and run.attrs["decision.dropped"] == 0


def test_stderr_protocol_lines_split_across_writes(tmp_path):
    prog = textwrap.dedent(
        """\
        import os
        os.write(2, b'[DECISION] opt::unr')
        os.write(2, b'oll input={"n": 4, "file": "src/lib.rs", "line": 12}\\n')
        open('/etc/hostname').close()
        os.write(2, b'[RESULT] opt::unroll result=true\\n[DECISION] broken-line\\n')
        """
    )
    out = tmp_path / "t.jsonl"
    proc = sysspan("--trace-file", str(out), "--", sys.executable, "-c", prog, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # the program's stderr is unchanged
    assert '[DECISION] opt::unroll input={"n": 4, "file": "src/lib.rs", "line": 12}' in proc.stderr
    spans = load_spans(out)
    (dec,) = _decisions(spans)
    assert dec.name == "opt::unroll"
    assert dec.attrs["decision.result"] == "true"
    assert dec.attrs["code.file.path"] == "src/lib.rs" and dec.attrs["code.line.number"] == 12
    assert dec.attrs["decision.id"] == f"{decision_id('opt', 'unroll', 'src/lib.rs', 12):016x}"
    run = next(s for s in spans if s.is_run)
    assert run.attrs["decision.malformed"] >= 1
    assert "malformed decision" in proc.stderr
    assert sum(s.is_syscall for s in spans) > 20  # nothing lost around the bad line


def test_no_syscalls_mode_records_decisions(tmp_path):
    prog = tmp_path / "prog.py"
    prog.write_text(API_PROG)
    out = tmp_path / "t.jsonl"
    proc = sysspan("--trace-file", str(out), "--no-syscalls", "--", sys.executable, str(prog), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    spans = load_spans(out)
    assert not any(s.is_syscall for s in spans)
    run = next(s for s in spans if s.is_run)
    decs = _decisions(spans)
    assert len(decs) == 2 and all(s.parent_id == run.span_id for s in decs)


def test_circuit_breaker_counts_exactly(tmp_path):
    prog = "import sysspan.decisions as d\nfor i in range(5000):\n    d.record('loop', 'iter', input=i)\n"
    out = tmp_path / "t.jsonl"
    proc = sysspan(
        "--trace-file", str(out), "--no-syscalls", "--decision-rate", "100", "--",
        sys.executable, "-c", prog, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    spans = load_spans(out)
    run = next(s for s in spans if s.is_run)
    kept = len(_decisions(spans))
    assert run.attrs["decision.count"] == 5000
    assert run.attrs["decision.dropped"] == 5000 - kept
    assert 0 < kept <= 100 * ((run.end - run.start) / 1e9 + 1) + 1


def test_decisions_out_round_trips_through_import(tmp_path):
    prog = tmp_path / "prog.py"
    prog.write_text(API_PROG)
    proc = sysspan(
        "--trace-file", str(tmp_path / "t.jsonl"), "--decisions-out", str(tmp_path / "dec"), "--",
        sys.executable, str(prog), cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "dec" / ".ruchy" / "decisions.msgpack").exists()
    assert (tmp_path / "dec" / ".ruchy" / "decision_manifest.json").exists()
    imported = tmp_path / "imported.jsonl"
    proc = sysspan("decisions", "import", str(tmp_path / "dec"), "-o", str(imported), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    ours = {s.attrs["decision.id"] for s in _decisions(load_spans(tmp_path / "t.jsonl"))}
    theirs = {s.attrs["decision.id"] for s in _decisions(load_spans(imported))}
    assert ours == theirs and len(ours) == 2
