"""``sysspan span`` and ``sysspan merge`` as real processes: explicit-time spans, the
open/close pattern for pipelines, and merging files from two "machines" whose clocks
disagree by 10 seconds."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from tests.tracehelpers import load_spans, sysspan

S = 1_000_000_000
LAPTOP = "4bf92f3577b34da6a3ce929d0e0e4736"


def _ok(res) -> None:
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr


def test_span_with_rfc3339_times(tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    res = sysspan(
        "span", "--name", "deploy",
        "--start", "2024-05-01T12:00:00.123456789+02:00",
        "--end", "2024-05-01T10:00:05.5Z",
        "--attr", "env=prod", "--attr", "attempt:int=2", "--attr", "dry:bool=false",
        "--kind", "client", "--status", "error", "--status-message", "rollback",
        "--traceparent", f"00-{LAPTOP}-00f067aa0ba902b7-01",
        "--trace-file", str(out), "--print-traceparent",
    )  # fmt: skip
    _ok(res)
    (span,) = load_spans(out)
    assert span.start == 1714557600 * S + 123456789
    assert span.end == 1714557605 * S + 500_000_000
    assert (span.trace_id, span.parent_id) == (LAPTOP, "00f067aa0ba902b7")
    assert span.attrs == {"env": "prod", "attempt": 2, "dry": False, "sysspan.span.role": "step"}
    assert span.kind == 3 and span.status == {"code": 2, "message": "rollback"}
    assert res.stdout.strip() == f"TRACEPARENT=00-{LAPTOP}-{span.span_id}-01"


def test_span_epoch_ns_and_errors(tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    _ok(sysspan("span", "--name", "x", "--start", str(1714557600 * S), "--end", "1714557601s", "--trace-file", str(out)))
    (span,) = load_spans(out)
    assert (span.start, span.end, span.parent_id) == (1714557600 * S, 1714557601 * S, "")
    for flag, value, why in (
        ("--start", "yesterday", "RFC 3339"),
        ("--start", "2024-02-30T00:00:00Z", "day is out of range"),
        ("--start", "1714557600", "epoch nanoseconds"),
        ("--end", "2024-05-01T10:00:00", "RFC 3339"),  # no offset: ambiguous, refused
    ):
        args = {"--start": "2024-05-01T10:00:00Z", "--end": "2024-05-01T10:00:01Z", flag: value}
        res = sysspan("span", "--name", "x", "--start", args["--start"], "--end", args["--end"], "--trace-file", str(out))
        assert res.returncode == 2, (value, res.stderr)
        assert flag in res.stderr and why in res.stderr and "Traceback" not in res.stderr
    res = sysspan("span", "--name", "x", "--start", "now", "--end", "2020-01-01T00:00:00Z", "--trace-file", str(out))
    assert res.returncode == 2 and "before --start" in res.stderr
    res = sysspan("span", "--name", "x", "--start", "now", "--end", "now", "--attr", "n:int=three", "--trace-file", str(out))
    assert res.returncode == 2 and "--attr" in res.stderr
    res = sysspan("span", "--name", "x", "--start", "now", "--end", "now", "--tp-required", "--trace-file", str(out))
    assert res.returncode == 1 and "--tp-required" in res.stderr


def test_open_close_through_env_file_and_carrier(tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    # Like $GITHUB_ENV: step 1 appends KEY=value lines, later steps get them as variables.
    res = sysspan("span", "--open", "--name", "pipeline", env={"TRACEPARENT": f"00-{LAPTOP}-00f067aa0ba902b7-01"})
    _ok(res)
    state = dict(line.split("=", 1) for line in res.stdout.splitlines())
    assert set(state) == {"TRACEPARENT", "SYSSPAN_SPAN_START", "SYSSPAN_SPAN_PARENT"}
    assert state["SYSSPAN_SPAN_PARENT"] == "00f067aa0ba902b7"
    assert not out.exists()
    # A step in between: a child of the open span.
    _ok(sysspan("span", "--name", "step", "--start", "now", "--end", "now", "--trace-file", str(out), env=state))
    _ok(sysspan("span", "--close", "--name", "pipeline", "--status", "ok", "--trace-file", str(out), env=state))
    step, pipeline = load_spans(out)
    assert pipeline.span_id == state["TRACEPARENT"].split("-")[2]
    assert (pipeline.trace_id, pipeline.parent_id) == (LAPTOP, "00f067aa0ba902b7")
    assert pipeline.start == int(state["SYSSPAN_SPAN_START"]) and pipeline.end >= step.end
    assert step.parent_id == pipeline.span_id and step.trace_id == LAPTOP

    # Steps that cannot share an environment: state in its own file, context in a carrier
    # that each step reads (and a traced step would rewrite with its own run span).
    carrier, state_file = tmp_path / "ctx.env", tmp_path / "pipeline.env"
    _ok(sysspan("span", "--open", "--name", "root", "--start", "2024-05-01T10:00:00Z", "--tp-carrier", str(carrier), "--state", str(state_file)))
    assert oct(os.stat(state_file).st_mode & 0o777) == "0o600"
    _ok(sysspan("span", "--name", "inner", "--start", "now", "--end", "now", "--tp-carrier", str(carrier), "--trace-file", str(out)))
    carrier.write_text(f"TRACEPARENT=00-{LAPTOP}-1111111111111111-01\n")  # as a later step would
    _ok(sysspan("span", "--close", "--name", "root", "--state", str(state_file), "--trace-file", str(out)))
    inner, root = load_spans(out)[2:]
    assert root.parent_id == "" and root.start == 1714557600 * S
    assert inner.parent_id == root.span_id and inner.trace_id == root.trace_id
    res = sysspan("span", "--close", "--name", "nothing-open", "--trace-file", str(out))
    assert res.returncode == 2 and "no open span" in res.stderr
    res = sysspan("span", "--close", "--name", "x", "--tp-carrier", str(carrier), "--trace-file", str(out))
    assert res.returncode == 2 and "--state" in res.stderr


# --------------------------------------------------------------------------- merge


def _record(out: Path, name: str, start: float, end: float, parent: str | None, span_id: str, trace: str) -> str:
    args = ["span", "--name", name, "--start", f"{int(start * S)}", "--end", f"{int(end * S)}", "--span-id", span_id, "--trace-file", str(out), "--print-traceparent"]
    if parent:
        args += ["--traceparent", f"00-{trace}-{parent}-01"]
    res = sysspan(*args)
    _ok(res)
    return res.stdout.strip().split("-")[1]


def _two_machines(tmp_path: Path) -> tuple[Path, Path]:
    """laptop (a.jsonl): run → ci; CI runner (b.jsonl): job → steps, and a laptop-side
    span (a callback) under the last step. The CI spans fit tightly in their parents."""
    t0 = 1_714_557_600.0
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    trace = _record(a, "laptop-run", t0, t0 + 100, None, "00000000000000a1", "")
    _record(a, "ci", t0 + 1, t0 + 90, "00000000000000a1", "00000000000000a2", trace)
    _record(b, "job", t0 + 1.001, t0 + 89.999, "00000000000000a2", "00000000000000b1", trace)
    _record(b, "step-1", t0 + 2, t0 + 10, "00000000000000b1", "00000000000000b2", trace)
    _record(b, "step-2", t0 + 11, t0 + 80, "00000000000000b1", "00000000000000b3", trace)
    _record(a, "callback", t0 + 11.001, t0 + 79.999, "00000000000000b3", "00000000000000a3", trace)
    return a, b


def _shift(src: Path, dst: Path, seconds: float) -> None:
    """Rewrite every timestamp of ``src``: a machine whose clock is off by ``seconds``."""
    delta = int(seconds * S)
    lines = []
    for line in src.read_text().splitlines():
        doc = json.loads(line)
        for rs in doc["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for sp in ss["spans"]:
                    for key in ("startTimeUnixNano", "endTimeUnixNano"):
                        sp[key] = str(int(sp[key]) + delta)
        lines.append(json.dumps(doc))
    dst.write_text("\n".join(lines) + "\n")


def _tree(path: Path) -> dict[str, str]:
    return {s.span_id: s.parent_id for s in load_spans(path)}


def _assert_parents_first(path: Path) -> None:
    position: dict[str, int] = {}
    for i, s in enumerate(load_spans(path)):
        assert not s.parent_id or s.parent_id not in _tree(path) or s.parent_id in position, (
            f"{s.name} written before its parent"
        )
        position[s.span_id] = i


def test_merge_with_ten_second_skew(tmp_path: Path) -> None:
    a, b = _two_machines(tmp_path)
    skewed = tmp_path / "b-skewed.jsonl"
    _shift(b, skewed, -10.0)

    clean, shifted = tmp_path / "clean.jsonl", tmp_path / "merged.jsonl"
    res1 = sysspan("merge", str(a), str(b), "-o", str(clean))
    _ok(res1)
    res2 = sysspan("merge", str(a), str(skewed), "-o", str(shifted))
    _ok(res2)

    # The tree is the same, written parents first, although in the skewed file the CI spans
    # claim to start ~9 s before their parent "ci".
    assert _tree(clean) == _tree(shifted)
    assert len(_tree(shifted)) == 6
    _assert_parents_first(shifted)
    names = [s.name for s in load_spans(shifted)]
    assert names.index("ci") < names.index("job") < names.index("step-2") < names.index("callback")
    assert "no clock skew detected" in res1.stderr
    m = re.search(r"b-skewed\.jsonl runs (\d+\.\d+) s behind a\.jsonl", res2.stderr)
    assert m, res2.stderr
    assert abs(float(m.group(1)) - 10.0) < 0.01
    assert "whose parent" not in res2.stderr  # nothing missing

    # --fix-skew puts b back on a's clock.
    fixed = tmp_path / "fixed.jsonl"
    res3 = sysspan("merge", str(a), str(skewed), "-o", str(fixed), "--fix-skew")
    _ok(res3)
    assert "shifted b-skewed.jsonl by +9.99" in res3.stderr or "shifted b-skewed.jsonl by +10.00" in res3.stderr
    original = {s.span_id: s for s in load_spans(b)}
    for s in load_spans(fixed):
        if s.span_id in original:
            assert abs(s.start - original[s.span_id].start) < S // 100
    assert _tree(fixed) == _tree(clean)


def test_merge_duplicates_missing_parents_and_stdout(tmp_path: Path) -> None:
    a, b = _two_machines(tmp_path)
    copy = tmp_path / "a-again.jsonl"
    copy.write_text(a.read_text())
    out = tmp_path / "m.jsonl"
    res = sysspan("merge", str(a), str(copy), str(b), "-o", str(out))
    _ok(res)
    assert "3 duplicates dropped" in res.stderr
    assert len(load_spans(out)) == 6
    # Only the CI runner's file: its job's parent ("ci") was recorded on the laptop.
    res = sysspan("merge", str(b), "-o", "-")
    _ok(res)
    assert "1 span whose parent is in none of the files" in res.stderr
    assert "'job'" in res.stderr and "00000000000000a2 missing" in res.stderr
    assert [json.loads(line)["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"] for line in res.stdout.splitlines()] == ["job"]
    res = sysspan("merge", str(tmp_path / "nope.jsonl"), "-o", str(out))
    assert res.returncode == 1 and "no such file" in res.stderr


def test_span_open_without_parent_starts_a_random_sampled_trace(tmp_path: Path) -> None:
    # Trace Context Level 2: sysspan draws all 16 trace-id bytes at random, so a trace it
    # starts carries the random flag (0x02) beside sampled (0x01); a received context keeps
    # the flags it came with.
    res = sysspan("span", "--open", "--name", "fresh")
    _ok(res)
    fresh = dict(line.split("=", 1) for line in res.stdout.splitlines())["TRACEPARENT"]
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-03", fresh), fresh
    res = sysspan("span", "--open", "--name", "child", env={"TRACEPARENT": f"00-{LAPTOP}-00f067aa0ba902b7-01"})
    _ok(res)
    child = dict(line.split("=", 1) for line in res.stdout.splitlines())["TRACEPARENT"]
    assert child.startswith(f"00-{LAPTOP}-") and child.endswith("-01")
