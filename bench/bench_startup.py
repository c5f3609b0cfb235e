"""Start-up figures, in milliseconds (the tracer comparisons print seconds, too coarse here).

1. `sysspan -qq -- true` vs `python -c pass` (the same interpreter, so both pay its start)
2. `python -c 'import json, sqlite3'` traced with -f vs `strace -f -o FILE`
3. where sysspan's start-up goes: the interpreter, importing the trace path
   (`python -X importtime`), and the run itself (the rest)
4. what tracing the short command costs beyond start-up: sysspan's (short - true) against
   strace's (short - the command untraced)

Each comparison: wall time with both pinned to CPU 1, CPU time (user + sys of the process
tree), unpinned wall time; medians and min-max of alternating runs.

Usage: python bench/bench_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import SYSSPAN, Comparison, alternate, compare, env, machine_note


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.1f} ms [{min(values) * 1000:.1f}-{max(values) * 1000:.1f}]"


def _lines(c: Comparison, target: str) -> list[str]:
    out = []
    for label, which, pinned in (("pinned (taskset -c 1)", c.pinned, True), ("unpinned", c.unpinned, False)):
        if not which[c.a]:
            continue
        parts = [f"{name} {_ms([s.wall for s in which[name]])} cpu {_ms([s.cpu for s in which[name]])}"
                 for name in (c.a, c.b)]
        out.append(f"   {label:<22} {'; '.join(parts)}")
        out.append(f"   {'':<22} wall ratio {c.ratio('wall', pinned):.2f}, cpu ratio {c.ratio('cpu', pinned):.2f}"
                   f"  (medians of {len(which[c.a])}){'  ' + target if pinned else ''}")
    return out


def _import_us(runs: int, cwd: Path) -> dict[str, float]:
    """Median cumulative import time (µs) of the CLI and of the trace path."""
    got: dict[str, list[int]] = {"sysspan.cli": [], "sysspan.commands.trace": []}
    for _ in range(runs):
        # the console script is a Python file: run it under the same interpreter with -X
        launch = SYSSPAN[1:] if SYSSPAN[0] == sys.executable else SYSSPAN
        err = subprocess.run([sys.executable, "-X", "importtime", *launch, "-qq", "--", "true"],
                             cwd=cwd, env=env(), capture_output=True, text=True).stderr
        for line in err.splitlines():
            m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)$", line)
            if m and m.group(2) in got:
                got[m.group(2)].append(int(m.group(1)))
    return {k: statistics.median(v) for k, v in got.items() if v}


def startup(runs: int, tmp: Path) -> None:
    c = compare("sysspan", "python", {
        "sysspan": [*SYSSPAN, "-qq", "--trace-file", str(tmp / "true.jsonl"), "--", "true"],
        "python": [sys.executable, "-c", "pass"],
    }, runs, tmp)
    print("3. start-up    sysspan -qq -- true vs python -c pass (same interpreter)")
    print("\n".join(_lines(c, "(target <= 3)")))
    imports = _import_us(runs, tmp)
    total = statistics.median([s.wall for s in c.unpinned["sysspan"]]) * 1000
    python = statistics.median([s.wall for s in c.unpinned["python"]]) * 1000
    cli = imports.get("sysspan.cli", 0) / 1000
    trace = imports.get("sysspan.commands.trace", 0) / 1000
    print(f"   breakdown (unpinned medians): interpreter {python:.1f} ms, sysspan.cli {cli:.1f} ms, "
          f"sysspan.commands.trace {trace:.1f} ms (python -X importtime), "
          f"the run and the rest {total - python - cli - trace:.1f} ms")
    short = [sys.executable, "-c", "import json, sqlite3"]
    c = compare("sysspan", "strace", {
        "sysspan": [*SYSSPAN, "-qq", "-f", "--trace-file", str(tmp / "short.jsonl"), "--", *short],
        "strace": ["strace", "-f", "-o", str(tmp / "short.txt"), *short],
    }, runs, tmp)
    print("   short command python -c 'import json, sqlite3' traced with -f vs strace -f -o FILE")
    print("\n".join(_lines(c, "(target <= 1.5)")))
    beyond_startup(runs, tmp, short)


def beyond_startup(runs: int, tmp: Path, short: list[str]) -> None:
    """What tracing the short command costs beyond each tool's own start: sysspan's
    (short - true) against strace's (short - the command untraced), pinned, alternating."""
    got = alternate({
        "sysspan true": [*SYSSPAN, "-qq", "--trace-file", str(tmp / "true.jsonl"), "--", "true"],
        "sysspan short": [*SYSSPAN, "-qq", "-f", "--trace-file", str(tmp / "short.jsonl"), "--", *short],
        "strace short": ["strace", "-f", "-o", str(tmp / "short.txt"), *short],
        "untraced short": short,
    }, runs, tmp, pin=True)

    def med(name: str, field: str) -> float:
        return statistics.median([getattr(s, field) for s in got[name]]) * 1000

    print(f"   beyond start-up, pinned (medians of {runs}): sysspan short - sysspan true vs strace short - untraced")
    for field in ("wall", "cpu"):
        ours = med("sysspan short", field) - med("sysspan true", field)
        theirs = med("strace short", field) - med("untraced short", field)
        print(f"   {field:<4} sysspan {ours:.1f} ms ({med('sysspan short', field):.1f} - {med('sysspan true', field):.1f}),"
              f" strace {theirs:.1f} ms ({med('strace short', field):.1f} - {med('untraced short', field):.1f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15, help="alternating runs per comparison (default 15)")
    args = ap.parse_args()
    print(f"machine: {machine_note()}")
    with tempfile.TemporaryDirectory() as tmp:
        startup(max(args.runs, 5), Path(tmp))


if __name__ == "__main__":
    from common import use_release_venv

    use_release_venv()
    main()
