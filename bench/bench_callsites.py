"""How often ``--source`` names the right line, per optimisation level.

The C program in ``bench/callsites/`` (two files, a header) opens one marker file from each
call site; the line that makes the call carries ``site:NAME`` (and ``tail`` when the call is
in tail position, where a compiler may replace it by a jump from -O2 on, removing its frame).
It is compiled with ``gcc -g`` at -O0, -O1, -O2 and -O3 and traced with
``sysspan --source``; each syscall on a marker file is checked against its site's line.

Tail-position sites are counted apart: when the compiler made them jumps, no stack-based
tracer can see their line, and sysspan attributes the syscall to the caller and sets
``code.tail_call_suspected``. The table shows, per level, the exact share of the other sites,
how many of them carry the mark although no tail call is involved (false marks), then for the
tail-position sites how many were exact and how many of the others carry the mark (a
tail-position site that is neither exact nor marked is a miss).

    .venv/bin/python bench/bench_callsites.py
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCES = REPO / "bench" / "callsites"
_SITE = re.compile(r"/\* site:([\w-]+)( tail)? \*/")


@dataclass
class Site:
    name: str
    file: str
    line: int
    tail: bool


def sites() -> dict[str, Site]:
    """Marker file name -> its call site, read from the sources' ``site:`` comments."""
    out = {}
    for path in sorted(SOURCES.glob("*.c")):
        for n, text in enumerate(path.read_text().splitlines(), 1):
            m = _SITE.search(text)
            if m:
                out[m.group(1)] = Site(m.group(1), path.name, n, bool(m.group(2)))
    return out


def _attrs(items: list) -> dict:
    out = {}
    for a in items:
        v = a["value"]
        out[a["key"]] = next(iter(v.values())) if v else None
    return out


def syscall_spans(trace: Path) -> list[dict]:
    spans = []
    for line in trace.read_text().splitlines():
        for rs in json.loads(line).get("resourceSpans", []):
            for ss in rs["scopeSpans"]:
                for s in ss["spans"]:
                    attrs = _attrs(s.get("attributes", []))
                    if "syscall.name" in attrs:
                        spans.append(attrs)
    return spans


@dataclass
class Score:
    plain: int = 0
    plain_exact: int = 0
    plain_marked: int = 0
    tail: int = 0
    tail_exact: int = 0
    tail_marked: int = 0
    misses: list | None = None


def measure(level: str, work: Path) -> Score:
    exe = work / f"callsites{level}"
    subprocess.run(
        ["gcc", f"-{level}", "-g", "-o", str(exe), *map(str, sorted(SOURCES.glob("*.c")))],
        check=True,
    )
    known = sites()
    for name in known:
        (work / name).write_text("x")
    trace = work / f"trace{level}.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SYSSPAN_", "TRACE"))}
    env["PYTHONPATH"] = str(REPO)
    subprocess.run(
        [sys.executable, "-m", "sysspan", "-q", "--source", "--trace-file", str(trace), "--", str(exe)],
        cwd=work, env=env, check=True, capture_output=True,
    )  # fmt: skip
    score = Score(misses=[])
    for attrs in syscall_spans(trace):
        path = attrs.get("file.path") or ""
        site = known.get(os.path.basename(path))
        if site is None or int(attrs.get("syscall.return", -1)) < 0:
            continue
        got = (os.path.basename(attrs.get("code.file.path") or ""), int(attrs.get("code.line.number") or 0))
        exact = got == (site.file, site.line)
        if site.tail:
            score.tail += 1
            score.tail_exact += exact
            score.tail_marked += (not exact) and bool(attrs.get("code.tail_call_suspected"))
        else:
            score.plain += 1
            score.plain_exact += exact
            score.plain_marked += bool(attrs.get("code.tail_call_suspected"))
        if not exact:
            assert score.misses is not None
            marked = " (marked tail call)" if attrs.get("code.tail_call_suspected") else ""
            score.misses.append(f"{site.name}: {site.file}:{site.line} -> {got[0]}:{got[1]}{marked}")
    return score


def main() -> int:
    if shutil.which("gcc") is None:
        print("needs gcc", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="callsites-"))
    try:
        print(f"{len(sites())} call sites in bench/callsites/ ({sum(s.tail for s in sites().values())} in tail position)")
        print(f"{'level':<6} {'calls exact':>14} {'falsely marked':>15} {'tail: exact':>12} {'tail: marked':>13} {'tail: missed':>13}")
        for level in ("O0", "O1", "O2", "O3"):
            s = measure(level, work)
            missed = s.tail - s.tail_exact - s.tail_marked
            pct = 100.0 * s.plain_exact / s.plain if s.plain else 0.0
            print(f"-{level:<5} {s.plain_exact:>4}/{s.plain:<3} {pct:5.1f}% {s.plain_marked:>10}/{s.plain:<4} {s.tail_exact:>7}/{s.tail:<4} {s.tail_marked:>8}/{s.tail:<4} {missed:>8}/{s.tail:<4}")
            for miss in s.misses or []:
                print(f"         {miss}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    from common import use_release_venv

    use_release_venv()
    raise SystemExit(main())
