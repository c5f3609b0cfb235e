"""How many of sysspan's ``-o`` lines equal strace's, on real programs.

Runs each program under ``strace -f -s 32 -o FILE`` and ``sysspan -f -s 32 -o FILE`` (and under
strace a second time, which measures how much the program itself varies between runs), then
normalises what legitimately differs between two runs — addresses, pids, ports, temporary
file names — and reports the share of identical lines and the differences by category.

    python tools/strace_compare.py            # every program
    python tools/strace_compare.py tcp threads

How lines are compared: the lines of each process are compared as a sequence (difflib), after
pairing each strace process with the sysspan process whose syscall sequence is most alike;
pids in arguments and results are replaced by the label of their pair. A line counts as
identical when its normalised text is equal; every other line of either side is a difference.
strace's ``<unfinished ...>`` / ``<... X resumed>`` halves are counted as printed; which calls
another process's line interrupts depends on scheduling, so two strace runs of the same
program differ there too (the "strace vs strace" columns measure that). ``--joined`` also
reports the figures with each such pair joined into one line: the decoding alone.

The traced program sees sysspan's additions to its environment (``TRACEPARENT`` and the
decision ring's ``SYSSPAN_DECISION_RING``; no descriptor); strace's run is given the same
variable names, so that those deliberate additions are not counted as decoding differences.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROGRAM_SOURCES = Path(__file__).resolve().parent / "strace_programs"

_LINE = re.compile(r"^(\d+) +(.*)$")
_UNFINISHED = re.compile(r"^(.*?) ?<unfinished \.\.\.>$")
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
_RESULT = re.compile(r"^(.*\)) += (.*)$")
_ADDR = re.compile(r"0x[0-9a-f]{5,}")
_PORT = re.compile(r"sin6?_port=htons\(\d+\)")
_TMPNAME = re.compile(r"/tmp/(cc|tmp)[A-Za-z0-9_]{6,8}")
_VARS = re.compile(r"/\* \d+ vars \*/")
_GETRANDOM = re.compile(r'^getrandom\("[^"]*"')
_GETPPID = re.compile(r"^getppid\(\) += \d+$")
_PADDED = re.compile(r"\)  +(= .*)$")
_NAME = re.compile(r"^(?:<\.\.\. )?([a-z_0-9]+)[( ]")


@dataclass
class Program:
    """One real program: its command line, run in a fresh copy of the work directory that
    ``setup`` prepares (both tools see the same paths and the same initial files)."""

    name: str
    argv: list[str]
    setup: Callable[[Path], None] = lambda _work: None
    needs: tuple[str, ...] = ()


def _compile(source: str, out: Path, *flags: str) -> None:
    subprocess.run(["gcc", "-O2", *flags, "-o", str(out), str(PROGRAM_SOURCES / source)], check=True)


def _tree(work: Path) -> None:
    for d in range(3):
        sub = work / "src" / f"dir{d}"
        sub.mkdir(parents=True)
        for f in range(4):
            (sub / f"file{f}.txt").write_text(f"{d}:{f}\n" * (f + 1))


def _git_repo(work: Path) -> None:
    _tree(work)
    git = ["git", "-C", str(work / "src"), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "initial"], check=True, env={**os.environ, "GIT_AUTHOR_DATE": "2020-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2020-01-01T00:00:00Z"})


def programs(bin_dir: Path) -> dict[str, Program]:
    """The programs compared by default (C helpers are built into ``bin_dir``)."""
    # the interpreter itself, not a version manager's shell-script shim in front of it
    py = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    return {
        p.name: p
        for p in [
            Program("pipeline", ["sh", "-c", "ls -l src | sort | head -n 3 > out.txt; wc -l < out.txt"], _tree),
            Program("gcc", ["gcc", "-O2", "-c", str(PROGRAM_SOURCES / "hello.c"), "-o", "hello.o"], needs=("gcc",)),
            Program("python-sqlite3", [py, "-S", "-c", "import sqlite3; sqlite3.connect(':memory:').execute('select 1')"]),
            Program("git", ["git", "-C", "src", "status", "--short"], _git_repo, needs=("git",)),
            Program("find-cp", ["sh", "-c", "find src -name '*.txt' > list.txt; cp -r src copy"], _tree),
            Program("tcp", [str(bin_dir / "tcp")], needs=("gcc",)),
            Program("threads", [str(bin_dir / "threads")], needs=("gcc",)),
            Program("thread-exec", [str(bin_dir / "thread_exec")], needs=("gcc",)),
            Program("decode-probe", [str(bin_dir / "decode_probe")], _tree, needs=("gcc",)),
        ]
    }


def build_helpers(bin_dir: Path) -> None:
    _compile("tcp.c", bin_dir / "tcp")
    _compile("threads.c", bin_dir / "threads", "-pthread")
    _compile("thread_exec.c", bin_dir / "thread_exec", "-pthread")
    _compile("decode_probe.c", bin_dir / "decode_probe")


# ---- running --------------------------------------------------------------------------------

def _strace_env_like_sysspan(env: dict[str, str]) -> dict[str, str]:
    out = dict(env)
    out.setdefault("TRACEPARENT", "00-" + "1" * 32 + "-" + "1" * 16 + "-03")
    out.setdefault("SYSSPAN_DECISION_RING", "/dev/shm/sysspan-decisions-00000000")
    return out


def run_tool(
    tool: str, prog: Program, work: Path, out: Path, opts: tuple[str, ...] = ("-f", "-s", "32")
) -> None:
    """Run ``prog`` under ``tool`` ("strace" or "sysspan", with strace's ``opts``) in a fresh
    ``work`` directory, writing its lines to ``out``."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    prog.setup(work)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACE", "SYSSPAN_", "BAGGAGE"))}
    env["PYTHONPATH"] = str(REPO)
    if tool == "sysspan":
        quiet = () if "-qq" in opts else ("-q",)
        cmd = [sys.executable, "-m", "sysspan", *opts, *quiet, "-o", str(out), "--output-dir", str(out.parent / "traces"), "--", *prog.argv]
        subprocess.run(cmd, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
        return
    cmd = ["strace", *opts, "-o", str(out), *prog.argv]
    subprocess.run(
        cmd, cwd=work, env=_strace_env_like_sysspan(env), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, timeout=300,
    )  # fmt: skip


# ---- comparing ------------------------------------------------------------------------------


def parse(text: str) -> list[tuple[int, str]]:
    """``(pid, rest of line)`` for each ``-f -o`` line (lines without a pid get pid 0)."""
    out = []
    for line in text.splitlines():
        m = _LINE.match(line)
        out.append((int(m.group(1)), m.group(2)) if m else (0, line))
    return out


def join_pairs(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Join each ``<unfinished ...>`` line with its ``<... X resumed>`` line into one line,
    in the place of the unfinished half, the way strace prints a call that nothing interrupted."""
    out: list[tuple[int, str] | None] = []
    pending: dict[int, int] = {}
    for pid, text in lines:
        m = _UNFINISHED.match(text)
        if m:
            pending[pid] = len(out)
            out.append((pid, m.group(1)))
            continue
        r = _RESUMED.match(text)
        if r and pid in pending:
            at = pending.pop(pid)
            head = out[at]
            assert head is not None
            call = head[1] + r.group(2)
            # the result column is padded to 40 characters (pid prefix included)
            done = _RESULT.match(call)
            if done:
                width = 40 - len(f"{pid:<5} ")
                call = f"{done.group(1):<{width - 1}} = {done.group(2)}"
            out[at] = (pid, call)
            continue
        out.append((pid, text))
    return [x for x in out if x is not None]


def normalise(text: str, labels: dict[int, str]) -> str:
    text = _ADDR.sub("0xADDR", text)
    text = _PADDED.sub(r") \1", text)  # the result column moves with the addresses' widths
    text = _PORT.sub("sin_port=htons(PORT)", text)
    text = _TMPNAME.sub(r"/tmp/\1XXXXXX", text)
    text = _VARS.sub("/* N vars */", text)
    text = _GETRANDOM.sub('getrandom("RANDOM"', text)
    if _GETPPID.match(text) and not any(f"= {pid}" in text for pid in labels):
        text = "getppid() = PPID"  # the tracer's own pid
    if labels:
        text = re.sub(r"\b\d{2,}\b", lambda m: labels.get(int(m.group()), m.group()), text)
    return text


def _by_pid(lines: list[tuple[int, str]]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for pid, text in lines:
        out.setdefault(pid, []).append(text)
    return out


def _names(texts: list[str]) -> list[str]:
    return [m.group(1) if (m := _NAME.match(t)) else t[:3] for t in texts]


def pair_processes(a: dict[int, list[str]], b: dict[int, list[str]]) -> dict[int, int]:
    """Pair each pid of ``a`` with the pid of ``b`` whose syscall-name sequence is most alike
    (greedy, best pairs first)."""
    scores = []
    for pa, la in a.items():
        na = _names(la)
        for pb, lb in b.items():
            sm = difflib.SequenceMatcher(None, na, _names(lb), autojunk=False)
            scores.append((sm.ratio(), -abs(len(la) - len(lb)), pa, pb))
    scores.sort(reverse=True)
    pairs: dict[int, int] = {}
    used: set[int] = set()
    for _score, _d, pa, pb in scores:
        if pa not in pairs and pb not in used:
            pairs[pa] = pb
            used.add(pb)
    return pairs


def category(line: str) -> str:
    if "<unfinished ...>" in line or "resumed>" in line:
        return "unfinished/resumed"
    if line.startswith("---"):
        return "signal line"
    if line.startswith("+++"):
        return "exit line"
    m = _NAME.match(line)
    return m.group(1) if m else "other"


@dataclass
class Comparison:
    lines: int = 0  # max(len) summed over paired processes, plus unpaired processes
    identical: int = 0
    categories: Counter = field(default_factory=Counter)
    examples: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def percent(self) -> float:
        return 100.0 * self.identical / self.lines if self.lines else 100.0

    def add(self, other: Comparison) -> None:
        self.lines += other.lines
        self.identical += other.identical
        self.categories.update(other.categories)
        for k, v in other.examples.items():
            self.examples.setdefault(k, v)


def compare(reference: str, candidate: str, joined: bool = False) -> Comparison:
    """Compare two ``-f -o`` outputs (reference first, e.g. strace's)."""
    ra, rb = parse(reference), parse(candidate)
    if joined:
        ra, rb = join_pairs(ra), join_pairs(rb)
    a, b = _by_pid(ra), _by_pid(rb)
    pairs = pair_processes(a, b)
    order = {pa: f"P{i}" for i, pa in enumerate(a)}
    labels_a = dict(order)
    labels_b = {pb: order[pa] for pa, pb in pairs.items()}
    result = Comparison()
    for pa, la in a.items():
        na = [normalise(t, labels_a) for t in la]
        pb = pairs.get(pa)
        nb = [normalise(t, labels_b) for t in b.get(pb, [])] if pb is not None else []
        sm = difflib.SequenceMatcher(None, na, nb, autojunk=False)
        same = sum(block.size for block in sm.get_matching_blocks())
        result.lines += max(len(na), len(nb))
        result.identical += same
        for tag, i1, i2, j1, j2 in sm.get_opcodes():
            if tag == "equal":
                continue
            for k in range(max(i2 - i1, j2 - j1)):
                left = na[i1 + k] if i1 + k < i2 else ""
                right = nb[j1 + k] if j1 + k < j2 else ""
                cat = category(left or right)
                result.categories[cat] += 1
                result.examples.setdefault(cat, (left, right))
    for pb, lb in b.items():
        if pb not in pairs.values():
            result.lines += len(lb)
            result.categories["unpaired process"] += len(lb)
    return result


# ---- the report ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="programs to compare (default: all)")
    ap.add_argument("--joined", action="store_true", help="also report with unfinished/resumed pairs joined")
    ap.add_argument("--keep", metavar="DIR", help="keep the outputs in DIR")
    ns = ap.parse_args(argv)
    if not shutil.which("strace"):
        print("strace is not installed", file=sys.stderr)
        return 2
    tmp = Path(ns.keep or tempfile.mkdtemp(prefix="strace-compare-"))
    tmp.mkdir(parents=True, exist_ok=True)
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    build_helpers(bin_dir)
    progs = programs(bin_dir)
    chosen = ns.names or list(progs)
    total, total_joined = Comparison(), Comparison()
    noise, noise_joined = Comparison(), Comparison()
    print(f"{'':<23} {'sysspan vs strace':^18} {'strace vs strace':^18}")
    print(f"{'program':<16} {'lines':>6} {'printed':>9} {'joined':>8} {'printed':>9} {'joined':>8}")
    for name in chosen:
        prog = progs[name]
        if any(shutil.which(n) is None for n in prog.needs):
            print(f"{name:<16} skipped (needs {', '.join(prog.needs)})")
            continue
        work = tmp / "work"
        outs = {}
        for tool in ("strace", "sysspan", "strace2"):
            outs[tool] = tmp / f"{name}.{tool}.txt"
            run_tool(tool.rstrip("2"), prog, work, outs[tool])
        ref, cand, ref2 = (outs[t].read_text() for t in ("strace", "sysspan", "strace2"))
        c = compare(ref, cand)
        cj = compare(ref, cand, joined=True)
        n = compare(ref, ref2)
        nj = compare(ref, ref2, joined=True)
        total.add(c)
        total_joined.add(cj)
        noise.add(n)
        noise_joined.add(nj)
        print(f"{name:<16} {c.lines:>6} {c.percent:>8.1f}% {cj.percent:>7.1f}% {n.percent:>8.1f}% {nj.percent:>7.1f}%")
    print(f"{'all':<16} {total.lines:>6} {total.percent:>8.1f}% {total_joined.percent:>7.1f}% {noise.percent:>8.1f}% {noise_joined.percent:>7.1f}%")
    print("\ndifferences by category (as printed / with pairs joined), strace line | sysspan line:")
    for cat, count in total.categories.most_common():
        left, right = total.examples[cat]
        print(f"  {cat:<20} {count:>5} / {total_joined.categories.get(cat, 0):<5} {left[:90]!r}\n{'':>36}{right[:90]!r}")
    if ns.keep:
        print(f"\noutputs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
