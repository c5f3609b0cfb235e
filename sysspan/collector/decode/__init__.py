"""strace-style decoding of system call arguments and return values.

Why two phases: reading tracee memory must happen while the tracee is stopped (at syscall entry
for inputs, at exit for outputs), and that is the tracer's hot path. Turning what was read into
text can happen later, off the hot path, even in another thread. So the decoder:

- ``capture_entry`` / ``capture_exit``: a list lookup by syscall number; ``None`` when nothing
  needs reading (the common case), else a tuple of plain bytes/ints read through the tracer's
  ``MemoryReader``. Outputs are read only when the call succeeded.
- ``format``: a pure function of the raw registers, the return value and the captured tuples,
  producing strace's text (``openat(AT_FDCWD, "/etc/passwd", O_RDONLY|O_CLOEXEC) = 3``). It
  never raises: anything malformed degrades to strace's raw hex rendering.

Each syscall is described by a signature (a list of argument printers, see ``SIGNATURES``),
compiled into per-number capture functions the first time a run captures or formats that
syscall (a run meets a few dozen of them); ``plans`` reads every signature's printers for
what the compiled stop loop reads.

Where things are:

- ``decoder``: ``Decoder`` (compilation, the hot-path captures, formatting) and ``Decoded``.
- ``signatures``: ``SIGNATURES``, syscall name → argument tokens and return style.
- ``tokens``: what each token means (which printer, "kind", it stands for).
- ``kinds/``: the printers, one module per family (files, buffers, memory, signals, process,
  network, fcntl_ioctl, timing, system, scalars), on the shapes in ``kinds/base``.
- ``reading``: ``MemoryReader`` and the tolerant memory-read helpers; ``text``: quoting and
  number/flag rendering; ``errno_text``: errno names and error return values.
"""

from sysspan.collector.decode.decoder import Decoded, Decoder
from sysspan.collector.decode.errno_text import errno_name, format_error, is_error
from sysspan.collector.decode.kinds.fcntl_ioctl import ioctl_request_text
from sysspan.collector.decode.kinds.network import sockaddr_text
from sysspan.collector.decode.signatures import SIGNATURES
from sysspan.collector.decode.text import quote, quote_hex

TYPE_CHECKING = False

if TYPE_CHECKING:  # an interface for type checkers only (reading.py), so not in __all__
    from sysspan.collector.decode.reading import MemoryReader as MemoryReader

__all__ = [
    "SIGNATURES",
    "Decoded",
    "Decoder",
    "errno_name",
    "format_error",
    "ioctl_request_text",
    "is_error",
    "quote",
    "quote_hex",
    "sockaddr_text",
]
