"""The Decoder: signatures compiled per syscall, on first use, into capture functions, and
formatting.

``capture_entry``/``capture_exit`` are the tracer's hot path: a bounds check and a list
lookup by syscall number, returning None when nothing needs reading (the first call for a
number compiles it). ``format`` renders what was captured, off the hot path, and never
raises.
"""

from __future__ import annotations

import os
from collections import namedtuple
from collections.abc import Callable, Sequence

from sysspan.collector import constants as C
from sysspan.collector.decode.errno_text import format_error, is_error
from sysspan.collector.decode.kinds.base import Kind, _Ctx
from sysspan.collector.decode.kinds.fcntl_ioctl import _fcntl_ret
from sysspan.collector.decode.signatures import SIGNATURES
from sysspan.collector.decode.text import _U32, _U64, _hex, _oct, _ptr, _text, _with_link, quote
from sysspan.collector.decode.tokens import _kinds_for
from sysspan.collector.syscalls import ARCHES, table
from sysspan.errors import ConfigError

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any, NamedTuple

    from sysspan.collector.decode.reading import MemoryReader

_SIX_INTS = (int,) * 6
_PENDING: Any = object()  # a syscall's entry in the Decoder's tables before its first use


# Decoded and _Spec are declared twice: as a typing.NamedTuple for type checkers, and as the
# collections.namedtuple with the same fields and defaults that runs (typing.NamedTuple
# would import typing on every traced run). tests/unit/test_record_stubs.py keeps the two
# in step.
if TYPE_CHECKING:
    class Decoded(NamedTuple):
        """One syscall rendered the way strace prints it, plus the facts spans need."""

        name: str
        args: str
        ret: str
        error: str | None
        path: str | None
        argv: list[str] | None
        #: how many characters of ``args`` strace prints when the call enters; the rest it
        #: prints when the call returns (what an ``<unfinished ...>`` line shows); -1: all
        split: int = -1

    class _Spec(NamedTuple):
        name: str
        kinds: tuple[tuple[int, Kind], ...]
        ret: str
        entry_pos: tuple[int | None, ...]  # per kind: index into the entry tuple
        exit_pos: tuple[int | None, ...]
        ret_link_pos: int | None  # index of the returned fd's path in the exit tuple (-y)
        exit_on_error: bool  # some kind reads at exit after a failure too (same tuple positions)
        #: per kind: (i, kind, entry_pos, exit_pos), the loop ``_format_spec`` runs per call
        steps: tuple[tuple[int, Kind, int | None, int | None], ...] = ()

else:
    Decoded = namedtuple("Decoded", "name args ret error path argv split", defaults=(-1,))
    _Spec = namedtuple("_Spec", "name kinds ret entry_pos exit_pos ret_link_pos exit_on_error steps",
                       defaults=((),))


def _proc_fd_path(pid: int, fd: int) -> str | None:
    """What /proc says an fd (or AT_FDCWD) of ``pid`` refers to, for strace's -y."""
    where = f"/proc/{pid}/cwd" if fd == C.AT_FDCWD else f"/proc/{pid}/fd/{fd}"
    if fd < 0 and fd != C.AT_FDCWD:
        return None
    try:
        return _text(os.readlink(os.fsencode(where)))
    except OSError:
        return None


class Decoder:
    """Decodes syscalls of one architecture into strace-like text.

    ``strsize`` is strace's ``-s`` (data shown per buffer/string); ``decode_fds`` is ``-y``
    (show the path behind each descriptor, looked up with ``fd_path(pid, fd)``, by default from
    /proc at capture time). ``capture_data=False`` never reads the contents of data buffers
    (read/write/send/recv payloads, iovecs): they show as their address and length, so no
    payload reaches a trace unless asked for (docs/architecture.md §10), and no memory read is paid for it.
    """

    def __init__(
        self,
        arch: str,
        strsize: int = 32,
        decode_fds: bool = False,
        *,
        fd_path: Callable[[int, int], str | None] | None = None,
        capture_data: bool = True,
    ) -> None:
        if arch not in ARCHES:
            raise ConfigError(
                f"unknown architecture {arch!r} (expected one of: {', '.join(ARCHES)})"
            )
        if strsize < 0:
            raise ConfigError(f"-s: string size must be >= 0, got {strsize}")
        self.arch = arch
        self.strsize = strsize
        self.capture_data = capture_data
        self.decode_fds = decode_fds
        self.fd_path = fd_path or _proc_fd_path
        # struct stat: (size, st_mode offset, st_rdev offset, st_size offset)
        self.stat_layout = (144, 24, 40, 48) if arch == "x86_64" else (128, 16, 32, 48)
        self._table = table(arch)
        size = max(self._table, default=-1) + 1
        # A syscall's spec and capture functions are compiled the first time it is
        # captured or formatted (a run meets a few dozen of the ~360; compiling all of
        # them was most of the decoder's start-up). _PENDING marks one not compiled yet,
        # None one without a signature.
        pending: list[Any] = [None] * size
        for nr, name in self._table.items():
            if name in SIGNATURES:
                pending[nr] = _PENDING
        self._specs: list[_Spec | None] = pending.copy()
        self._entry: list[Callable[..., Any] | None] = pending.copy()
        self._exit: list[Callable[..., Any] | None] = pending.copy()
        self._exit_err: list[Callable[..., Any] | None] = pending
        self._n = size
        # A third of the syscalls share their signature with another: each signature is
        # compiled once.
        self._compiled: dict[tuple[str, str], tuple[_Spec, Any, Any, Any]] = {}

    # ---- compilation ---------------------------------------------------------------------

    def _spec(self, nr: int) -> _Spec | None:
        """Syscall ``nr``'s spec (None: a number without a signature)."""
        spec = self._specs[nr] if 0 <= nr < self._n else None
        return self._compile_nr(nr) if spec is _PENDING else spec

    def _compile_nr(self, nr: int) -> _Spec:
        """Compile syscall ``nr`` (which has a signature) on its first use; its spec."""
        name = self._table[nr]
        sig = SIGNATURES[name]
        done = self._compiled.get(sig)
        if done is None:
            done = self._compiled[sig] = self._compile(name, sig)
        spec, self._entry[nr], self._exit[nr], self._exit_err[nr] = done
        if spec.name != name:
            spec = spec._replace(name=name)
        self._specs[nr] = spec
        return spec

    def _captured_at_entry(self, kind: Kind) -> bool:
        return kind.has_entry and (self.decode_fds or not kind.fd_like)

    def _compile(self, name: str, sig: tuple[str, str]) -> tuple[_Spec, Any, Any, Any]:
        kinds = _kinds_for(sig[0])
        ret = sig[1]
        entry_caps: list[tuple[int, Callable[..., Any]]] = []
        exit_caps: list[tuple[int, Callable[..., Any]]] = []
        exit_err_caps: list[tuple[int, Callable[..., Any]]] = []
        entry_pos: list[int | None] = []
        exit_pos: list[int | None] = []
        for i, kind in kinds:
            if self._captured_at_entry(kind):
                entry_pos.append(len(entry_caps))
                entry_caps.append((i, kind.entry))
            else:
                entry_pos.append(None)
            if kind.has_exit:
                exit_pos.append(len(exit_caps))
                exit_caps.append((i, kind.exit))
                exit_err_caps.append((i, kind.exit if kind.exit_on_error else _nothing))
            else:
                exit_pos.append(None)
        ret_link_pos = self._ret_link_pos(ret, len(exit_caps))
        if ret_link_pos is not None:
            exit_caps.append((-1, _ret_fd_link if ret == "fd" else _ret_fcntl_link))
        on_error = any(kind.exit_on_error for _, kind in kinds)
        steps = tuple(
            (i, kind, ep, xp) for (i, kind), ep, xp in zip(kinds, entry_pos, exit_pos, strict=True)
        )
        spec = _Spec(
            name, tuple(kinds), ret, tuple(entry_pos), tuple(exit_pos), ret_link_pos, on_error,
            steps,
        )
        exit_err = _make_exit(self, exit_err_caps) if on_error else None
        return spec, _make_entry(self, entry_caps), _make_exit(self, exit_caps), exit_err

    def _ret_link_pos(self, ret: str, n_exit: int) -> int | None:
        """-y: the returned fd's path follows the exit captures (None: not captured)."""
        return n_exit if self.decode_fds and ret in ("fd", "fcntl") else None

    def _plan(self, sig: tuple[str, str]) -> tuple[tuple | None, tuple | None]:
        """(entry reads, exit reads) the loop can make for this signature's captures; a
        side is None when some capture on it must read at the stop itself (in Python)."""
        entry: list | None = []
        # -y: the returned fd's path comes from /proc at the stop
        exit_: list | None = None if self._ret_link_pos(sig[1], 0) is not None else []
        for i, kind in _kinds_for(sig[0]):
            if kind.exit_on_error:
                # read also when the call fails (an interrupted sleep's remaining time):
                # the loop runs its plans on success only, Python's capture on both
                exit_ = None
            if entry is not None and self._captured_at_entry(kind):
                got = kind.plan(self, i, False)
                entry = None if got is None else [*entry, *got]
            if exit_ is not None and kind.has_exit:
                got = kind.plan(self, i, True)
                exit_ = None if got is None else [*exit_, *got]
        return (
            tuple(entry) if entry is not None else None,
            tuple(exit_) if exit_ is not None else None,
        )

    def plans(
        self, stderr_nrs: frozenset[int] = frozenset(), stderr_max: int = 0
    ) -> list[tuple | None]:
        """What the compiled stop loop reads from tracee memory, indexed by syscall number:
        None, or (entry ops, entry needs Python, exit ops, exit needs Python). Writes to
        fd 2 of ``stderr_nrs`` also keep up to ``stderr_max`` bytes of their data (the
        decision protocol on stderr)."""
        from sysspan.collector.decode.kinds.base import PLAN_RVAL, mem_op

        by_sig: dict[tuple[str, str], tuple[tuple | None, tuple | None]] = {}
        out: list[tuple | None] = []
        for nr in range(max(self._n, max(stderr_nrs, default=-1) + 1)):
            parts = None
            if nr < self._n and self._specs[nr] is not None:
                sig = SIGNATURES[self._table[nr]]
                parts = by_sig.get(sig)
                if parts is None:
                    parts = by_sig[sig] = self._plan(sig)
            entry, exit_ = parts if parts is not None else ((), ())
            exit_ops = exit_ or ()
            if nr in stderr_nrs:
                exit_ops = (*exit_ops, mem_op(1, stderr_max, -1, PLAN_RVAL, 0, 0, 2, op=2))
            if parts is None and not exit_ops:
                out.append(None)
                continue
            out.append((entry or (), entry is None, exit_ops, exit_ is None))
        return out

    # ---- hot path ------------------------------------------------------------------------

    def capture_entry(
        self, nr: int, args: tuple[int, ...], pid: int, reader: MemoryReader
    ) -> object | None:
        """Read what this syscall's inputs point to; None when nothing needs reading."""
        if 0 <= nr < self._n:
            fn = self._entry[nr]
            if fn is not None:
                if fn is _PENDING:
                    self._compile_nr(nr)
                    return self.capture_entry(nr, args, pid, reader)
                return fn(args, pid, reader)
        return None

    def capture_exit(
        self, nr: int, args: tuple[int, ...], rval: int, pid: int, reader: MemoryReader
    ) -> object | None:
        """Read what the syscall wrote; None when it wrote nothing we show.

        Outputs of a failed call are read only for the few that write something when they
        fail (an interrupted sleep's remaining time), so a tracer must call this for failed
        calls as well and leave the choice to the decoder.
        """
        if 0 <= nr < self._n:
            fn = self._exit_err[nr] if -4096 < rval < 0 else self._exit[nr]
            if fn is not None:
                if fn is _PENDING:
                    self._compile_nr(nr)
                    return self.capture_exit(nr, args, rval, pid, reader)
                return fn(args, rval, pid, reader)
        return None

    # ---- formatting ----------------------------------------------------------------------

    def name(self, nr: int) -> str:
        """The syscall's name, or strace's ``syscall_0x1f4`` for numbers the table lacks."""
        name = self._table.get(nr)
        return name if name is not None else f"syscall_{nr & _U64:#x}"

    def format(
        self,
        nr: int,
        args: tuple[int, ...],
        rval: int | None,
        entry: object | None,
        exit: object | None,
    ) -> Decoded:
        """Render one syscall; a pure function of its inputs that never raises."""
        # What the tracers hand over (six unsigned ints) is used as it is: normalising it
        # was a fifth of formatting a call.
        if not (type(args) is tuple and tuple(map(type, args)) == _SIX_INTS
                and min(args) >= 0 and max(args) <= _U64):
            try:
                args = tuple(int(a) & _U64 for a in args[:6]) + (0,) * max(0, 6 - len(args))
            except (TypeError, ValueError):
                args = (0,) * 6
        if rval is not None and not isinstance(rval, int):
            rval = None
        spec = self._specs[nr] if isinstance(nr, int) and 0 <= nr < self._n else None
        if spec is _PENDING:
            spec = self._compile_nr(nr)
        try:
            if spec is None:
                return self._format_raw(nr, args, rval, 6)
            return self._format_spec(spec, args, rval, entry, exit)
        except Exception:  # noqa: BLE001 - the decoder must never take the tracer down
            nargs = 6 if spec is None else _nargs(spec)
            return self._format_raw(nr, args, rval, nargs)

    def _format_raw(self, nr: int, args: Sequence[int], rval: int | None, nargs: int) -> Decoded:
        ret, error = self._ret_text(rval, "d", None)
        return Decoded(
            self.name(nr) if isinstance(nr, int) else "syscall_?",
            ", ".join(_hex(a) for a in args[:nargs]),
            ret,
            error,
            None,
            None,
        )

    def _format_spec(
        self, spec: _Spec, args: Sequence[int], rval: int | None, entry: object, exit: object
    ) -> Decoded:
        ctx = _Ctx(self, args, rval)
        ent = entry if isinstance(entry, tuple) else ()
        ext = exit if isinstance(exit, tuple) and (ctx.ok or spec.exit_on_error) else ()
        parts = []
        split = -1
        width = 0  # of ", ".join(parts) so far, plus its separator
        nent = len(ent)
        next_ = len(ext)
        for i, kind, ep, xp in spec.steps:
            text = kind.render(
                ctx, i,
                ent[ep] if ep is not None and ep < nent else None,
                ext[xp] if xp is not None and xp < next_ else None,
            )
            if text is not None:
                if split < 0 and kind.has_exit:
                    split = width + kind.entry_chars(text)
                parts.append(text)
                width += len(text) + 2
        link = None
        if spec.ret_link_pos is not None and spec.ret_link_pos < len(ext):
            link = ext[spec.ret_link_pos]
        ret, error = self._ret_text(rval, spec.ret, args, link)
        path = ctx.path
        if path is None and ctx.fdlinks:
            first = ctx.fdlinks[min(ctx.fdlinks)]
            path = first if first.startswith("/") else None
        return Decoded(spec.name, ", ".join(parts), ret, error, path, ctx.argv, split)

    def _ret_text(
        self, rval: int | None, style: str, args: Sequence[int] | None, link: object = None
    ) -> tuple[str, str | None]:
        if rval is None:
            return "?", None
        if is_error(rval):
            return format_error(-rval)
        if style == "x":
            return _hex(rval & _U64), None
        if style == "o":
            return _oct(rval), None
        if style == "fd":
            return _with_link(str(rval), link), None
        if style == "fcntl" and args is not None:
            cmd = args[1] & _U32
            if cmd in (0, 1030):  # F_DUPFD, F_DUPFD_CLOEXEC return a new descriptor
                return _with_link(str(rval), link), None
            return _fcntl_ret(cmd, rval, self.arch), None
        return str(rval), None

    # ---- shared renderers used by the kinds --------------------------------------------

    def show_str(self, data: bytes, total: int) -> str:
        """Quote up to ``strsize`` bytes, adding ``...`` when ``total`` is longer."""
        s = self.strsize
        return quote(data[:s]) + ("..." if total > s else "")

    def show_iov(self, items: tuple, count: int) -> str:
        out = []
        for k, item in enumerate(items):
            if k >= self.strsize:
                out.append("...")
                break
            base, length, data, shown = item
            text = self.show_str(data, shown) if isinstance(data, bytes) else _ptr(base)
            out.append(f"{{iov_base={text}, iov_len={length}}}")
        else:
            if len(items) < count:
                out.append("...")
        return "[" + ", ".join(out) + "]"


def _nargs(spec: _Spec) -> int:
    if not spec.kinds:
        return 0
    i, kind = spec.kinds[-1]
    return min(6, i + kind.width)


def _nothing(
    d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
) -> None:
    """The exit capture of a kind that reads nothing after a failed call."""
    return None


def _ret_fd_link(
    d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
) -> str | None:
    return d.fd_path(pid, rval) if rval >= 0 else None


def _ret_fcntl_link(
    d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
) -> str | None:
    if rval < 0 or (args[1] & _U32) not in (0, 1030):  # only F_DUPFD{,_CLOEXEC} return an fd
        return None
    return d.fd_path(pid, rval)


def _make_entry(
    dec: Decoder, caps: list[tuple[int, Callable[..., Any]]]
) -> Callable[..., Any] | None:
    if not caps:
        return None
    frozen = tuple(caps)

    def run(args: Sequence[int], pid: int, reader: MemoryReader) -> tuple[Any, ...]:
        out = []
        for i, fn in frozen:
            try:
                out.append(fn(dec, args, i, pid, reader))
            except Exception:  # noqa: BLE001 - a vanished tracee or odd reader: show the address
                out.append(None)
        return tuple(out)

    return run


def _make_exit(
    dec: Decoder, caps: list[tuple[int, Callable[..., Any]]]
) -> Callable[..., Any] | None:
    if not caps:
        return None
    frozen = tuple(caps)

    def run(args: Sequence[int], rval: int, pid: int, reader: MemoryReader) -> tuple[Any, ...]:
        out = []
        for i, fn in frozen:
            try:
                out.append(fn(dec, args, i, rval, pid, reader))
            except Exception:  # noqa: BLE001
                out.append(None)
        return tuple(out)

    return run
