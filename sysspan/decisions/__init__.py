"""Record decisions from Python: ``import sysspan.decisions as d``.

::

    d.record("codegen", "integer_type", input={"max": 300}, result="u16")

    with d.decision("optimization", "inline", input={"callee": "f"}) as dec:
        ...                      # the syscalls made here become children of the decision
        dec.result = {"inlined": True}

The source file and line are taken from the caller (``sys._getframe(1)``: the code
object's ``co_filename`` as Python reports it, and the current line). Where decisions go
is decided once, when the API is first used (its first name looked up: ``d.record``; call
:func:`configure` to decide again):

* **under sysspan** (``SYSSPAN_DECISION_RING`` names sysspan's shared-memory ring, mode
  ``"ring"``): the first decision maps the file (through the small C extension
  ``sysspan.decisions._ring``, which does the atomic operations Python cannot do on an
  mmap); each kept decision is one msgpack payload written into a reserved slot, no
  syscall, no descriptor kept. A full ring counts the decision and never blocks. Sampling
  and the rate limit come from the ring's header and are applied by a countdown: a
  sampled-out call costs one decrement (see ``_ring_look``); at the limit the countdown is
  re-armed from the rate of calls, one clock read per kept decision, from a bucket that
  starts with a hundredth of a second's worth. Layout: docs/decision-ring.md.
* **under sysspan --decision-pipe** (``SYSSPAN_DECISION_FD`` names a pipe sysspan passed down): one JSON
  line per decision, written with a single ``os.write`` (pid via ``os.getpid()``, tid via
  ``threading.get_native_id()``). No ptrace cost, works with ``--no-syscalls``. The fd is
  only used when it is a pipe whose inode matches ``SYSSPAN_DECISION_INO`` (when given), so
  an inherited stale variable never makes us write into someone else's file.
* **standalone with OTLP configured** (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
  ``OTEL_EXPORTER_OTLP_ENDPOINT``): spans through the OpenTelemetry SDK (imported on first
  use; TracerProvider + BatchSpanProcessor + OTLPSpanExporter over gRPC or HTTP/protobuf
  per ``OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL``, else gRPC for port 4317 and HTTP
  otherwise), same attributes as sysspan's decision spans, parented under the current
  OpenTelemetry span or the ``TRACEPARENT`` of the environment, flushed at exit.
* **otherwise** nothing: ``record`` returns after one global test (see ``bench/``).

With the pipe or the SDK, before anything is built or written, decisions are sampled
in-process (``SYSSPAN_DECISION_SAMPLE=<ratio>``, xorshift64*) and rate-limited per process
(``SYSSPAN_DECISION_RATE=<per second>``: under sysspan when sysspan passes it, which keeps
a decision burst from costing a pipe write each; standalone default 10,000; 0 =
unlimited). Under sysspan the number dropped travels with the next line (``skipped``),
every 256 drops, and at exit, so sysspan's ``decision.count`` / ``decision.dropped`` stay
exact; a process that ends without running ``atexit`` (``os._exit``, a kill) can leave at
most 255 drops unreported (with the ring: at most the current sampling gap).

A timed decision left by an exception gets ``result = {"exception": "<type name>"}``
unless a result was set. Nothing here ever raises into the program: a write that fails
(sysspan gone) silently turns recording off.
"""

from __future__ import annotations

TYPE_CHECKING = False

if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    from sysspan.decisions._api import configure, decision, flush, mode, record, stats
    from sysspan.decisions.channel import DecisionChannel, open_channel
    from sysspan.decisions.model import Decision, DecisionLinker, decision_span
    from sysspan.decisions.ruchy import import_dir, read_manifest, read_msgpack, write_dir
    from sysspan.decisions.sampling import DecisionGate, RateLimiter, Sampler
    from sysspan.decisions.stderr_protocol import StderrDecoder

__all__ = [
    "Decision",
    "DecisionChannel",
    "DecisionGate",
    "DecisionLinker",
    "RateLimiter",
    "Sampler",
    "StderrDecoder",
    "configure",
    "decision",
    "decision_span",
    "flush",
    "import_dir",
    "mode",
    "open_channel",
    "read_manifest",
    "read_msgpack",
    "record",
    "stats",
    "write_dir",
]

_LAZY = {
    "Decision": "model",
    "decision_attributes": "model",
    "span_to_decision": "model",
    "DecisionWriter": "ruchy",
    "ImportCounters": "ruchy",
    "ManifestEntry": "ruchy",
    "DecisionLinker": "model",
    "decision_span": "model",
    "StderrDecoder": "stderr_protocol",
    "DecisionChannel": "channel",
    "open_channel": "channel",
    "Sampler": "sampling",
    "RateLimiter": "sampling",
    "DecisionGate": "sampling",
    "import_dir": "ruchy",
    "write_dir": "ruchy",
    "read_msgpack": "ruchy",
    "read_manifest": "ruchy",
}


# The recording API lives in _api, loaded on the first lookup of one of these names and
# then kept here, so ``d.record`` is a plain module attribute from then on. sysspan's own
# side (the ring's reader, the model, sampling) imports submodules of this package and so
# runs this file, but never needs the recording API (~0.7 ms of imports and set-up a run).
_API = frozenset({"configure", "decision", "flush", "mode", "record", "stats"})
_SUBMODULES = frozenset({
    "_api", "_ring", "channel", "delivery", "model", "recorder", "ring", "ruchy", "sampling",
    "stderr_protocol",
})


def __getattr__(attr: str) -> Any:
    """The recording API (and its private names) from ``_api``, and the sysspan-side
    classes, each imported on first use so that ``import`` stays cheap."""
    import importlib

    if attr in _SUBMODULES:  # ``from sysspan.decisions import _ring`` asks here first
        return importlib.import_module(f"{__name__}.{attr}")
    module = _LAZY.get(attr)
    if module is not None:
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    if attr.startswith("__"):
        raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
    api = importlib.import_module(f"{__name__}._api")
    try:
        value = getattr(api, attr)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {attr!r}") from None
    if attr in _API:
        globals()[attr] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_LAZY})


# A program that imports this package to record decisions gets the API now, in the thread
# that imports it, as it always did: loaded on first use instead, a thread's first
# ``d.record`` could be importing _api when another thread forks, and the child, finding
# the module's import lock held by a thread it does not have, would hang on its own first
# decision. Only the sysspan command itself (whose sysspan-side modules bring this file in)
# leaves it unloaded.
if "sysspan.cli" not in __import__("sys").modules:
    for _name in _API:
        __getattr__(_name)
    del _name
