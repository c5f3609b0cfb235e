"""Decision recording costs, measured in one run and printed as ratios.

    .venv/bin/python bench/bench_decisions.py            # full (10M gate burst, 1M program)
    .venv/bin/python bench/bench_decisions.py --quick    # smaller counts, same shape

1. ``d.record()`` per call: off (no sysspan, no OTEL), sampled out, written to the channel
   (in a separate writer process, as under sysspan, with the reader in this process),
   against an empty Python function call.
2. The reader side: decisions/s the channel reader and the stderr decoder parse.
3. A burst through ``DecisionGate`` (10,000,000 by default): ns/decision and RSS growth.
4. A 1,000,000-decision Python program: untraced vs ``python -m sysspan --no-syscalls``
   (decisions through the shared-memory ring, the trace command's default;
   the program reports which mode it ran in), and vs this file's own channel reader.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import sysspan.decisions as d  # noqa: E402
from sysspan.decisions.channel import open_channel  # noqa: E402
from sysspan.decisions.sampling import DecisionGate  # noqa: E402
from sysspan.decisions.stderr_protocol import StderrDecoder  # noqa: E402

WRITER = textwrap.dedent(
    """\
    import sys, time
    import sysspan.decisions as d
    n = int(sys.argv[1])
    rec = d.record
    t0 = time.perf_counter_ns()
    for i in range(n):
        rec("codegen", "integer_type", input=i, result="u16")
    dt = time.perf_counter_ns() - t0
    print(d.mode(), dt / n, file=sys.stderr)
    """
)

PROGRAM = textwrap.dedent(
    """\
    import sys
    import sysspan.decisions as d
    n = int(sys.argv[1])
    rec = d.record
    acc = 0
    for i in range(n):
        acc += i & 7
        rec("codegen", "integer_type", input=i, result=acc)
    print("mode", d.mode(), file=sys.stderr)
    """
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SYSSPAN_"))}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _per_call(fn, n: int, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn("codegen", "integer_type", None, None)
        best = min(best, (time.perf_counter_ns() - t0) / n)
    return best


def _empty(category, name, input=None, result=None):  # noqa: ARG001 - the baseline
    return None


def bench_record(n: int) -> None:
    print("== d.record() per call")
    base = _per_call(_empty, n)
    d.configure({})
    off = _per_call(d.record, n)
    r, w = os.pipe()
    drain = threading.Thread(target=lambda: [None for _ in iter(lambda: os.read(r, 1 << 20), b"")])
    drain.start()
    try:
        d.configure({"SYSSPAN_DECISION_FD": str(w), "SYSSPAN_DECISION_SAMPLE": "0"})
        assert d.mode() == "channel"
        sampled_out = _per_call(d.record, n)
        d.configure({"SYSSPAN_DECISION_FD": str(w), "SYSSPAN_DECISION_RATE": "1"})
        limited = _per_call(d.record, n)
    finally:
        d.configure({})
        os.close(w)
        drain.join()
        os.close(r)
    print(f"  empty Python function call      {base:8.0f} ns")
    print(f"  off (no sysspan, no OTEL)       {off:8.0f} ns   x{off / base:.2f} of an empty call")
    print(f"  sampled out (ratio 0)           {sampled_out:8.0f} ns   x{sampled_out / base:.2f}")
    print(f"  rate-limited out, in-process    {limited:8.0f} ns   x{limited / base:.2f}")

    received = [0]

    def count(_decision) -> None:
        received[0] += 1

    channel_n = max(n // 5, 10_000)
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "writer.py"
        script.write_text(WRITER)
        channel = open_channel(count)
        try:
            proc = subprocess.run(
                [sys.executable, str(script), str(channel_n)],
                env=_env(**channel.env()),
                pass_fds=(channel.child_fd,),
                capture_output=True,
                text=True,
                check=True,
            )
        finally:
            channel.close()
    mode, per = proc.stderr.split()
    written = float(per)
    assert mode == "channel" and received[0] == channel_n, (mode, received[0])
    print(
        f"  written to the channel          {written:8.0f} ns   x{written / off:.0f} of off "
        f"({channel_n} decisions, all {received[0]} received)"
    )


def bench_readers(n: int) -> None:
    print("== reader side (sysspan process)")
    line = (
        b'{"category":"codegen","name":"integer_type","input":12345,"result":"u16",'
        b'"file":"/src/prog.py","line":7,"start_ns":1700000000000000000,'
        b'"end_ns":1700000000000000000,"pid":100,"tid":100}\n'
    )
    data = line * n
    got = [0]
    channel = open_channel(lambda _d: got.__setitem__(0, got[0] + 1))
    t0 = time.perf_counter()
    view = memoryview(data)
    for off in range(0, len(data), 1 << 16):
        os.write(channel.child_fd, view[off : off + (1 << 16)])
    channel.close()
    dt = time.perf_counter() - t0
    assert got[0] == n
    print(
        f"  channel reader                  {n / dt:10,.0f} decisions/s  ({dt / n * 1e9:.0f} ns each)"
    )
    dec = StderrDecoder()
    chunk = (
        b'[DECISION] optimization::inline input={"callee":"f","size":10}\n[RESULT] inline = true\n'
        * 1000
    )
    out = 0
    t0 = time.perf_counter()
    for i in range(max(1, n // 1000)):
        out += len(dec.feed(chunk, i, 1, 1))
    dt = time.perf_counter() - t0
    print(
        f"  stderr protocol decoder         {out / dt:10,.0f} decisions/s  ({dt / out * 1e9:.0f} ns each)"
    )


def bench_gate(n: int) -> None:
    print(f"== burst of {n:,} decisions through DecisionGate (10,000/s limit)")
    gate = DecisionGate(sample_ratio=0.5, max_per_second=10_000, seed=1)
    admit = gate.admit
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    for i in range(n):
        admit(i * 100)  # n decisions at 10M/s of simulated time
    dt = time.perf_counter() - t0
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    exact = gate.count == n and gate.count - gate.dropped == gate.kept
    print(
        f"  {dt / n * 1e9:.0f} ns/decision; count={gate.count:,} kept={gate.kept:,} "
        f"dropped={gate.dropped:,} (exact: {exact}); max RSS grew {rss1 - rss0} KiB"
    )


class RunFailed(Exception):
    pass


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=tempfile.gettempdir())
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RunFailed(f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
    mode = next((ln.split()[1] for ln in proc.stderr.splitlines() if ln.startswith("mode ")), "?")
    return dt, mode


def bench_program(n: int, repeat: int) -> None:
    print(f"== a Python program making {n:,} decisions (best of {repeat})")
    with tempfile.TemporaryDirectory() as tmp:
        prog = Path(tmp) / "decide.py"
        prog.write_text(PROGRAM)
        out_dir = Path(tmp) / "traces"

        def best(argv, env) -> tuple[float, str]:
            runs = [_run(argv, env) for _ in range(repeat)]
            return min(r[0] for r in runs), runs[0][1]

        plain, plain_mode = best([sys.executable, str(prog), str(n)], _env())

        def own_channel(gate: DecisionGate | None = None) -> tuple[float, str]:
            received = [0]
            channel = open_channel(lambda _d: received.__setitem__(0, received[0] + 1), gate=gate)
            t0 = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, str(prog), str(n)],
                env=_env(**channel.env()),
                pass_fds=(channel.child_fd,),
                capture_output=True,
                text=True,
            )
            channel.close()
            dt = time.perf_counter() - t0
            assert proc.returncode == 0, proc.stderr
            assert gate.count == n if gate else received[0] == n, (proc.stderr, received[0])
            return dt, "channel"

        chan = min(own_channel()[0] for _ in range(repeat))
        gated = min(own_channel(DecisionGate())[0] for _ in range(repeat))
        try:
            traced, traced_mode = best(
                [
                    sys.executable,
                    "-m",
                    "sysspan",
                    "--no-syscalls",
                    "-q",
                    "-q",
                    "--output-dir",
                    str(out_dir),
                    "--",
                    sys.executable,
                    str(prog),
                    str(n),
                ],
                _env(),
            )
        except RunFailed as exc:
            traced, traced_mode = None, str(exc)
    print(f"  untraced (mode {plain_mode})              {plain:7.2f} s")
    print(
        f"  channel, every decision written     {chan:7.2f} s   x{chan / plain:.2f}   (bare reader, no gate)"
    )
    print(
        f"  channel + default gate (10,000/s)   {gated:7.2f} s   x{gated / plain:.2f}   (limit passed in-process)"
    )
    if traced is None:
        print(f"  python -m sysspan --no-syscalls     failed: {traced_mode}")
        return
    print(
        f"  python -m sysspan --no-syscalls     {traced:7.2f} s   x{traced / plain:.2f}   (program ran in mode {traced_mode})"
    )
    if traced_mode == "off":
        print("  note: the traced program recorded nothing (no decision transport reached it)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (a few seconds)")
    parser.add_argument("--calls", type=int, default=None, help="calls per micro-benchmark")
    parser.add_argument("--burst", type=int, default=None, help="decisions in the gate burst")
    parser.add_argument("--program", type=int, default=None, help="decisions the program makes")
    ns = parser.parse_args()
    calls = ns.calls or (200_000 if ns.quick else 1_000_000)
    burst = ns.burst or (1_000_000 if ns.quick else 10_000_000)
    program = ns.program or (100_000 if ns.quick else 1_000_000)
    print(f"python {sys.version.split()[0]} on {os.uname().machine}, {os.cpu_count()} CPUs")
    bench_record(calls)
    bench_readers(max(calls // 5, 10_000))
    bench_gate(burst)
    bench_program(program, 1 if ns.quick else 3)
    return 0


if __name__ == "__main__":
    from common import use_release_venv

    use_release_venv()
    raise SystemExit(main())
