"""``sysspan [OPTIONS] -- COMMAND`` and ``sysspan -p PID``: the main job.

Wires the pieces together: incoming trace context, the child's environment, the tracer,
the span builder, the sinks, and the end-of-run report. Everything here runs once per
trace; the per-syscall work lives in collector/ and builder.py.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType

from sysspan.builder import SpanBuilder, exit_code_of, mark_exit
from sysspan.collector.syscalls import machine_arch, parse_trace_expr, table
from sysspan.config import env_warnings
from sysspan.decisions.recorder import STDERR_READ_MAX, DecisionRecorder
from sysspan.decisions.ring import DecisionRing, open_ring
from sysspan.decisions.sampling import DecisionGate, RateLimiter, Sampler, parse_ratio
from sysspan.errors import CommandNotExecutable, CommandNotFound, UsageError
from sysspan.exporters.pipeline import Pipeline
from sysspan.exporters.sinks import build_sinks
from sysspan.exporters.span_policy import add_options as add_budget_options
from sysspan.exporters.span_policy import apply_budget
from sysspan.exporters.wholeline import Fallback, TextLines
from sysspan.ids import SpanIds, new_nonce, new_trace_id
from sysspan.model import Span, SpanKind, StatusCode
from sysspan.otlp_flags import add_otlp_flags
from sysspan.propagation.carriers import inject, resolve_incoming, write_carrier_file
from sysspan.propagation.detect import resource_for
from sysspan.propagation.github_ids import describe, github_parent
from sysspan.propagation.traceparent import NEW_TRACE_FLAGS, SpanContext
from sysspan.redact import redact
from sysspan.relayed_signals import RELAYED_SIGNALS, ignored_at_start, relayed_signals_blocked
from sysspan.span_roles import ROLE_KEY, RUN

TYPE_CHECKING = False

if TYPE_CHECKING:  # loaded only when used: the eBPF backend, msgpack for --decisions-out,
    # the line writers (-o, -c, -C), --stderr-tail; the decoder and the ptrace tracer (not
    # by --no-syscalls)
    from typing import Any

    from sysspan.collector.decode import Decoded, Decoder
    from sysspan.collector.ebpf.tracer import EbpfTracer
    from sysspan.collector.tracer import Tracer
    from sysspan.decisions.channel import DecisionChannel  # --decision-pipe
    from sysspan.decisions.ruchy import DecisionWriter
    from sysspan.text.strace_lines import LineWriter


def register_options(parser: argparse.ArgumentParser) -> None:
    """Options of the trace mode; strace's letters keep strace's meaning."""
    st = parser.add_argument_group("tracing (strace-compatible)")
    st.add_argument("-f", dest="follow", action="store_true", help="follow forks, vforks, threads and execs")
    st.add_argument("-p", dest="pids", action="append", type=_pid, metavar="PID", help="attach to a running process (Ctrl-C detaches)")
    st.add_argument("-e", dest="exprs", action="append", default=[], metavar="EXPR", help="qualifying expression: trace=SET (names, !name, %%file %%network %%process %%memory %%signal %%ipc %%desc)")
    st.add_argument("-o", dest="output", metavar="FILE", help="write strace-style lines to FILE")
    st.add_argument("--json", dest="json_lines", action="store_true", help="with -o (or -C): write the lines as JSON records with typed fields")
    st.add_argument("-c", dest="summary", action="store_true", help="print a summary table (%% time, seconds, usecs/call, calls, errors)")
    st.add_argument("-C", dest="summary_and_lines", action="store_true", help="like -c, and print the lines too")
    st.add_argument("-T", dest="show_time", action="store_true", help="show time spent in each syscall")
    st.add_argument("-t", dest="timestamps", action="count", default=0, help="prefix lines with the time (-tt: microseconds, -ttt: epoch)")
    st.add_argument("-s", dest="strsize", type=_nonneg_int("-s"), metavar="N", help="show at most N bytes of strings and buffers (default 32); implies --capture-data")
    st.add_argument("--capture-data", action="store_true", help="record read/write/send/recv buffer contents (off by default: only addresses and lengths)")
    st.add_argument("-k", dest="stack_trace", action="store_true", help="print the symbolised stack of each syscall (code.stacktrace on spans)")
    st.add_argument("--source", action="store_true", help="attribute each syscall to its source line (code.function.name, code.file.path, code.line.number)")
    st.add_argument("-y", dest="decode_fds", action="store_true", help="print paths associated with file descriptors")
    st.add_argument("-q", dest="quiet", action="count", default=0, help="suppress informational messages (-qq: also the trace file line)")

    ot = parser.add_argument_group("OpenTelemetry")
    add_otlp_flags(ot)
    ot.add_argument("--trace-file", metavar="FILE", help="write OTLP JSON lines to FILE (always, also when exporting over OTLP)")
    ot.add_argument("--output-dir", metavar="DIR", help="directory for the default trace file (SYSSPAN_OUTPUT_DIR, default ./sysspan-traces)")
    ot.add_argument("--sample", type=_ratio, metavar="RATIO", help="keep this fraction of syscall spans (xorshift RNG per syscall); counts stay exact")
    ot.add_argument("--max-spans-per-second", type=_nonneg_int("--max-spans-per-second"), metavar="N", help="circuit breaker: above N syscall spans/s, drop and count (0: no limit)")
    ot.add_argument("--service-name", metavar="NAME", help="service.name (default: OTEL_SERVICE_NAME, else the executable name)")
    add_budget_options(ot)
    ot.add_argument("--stderr-tail", type=_nonneg_int("--stderr-tail"), default=0, metavar="N", help="when the command fails, its last N stderr lines (redacted) become an event on the run span; stderr still passes through unchanged")

    pr = parser.add_argument_group("propagation")
    pr.add_argument("--traceparent", metavar="TP", help="parent the run span under this W3C traceparent (wins over TRACEPARENT)")
    pr.add_argument("--tp-carrier", metavar="FILE", help="read the incoming context from FILE and write the run span's context back to it")
    pr.add_argument("--tp-print", action="store_true", help="print the run span's TRACEPARENT on stderr before the command starts")
    pr.add_argument("--tp-required", action="store_true", help="fail (exit 1) when no valid incoming trace context is found")
    pr.add_argument("--no-syscalls", action="store_true", help="no ptrace: wrap the command in its run span only")
    st.add_argument("--backend", choices=("ptrace", "ebpf"), default="ptrace", help="how syscalls are recorded: ptrace (default; unprivileged, stops the program at each syscall) or ebpf (recorded in the kernel through libbpf or bpftrace; root, the program runs on)")
    st.add_argument("--no-seccomp", action="store_true", help="with -e trace=, stop at every syscall instead of installing a seccomp-bpf filter")
    de = parser.add_argument_group("decisions")
    de.add_argument("--decision-sample", type=_ratio, default=1.0, metavar="RATIO", help="keep this fraction of decisions (xorshift RNG); counts stay exact")
    de.add_argument("--decision-rate", type=_nonneg_int("--decision-rate"), default=10_000, metavar="N", help="decision circuit breaker: at most N decision spans per second (default 10000, 0: no limit)")
    de.add_argument("--decision-pipe", action="store_true", help="hand decisions over through an inherited pipe (SYSSPAN_DECISION_FD, JSON lines) instead of the shared-memory ring")
    de.add_argument("--decisions-out", metavar="DIR", help="also write the decisions as .ruchy/decisions.msgpack and decision_manifest.json under DIR")
    pr.add_argument("--strict", action="store_true", help="telemetry problems change the exit status (1) instead of being warnings")


def _pid(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid PID {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid PID {text!r}")
    return value


def _ratio(text: str) -> float:
    try:
        return parse_ratio(text, "value")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _nonneg_int(flag: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag}: expected a number, got {text!r}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"{flag}: must not be negative")
        return value

    return parse


def _warn(msg: str) -> None:
    print(f"sysspan: warning: {msg}", file=sys.stderr)


def _resolve_command(argv: list[str], env: dict[str, str]) -> str:
    cmd = argv[0]
    if "/" in cmd:
        if not os.path.exists(cmd):
            raise CommandNotFound(f"{cmd}: No such file or directory")
        if os.path.isdir(cmd) or not os.access(cmd, os.X_OK):
            raise CommandNotExecutable(f"{cmd}: Permission denied")
        return cmd
    found = _search_path(cmd, env.get("PATH", os.defpath))
    if found is None:
        raise CommandNotFound(f"{cmd}: command not found")
    return found


def _search_path(cmd: str, path: str) -> str | None:
    """``shutil.which(cmd, path=path)`` for a name without a slash; importing shutil
    (and the compression modules it pulls in) is a visible part of a short trace's start."""
    if not path:
        return None
    seen: set[str] = set()
    for directory in path.split(os.pathsep):
        if directory in seen:
            continue
        seen.add(directory)
        candidate = os.path.join(directory, cmd)
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    return None


def _trace_filter(exprs: list[str], arch: str) -> frozenset[int] | None:
    """-e trace=SET → the syscall numbers to trace (None: trace everything)."""
    selected: frozenset[int] | None = None
    for expr in exprs:
        key, sep, value = expr.partition("=")
        if not sep:
            key, value = "trace", expr
        if key in ("trace", "t"):
            selected = parse_trace_expr(value, arch)
        elif key in ("signal", "abbrev", "verbose", "raw", "status", "quiet"):
            raise UsageError(f"-e {key}=: not supported by sysspan (only trace=)")
        else:
            raise UsageError(f"-e: invalid qualifier {key!r}")
    return selected


class _SignalRelay:
    """Ctrl-C and friends: forwarded to the traced command (run mode) or a clean detach
    (attach mode). SIGINT/SIGQUIT typed at a terminal already reach the command through
    its process group, so they are only forwarded when sysspan is not on a terminal."""

    def __init__(self, on_signal) -> None:
        self.on_signal = on_signal
        self.saved: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}
        self.received: list[int] = []

    def __enter__(self) -> _SignalRelay:
        for sig in RELAYED_SIGNALS:
            if not ignored_at_start(sig):  # ignored on purpose (nohup): stays so for both
                self.saved[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, sig: int, _frame) -> None:
        self.received.append(sig)
        self.on_signal(sig)

    def __exit__(self, *exc) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)


def _from_terminal(sig: int) -> bool:
    if sig not in (signal.SIGINT, signal.SIGQUIT):
        return False
    try:
        return os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp()
    except OSError:
        return False


def run(ns: argparse.Namespace, env: dict[str, str] | None = None) -> int:
    """Trace ``ns.command`` (or attach to ``ns.pids[0]``) and return the exit status."""
    env = dict(os.environ if env is None else env)
    _check_args(ns)
    arch = machine_arch()
    traced = _trace_filter(ns.exprs, arch)

    derived, derive_warnings = github_parent(env)
    incoming, baggage, warnings = resolve_incoming(
        ns.traceparent, ns.tp_carrier, env, required=ns.tp_required and derived is None
    )
    if incoming is None and derived is not None and not warnings:
        # No TRACEPARENT inside a GitHub Actions job: join the workflow trace the
        # Collector's GitHub receiver builds, at the ids it derives.
        incoming = derived.context
        warnings += derive_warnings
        if not ns.quiet:
            print(f"sysspan: {describe(derived)}", file=sys.stderr)
    for w in warnings:
        _warn(w)
    path, exe_name, argv = _target(ns, env)

    trace_id = incoming.trace_id if incoming else new_trace_id()
    flags = incoming.flags if incoming else NEW_TRACE_FLAGS
    tracestate = incoming.tracestate if incoming else None
    ids = SpanIds(new_nonce())
    run_span_id = ids.make(0, 0, 0)
    run_ctx = SpanContext(trace_id=trace_id, span_id=run_span_id, flags=flags, tracestate=tracestate, remote=False)
    state_header = tracestate.to_header() if tracestate is not None else ""

    # Bad telemetry settings are warnings (the command runs) unless --strict.
    config_warnings: list[str] | None = None if ns.strict else []
    resource = resource_for(env, exe_name, config_warnings)
    if ns.service_name:
        resource["service.name"] = ns.service_name
    fallback = Fallback(env)
    sinks = build_sinks(
        ns, env, resource, exe_name, trace_id, {incoming.span_id} if incoming else (),
        fallback=fallback, warnings=config_warnings,
    )
    sinks = apply_budget(sinks, ns, run_span_id)
    for w in (config_warnings or []) + env_warnings(env):
        _warn(w)
    lines_out, writer = _line_output(ns, fallback)

    decoder = None if ns.no_syscalls else _decoder(ns, arch)
    source = _source_capture(ns, arch)
    if ns.tp_carrier:
        write_carrier_file(ns.tp_carrier, run_ctx, baggage)
    if ns.tp_print:
        print(f"TRACEPARENT={run_ctx.traceparent}", file=sys.stderr)
    child_env = inject(env, run_ctx, baggage)
    with relayed_signals_blocked():  # the ring's reader thread
        decision_gate, channel, recorder, decision_writer = _open_decisions(ns, arch, child_env)
    # The export thread starts once the child is forked: forking a multi-threaded process
    # is where deadlocks come from. A short queue: when export is the slower side, the
    # records wait in the stop loop's ring (150 bytes each), not as Python objects.
    pipeline = Pipeline(sinks, start=False, queue_batches=8)
    typed = _typed_args(decoder)
    builder = SpanBuilder(
        trace_id=trace_id,
        run_span_id=run_span_id,
        ids=ids,
        format_call=decoder.format if decoder is not None else _no_syscalls,
        emit=pipeline.emit,
        emit_all=pipeline.emit_all,
        line=writer.syscall if writer else None,
        line_event=writer.event if writer else None,
        trace_flags=flags,
        trace_state=state_header,
        gate=_span_gate(ns.sample, ns.max_spans_per_second),
        source=source,
        line_stack=writer.stack if writer else None,
        decisions=recorder,
        decision_writer=decision_writer,
        typed=typed.attributes if typed is not None else None,
        typed_stateless=typed.stateless if typed is not None else None,
    )

    tail = None
    if ns.stderr_tail and ns.command:
        from sysspan.stderr_tail import StderrTail

        tail = StderrTail(ns.stderr_tail)
    spawning = tail.child_stderr if tail is not None else contextlib.nullcontext
    start = time.time_ns()
    tracer: Tracer | EbpfTracer | None = None
    status: int | None
    # cli.main keeps the collector off from the imports to here: everything made so far
    # lives for the whole run, so collecting it would free nothing (frozen, it stays out of
    # every later collection too)
    gc.freeze()
    gc.enable()
    if ns.no_syscalls:
        recorder.direct = builder.emit_decision  # no tracer thread to hand them over
        with relayed_signals_blocked():
            pipeline.start(builder.materialize)
        from sysspan.collector.gc_window import rare_collections

        # decisions make short-lived objects as syscalls do: the same rare collections
        with rare_collections():
            status, root_pid = _run_plain(path, argv, child_env, channel, spawning)
    elif ns.backend == "ebpf":
        from sysspan.collector.ebpf.libbpf import new_tracer

        assert decoder is not None
        tracer = new_tracer(
            decoder, arch=arch, follow=ns.follow, traced=traced,
            execve_nrs=_numbers(arch, "execve", "execveat"),
        )
        status, root_pid = _trace(ns, tracer, builder, pipeline, channel, path, argv, child_env, spawning)
    else:
        from sysspan.collector.tracer import Tracer

        assert decoder is not None
        tracer = Tracer(
            decoder,
            follow=ns.follow,
            traced=traced,
            execve_nrs=_numbers(arch, "execve", "execveat"),
            seccomp=_seccomp_filter(ns, arch, traced),
            source=source,
            stderr_nrs=recorder.write_nrs,
            stderr_max=STDERR_READ_MAX,
        )
        status, root_pid = _trace(ns, tracer, builder, pipeline, channel, path, argv, child_env, spawning)
    end = time.time_ns()
    # What is made from here on (the last decisions, the run's spans) is written out before
    # the process ends: collecting it would free nothing. cli.main turns the collector back
    # on when the run returns.
    gc.disable()
    channel.close()
    builder.finish(end)

    code = exit_code_of(status)
    # From here on the command has run: cli.main returns its status even if writing the
    # telemetry fails in a way nothing below foresaw.
    ns.command_status = None if ns.strict else code
    run_span = _run_span(
        trace_id=trace_id,
        span_id=run_span_id,
        parent=incoming,
        name=builder.root_name() or exe_name,
        start=start,
        end=end,
        argv=argv,
        pid=root_pid,
        status=status,
        code=code,
        builder=builder,
        trace_state=state_header,
        flags=flags,
    )
    run_span.attributes.update(decision_gate.attributes())
    if tail is not None:
        lines = tail.finish()
        event = tail.event(lines, end) if run_span.status == StatusCode.ERROR else None
        if event is not None:
            run_span.events.append(event)
    run_span.attributes.update(channel.attributes())
    lost = getattr(tracer, "lost", 0)
    if tracer is not None:
        run_span.attributes["sysspan.ptrace.stops"] = tracer.stops
        run_span.attributes["sysspan.seccomp"] = tracer.seccomp_mode
        run_span.attributes["syscall.lost"] = lost
    if lost:
        _warn(f"{lost} syscall events were lost (the eBPF buffers overflowed); syscall.lost={lost}")
    pipeline.emit(run_span)
    reports = pipeline.close()
    if source is not None:  # after the export thread symbolised its last span
        source.save_cache()
    if builder.decision_writer is not None:
        builder.decision_writer.close()
    if decision_gate.malformed:
        _warn(f"{decision_gate.malformed} malformed decision records were ignored (decision.malformed)")
    if pipeline.prepare_errors:
        _warn(
            f"{pipeline.prepare_errors} syscall records could not be decoded "
            f"({pipeline.prepare_first_error}); they are missing from the trace"
        )

    if ns.summary or ns.summary_and_lines:
        from sysspan.text.summary import render_summary

        names = (decoder or _decoder(ns, arch)).name
        (lines_out or sys.stderr).write(render_summary(builder.stats_by_name(names)))
        if lost:
            (lines_out or sys.stderr).write(f"{lost} events lost (not in the table above)\n")
    if lines_out is not None:
        lines_out.close()
        for msg in lines_out.file.describe(lambda n: f"{n} line{'s' if n != 1 else ''}"):
            warnings.append(msg)
            _warn(f"-o: {msg}")
    elif writer is not None:
        writer.close()

    failed = _print_reports(reports, ns.quiet)
    if ns.strict and (failed or warnings or lost):
        return 1
    if ns.pids:
        return 0
    return code if code is not None else 1


def _check_args(ns: argparse.Namespace) -> None:
    if not ns.command and not ns.pids:
        raise UsageError("nothing to trace: give a command after -- or -p PID")
    if ns.command and ns.pids:
        raise UsageError("give either a command or -p PID, not both")
    if ns.pids and len(ns.pids) > 1:
        raise UsageError("-p: one process at a time")
    if ns.pids and ns.no_syscalls:
        raise UsageError("--no-syscalls cannot attach to a process (-p needs ptrace)")
    if ns.no_syscalls and ns.exprs:
        raise UsageError("-e selects syscalls to trace, but --no-syscalls traces none: drop one of them")
    if ns.backend == "ebpf" and (ns.source or ns.stack_trace or ns.no_seccomp):
        raise UsageError("--backend ebpf: --source, -k and --no-seccomp need --backend ptrace")
    if ns.summary and ns.summary_and_lines:
        raise UsageError("-c and -C are mutually exclusive")
    if ns.json_lines and ns.output is None and not ns.summary_and_lines:
        raise UsageError("--json: give -o FILE (or -C) for the JSON lines to go to")


def _target(ns: argparse.Namespace, env: dict[str, str]) -> tuple[str, str, list[str]]:
    """(executable path, executable name, argv) of what is traced."""
    if ns.command:
        return _resolve_command(ns.command, env), os.path.basename(ns.command[0]), list(ns.command)
    from sysspan.collector.procfs import proc_comm, read_cmdline

    try:
        argv = read_cmdline(ns.pids[0])
    except OSError:
        argv = []
    return "", proc_comm(ns.pids[0]), argv


def _line_output(
    ns: argparse.Namespace, fallback: Fallback
) -> tuple[TextLines | None, LineWriter | None]:
    """(-o file, strace-style line writer): lines with -o (unless -c) or with -C. The -o
    file never fails the run: what it cannot take goes to the fallback location."""
    lines_out: TextLines | None = None
    if ns.output is not None:
        lines_out = TextLines(ns.output, fallback)
    if not (ns.output is not None and not ns.summary or ns.summary_and_lines):
        return lines_out, None
    from sysspan.text.json_lines import JsonLineWriter
    from sysspan.text.strace_lines import LineWriter

    writer = (JsonLineWriter if ns.json_lines else LineWriter)(
        lines_out or sys.stderr,
        with_pid=ns.follow or bool(ns.pids),
        show_time=ns.show_time,
        timestamps=ns.timestamps,
        quiet=ns.quiet,
        # strace's <unfinished ...> form needs the stop order only the ptrace loop records
        interleave=(ns.follow or bool(ns.pids)) and not ns.json_lines and ns.backend != "ebpf",
    )
    return lines_out, writer


def _decoder(ns: argparse.Namespace, arch: str) -> Decoder:
    """The syscall decoder (its imports take milliseconds: not for --no-syscalls)."""
    from sysspan.collector.decode import Decoder

    # Buffer contents stay out of traces unless asked for (-s or --capture-data).
    return Decoder(
        arch,
        strsize=32 if ns.strsize is None else ns.strsize,
        decode_fds=ns.decode_fds,
        capture_data=ns.capture_data or ns.strsize is not None,
    )


def _typed_args(decoder: Decoder | None):
    """The typed argument attributes of syscall spans (None without a decoder)."""
    if decoder is None:
        return None
    from sysspan.collector.decode.typed import TypedArgs

    return TypedArgs(decoder)


def _no_syscalls(*_args: object) -> Decoded:
    raise AssertionError("--no-syscalls records no syscall to format")


def _source_capture(ns: argparse.Namespace, arch: str):
    """The SourceCapture for --source/-k, or None."""
    if not (ns.source or ns.stack_trace) or ns.no_syscalls:
        return None
    from sysspan.collector.source import SourceCapture
    from sysspan.collector.tracer import NativeReader

    try:
        return SourceCapture(NativeReader(), arch, full_stack=ns.stack_trace)
    except ValueError as exc:
        raise UsageError(f"--source/-k: {exc}") from None


def _open_decisions(ns: argparse.Namespace, arch: str, child_env: dict[str, str]) -> tuple[
    DecisionGate, DecisionChannel | DecisionRing, DecisionRecorder, DecisionWriter | None
]:
    """(gate, channel, recorder, --decisions-out writer or None): the shared-memory ring (or
    with --decision-pipe a pipe) the command and its descendants record decisions into, plus
    the stderr protocol; one gate samples,
    rate-limits and counts them all."""
    gate = DecisionGate(ns.decision_sample, ns.decision_rate)
    # the stderr protocol is read at write(2, ...) stops: none without syscalls
    recorder = DecisionRecorder(gate, frozenset() if ns.no_syscalls else _numbers(arch, "write"))
    channel: DecisionChannel | DecisionRing
    if ns.decision_pipe:
        from sysspan.decisions.channel import open_channel

        channel = open_channel(recorder.on_channel, gate=gate)
    else:
        channel = open_ring(recorder.on_channel, gate=gate)
    if isinstance(channel, DecisionRing):
        recorder.sync = channel.drain
    child_env.update(channel.env())
    writer: DecisionWriter | None = None
    if ns.decisions_out:
        from sysspan.decisions.ruchy import DecisionWriter

        try:
            writer = DecisionWriter(ns.decisions_out)
        except OSError as exc:
            raise UsageError(f"--decisions-out {ns.decisions_out}: {exc.strerror}") from None
    return gate, channel, recorder, writer


def _numbers(arch: str, *names: str) -> frozenset[int]:
    return frozenset(nr for nr, name in table(arch).items() if name in names)


def _seccomp_filter(ns: argparse.Namespace, arch: str, traced: frozenset[int] | None):
    """The prepared seccomp-bpf filter for -e trace= on a spawned command, or None."""
    if traced is None or not ns.command or ns.no_seccomp:
        return None
    from sysspan.collector.seccomp import PreparedFilter, build_filter, seccomp_available

    if not seccomp_available():
        _warn("seccomp-bpf is not available here; stopping at every syscall instead")
        return None
    return PreparedFilter(build_filter(arch, traced | _numbers(arch, "execve", "execveat")))


def _trace(
    ns: argparse.Namespace,
    tracer: Tracer | EbpfTracer,
    builder: SpanBuilder,
    pipeline: Pipeline,
    channel: DecisionChannel | DecisionRing,
    path: str,
    argv: list[str],
    child_env: dict[str, str],
    spawning=contextlib.nullcontext,
) -> tuple[int | None, int]:
    """Run the stop loop over the spawned command or the attached process; returns (wait
    status, root pid)."""
    if ns.command:

        def relay(sig: int) -> None:
            if not _from_terminal(sig):
                tracer.forward(sig)

        with _SignalRelay(relay):
            with spawning():
                root_pid = tracer.spawn(path, argv, child_env)
            channel.close_child_end()
            with relayed_signals_blocked():
                pipeline.start(builder.materialize)
            status = _run_tracer(tracer, builder, pipeline)
        for w in tracer.warnings:
            _warn(w)
        return status, root_pid
    with relayed_signals_blocked():
        pipeline.start(builder.materialize)
    root_pid = ns.pids[0]
    with _SignalRelay(lambda _sig: tracer.request_detach()):
        tracer.attach(root_pid)
        if not ns.quiet:
            print(f"sysspan: Process {root_pid} attached", file=sys.stderr)
        status = _run_tracer(tracer, builder, pipeline)
        if not ns.quiet and tracer.detaching:
            print(f"sysspan: Process {root_pid} detached", file=sys.stderr)
    for w in tracer.warnings:
        _warn(w)
    return status, root_pid


def _print_reports(reports: list, quiet: int) -> bool:
    """Each sink's end-of-run lines; failures as warnings. True when a sink failed."""
    failed = False
    for report in reports:
        for msg in report.messages:
            if report.spans_failed or report.degraded:
                failed = True
                _warn(msg)
            elif quiet < 2:
                print(f"sysspan: {msg}", file=sys.stderr)
    return failed


def _run_tracer(tracer, builder: SpanBuilder, pipeline: Pipeline) -> int | None:
    """The ptrace loop and the libbpf backend hand over a chunk of records at a time; the
    bpftrace backend parses its lines one record at a time."""
    from sysspan.collector.gc_window import rare_collections

    with rare_collections():
        # only the bpftrace tracer says False (the ptrace one is batched too, and an ebpf
        # run does not import its module just to ask)
        if getattr(tracer, "batched", True):
            return tracer.run(lambda records: _take_chunk(builder, pipeline, records), batch=True)
        return tracer.run(builder.handle)


def _take_chunk(builder: SpanBuilder, pipeline: Pipeline, records: list) -> None:
    """One drained chunk into spans, and what it made on to the export thread now: a chunk
    is what the loop wrote since the last one (at most a few ms ago), so encoding keeps
    pace with the command instead of waiting for a full batch, which a short command
    fills only when it exits."""
    builder.handle_all(records)
    pipeline.hand_over()


def _span_gate(ratio: float | None, per_second: int | None):
    """gate(t_ns) -> keep this syscall's span? None when every span is kept."""
    sample = Sampler(ratio) if ratio is not None and ratio < 1.0 else None
    limit = RateLimiter(per_second) if per_second else None
    if sample is None:
        return limit.allow if limit is not None else None
    keep = sample.keep
    if limit is None:
        return lambda _t: keep()
    allow = limit.allow
    return lambda t: keep() and allow(t)


def _run_plain(
    path: str, argv: list[str], env: dict[str, str], channel: DecisionChannel | DecisionRing,
    spawning=contextlib.nullcontext,
) -> tuple[int, int]:
    """--no-syscalls: run the command as is, forwarding signals, and return its wait status.
    It inherits exactly the descriptors an untraced run would (plus the pipe with
    --decision-pipe, which is inheritable). Spawned the way subprocess.Popen(close_fds=False)
    spawns it (posix_spawn, SIGPIPE and SIGXFSZ back to their defaults), without importing
    subprocess, whose imports are a visible part of a short command's run. Signals sysspan
    was started with ignored stay ignored (``_SignalRelay``); glibc's posix_spawn also
    leaves its two internal real-time signals (32, 33) ignored in the command."""
    pid = 0
    early: list[int] = []  # received while the command was being started
    reaped = False

    def relay(sig: int) -> None:
        if _from_terminal(sig) or reaped:
            return
        if pid:
            os.kill(pid, sig)
        else:
            early.append(sig)

    # The relay is in place before the command starts: a signal sent as soon as the command
    # shows it runs must not find sysspan with the default handlers.
    with _SignalRelay(relay):
        with spawning():
            pid = os.posix_spawn(path, argv, env, setsigdef=(signal.SIGPIPE, signal.SIGXFSZ))
        for sig in early:
            os.kill(pid, sig)
        channel.close_child_end()
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            status = 0
        reaped = True
    return status, pid


def _run_span(
    *,
    trace_id: int,
    span_id: int,
    parent: SpanContext | None,
    name: str,
    start: int,
    end: int,
    argv: list[str],
    pid: int,
    status: int | None,
    code: int | None,
    builder: SpanBuilder,
    trace_state: str,
    flags: int,
) -> Span:
    attrs: dict = {
        "process.executable.name": name,
        "process.command_args": redact(argv),
        "process.pid": pid,
        "syscall.count": builder.syscall_count,
        "syscall.dropped": builder.syscalls_dropped,
        "sysspan.process.count": builder.process_count,
        ROLE_KEY: RUN,
    }
    span = Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=parent.span_id if parent else 0,
        name=name,
        start_ns=start,
        end_ns=end,
        kind=SpanKind.INTERNAL,
        attributes=attrs,
        trace_state=trace_state,
        flags=flags,
    )
    mark_exit(span, status, code, nonzero_is_error=True)
    return span
