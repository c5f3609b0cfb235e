"""Sampling and the circuit breaker drop spans, never counts."""

from __future__ import annotations

from tests.tracehelpers import load_spans, sysspan

DD = ("dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=3000")


def _summary_calls(stderr: str) -> dict[str, int]:
    calls = {}
    lines = stderr.splitlines()
    start = lines.index("% time     seconds  usecs/call     calls    errors syscall") + 2
    for line in lines[start:]:
        if line.startswith("------"):
            break
        parts = line.split()
        calls[parts[-1]] = int(parts[3])
    return calls


def test_rate_limit_drops_spans_but_counts_stay_exact(tmp_path):
    out = tmp_path / "t.jsonl"
    proc = sysspan("-c", "--trace-file", str(out), "--max-spans-per-second", "500", "--", *DD, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    spans = load_spans(out)
    run = next(s for s in spans if s.is_run)
    syscalls = [s for s in spans if s.is_syscall]
    calls = _summary_calls(proc.stderr)
    assert calls["read"] >= 3000 and calls["write"] >= 3000
    assert run.attrs["syscall.count"] == sum(calls.values())
    assert run.attrs["syscall.dropped"] > 0
    assert len(syscalls) == run.attrs["syscall.count"] - run.attrs["syscall.dropped"]
    # a token bucket of 500/s with a one-second burst cannot let more through than that
    seconds = (run.end - run.start) / 1e9
    assert len(syscalls) <= 500 * (seconds + 1) + 1


def test_sampling_keeps_about_the_ratio(tmp_path):
    out = tmp_path / "t.jsonl"
    proc = sysspan("--trace-file", str(out), "--sample", "0.25", "--", *DD, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    spans = load_spans(out)
    run = next(s for s in spans if s.is_run)
    kept = sum(s.is_syscall for s in spans)
    total = run.attrs["syscall.count"]
    assert kept == total - run.attrs["syscall.dropped"]
    # binomial(n≈6000, 0.25): 6 sigma is about ±200
    assert abs(kept - 0.25 * total) < 6 * (total * 0.25 * 0.75) ** 0.5


def test_bad_sample_ratio_is_a_usage_error(tmp_path):
    proc = sysspan("--sample", "1.5", "--", "true", cwd=tmp_path)
    assert proc.returncode == 2
    assert "--sample" in proc.stderr
