"""The shared-memory decision ring: C and Python writers against the real reader and the
real sysspan, many writers at once, a writer killed mid-write, hostile ring contents, and
what a traced command inherits (nothing but four variables)."""

from __future__ import annotations

import itertools
import json
import mmap
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from sysspan.decisions.model import Decision
from sysspan.decisions.ring import ENV_RING, H_FULL, H_HEAD, HEADER_SIZE, open_ring
from sysspan.decisions.sampling import DecisionGate
from tests.tracehelpers import REPO, load_spans, sysspan

WRITER_C = REPO / "tests" / "data" / "ring" / "ring_writer.c"


@pytest.fixture(scope="module")
def c_writer(tmp_path_factory) -> Path:
    """tests/data/ring/ring_writer.c built with gcc against include/sysspan_decisions.h."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed (make test installs it)")
    out = tmp_path_factory.mktemp("ring") / "ring_writer"
    subprocess.run(
        ["gcc", "-O2", "-Wall", "-std=gnu11", "-pthread", "-I", str(REPO / "include"),
         str(WRITER_C), "-o", str(out), "-lm"],
        check=True,
    )
    return out


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SYSSPAN_", "TRACE", "BAGGAGE"))}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def _check(p: int, t: int, k: int) -> int:
    """ring_writer.c's result for decision k of thread t of process p."""
    value = ((p * 64 + t) << 32) ^ ((k * 2654435761) & ((1 << 64) - 1))
    return value - (1 << 64) if value >= 1 << 63 else value


def _write_into(ring, argv: list[str], timeout: float = 300) -> None:
    """Run a writer with the ring's variable, then close the ring (final drain, counters)."""
    try:
        subprocess.run(argv, env=_env(**ring.env()), check=True, timeout=timeout)
    finally:
        ring.close()


class Collector:
    """on_decision for the stress tests: every (name, input) once, with the right result."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, int]] = set()
        self.duplicates = 0
        self.wrong = 0

    def __call__(self, d: Decision) -> None:
        key = (d.name, d.input)
        if key in self.seen:
            self.duplicates += 1
        self.seen.add(key)
        p, t = (int(x) for x in d.name[1:].split("t"))
        if d.result != _check(p, t, d.input):
            self.wrong += 1


def test_c_processes_and_threads_write_at_once_none_lost_torn_or_duplicated(c_writer) -> None:
    procs, threads, each = 8, 4, 100_000
    gate = DecisionGate(1.0, 0)
    got = Collector()
    ring = open_ring(got, gate=gate, slot_count=1 << 15)
    assert os.stat(ring.path).st_mode & 0o777 == 0o600
    _write_into(ring, [str(c_writer), "stress", str(procs), str(threads), str(each)])
    total = procs * threads * each
    assert got.duplicates == 0 and got.wrong == 0 and ring.malformed == 0
    assert ring.received == len(got.seen) > 0
    assert ring.received + ring.full == total  # a span, or counted as lost to a full ring
    assert ring.abandoned == 0
    assert gate.count == total and gate.kept == ring.received
    assert not os.path.exists(ring.path)


def test_a_fresh_ring_is_ready_without_its_slots_being_written() -> None:
    """Zero is "free for the first lap": creating the ring writes its header page only, so
    the 4 MiB of slots are not faulted in before the command starts."""
    ring = open_ring(lambda _d: None)
    try:
        assert ring.size >= 1 << 22
        # the header, and the slot page or two the reader thread has looked at since
        assert os.stat(ring.path).st_blocks * 512 <= 4 * 4096
    finally:
        ring.close()


def _checksum(record: bytes, pos: int) -> int:
    """docs/decision-ring.md's check over slot bytes 16..55 and the payload."""
    record += bytes(-len(record) % 8)
    h = 0xCBF29CE484222325 ^ pos
    for (w,) in struct.iter_unpack("<Q", record):
        h = ((h ^ w) * 0x100000001B3) & ((1 << 64) - 1)
    return (h ^ (h >> 32)) & 0xFFFFFFFF


def test_records_written_as_documented_are_read_across_laps() -> None:
    """A writer that follows the documented layout, byte by byte, against the real reader:
    sequence words stored minus the slot's index, freed as position + slot_count."""
    import msgpack

    count, slot_size = 4, 128
    got: list[Decision] = []
    ring = open_ring(got.append, gate=DecisionGate(1.0, 0), slot_count=count, slot_size=slot_size)
    fd = os.open(ring.path, os.O_RDWR)
    mm = mmap.mmap(fd, ring.size)
    os.close(fd)
    try:
        for pos in range(3 * count + 1):
            slot = HEADER_SIZE + (pos % count) * slot_size
            assert struct.unpack_from("<Q", mm, slot)[0] == pos - pos % count  # free for pos
            struct.pack_into("<Q", mm, H_HEAD, pos + 1)
            payload = msgpack.packb(["doc", "lap", "f.py", pos, pos * 7])
            fields = struct.pack("<QQQIIII", 1000 + pos, 2000 + pos, 3, 77, 9, 0, len(payload))
            mm[slot + 16 : slot + 56 + len(payload)] = fields + payload
            struct.pack_into("<II", mm, slot + 8, os.getpid(), _checksum(fields + payload, pos))
            struct.pack_into("<Q", mm, slot, pos + 1 - pos % count)  # committed
            deadline = time.monotonic() + 30
            while len(got) <= pos and time.monotonic() < deadline:
                time.sleep(0.002)
            assert struct.unpack_from("<Q", mm, slot)[0] == pos + count - pos % count  # freed
    finally:
        mm.close()
        ring.close()
    assert [(d.input, d.result, d.start_ns, d.tid) for d in got] == [
        (p, p * 7, 1000 + p, 77) for p in range(3 * count + 1)
    ]
    assert ring.malformed == 0 and ring.abandoned == 0 and ring.received == 3 * count + 1


@pytest.mark.parametrize("ratio", [0.05, 0.002])  # gaps mostly within one chunk / across many
def test_python_threads_and_forked_children_count_exactly_when_sampled(tmp_path, ratio) -> None:
    prog = tmp_path / "w.py"
    prog.write_text(textwrap.dedent(
        """\
        import os, sys, threading
        import sysspan.decisions as d
        n = int(sys.argv[1])
        def work(tag):
            for i in range(n):
                d.record("py", tag, input=i, result=i % 3)
        pids = []
        for p in range(2):
            pid = os.fork()
            if pid == 0:
                ts = [threading.Thread(target=work, args=(f"p{p}t{t}",)) for t in range(3)]
                [t.start() for t in ts]
                [t.join() for t in ts]
                sys.exit(0)  # atexit reports what this process sampled away
            pids.append(pid)
        work("main")
        for pid in pids:
            assert os.waitpid(pid, 0)[1] == 0
        """
    ))
    gate = DecisionGate(ratio, 0)
    got: list[Decision] = []
    ring = open_ring(got.append, gate=gate)
    _write_into(ring, [sys.executable, str(prog), "20000"])
    total = 7 * 20_000
    assert gate.count == total  # every call counted, sampled in or not
    assert gate.kept == len(got) == ring.received and ring.full == 0 and ring.malformed == 0
    assert abs(len(got) - ratio * total) < 6 * (total * ratio * (1 - ratio)) ** 0.5
    assert all(d.file == str(prog) and d.line == 6 and d.result == d.input % 3 for d in got)
    assert len({(d.name, d.input) for d in got}) == len(got)


def test_a_writer_killed_between_reserve_and_commit_does_not_wedge_the_ring(c_writer) -> None:
    gate = DecisionGate(1.0, 0)
    got: list[Decision] = []
    ring = open_ring(got.append, gate=gate, stuck_bound_s=60)  # the dead pid frees it, not time
    try:
        killed = subprocess.run([str(c_writer), "killed"], env=_env(**ring.env()), capture_output=True, text=True)
        assert killed.returncode == -signal.SIGKILL
        assert int(killed.stdout) == 0  # it held slot 0, reserved and never committed
        subprocess.run([str(c_writer), "threads", "2", "50"], env=_env(**ring.env()), check=True)
        deadline = time.monotonic() + 30
        while len(got) < 100 and time.monotonic() < deadline:  # the reader moves on by itself
            time.sleep(0.02)
        assert len(got) == 100 and ring.abandoned == 1
    finally:
        ring.close()
    assert gate.count == 101 and gate.dropped == 1
    assert ring.attributes() == {"decision.ring.full": 0, "decision.ring.abandoned": 1}


def test_a_slot_reserved_by_a_live_writer_is_given_up_after_the_bound(c_writer) -> None:
    got: list[Decision] = []
    ring = open_ring(got.append, stuck_bound_s=0.2)
    fd = os.open(ring.path, os.O_RDWR)
    mm = mmap.mmap(fd, ring.size)
    os.close(fd)
    try:
        struct.pack_into("<Q", mm, H_HEAD, 1)  # slot 0 reserved (by "this" live process), never filled
        struct.pack_into("<I", mm, HEADER_SIZE + 8, os.getpid())
        deadline = time.monotonic() + 30
        while ring.abandoned == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ring.abandoned == 1
        subprocess.run([str(c_writer), "threads", "1", "1"], env=_env(**ring.env()), check=True)
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [g.qualified_name for g in got] == ["stress::p0t0"]
    finally:
        mm.close()
        ring.close()


def _hostile(mm: mmap.mmap, size: int, rng: random.Random, rounds: int) -> None:
    """Scribble on the ring like a broken or malicious writer: random bytes, plausible
    sequence words with garbage records, huge lengths, wild head and counters."""
    slot_size, count = 128, 16
    for _ in range(rounds):
        kind = rng.randrange(5)
        pos = rng.randrange(64)
        slot = HEADER_SIZE + (pos % count) * slot_size
        if kind == 0:
            off = rng.randrange(size - 64)
            mm[off : off + 64] = rng.randbytes(64)
        elif kind == 1:  # "committed" with a random body
            mm[slot + 8 : slot + slot_size] = rng.randbytes(slot_size - 8)
            struct.pack_into("<Q", mm, slot, pos + 1 - pos % count)  # stored minus the slot index
        elif kind == 2:  # "committed" msgpack-looking payload, wrong or right length
            body = bytes([0x95]) + rng.randbytes(rng.randrange(60))
            struct.pack_into("<I", mm, slot + 52, rng.choice([len(body), 0xFFFFFFFF, 72]))
            mm[slot + 56 : slot + 56 + len(body)] = body
            struct.pack_into("<Q", mm, slot, pos + 1 - pos % count)  # stored minus the slot index
        elif kind == 3:
            struct.pack_into("<Q", mm, H_HEAD, rng.choice([0, pos, 1 << 63, (1 << 64) - 1, rng.getrandbits(64)]))
        else:
            struct.pack_into("<QQ", mm, H_FULL, rng.getrandbits(64), rng.getrandbits(64))
            struct.pack_into("<IIII", mm, 12, *(rng.getrandbits(32) for _ in range(4)))  # geometry


@pytest.mark.parametrize("seed", range(6))
def test_hostile_ring_contents_never_crash_or_hang_the_reader(seed) -> None:
    errors: list[BaseException] = []
    old_hook = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)
    try:
        ring = open_ring(lambda _d: None, gate=DecisionGate(1.0, 0), slot_count=16, slot_size=128, stuck_bound_s=0.05)
        fd = os.open(ring.path, os.O_RDWR)
        mm = mmap.mmap(fd, ring.size)
        os.close(fd)
        rng = random.Random(seed)
        for _ in range(20):
            _hostile(mm, ring.size, rng, 50)
            time.sleep(0.01)
        mm.close()
        closer = threading.Thread(target=ring.close)
        closer.start()
        closer.join(30)
        assert not closer.is_alive(), "close() hung on a hostile ring"
    finally:
        threading.excepthook = old_hook
    assert errors == []
    assert ring.malformed >= 0 and isinstance(ring.full, int)


# ------------------------------------------------------------------ under the real sysspan

SHOW = textwrap.dedent(
    """\
    import json, os, sys
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        fds[fd] = target.split("[")[0]  # the kind of a pipe or socket, not its inode
    maps = []
    if os.environ.get("SYSSPAN_DECISION_RING"):  # mapped on the first decision, not before
        import sysspan.decisions as d
        ring = os.environ["SYSSPAN_DECISION_RING"]
        maps.append(ring in open("/proc/self/maps").read())
        d.record("show", "mapped")
        maps.append(ring in open("/proc/self/maps").read())
    print(json.dumps({"fds": fds, "env": dict(os.environ), "maps": maps}))
    """
)


@pytest.mark.parametrize("mode", [["--no-syscalls"], []], ids=["no-syscalls", "ptrace"])
def test_traced_command_sees_the_untraced_fds_and_env_plus_four_variables(tmp_path, mode) -> None:
    show = tmp_path / "show.py"
    show.write_text(SHOW)
    extra_r, extra_w = os.pipe()  # an inherited descriptor both runs must pass on alike
    os.set_inheritable(extra_r, True)
    env = _env(BAGGAGE="k=v", TRACEPARENT="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
               TRACESTATE="vendor=x")
    try:
        plain = subprocess.run([sys.executable, str(show)], env=env, capture_output=True, text=True,
                               check=True, pass_fds=(extra_r,), stdin=subprocess.DEVNULL)
        traced = subprocess.run(
            [sys.executable, "-m", "sysspan", *mode, "-q", "-q", "--trace-file", str(tmp_path / "t.jsonl"),
             "--", sys.executable, str(show)],
            env=env, capture_output=True, text=True, check=True, pass_fds=(extra_r,), stdin=subprocess.DEVNULL,
        )
    finally:
        os.close(extra_r)
        os.close(extra_w)
    a, b = json.loads(plain.stdout), json.loads(traced.stdout)
    assert b["fds"] == a["fds"] and str(extra_r) in b["fds"]
    added = {k: v for k, v in b["env"].items() if a["env"].get(k) != v}
    assert set(added) == {"TRACEPARENT", ENV_RING}  # TRACESTATE and BAGGAGE kept their values
    assert added["TRACEPARENT"] != env["TRACEPARENT"]  # now the run span's context
    assert {k for k in a["env"] if k not in b["env"]} == set()
    assert not any(k.startswith("SYSSPAN_DECISION_") and k != ENV_RING for k in b["env"])
    assert b["maps"] == [False, True]
    ring = b["env"][ENV_RING]
    assert not os.path.exists(ring)  # removed when the run ended
    assert [s.name for s in load_spans(tmp_path / "t.jsonl") if "decision.id" in s.attrs] == ["show::mapped"]


@pytest.mark.parametrize("mode", [["--no-syscalls"], []], ids=["no-syscalls", "ptrace"])
def test_sysspan_does_not_wait_for_a_background_child(tmp_path, mode) -> None:
    pidfile = tmp_path / "bg.pid"
    proc = sysspan(*mode, "-q", "--trace-file", str(tmp_path / "t.jsonl"), "--",
                   "sh", "-c", f"(sleep 30 </dev/null >/dev/null 2>&1 & echo $! > {pidfile}); echo done", timeout=60)
    try:
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "done\n"
        bg = int(pidfile.read_text())
        # sysspan is back while the background child still runs, and that child holds
        # nothing of sysspan's: no descriptor to wait for
        assert Path(f"/proc/{bg}/stat").read_text().rsplit(")", 1)[1].split()[0] in "RSD"
        fds = {fd: os.readlink(f"/proc/{bg}/fd/{fd}") for fd in os.listdir(f"/proc/{bg}/fd")}
        assert fds == {"0": "/dev/null", "1": "/dev/null", "2": "/dev/null"}
    finally:
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_c_header_client_under_sysspan_counts_exactly(tmp_path, c_writer) -> None:
    out = tmp_path / "t.jsonl"
    proc = sysspan("--no-syscalls", "--decision-sample", "0.01", "--decision-rate", "0",
                   "--trace-file", str(out), "--", str(c_writer), "fib", "20", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "6765\n"
    spans = load_spans(out)
    run = next(s for s in spans if s.is_run)
    decisions = [s for s in spans if "decision.id" in s.attrs]
    calls = 2 * 10946 - 1  # fib(20) calls fib 2 * fib(21) - 1 times
    assert run.attrs["decision.count"] == calls
    assert run.attrs["decision.count"] - run.attrs["decision.dropped"] == len(decisions) > 0
    d0 = decisions[0]
    assert d0.name == "bench::fib" and d0.attrs["code.file.path"].endswith("ring_writer.c")
    assert all(d.attrs["decision.result"] == str(int(int(d.attrs["decision.input"]) < 2)) for d in decisions)
    assert run.attrs["decision.ring.full"] == 0 and run.attrs["decision.ring.abandoned"] == 0
    assert run.attrs["decision.malformed"] == 0


def test_c_header_keeps_the_sampling_ratio_across_its_stack_lanes(tmp_path, c_writer) -> None:
    """The header's countdown is split into lanes picked by the stack pointer; every call is
    still kept with probability `ratio` (here 2%, within six standard deviations)."""
    out = tmp_path / "t.jsonl"
    proc = sysspan("--no-syscalls", "--decision-sample", "0.02", "--decision-rate", "0",
                   "--trace-file", str(out), "--", str(c_writer), "fib", "24", timeout=120)
    assert proc.returncode == 0, proc.stderr
    spans = load_spans(out)
    run = next(s for s in spans if s.is_run)
    kept = sum(1 for s in spans if "decision.id" in s.attrs) + run.attrs["decision.ring.full"]
    calls = 2 * 75025 - 1  # fib(24) calls fib 2 * fib(25) - 1 times
    assert run.attrs["decision.count"] == calls
    expected = calls * 0.02
    assert abs(kept - expected) < 6 * (expected * 0.98) ** 0.5, (kept, expected)
    depths = {int(s.attrs["decision.input"]) for s in spans if "decision.id" in s.attrs}
    assert len(depths) > 8  # decisions from many stack depths, so many lanes were used


def test_c_header_call_sites_shared_by_threads_keep_their_payload_and_clock(tmp_path, c_writer) -> None:
    """A call site's payload prefix is encoded once, by whichever thread gets there first,
    and its records' times come from the time stamp counter anchored to CLOCK_REALTIME:
    every record has its own site's name and line, and its time lies between the clock
    readings taken before the threads start and after they end, in order per thread."""
    out = tmp_path / "t.jsonl"
    proc = sysspan("--no-syscalls", "--decision-sample", "1", "--decision-rate", "0",
                   "--trace-file", str(out), "--", str(c_writer), "sites", "4", "1500", timeout=120)
    assert proc.returncode == 0, proc.stderr
    before, after = (int(x) for x in proc.stdout.split())
    spans = load_spans(out)
    run = next(s for s in spans if s.is_run)
    decisions = [s for s in spans if "decision.id" in s.attrs]
    assert run.attrs["decision.count"] == 4 * 1500
    assert run.attrs["decision.count"] - run.attrs["decision.dropped"] == len(decisions) > 4000
    assert run.attrs["decision.malformed"] == 0  # every checksum held
    lines = {}
    by_thread: dict[str, list[tuple[int, int]]] = {}
    for d in decisions:
        k = int(d.attrs["decision.input"])
        assert d.name == ("site::odd" if k & 1 else "site::even")
        assert d.attrs["code.file.path"].endswith("ring_writer.c")
        lines.setdefault(d.name, set()).add(d.attrs["code.line.number"])
        assert before <= d.start == d.end <= after
        by_thread.setdefault(d.attrs["decision.result"], []).append((k, d.start))
    assert len(lines) == 2 and all(len(v) == 1 for v in lines.values())
    assert lines["site::odd"] != lines["site::even"]
    assert set(by_thread) == {"0", "1", "2", "3"}
    for records in by_thread.values():
        times = [t for _k, t in sorted(records)]
        # a new anchor may move a thread's clock back by its interpolation error (< 1 us)
        assert all(b - a > -1000 for a, b in itertools.pairwise(times))
        assert times[-1] - times[0] > 10_000_000  # the records span more than 10 ms


def test_c_header_applies_the_rate_limit_in_the_writer(c_writer) -> None:
    """The header's rate (here 1,000/s, every decision sampled in) is applied before a
    record is written: the ring receives the bucket's start (1/100 s's worth: 10) plus the
    rate times the run, not every call, and the decisions refused still reach the exact
    count."""
    gate = DecisionGate(1.0, 1000)
    ring = open_ring(lambda d: None, gate=gate)
    t0 = time.monotonic()
    _write_into(ring, [str(c_writer), "fib", "20"])
    elapsed = time.monotonic() - t0
    assert gate.count == 2 * 10946 - 1  # fib(20) calls fib 2 * fib(21) - 1 times
    assert ring.full == 0 and ring.malformed == 0 and ring.abandoned == 0
    assert 10 <= ring.received <= 10 + 1000 * elapsed + 1
    assert gate.kept <= ring.received  # the reader's own bucket may refuse a few more


def test_c_header_keeps_recording_at_the_rate_after_the_burst(c_writer) -> None:
    """While the bucket is empty the header skips ahead instead of stopping at every call;
    the skip must end about when a token is back, so a steady writer still gets about the
    rate on average (and every call is counted)."""
    gate = DecisionGate(1.0, 1000)
    ring = open_ring(lambda d: None, gate=gate)
    try:
        proc = subprocess.run([str(c_writer), "paced", "60000", "5000"], env=_env(**ring.env()),
                              capture_output=True, text=True, check=True, timeout=120)
    finally:
        ring.close()
    elapsed_s = int(proc.stdout) / 1e9
    assert gate.count == 60000
    assert ring.full == 0 and ring.malformed == 0
    assert 10 + 0.7 * 1000 * elapsed_s <= ring.received <= 10 + 1000 * elapsed_s + 2, (ring.received, elapsed_s)


def test_c_header_in_a_dlopened_library_counts_exactly(tmp_path) -> None:
    """-fPIC code uses the initial-exec TLS model (no __tls_get_addr call per decision) and
    still works from a library loaded by dlopen()."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed (make test installs it)")
    data = REPO / "tests" / "data" / "ring"
    lib, host = tmp_path / "libfib.so", tmp_path / "fib_host"
    cc = ["gcc", "-O2", "-Wall", "-std=gnu11", "-pthread"]
    subprocess.run([*cc, "-fPIC", "-shared", "-I", str(REPO / "include"), str(data / "fib_lib.c"),
                    "-o", str(lib), "-lm"], check=True)
    subprocess.run([*cc, str(data / "fib_host.c"), "-o", str(host), "-ldl"], check=True)
    dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(lib)], capture_output=True,
                         text=True, check=True).stdout
    fib_body = dis.split("<fib>:", 1)[1].split("\n\n", 1)[0]
    assert "fib" in fib_body and "__tls_get_addr" not in fib_body
    out = tmp_path / "t.jsonl"
    proc = sysspan("--no-syscalls", "--decision-sample", "0.01", "--decision-rate", "0",
                   "--trace-file", str(out), "--", str(host), str(lib), "20", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "6765\n"
    spans = load_spans(out)
    run = next(s for s in spans if s.is_run)
    decisions = [s for s in spans if "decision.id" in s.attrs]
    assert run.attrs["decision.count"] == 2 * 10946 - 1
    assert run.attrs["decision.count"] - run.attrs["decision.dropped"] == len(decisions) > 0
    assert all(d.name == "lib::fib" for d in decisions)


def test_python_api_under_sysspan_ptrace_with_threads(tmp_path) -> None:
    prog = tmp_path / "p.py"
    prog.write_text(textwrap.dedent(
        """\
        import threading
        import sysspan.decisions as d
        def work(t):
            for i in range(300):
                d.record("api", f"t{t}", input=i, result=[t, i])
        ts = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        print(d.mode())
        """
    ))
    out = tmp_path / "t.jsonl"
    proc = sysspan("-f", "--decision-rate", "0", "--trace-file", str(out), "--", sys.executable, str(prog))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ring\n"
    spans = load_spans(out)
    run = next(s for s in spans if s.is_run)
    decisions = [s for s in spans if "decision.id" in s.attrs]
    assert run.attrs["decision.count"] == len(decisions) == 1200 and run.attrs["decision.dropped"] == 0
    pyproc = next(s for s in spans if s.is_process and s.attrs["process.pid"] == decisions[0].attrs["process.pid"])
    assert all(s.parent_id == pyproc.span_id for s in decisions)
    assert {(s.name, s.attrs["decision.input"]) for s in decisions} == {
        (f"api::t{t}", str(i)) for t in range(4) for i in range(300)
    }


def test_decision_pipe_flag_keeps_the_pipe_protocol(tmp_path) -> None:
    prog = tmp_path / "p.py"
    prog.write_text("import os, sysspan.decisions as d\nd.record('a', 'b', input=1)\nprint(d.mode(), 'SYSSPAN_DECISION_RING' in os.environ)\n")
    out = tmp_path / "t.jsonl"
    proc = sysspan("--no-syscalls", "--decision-pipe", "--trace-file", str(out), "--", sys.executable, str(prog))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "channel False\n"
    assert [s.name for s in load_spans(out) if "decision.id" in s.attrs] == ["a::b"]


def test_rate_limited_python_writer_writes_little_and_counts_exactly(tmp_path) -> None:
    prog = tmp_path / "w.py"
    prog.write_text("import sys, sysspan.decisions as d\nfor i in range(int(sys.argv[1])):\n    d.record('r', 'n', input=i)\n")
    gate = DecisionGate(1.0, 200)
    got: list[Decision] = []
    ring = open_ring(got.append, gate=gate)
    t0 = time.monotonic()
    _write_into(ring, [sys.executable, str(prog), "50000"])
    elapsed = time.monotonic() - t0
    assert gate.count == 50_000 and gate.kept == len(got)
    # the bucket's start (1/100 s's worth, at least 1: 2) and the rate over the run, not
    # 50,000 records
    assert 2 <= ring.received <= 2 + 200 * elapsed + 1
    assert ring.skipped == 50_000 - ring.received


PACED = """\
import sys, threading, time
import sysspan.decisions as d
seconds, threads = float(sys.argv[1]), int(sys.argv[2])
def work():
    n, t0 = 0, time.monotonic()
    while True:
        for i in range(1000):
            d.record("paced", "hot", input=i)
        n += 1000
        elapsed = time.monotonic() - t0
        if elapsed >= seconds:
            break
        time.sleep(0.0002)  # well above the limit, but not flat out
    sys.stdout.write(f"{n} {elapsed}\\n")  # one write: print() could interleave threads
ts = [threading.Thread(target=work) for _ in range(threads)]
[t.start() for t in ts]
[t.join() for t in ts]
"""


@pytest.mark.parametrize("threads", [1, 3])
def test_python_writer_at_the_rate_limit_keeps_the_rate_on_average(tmp_path, threads) -> None:
    """Above the limit the writer skips ahead from the rate of calls it sees, with one clock
    read per look: it must still keep about `rate` a second over the run (not a fraction of
    it, nor more), from one thread or several, and count every call."""
    prog = tmp_path / "paced.py"
    prog.write_text(PACED)
    gate = DecisionGate(1.0, 2000)
    ring = open_ring(lambda d: None, gate=gate)
    t0 = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, str(prog), "0.6", str(threads)], env=_env(**ring.env()),
                              capture_output=True, text=True, check=True, timeout=120)
    finally:
        whole = time.monotonic() - t0  # the limiter's time can be no longer than this
        ring.close()
    rows = [line.split() for line in proc.stdout.splitlines()]
    calls = sum(int(r[0]) for r in rows)
    deciding = min(float(r[1]) for r in rows)  # every thread decided at least this long
    assert len(rows) == threads and gate.count == calls and ring.full == 0 and ring.malformed == 0
    assert ring.skipped == calls - ring.received
    # starts with 20 tokens (1/100 s's worth)
    assert 20 + 0.7 * 2000 * deciding <= ring.received <= 20 + 2000 * whole + 1, (ring.received, deciding, whole)


def test_python_record_and_timed_decisions_share_the_countdown_and_count_exactly(tmp_path) -> None:
    """``record`` and ``decision`` decrement one countdown (gaps of ~500 calls, so across
    several of its 256-call chunks): every call of either is counted, each kind is kept at
    about the ratio, and a kept timed decision carries its result and its own line."""
    prog = tmp_path / "mixed.py"
    prog.write_text(textwrap.dedent(
        """\
        import sysspan.decisions as d
        for i in range(30000):
            d.record("mix", "instant", input=i)
            with d.decision("mix", "timed", input=i) as dec:
                dec.result = i * 2
        """
    ))
    gate = DecisionGate(0.002, 0)
    got: list[Decision] = []
    ring = open_ring(got.append, gate=gate)
    _write_into(ring, [sys.executable, str(prog)])
    assert gate.count == 60_000 and gate.kept == len(got) and ring.malformed == 0
    sd = (30_000 * 0.002 * 0.998) ** 0.5
    for name, line in (("instant", 3), ("timed", 4)):
        kept = [x for x in got if x.name == name]
        assert abs(len(kept) - 60) < 6 * sd, (name, len(kept))
        assert all(x.line == line for x in kept)
    assert all(x.result == x.input * 2 and x.end_ns >= x.start_ns for x in got if x.name == "timed")
