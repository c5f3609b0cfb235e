"""The recording API behind ``sysspan.decisions`` (see that package's docstring): loaded on
the first use of one of its names, so that sysspan itself, which imports the package's
sysspan-side modules (the ring's reader, the model), does not load it."""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from json.encoder import encode_basestring_ascii as _esc

TYPE_CHECKING = False

if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

_getframe = sys._getframe
_time_ns = time.time_ns

# The active sink: None (off), or a function (category, name, input, result, file, line,
# start_ns, end_ns) -> None. ``record`` tests it first, so "off" costs one global load.
_emit: Any = None
_mode = "off"
# In-process filter: None (keep everything) or a function t_ns -> bool that samples
# (SYSSPAN_DECISION_SAMPLE) and rate-limits (SYSSPAN_DECISION_RATE) and counts what it drops.
_filter: Any = None
_sampler: Any = None
_limiter: Any = None
_fd = -1
_pid = os.getpid()
_local = threading.local()  # .tid: the native thread id (gettid is a syscall; idents get reused)
_skipped = 0  # dropped in-process since the last line written (channel mode)
_SKIPPED_FLUSH = 256  # report drops at least this often, so an os._exit loses fewer
# ring mode: the countdown of calls left until the next look (see _ring_look) is split in
# two. ``record`` and ``decision`` decrement a closure cell (``_left``), kept at most
# _CHUNK so that it stays one of CPython's cached small ints: a decrement that allocates a
# new int object cost about four times as much as the rest of a sampled-out call. The
# remainder of a longer gap waits in ``_rest[0]`` and is moved in a chunk at a time.
_CHUNK = 256
_rest = [0]
_gap = 0
_recorded = 0
_dropped = 0
_errors = 0
_otel: Any = None
_lock = threading.Lock()  # SDK set-up
_count_lock = threading.Lock()  # _skipped / _dropped: exact also with threads

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, default=repr).encode
try:  # one C encoder for every call (JSONEncoder.encode builds a new one each time)
    from _json import make_encoder as _c_make_encoder  # what json.encoder.c_make_encoder is

    _c_encode: Any = _c_make_encoder(None, repr, _esc, None, ":", ",", False, False, True)
except ImportError:  # pragma: no cover - CPython always has _json
    _c_encode = None


def _dump(value: Any) -> str:
    """Compact ASCII JSON for ``value``; never raises (unencodable parts become ``repr``)."""
    kind = type(value)
    if value is None:
        return "null"
    if kind is str:
        return _esc(value)
    if kind is int:
        return int.__repr__(value)
    if kind is bool:
        return "true" if value else "false"
    try:
        if _c_encode is not None and (kind is dict or kind is list):
            return "".join(_c_encode(value, 0))
        return _encode(value)
    except (ValueError, TypeError, RecursionError, OverflowError):
        return _esc(repr(value))


def _tid() -> int:
    try:
        return _local.tid
    except AttributeError:
        tid = _local.tid = threading.get_native_id()
        return tid


# --------------------------------------------------------------------------- recording


# ``record`` and ``decision`` are defined in _countdown_api, below.


class _Off:
    """What ``decision()`` returns when nothing is recorded: accepts ``.result``."""

    __slots__ = ("result",)

    def __init__(self) -> None:
        self.result = None

    def __enter__(self) -> _Off:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class _Timed:
    """A timed decision: start at ``__enter__``, end at ``__exit__``, ``.result`` settable."""

    __slots__ = ("category", "name", "input", "result", "file", "line", "start_ns")

    def __init__(self, category: str, name: str, input: Any, file: str, line: int) -> None:
        self.category = category
        self.name = name
        self.input = input
        self.result: Any = None
        self.file = file
        self.line = line
        self.start_ns = 0

    def __enter__(self) -> _Timed:
        self.start_ns = _time_ns()
        return self

    def __exit__(self, exc_type: Any, _exc: Any, _tb: Any) -> None:
        end = _time_ns()
        emit = _emit
        if emit is None:
            return None
        result = self.result
        if exc_type is not None and result is None:
            result = {"exception": getattr(exc_type, "__name__", str(exc_type))}
        emit(
            self.category,
            self.name,
            self.input,
            result,
            self.file,
            self.line,
            self.start_ns or end,
            end,
        )
        return None


def _countdown_api() -> tuple[Callable[..., None], Callable[..., Any]]:
    """``record`` and ``decision`` around their shared countdown cell (see ``_CHUNK``)."""
    left = 0

    def record(category: str, name: str, input: Any = None, result: Any = None) -> None:
        """Record an instant decision made at the caller's line. Returns nothing, never raises."""
        nonlocal left
        if _emit is None:
            return
        left -= 1
        if left > 0:
            return  # sampled out: the whole cost is this countdown
        _record_due(category, name, input, result)

    def counting(category: str, name: str, input: Any = None, result: Any = None) -> None:
        # ``record``'s code while decisions go to the ring (see _COUNTING_CODE)
        nonlocal left
        left -= 1
        if left > 0:
            return
        _record_due(category, name, input, result)

    def decision(category: str, name: str, input: Any = None) -> Any:
        """A timed decision: ``with d.decision(cat, name, input=...) as dec: ...; dec.result = ...``.

        Its span covers the ``with`` block; under sysspan the syscalls of this thread made
        inside the block become its children. The source line is the ``with`` statement's.
        Sampling and rate limiting are decided here, at the start.
        """
        nonlocal left
        if _emit is None:
            return _Off()
        left -= 1
        if left > 0 or (_rest[0] > 0 and _refill()):
            return _Off()
        if _filter is not None and not _filter(_time_ns()):
            return _Off()
        frame = _getframe(1)
        return _Timed(category, name, input, frame.f_code.co_filename, frame.f_lineno)

    global _COUNTING_CODE
    _COUNTING_CODE = counting.__code__.replace(co_name="record")
    return record, decision


def _record_due(category: str, name: str, input: Any, result: Any) -> None:
    """``record``'s countdown ran out: the rest of a longer gap, or a look (and a record)."""
    if _emit is None:  # turned off while this call ran
        return
    rest = _rest[0]
    if rest > 0:  # _refill(), inlined: it runs every _CHUNK calls of a longer gap
        total = _left.cell_contents + rest
        hot = total if total < _CHUNK else _CHUNK
        _rest[0] = total - hot
        _left.cell_contents = hot
        if hot > 0:
            return
    t = _time_ns()
    if _filter is not None and not _filter(t):
        return
    frame = _getframe(2)  # record's caller
    _emit(category, name, input, result, frame.f_code.co_filename, frame.f_lineno, t, t)


# ``record`` runs one of two bodies, swapped by _off() and configure() on the one function
# object (programs keep references to it): with nothing to record, the check of ``_emit``
# and nothing else; in ring mode, the countdown alone (asking ``_emit`` first there cost
# about 3 ns of a 60 ns sampled-out call).
_COUNTING_CODE: Any = None
record, decision = _countdown_api()
record.__qualname__, decision.__qualname__ = "record", "decision"  # as if defined at the top
record.__module__ = decision.__module__ = "sysspan.decisions"  # where programs find them
_CHECKING_CODE = record.__code__
_left = record.__closure__[record.__code__.co_freevars.index("left")]  # type: ignore[attr-defined,index]


def _countdown() -> int:
    """Calls left until the next look (both parts of the countdown)."""
    return int(_left.cell_contents) + _rest[0]


def _countdown_add(n: int) -> None:
    """Add ``n`` calls to the countdown (relative: decrements other threads made meanwhile
    stay counted) and move what fits into the hot cell. No call in here: under the GIL no
    other thread runs between its reads and its writes."""
    total = _left.cell_contents + _rest[0] + n
    hot = total if total < _CHUNK else _CHUNK
    _rest[0] = total - hot
    _left.cell_contents = hot


def _refill() -> bool:
    """The hot cell ran out inside a longer gap: move the next chunk in. True when this
    call is still inside the gap (sampled out)."""
    _countdown_add(0)
    return bool(_left.cell_contents > 0)


def _set_countdown(n: int) -> None:
    _rest[0] = 0
    _left.cell_contents = 0
    _countdown_add(n)


def _make_filter() -> Any:
    """The in-process sampler + rate limiter as one function ``t_ns -> keep?``."""
    sampler, limiter = _sampler, _limiter
    blocked_until = 0  # the limiter has no token before this time: drop without asking it

    def keep(t_ns: int) -> bool:
        global _skipped, _dropped
        nonlocal blocked_until
        if t_ns >= blocked_until and (sampler is None or sampler.keep()):
            if limiter is None or limiter.allow(t_ns):
                return True
            blocked_until = limiter.next_allowed_ns()
        with _count_lock:
            _dropped += 1
            _skipped += 1
            flush = _skipped >= _SKIPPED_FLUSH
        if flush and _emit is _channel_emit:
            _report_skipped()
        return False

    return keep


# --------------------------------------------------------------------------- channel mode


def _channel_emit(
    category: Any,
    name: Any,
    input: Any,
    result: Any,
    file: str,
    line: int,
    start: int,
    end: int,
) -> None:
    global _skipped, _recorded
    if type(category) is not str:
        category = str(category)
    if type(name) is not str:
        name = str(name)
    text = (
        '{"category":'
        + _esc(category)
        + ',"name":'
        + _esc(name)
        + ',"input":'
        + _dump(input)
        + ',"result":'
        + _dump(result)
        + ',"file":'
        + _esc(file)
        + f',"line":{line},"start_ns":{start},"end_ns":{end},"pid":{_pid},"tid":{_tid()}'
    )
    if _filter is not None:
        with _count_lock:
            text += f',"skipped":{_skipped}'
            _skipped = 0
    _write((text + "}\n").encode("ascii"))
    _recorded += 1


def _write(data: bytes) -> None:
    global _errors
    try:
        while data:
            n = os.write(_fd, data)
            data = data[n:]
    except OSError:
        _errors += 1
        _off()


def _report_skipped() -> None:
    """A line that only carries the drop count (``{"skipped": N}``)."""
    global _skipped
    with _count_lock:
        n, _skipped = _skipped, 0
    if n:
        _write(f'{{"skipped":{n}}}\n'.encode("ascii"))


def _channel_atexit() -> None:
    if _emit is _channel_emit:
        _report_skipped()
    elif _ring_attached:
        _ring_flush()


def _check_pipe(env: Mapping[str, str]) -> int:
    """The decision fd from the environment, or -1 unless it is really sysspan's pipe."""
    import stat

    try:
        fd = int(env.get("SYSSPAN_DECISION_FD", ""))
        st = os.fstat(fd)
    except (ValueError, OSError):
        return -1
    if fd < 0 or not stat.S_ISFIFO(st.st_mode):
        return -1
    ino = env.get("SYSSPAN_DECISION_INO")
    if ino:
        try:
            if int(ino) != st.st_ino:
                return -1
        except ValueError:
            return -1
    return fd


# --------------------------------------------------------------------------- ring mode
#
# Sampling is a countdown: ``_countdown()`` calls until the next look (``_ring_look``),
# drawn from a geometric distribution, so a sampled-out decision costs one decrement and no
# random draw. A look counts the calls since the previous one as ``_gap - _countdown()``
# under the lock, which keeps counts exact when threads race into the slow path together.

_ring_path = ""
_ring_ops: Any = None  # sysspan.decisions._ring once this process has mapped the ring
_ring_attached = False
_ring_first = True  # the next look is the process's first: start inside a geometric gap
_ring_never = False
_ring_log1mp = 0.0  # log(1 - ratio); 0.0 = keep every decision
_ring_max_payload = 0
_blocked_until = 0
_last_look = 0
_per_ns = 0.0  # calls per nanosecond seen between looks (sizes the gap while rate-limited)
_NEVER = 1 << 62
# The ring's rate limit starts with this fraction of a second's worth of tokens (at least
# one), not a whole second's: a decision-heavy program's kept decisions are spread over its
# run instead of being its first `rate` calls, and a short one makes a few hundred records
# for sysspan to turn into spans, not `rate` of them. The bucket still holds up to a
# second's worth, so what a skip-ahead misses is made up right after it, and a program
# quiet for a second may burst as before. The C header does the same (SYSSPAN_START_DIV).
_RING_START_DIV = 100


def _draw_gap() -> int:
    """Calls until the next kept one: geometric with success probability = the ratio."""
    if _ring_never:
        return _NEVER
    if _ring_log1mp == 0.0:
        return 1
    import math
    import random

    return 1 + int(math.log(1.0 - random.random()) / _ring_log1mp)


def _ring_attach() -> bool:
    """Map the ring (first decision of this process) and read the writer's parameters."""
    global _ring_ops, _ring_attached, _ring_never, _ring_log1mp, _ring_max_payload
    global _sampler, _limiter, _errors
    try:
        from sysspan.decisions import _ring

        params = _ring.attach(_ring_path)
    except (ImportError, OSError, ValueError):
        params = None
    if params is None:
        _errors += 1
        _off()
        return False
    ratio, rate, _ring_max_payload = params
    import math

    _ring_never = not ratio > 0.0
    _ring_log1mp = math.log1p(-ratio) if 0.0 < ratio < 1.0 else 0.0
    if rate >= 1:
        from sysspan.decisions.sampling import RateLimiter

        _limiter = RateLimiter(int(rate), start=int(rate) // _RING_START_DIV)
    _ring_ops = _ring
    _ring_attached = True
    return True


def _ring_look(t_ns: int) -> bool:
    """The countdown ran out: keep this decision? Counts every call since the last look."""
    global _gap, _skipped, _dropped, _blocked_until, _last_look, _ring_first, _filter, _per_ns
    with _count_lock:
        if _ring_attached and _filter is None:
            return True  # another thread found that everything is kept
        left0 = _countdown()
        calls = _gap - left0
        if calls <= 0:
            return False  # counted by another thread's look
        if not _ring_attached:
            if not _ring_attach():
                return False
            if _ring_log1mp == 0.0 and not _ring_never and _limiter is None:
                # keep everything: no look at all from now on, so racing threads can
                # never count each other's decisions as skipped
                _filter = None
                return True
        keep = True
        if _ring_first:
            _ring_first = False
            gap = _draw_gap()
            if gap > 1:  # the first kept decision lies gap - 1 calls ahead
                keep = False
                _skipped += calls
                _dropped += calls
                _countdown_add(gap - 1 - left0)  # relative: keeps decrements made meanwhile
                _gap = gap - 1
                _last_look = t_ns
                return False
        limiter = _limiter
        if t_ns > _last_look:
            _per_ns = calls / (t_ns - _last_look)  # how fast this process decides
        if limiter is not None and (t_ns < _blocked_until or not limiter.allow(t_ns)):
            keep = False
            if t_ns >= _blocked_until:
                _blocked_until = limiter.next_allowed_ns()
        elif limiter is not None:
            _blocked_until = limiter.next_allowed_ns()
        if t_ns < _blocked_until:
            # Skip about as many calls as arrive before the limiter has a token again, a
            # quarter more: an estimate a little short costs a look that finds no token,
            # one a little long costs nothing, since the bucket holds the token for the
            # look after the skip (which then looks again at once while tokens are left).
            gap = max(1, min(int((_blocked_until - t_ns) * _per_ns * 1.25), 1 << 20))
        else:
            gap = _draw_gap()
        lost = calls if not keep else calls - 1
        _skipped += lost
        _dropped += lost
        _last_look = t_ns
        # Relative, not a reset to ``gap``: another thread may have counted down since
        # ``left0`` was read (the GIL can switch at any call above); those calls belong
        # to the next look.
        _countdown_add(gap - left0)
        _gap = gap
        return keep


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:  # noqa: BLE001 - the program's __repr__ must not break it
        return f"<unrepresentable {type(value).__name__}>"


def _ring_emit(
    category: Any,
    name: Any,
    input: Any,
    result: Any,
    file: str,
    line: int,
    start: int,
    end: int,
) -> None:
    global _skipped, _recorded, _errors
    if type(category) is not str:
        category = str(category)
    if type(name) is not str:
        name = str(name)
    pack = _ring_ops.pack  # msgpack, without importing msgpack into the program
    try:
        payload = pack([category, name, file, input, result], _safe_repr)
    except Exception:  # noqa: BLE001 - nesting too deep, out of memory, ...
        payload = pack([category, name, file, _safe_repr(input), _safe_repr(result)], _safe_repr)
    if len(payload) > _ring_max_payload:
        payload = pack(
            [category, name, file, f"<{len(payload)} bytes: larger than a ring slot>", None],
            _safe_repr,
        )
    carried = 0
    if _skipped:  # a look adds to it under the lock; take it under the lock too
        with _count_lock:
            carried, _skipped = _skipped, 0
    rc = _ring_ops.write(payload, start, end, line, carried)
    if rc == 0:
        _recorded += 1
        return
    # full (the ring counted the decision) or not mapped: the carried count must not be lost
    _ring_ops.add_skipped(carried)
    if rc < 0:
        _errors += 1
        _off()


def _ring_flush() -> None:
    """Report the decisions this process skipped and no record carried (at exit)."""
    global _skipped, _gap
    if not _ring_attached or _ring_ops is None:
        return
    with _count_lock:
        counting = _filter is _ring_look  # in keep-everything mode the countdown means nothing
        owed = _skipped + (max(0, _gap - _countdown()) if counting else 0)
        _skipped = 0
        _gap = _countdown()
    if owed:
        _ring_ops.add_skipped(owed)


# --------------------------------------------------------------------------- SDK mode


class _OtelSink:
    """Standalone export through the OpenTelemetry SDK, built on first use."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.tracer: Any = None
        self.provider: Any = None
        self.failed = False
        self.remote_ctx: Any = None

    def _setup(self) -> bool:
        if self.failed:
            return False
        try:
            from opentelemetry import trace
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

            from sysspan.config import resolve_otlp

            env = self.env
            # The protocol as sysspan itself resolves it (a bad variable: its default, never
            # an error in the program); the SDK exporter reads the rest from the environment.
            settings = resolve_otlp(env, warnings=[])
            exporter: Any
            if settings is not None and settings.protocol == "grpc":
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                    OTLPSpanExporter as GrpcExporter,
                )

                exporter = GrpcExporter()
            else:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter as HttpExporter,
                )

                exporter = HttpExporter()

            attrs: dict[str, Any] = {}
            if not env.get("OTEL_SERVICE_NAME") and "service.name=" not in env.get(
                "OTEL_RESOURCE_ATTRIBUTES", ""
            ):
                attrs["service.name"] = (
                    os.path.basename(sys.argv[0] if sys.argv and sys.argv[0] else "") or "python"
                )
            provider = TracerProvider(resource=Resource.create(attrs))
            provider.add_span_processor(BatchSpanProcessor(exporter))
            self.provider = provider
            from sysspan import __version__

            self.tracer = provider.get_tracer("sysspan.decisions", __version__)
            self._trace = trace
            carrier = {}
            if env.get("TRACEPARENT"):
                carrier["traceparent"] = env["TRACEPARENT"]
                if env.get("TRACESTATE"):
                    carrier["tracestate"] = env["TRACESTATE"]
                self.remote_ctx = TraceContextTextMapPropagator().extract(carrier)
            atexit.register(self.shutdown)
            return True
        except Exception as exc:  # noqa: BLE001 - never break the program over telemetry
            self.failed = True
            sys.stderr.write(
                f"sysspan.decisions: OpenTelemetry export unavailable ({exc}); decisions are not recorded\n"
            )
            return False

    def emit(
        self,
        category: Any,
        name: Any,
        input: Any,
        result: Any,
        file: str,
        line: int,
        start: int,
        end: int,
    ) -> None:
        global _recorded, _errors
        if self.tracer is None:
            with _lock:
                if self.tracer is None and not self._setup():
                    _off()
                    return
        try:
            from sysspan.decisions.model import Decision, decision_attributes

            d = Decision(
                str(category),
                str(name),
                input,
                result,
                file,
                line,
                0,
                start,
                end,
                _pid,
                _tid(),
            )
            ctx = None
            if not self._trace.get_current_span().get_span_context().is_valid:
                ctx = self.remote_ctx
            span = self.tracer.start_span(
                d.qualified_name,
                context=ctx,
                kind=self._trace.SpanKind.INTERNAL,
                attributes=decision_attributes(d),
                start_time=start,
            )
            span.end(end_time=end)
            _recorded += 1
        except Exception:  # noqa: BLE001
            _errors += 1

    def flush(self, timeout_ms: int = 30_000) -> bool:
        if self.provider is None:
            return True
        return bool(self.provider.force_flush(timeout_ms))

    def shutdown(self) -> None:
        provider, self.provider = self.provider, None
        if provider is not None:
            try:
                provider.shutdown()
            except Exception:  # noqa: BLE001
                pass


# --------------------------------------------------------------------------- configuration


def _off() -> None:
    global _emit, _mode
    _emit = None
    record.__code__ = _CHECKING_CODE
    _mode = "off"


def _after_fork() -> None:
    global _pid, _skipped, _local, _count_lock, _lock, _gap
    _count_lock = threading.Lock()  # another thread may have held it at fork time
    _lock = threading.Lock()
    _pid = os.getpid()
    _skipped = 0  # the parent reports its own
    _gap = _countdown()
    _local = threading.local()
    if _sampler is not None:
        _sampler.reseed()


def configure(env: Mapping[str, str] | None = None) -> str:
    """Decide (again) where decisions go, from ``env`` (default ``os.environ``); returns the
    mode: ``"ring"``, ``"channel"``, ``"otel"`` or ``"off"``. Called once at import.

    In-process filtering, applied before anything is built or written:
    ``SYSSPAN_DECISION_SAMPLE`` (ratio, default 1) and ``SYSSPAN_DECISION_RATE`` (decisions
    per second per process; under sysspan only when sysspan passes it, standalone default
    10,000; 0 = unlimited). Bad values are ignored (the program must not fail over them).
    """
    global _emit, _mode, _sampler, _limiter, _filter, _fd, _otel, _skipped
    global _gap, _ring_path, _ring_attached, _ring_first, _ring_ops, _blocked_until
    env = os.environ if env is None else env
    if _otel is not None:
        _otel.shutdown()
        _otel = None
    _off()
    _skipped = 0
    _sampler = _limiter = _filter = None
    _set_countdown(0)
    _gap = 0
    if _ring_ops is not None:
        _ring_ops.detach()
    _ring_ops, _ring_attached, _ring_first, _blocked_until = None, False, True, 0
    fd = _check_pipe(env) if env.get("SYSSPAN_DECISION_FD") else -1
    from sysspan.envnum import env_number  # tiny; read here like the rest of this module's imports

    if env.get("SYSSPAN_DECISION_RING"):
        # mapped on the first decision, so a process that records none never touches it
        _ring_path = env["SYSSPAN_DECISION_RING"]
        _set_countdown(1)
        _gap = 1
        _filter = _ring_look
        _emit = _ring_emit
        record.__code__ = _COUNTING_CODE
        _mode = "ring"
        return _mode
    if fd >= 0:
        _fd = fd
        _emit = _channel_emit
        _mode = "channel"
        rate = env_number(env, "SYSSPAN_DECISION_RATE", 0.0, float)
    elif env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        _otel = _OtelSink(env)
        _emit = _otel.emit
        _mode = "otel"
        rate = env_number(env, "SYSSPAN_DECISION_RATE", 10_000.0, float)
    else:
        return _mode
    ratio = env_number(env, "SYSSPAN_DECISION_SAMPLE", 1.0, float)
    if ratio < 1.0 or rate >= 1:
        from sysspan.decisions.sampling import RateLimiter, Sampler

        _sampler = Sampler(max(0.0, ratio)) if ratio < 1.0 else None
        _limiter = RateLimiter(int(rate)) if rate >= 1 else None
        _filter = _make_filter()
    return _mode


def mode() -> str:
    """``"ring"`` (under sysspan), ``"channel"`` (under sysspan --decision-pipe), ``"otel"``
    (standalone SDK export) or ``"off"``."""
    return _mode


def flush(timeout_ms: int = 30_000) -> bool:
    """Push out what is buffered (SDK mode); channel writes are never buffered."""
    if _otel is not None:
        return _otel.flush(timeout_ms)
    return True


def stats() -> dict[str, Any]:
    """This process's counters: ``mode``, ``recorded`` (written or exported), ``dropped``
    (sampled away or rate-limited in-process), ``skipped`` (dropped and not yet reported to
    sysspan), ``errors``."""
    return {
        "mode": _mode,
        "recorded": _recorded,
        "dropped": _dropped,
        "skipped": _skipped,
        "errors": _errors,
    }


os.register_at_fork(after_in_child=_after_fork)
atexit.register(_channel_atexit)
configure()
