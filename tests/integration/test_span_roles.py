"""Readers learn what a span is from its ``sysspan.span.role`` attribute, and read files
written before that attribute existed through the one fallback, ``role_of``."""

from __future__ import annotations

import json
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from sysspan.model import Span
from sysspan.span_roles import (
    DECISION,
    OTHER,
    PROCESS,
    ROLE_KEY,
    ROLES,
    RUN,
    STEP,
    SYSCALL,
    role_of,
)
from tests.tracehelpers import load_spans, sysspan

PROG = textwrap.dedent(
    """\
    import subprocess
    import sysspan.decisions as d
    with d.decision("config", "load", input={"path": "/etc/hostname"}) as dec:
        open("/etc/hostname").read()
        dec.result = "ok"
    subprocess.run(["true"])
    """
)


@pytest.fixture(scope="module")
def traced(tmp_path_factory) -> Path:
    """A real trace with a run, processes, syscalls and a decision."""
    d = tmp_path_factory.mktemp("roles")
    prog = d / "prog.py"
    prog.write_text(PROG)
    out = d / "t.jsonl"
    proc = sysspan("--trace-file", str(out), "-f", "--", sys.executable, str(prog), cwd=d)
    assert proc.returncode == 0, proc.stderr
    return out


def _rewrite(src: Path, dst: Path, change) -> None:
    """Copy an OTLP JSON lines file, passing each span's attribute list through ``change``."""
    with open(src, encoding="utf-8") as fh, open(dst, "w", encoding="utf-8") as out:
        for line in fh:
            doc = json.loads(line)
            for rs in doc["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    for span in ss["spans"]:
                        span["attributes"] = change(span.get("attributes", []))
            out.write(json.dumps(doc) + "\n")


def _without_role(items: list) -> list:
    return [kv for kv in items if kv["key"] != ROLE_KEY]


def test_role_of_prefers_the_attribute_and_falls_back_on_the_keys():
    # The attribute decides, even where the keys suggest something else.
    assert role_of({ROLE_KEY: STEP, "process.pid": 7}) == STEP
    assert role_of({ROLE_KEY: DECISION, "decision.id": "1", "process.pid": 7}) == DECISION
    # Without it (older files): what the keys imply, in order.
    assert role_of({"syscall.name": "read", "process.pid": 1}) == SYSCALL
    assert role_of({"decision.id": "ab", "process.pid": 1}) == DECISION
    assert role_of({"syscall.count": 3, "process.pid": 1}) == RUN
    assert role_of({"process.pid": 1}) == PROCESS
    assert role_of({"http.method": "GET"}) == OTHER
    # A role value sysspan does not know is not trusted.
    assert role_of({ROLE_KEY: "bogus", "process.pid": 1}) == PROCESS
    assert Span(1, 2, 0, "x", 0, 1, attributes={ROLE_KEY: RUN}).role == RUN


def test_every_span_of_a_real_trace_says_its_role_and_the_fallback_agrees(traced):
    spans = load_spans(traced)
    roles = Counter(s.attrs.get(ROLE_KEY) for s in spans)
    assert set(roles) == {RUN, PROCESS, SYSCALL, DECISION}, roles
    assert set(roles) <= set(ROLES)
    for s in spans:
        legacy = {k: v for k, v in s.attrs.items() if k != ROLE_KEY}
        assert role_of(legacy) == s.attrs[ROLE_KEY], (s.name, s.attrs)


def test_files_without_the_attribute_give_the_same_stats_and_report(traced, tmp_path):
    (tmp_path / "old").mkdir()
    old = tmp_path / "old" / traced.name  # the report names its input files
    _rewrite(traced, old, _without_role)
    for args in (("stats",), ("decisions", "top"), ("decisions", "manifest")):
        new_out = sysspan(*args, str(traced))
        old_out = sysspan(*args, str(old))
        assert new_out.returncode == 0 == old_out.returncode, new_out.stderr + old_out.stderr
        assert new_out.stdout == old_out.stdout
    assert "1 run" in sysspan("stats", str(old)).stdout
    html = []
    for path in (traced, old):
        out = tmp_path / "report.html"
        proc = sysspan("report", path.name, "-o", str(out), "--title", "t", cwd=path.parent,
                       env={"PYTHONHASHSEED": "0"})  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        html.append(out.read_bytes())
    assert html[0] == html[1]


def test_readers_follow_the_attribute_not_the_keys(traced, tmp_path):
    """Relabel every process span as a pipeline step: with the attribute read, stats counts
    steps and no processes, and the report's process table loses them, although the spans
    still carry process.pid."""
    relabelled = tmp_path / "steps.jsonl"

    def to_step(items: list) -> list:
        if {"key": ROLE_KEY, "value": {"stringValue": PROCESS}} in items:
            return [*_without_role(items), {"key": ROLE_KEY, "value": {"stringValue": STEP}}]
        return items

    _rewrite(traced, relabelled, to_step)
    nproc = sum(1 for s in load_spans(traced) if s.attrs[ROLE_KEY] == PROCESS)
    assert nproc >= 2
    stats = sysspan("stats", str(relabelled))
    assert stats.returncode == 0, stats.stderr
    assert f"{nproc} step" in stats.stdout and " process" not in stats.stdout.splitlines()[0]
    out = tmp_path / "steps.html"
    proc = sysspan("report", str(relabelled), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert ", 0 processes)" in proc.stdout


def test_decisions_reads_directories_like_the_other_readers(traced, tmp_path):
    d = tmp_path / "dir"
    d.mkdir()
    (d / "a.jsonl").write_bytes(traced.read_bytes())
    (d / "a-spool-1.jsonl").write_bytes(traced.read_bytes())  # spools stay out, as for stats
    for action in ("top", "manifest"):
        from_dir = sysspan("decisions", action, str(d))
        from_file = sysspan("decisions", action, str(traced))
        assert from_dir.returncode == 0, from_dir.stderr
        assert from_dir.stdout == from_file.stdout and "config::load" in from_dir.stdout
    exported = sysspan("decisions", "export", str(d), "-o", str(tmp_path / "out"))
    assert exported.returncode == 0 and "1 decisions written" in exported.stderr, exported.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = sysspan("decisions", "top", str(empty))
    assert proc.returncode != 0 and "no *.jsonl trace files" in proc.stderr


def test_decisions_reads_a_cut_off_last_line_like_the_other_readers(traced, tmp_path):
    cut = tmp_path / "cut.jsonl"
    data = traced.read_bytes()
    cut.write_bytes(data + data[: len(data) // 3].rstrip(b"\n"))  # a whole copy, then a third
    proc = sysspan("decisions", "top", str(cut))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("the last line is cut off") == 1
    assert "config::load" in proc.stdout
