"""Run every benchmark and print its figures (``make bench``).

Each benchmark prints ratios measured in the same run. The full set takes about half an hour
on a 2-core machine (the full-trace comparison runs strace on 400,000 syscalls five times,
and the burst traces 10,000,000 syscalls); pass --quick for a smoke run of a few minutes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    quick = "--quick" in sys.argv[1:]
    runs = [
        ["bench_trace.py", *(["--quick", "--runs", "1"] if quick else ["--runs", "5"])],
        ["bench_export.py", *(["--spans", "100000", "--sdk-spans", "20000"] if quick else [])],
        ["bench_source.py", *(["--calls", "2000", "--repeat", "2"] if quick else [])],
        ["bench_decisions.py", *(["--quick"] if quick else [])],
        ["bench_budget.py", *(["--runs", "1"] if quick else ["--runs", "5"])],
        ["bench_ring.py", *(["--quick"] if quick else [])],
        ["bench_readers.py", *(["--mb", "10", "--runs", "2"] if quick else [])],
    ]
    failed = 0
    for script, *args in runs:
        print(f"== {script} {' '.join(args)}", flush=True)
        failed |= subprocess.call([sys.executable, str(HERE / script), *args], cwd=HERE)
    return failed


if __name__ == "__main__":
    from common import use_release_venv

    use_release_venv()
    raise SystemExit(main())
