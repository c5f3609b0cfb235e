"""How fast ``stats`` and ``report`` read JSONL, and how much memory ``merge`` needs.

Traces a real command into a trace file of about ``--mb`` megabytes (or reads ``--trace``),
then runs, as separate processes, alternating ``--runs`` times:

* ``sysspan stats FILE`` and ``sysspan report FILE``: MB/s of file read per wall second
  (median and min-max; interpreter start-up included, as a user sees it), and, because a
  busy machine moves MB/s a lot, the ratio to a baseline run alternately with them: the
  same file decoded line by line by the validating decoder alone (what every reader did
  before the fast path), so "stats 0.4x" means stats takes 0.4 of that time;
* ``sysspan merge FILE -o OUT``: peak RSS, next to the size of the merge's span index
  (what it keeps per span, measured in-process with the same code) and the interpreter's
  RSS after imports, so the ratio (peak - baseline) / index is printed.

With ``--before DIR`` (a checkout of another commit, e.g. ``git archive BASE sysspan | tar
-x -C DIR``), ``report`` as that commit's code runs it is timed in the same loop too.

Usage: python bench/bench_readers.py [--mb 100] [--runs 5] [--trace FILE] [--before DIR]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import REPO, SYSSPAN, alternate, env, machine_note, run

sys.path.insert(0, str(REPO))


def make_trace(directory: Path, mb: float) -> Path:
    """A trace of ``dd bs=1``: two syscall spans per byte copied, ~470 bytes each."""
    count = max(1000, int(mb * 1e6 / 950))
    path = directory / "bench.jsonl"
    cmd = [*SYSSPAN, "-q", "--trace-file", str(path), "--", "dd", "if=/dev/zero", "of=/dev/null", "bs=1", f"count={count}"]
    subprocess.run(cmd, cwd=directory, env=env(), check=True, stderr=subprocess.DEVNULL)
    return path


def index_figures(trace: Path) -> tuple[int, int]:
    """(index bytes, RSS of an interpreter that imported the merge code) in bytes."""
    code = (
        "import resource, sys; from sysspan.merge_stream import index_files, index_bytes;"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss;"
        f"print(index_bytes(index_files([{str(trace)!r}])), base * 1024)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, text=True, check=True)
    index, base = out.stdout.split()
    return int(index), int(base)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=100.0)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--trace", type=Path)
    ap.add_argument("--before", type=Path, help="sources of another commit: also time its report")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        trace = args.trace.resolve() if args.trace else make_trace(work, args.mb)
        size = trace.stat().st_size
        baseline = (
            "import sys; from sysspan.exporters.otlp_json import decode_line\n"
            "for line in open(sys.argv[1], 'rb'):\n    decode_line(line)"
        )
        cmds = {
            "validating decoder": [sys.executable, "-c", baseline, str(trace)],
            "stats": [*SYSSPAN, "stats", str(trace)],
            "report": [*SYSSPAN, "report", str(trace), "-o", str(work / "r.html")],
        }
        if args.before:
            # Put the other sources ahead of the installed package.
            code = (
                f"import sys; sys.path.insert(0, {str(args.before.resolve())!r}); "
                "from sysspan.cli import main; raise SystemExit(main())"
            )
            cmds["report (--before)"] = [sys.executable, "-c", code, "report", str(trace), "-o", str(work / "b.html")]
        samples = alternate(cmds, args.runs, work)
        times = {name: [s.wall for s in runs] for name, runs in samples.items()}
        cpus = {name: [s.cpu for s in runs] for name, runs in samples.items()}
        print(f"machine: {machine_note()}; trace {size / 1e6:.1f} MB; {args.runs} alternating runs")
        base_wall = statistics.median(times["validating decoder"])
        for name, walls in times.items():
            rates = sorted(size / 1e6 / w for w in walls)
            cpu = statistics.median(cpus[name])
            print(
                f"{name:18s}: median {statistics.median(rates):6.1f} MB/s "
                f"(min {rates[0]:.1f}, max {rates[-1]:.1f}); median wall {statistics.median(walls):.2f} s"
                f" = {statistics.median(walls) / base_wall:.2f}x the validating decoder; "
                f"CPU (user+sys) median {cpu:.2f} s = {size / 1e6 / cpu:.1f} MB per CPU-second"
            )
        if args.before:
            # One process each: on a loaded machine the CPU-time ratio moves less than wall.
            ratio = statistics.median(cpus["report"]) / statistics.median(cpus["report (--before)"])
            print(f"report / report (--before): CPU-time ratio {ratio:.2f}")
        peaks = []
        for _ in range(max(1, min(args.runs, 3))):
            wall, peak_kib, rc = run([*SYSSPAN, "merge", str(trace), "-o", str(work / "m.jsonl"), "-q"], work)
            if rc != 0:
                raise SystemExit("merge failed")
            peaks.append(peak_kib * 1024)
        index, base = index_figures(trace)
        peak = max(peaks)
        print(
            f"merge : peak RSS {peak / 1e6:.0f} MB, span index {index / 1e6:.0f} MB, interpreter "
            f"baseline {base / 1e6:.0f} MB -> (peak - baseline) / index = {(peak - base) / index:.2f}; "
            f"peak / index = {peak / index:.2f}; peak / file = {peak / size:.2f}"
        )
    return 0


if __name__ == "__main__":
    from common import use_release_venv

    use_release_venv()
    raise SystemExit(main())
