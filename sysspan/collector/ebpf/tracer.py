"""The eBPF backend: bpftrace records syscalls in the kernel while the program runs on.

Same interface as the ptrace ``Tracer`` (``spawn``/``attach``, ``run`` feeding the span
builder the same records), so decoding, spans, lines, tables and exports are shared. A
spawned command waits on a pipe before its exec until every probe is attached; bpftrace's
output (fully buffered: its writes are batched) is parsed on a reader thread.

The end of a run: a spawned command is over when sysspan (a child subreaper) has reaped it
and every descendant; an attached process when it is gone or on Ctrl-C. bpftrace then gets
SIGINT, drains its buffers and exits; what it reported lost is counted in ``lost``.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

from sysspan.collector.ebpf import preflight
from sysspan.collector.ebpf.tracefs import Target, syscall_tracepoints, tracepoint_fields
from sysspan.collector.procfs import is_running
from sysspan.collector.records import ProcessStart, Record
from sysspan.collector.syscalls import table
from sysspan.errors import EbpfUnavailable, SysspanError
from sysspan.relayed_signals import child_default_signals

# typing and ctypes stay out of a traced run's start (about 3 ms of imports): TYPE_CHECKING is
# only true for type checkers, and ctypes is loaded where -f or bpftrace's output needs it
TYPE_CHECKING = False

if TYPE_CHECKING:  # the bpftrace side imports these when it runs, so the libbpf path never does
    import io
    import subprocess

    from sysspan.collector.ebpf.parse import LineParser

#: The kernel-side buffers, all CPUs together: bpftrace formats fewer events per second than
#: a syscall-bound program makes (dd bs=1: ~700,000/s), so a burst waits here. 256 MiB holds
#: 2 million syscalls; each CPU gets a power-of-two share between 4 and 64 MiB.
#: SYSSPAN_EBPF_BUFFER_PAGES overrides the per-CPU size (pages, a power of two).
BUFFER_BUDGET = 256 << 20
BUFFER_PAGES_MIN, BUFFER_PAGES_MAX = 1024, 16384
READY_TIMEOUT_S = 60.0
SYNC_TIMEOUT_S = 30.0
#: The parsed part of bpftrace's output file is freed every this many bytes.
FREE_EVERY = 64 << 20
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 0x01, 0x02
#: Niceness of sysspan's own threads while the eBPF backend traces.
CONSUMER_NICE = 10
#: getpgid calls per marker round: their lines fill bpftrace's 8 KiB output buffer.
MARKER_CALLS = 20
PR_SET_CHILD_SUBREAPER = 36


def buffer_pages_setting() -> int | None:
    """SYSSPAN_EBPF_BUFFER_PAGES (a power of two), or None when it is not set."""
    text = os.environ.get("SYSSPAN_EBPF_BUFFER_PAGES")
    if not text:
        return None
    try:
        pages = int(text)
    except ValueError:
        pages = 0
    if pages <= 0 or pages & (pages - 1):
        raise SysspanError(f"SYSSPAN_EBPF_BUFFER_PAGES={text!r}: expected a power of two")
    return pages


def _buffer_pages() -> int:
    pages = buffer_pages_setting()
    if pages is None:
        share = BUFFER_BUDGET // (os.cpu_count() or 1) // 4096
        pages = 1 << max(share, 1).bit_length() - 1
        return min(max(pages, BUFFER_PAGES_MIN), BUFFER_PAGES_MAX)
    return pages


class EbpfTracer:
    """Traces one spawned command or attached process through bpftrace."""

    stops = 0
    seccomp_mode = False
    #: run() hands ``consume`` one record at a time (LibbpfTracer: a chunk's list)
    batched = False

    def __init__(self, decoder, *, arch: str, follow: bool, traced: frozenset[int] | None,
                 execve_nrs: frozenset[int]) -> None:  # noqa: ANN001
        self.bpftrace = self._preflight()
        self.decoder = decoder
        self.arch = arch
        self.follow = follow
        self.traced = traced
        names = table(arch)
        self.execve_argv = {
            nr: (2 if names[nr] == "execveat" else 1) for nr in execve_nrs if nr in names
        }
        self.warnings: list[str] = []
        self.stats: dict[str, int] = {}
        self.lost = 0
        self.root_pid = 0
        self.attached = False
        self.detaching = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._go_w = -1
        self._start_ns = 0
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._program_file = ""
        self._output_file = ""
        self._output: io.BufferedReader | None = None
        self._stopped = threading.Event()
        self._plans = decoder.plans()

    def _preflight(self) -> str:
        """What the machine lacks, as one line; the bpftrace path."""
        return preflight.preflight()

    # -- the program -------------------------------------------------------------------------
    def _program(self, target: Target) -> str:
        # bpftrace's side only: the libbpf path never loads it
        from sysspan.collector.ebpf.program import generate

        available = syscall_tracepoints() or frozenset()
        names = {nr: n for nr, n in table(self.arch).items() if n in available}
        fields = None
        if self.traced is not None:
            missing = sorted(table(self.arch)[nr] for nr in self.traced if nr not in names)
            if missing and len(missing) == len(self.traced):
                raise EbpfUnavailable(
                    f"-e trace=: this kernel has no tracepoints for {', '.join(missing)}; "
                    "use --backend ptrace"
                )
            fields = {nr: tracepoint_fields(names[nr]) for nr in self.traced if nr in names}
        return generate(target, self.traced, names, self._plans, self.execve_argv, fields)

    def _start_kernel(self, target: Target) -> None:
        # bpftrace's side only: the libbpf path never loads it
        import subprocess
        import tempfile

        from sysspan.collector.ebpf.program import STRLEN

        program = self._program(target)
        fd, self._program_file = tempfile.mkstemp(prefix="sysspan-", suffix=".bt")
        if os.environ.get("SYSSPAN_EBPF_DEBUG"):
            os.write(2, program.encode())
        with os.fdopen(fd, "w") as fh:
            fh.write(program)
        env = dict(os.environ)
        env["BPFTRACE_STRLEN"] = str(STRLEN)
        env["BPFTRACE_PERF_RB_PAGES"] = str(_buffer_pages())
        env.setdefault("BPFTRACE_MAP_KEYS_MAX", "65536")
        # bpftrace writes to a file, not a pipe: when sysspan's decoding falls behind, a full
        # pipe would stop bpftrace reading the kernel's buffers and events would be lost; the
        # file takes the backlog instead (about 100 bytes a syscall, removed at the end).
        fd, self._output_file = tempfile.mkstemp(prefix="sysspan-", suffix=".out")
        self._output = os.fdopen(fd, "rb")
        self._proc = subprocess.Popen(  # noqa: S603 - fixed argv
            [self.bpftrace, "-B", "full", "-o", self._output_file, self._program_file],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,  # Ctrl-C at a terminal must not stop it before the drain
        )

    def _wait_ready(self) -> None:
        """Call getpgid(0) until its probe, attached last, shows up in the output: then every
        probe is in place. Each call writes a long line, so a few calls push bpftrace's
        buffered output into the file."""
        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        seen = 0
        with open(self._output_file, "rb") as fh:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    err = (proc.stderr.read() if proc.stderr else b"").decode("utf-8", "replace")
                    raise EbpfUnavailable(f"bpftrace failed: {_first_error(err) or err.strip()}")
                for _ in range(MARKER_CALLS):
                    os.getpgid(0)
                fh.seek(seen)
                data = fh.read()
                if b"Z 0 " in data:
                    return
                seen += max(0, len(data) - 8)
                time.sleep(0.02)
        raise EbpfUnavailable("bpftrace did not attach its probes within a minute")

    # -- starting --------------------------------------------------------------------------
    def spawn(self, path: str, argv: list[str], env: dict[str, str]) -> int:
        """Fork a child that waits on a pipe, attach every probe, then let it exec."""
        if self.follow:  # orphaned descendants come back to sysspan, which waits for them
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        go_r, go_w = os.pipe()
        pid = self._fork_paused(path, argv, env, go_r, go_w)
        os.close(go_r)
        self._go_w = go_w
        self.root_pid = pid
        try:
            self._start_kernel(Target(pid, self.follow, not self.follow, os.getpid()))
            self._wait_ready()
        except BaseException:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            self._cleanup()
            raise
        self._start_ns = time.time_ns()
        return pid

    def _fork_paused(self, path: str, argv: list[str], env: dict[str, str], go_r: int,
                     go_w: int) -> int:
        """The command's process: default signal handling, no signal blocked, and exec once
        it reads b"g" from ``go_r`` (close-on-exec); it exits with 127 on anything else."""
        pid = os.fork()
        if pid == 0:
            try:
                os.close(go_w)
                for sig in child_default_signals():
                    signal.signal(sig, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_SETMASK, ())
                if os.read(go_r, 1) != b"g":
                    os._exit(127)
                os.execve(path, argv, env)
            except OSError as exc:
                os.write(2, f"sysspan: {argv[0]}: {exc.strerror}\n".encode())
            finally:
                os._exit(127)
        return pid

    def attach(self, pid: int) -> None:
        if not is_running(pid):
            raise SysspanError(f"-p {pid}: no such process")
        self.attached = True
        self.root_pid = pid
        try:
            self._start_kernel(Target(pid, self.follow, False, os.getpid()))
            self._wait_ready()
        except BaseException:
            self._cleanup()
            raise
        self._start_ns = time.time_ns()

    # -- control -----------------------------------------------------------------------------
    def request_detach(self) -> None:
        self.detaching = True
        self._stop.set()

    def forward(self, sig: int) -> None:
        if self.root_pid and not self.attached:
            try:
                os.kill(self.root_pid, sig)
            except ProcessLookupError:
                pass

    # -- running ---------------------------------------------------------------------------
    def run(self, consume: Callable[[Record], None]) -> int | None:
        """Run until the traced processes are gone; returns the root's wait status."""
        proc = self._proc
        if proc is None:
            raise SysspanError("nothing to trace: spawn or attach first")
        # bpftrace's side only: the libbpf path never loads it
        from sysspan.collector.ebpf.parse import LineParser
        from sysspan.collector.ebpf.program import reads_of

        offset = time.time_ns() - time.monotonic_ns()
        reads = [reads_of(p) for p in self._plans]
        parser = LineParser(self.decoder, reads, offset, consume, self.execve_argv)
        if not self.attached:
            consume(ProcessStart(self.root_pid, os.getpid(), self._start_ns, False, 0))
        else:
            consume(ProcessStart(self.root_pid, 0, self._start_ns, True, 0))
        _yield_cpu()
        reader = threading.Thread(target=self._read, args=(proc, parser), name="sysspan-ebpf", daemon=True)
        reader.start()
        status: int | None = None
        try:
            status = self._until_gone(proc.pid)
        finally:
            self._sync(proc, parser)
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            proc.wait()
            self._stopped.set()
            reader.join()
            err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
            self._cleanup()
        parser.finish()
        self.lost = parser.lost
        self.stats = {"lost": parser.lost, "unparsed": parser.unparsed}
        if self._error is not None:
            raise SysspanError(f"decoding the trace failed: {self._error!r}")
        if proc.returncode not in (0, -signal.SIGINT) and _first_error(err):
            self.warnings.append(f"bpftrace: {_first_error(err)}")
        return status

    def _sync(self, proc: subprocess.Popen[bytes], parser: LineParser) -> None:
        """Mark the end of every CPU's buffer with getpgid calls made on that CPU, until
        each mark comes back through the output: bpftrace drops what is still in its
        buffers when it is stopped. (The traced processes can only have run on the CPUs
        sysspan may run on, unless they widened their own affinity.)"""
        me = os.getpid()
        cpus = os.sched_getaffinity(0)
        deadline = time.monotonic() + SYNC_TIMEOUT_S
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                for cpu in cpus - parser.synced:
                    os.sched_setaffinity(0, {cpu})
                    for _ in range(MARKER_CALLS):
                        os.getpgid(me)
                parser.synced_changed.clear()
                if cpus <= parser.synced:
                    return
                parser.synced_changed.wait(0.01)
        finally:
            os.sched_setaffinity(0, cpus)
        if proc.poll() is None:
            self.warnings.append("bpftrace did not confirm it had read every event")

    def _read(self, proc: subprocess.Popen[bytes], parser: LineParser) -> None:
        """Follow bpftrace's output file until bpftrace has exited and all of it is read."""
        out = self._output
        assert out is not None
        rest = b""
        freed = 0
        try:
            while True:
                done = self._stopped.is_set()
                chunk = out.read(1 << 20)
                if out.tell() - freed >= FREE_EVERY:
                    freed = _free_read_part(out.fileno(), out.tell())
                if chunk:
                    whole, _, rest = (rest + chunk).rpartition(b"\n")
                    if whole:
                        parser.feed(whole.decode("utf-8", "surrogateescape").split("\n"))
                elif done:
                    break
                else:
                    time.sleep(0.005)
            if rest:
                parser.feed([rest.decode("utf-8", "surrogateescape")])
        except BaseException as exc:  # noqa: BLE001 - reported by run()
            self._error = exc

    def _until_gone(self, bpftrace_pid: int) -> int | None:
        """Let the spawned command go and reap it (and its descendants), or wait until the
        attached process is gone or detached; the root's wait status when it was ours."""
        if self.attached:
            self._wait_gone(self.root_pid)
            return None
        os.write(self._go_w, b"g")
        os.close(self._go_w)
        self._go_w = -1
        return self._reap_all(bpftrace_pid)

    def _reap_all(self, bpftrace_pid: int) -> int | None:
        """Reap the command and, with -f, every descendant (orphans come to this subreaper)."""
        status: int | None = None
        reaped = False
        while True:
            if reaped and (not self.follow or not _children() - {bpftrace_pid}):
                return status
            try:
                pid, st = os.waitpid(-1, os.WNOHANG if reaped else 0)
            except ChildProcessError:
                return status
            except InterruptedError:
                continue
            if pid == 0:
                time.sleep(0.02)
            elif pid == self.root_pid:
                status, reaped = st, True
            elif pid == bpftrace_pid:
                raise EbpfUnavailable("bpftrace exited while tracing")

    def _wait_gone(self, pid: int) -> None:
        while not self._stop.wait(0.05) and is_running(pid):
            pass

    def _cleanup(self) -> None:
        if self._go_w >= 0:
            os.close(self._go_w)
            self._go_w = -1
        for name in (self._program_file, self._output_file):
            if name:
                try:
                    os.unlink(name)
                except OSError:
                    pass
        self._program_file = self._output_file = ""
        if self._output is not None:
            self._output.close()
            self._output = None
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()


def _free_read_part(fd: int, upto: int) -> int:
    """Give the disk space of the output file's first ``upto`` bytes back (already parsed),
    so a long ``-p`` trace does not fill the disk; the file keeps its size. Returns how far
    it is freed (0 where the file system cannot punch holes)."""
    import ctypes

    end = upto & ~0xFFFF
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, ctypes.c_long(0),
                      ctypes.c_long(end)) != 0:
        return upto  # not supported here: stop trying until the next FREE_EVERY bytes
    return end


def _yield_cpu() -> None:
    """Lower the priority of every sysspan thread (bpftrace keeps its own): the traced
    program never waits for sysspan's decoding, which catches up from bpftrace's output
    file when the CPU is free. Threads started later inherit it."""
    for tid in os.listdir("/proc/self/task"):
        try:
            os.setpriority(os.PRIO_PROCESS, int(tid), CONSUMER_NICE)
        except OSError:
            continue


def _children() -> set[int]:
    """This process's live children, from every thread's children list."""
    out: set[int] = set()
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/children") as fh:
                out.update(int(x) for x in fh.read().split())
        except OSError:
            continue
    return out


def _first_error(text: str) -> str:
    """bpftrace's first real error line (its RLIMIT_MEMLOCK notice is not one)."""
    for line in text.splitlines():
        line = line.strip()
        if not line or "RLIMIT_MEMLOCK" in line or line.startswith(("WARNING", "^", "~")):
            continue
        if "ERROR" in line or "error" in line:
            return line
    return ""
