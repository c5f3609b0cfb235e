"""What every argument printer ("kind") is, and the shared shapes most of them take.

- ``Kind``: one argument (or a run of arguments): what to read at entry/exit, how to render.
- ``_Directed``: a pointer the call reads at entry, or (``output``) the kernel fills at exit.
- ``_FixedStruct``: a ``_Directed`` struct of ``size`` bytes; a subclass gives ``size`` and
  ``show`` (the text for a complete struct), everything else is shared.
- ``_TransferLimited``: a ``_Directed`` argument carrying data (iovecs, msghdr) whose capture
  at exit is limited to the ``rval`` bytes the call transferred.
"""

from __future__ import annotations

from collections.abc import Sequence

from sysspan.collector.decode.errno_text import is_error
from sysspan.collector.decode.reading import _read_exact
from sysspan.collector.decode.text import _U64, _ptr

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

    from sysspan.collector.decode.decoder import Decoder
    from sysspan.collector.decode.reading import MemoryReader


class _Ctx:
    """What a printer may look at while rendering one syscall."""

    __slots__ = ("dec", "args", "rval", "ok", "path", "argv", "fdlinks")

    def __init__(self, dec: Decoder, args: Sequence[int], rval: int | None) -> None:
        self.dec = dec
        self.args = args
        self.rval = rval
        self.ok = rval is not None and not is_error(rval)
        self.path: str | None = None
        self.argv: list[str] | None = None
        self.fdlinks: dict[int, str] = {}


#: A read the compiled stop loop makes for a capture function (see ``Decoder.plans``):
#: (arg, op, cap, len_arg, flags, mult, cond_arg, cond_val). ``op`` 0 reads
#: min(cap, args[len_arg], rval) bytes (times ``mult``) at args[arg], ``op`` 1 a
#: NUL-terminated string of at most ``cap`` bytes; ``cond_arg`` >= 0 reads only when
#: args[cond_arg] == cond_val.
PlanOp = tuple[int, int, int, int, int, int, int, int]
PLAN_RVAL, PLAN_U32LEN = 1, 2


def mem_op(
    arg: int, cap: int, len_arg: int = -1, flags: int = 0, mult: int = 0,
    cond_arg: int = -1, cond_val: int = 0, op: int = 0,
) -> PlanOp:
    return (arg, op, cap, len_arg, flags, mult, cond_arg, cond_val)


def cstr_op(arg: int, limit: int) -> PlanOp:
    return (arg, 1, limit, -1, 0, 0, -1, 0)


class Kind:
    """Prints one argument (or, with ``width`` > 1, a run of arguments).

    ``entry``/``exit`` read memory at syscall entry/exit; ``render`` turns the register value
    and what was read into text (None to omit the argument, as strace does for unused ones).
    """

    width = 1
    fd_like = False
    #: ``exit`` also runs when the call failed (a sleep interrupted by a signal writes the
    #: time it had left); ``render`` then gets what it read although the call failed.
    exit_on_error = False

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        raise NotImplementedError

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        raise NotImplementedError

    has_entry = False
    has_exit = False

    def plan(self, d: Decoder, i: int, at_exit: bool) -> tuple[PlanOp, ...] | None:
        """The reads ``entry`` (or ``exit``) makes, for the compiled loop to make instead;
        None when they depend on memory read first (then Python reads at the stop)."""
        return None

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        raise NotImplementedError

    def entry_chars(self, text: str) -> int:
        """How much of this argument's ``text`` strace prints at entry when the kind reads
        at exit (``has_exit``): none of an output; the arguments after it all wait too."""
        return 0


class _Directed(Kind):
    """A pointer argument the call reads (captured at entry) or, with ``output``, one the
    kernel fills (captured at exit, and only when the call succeeded)."""

    def __init__(self, output: bool) -> None:
        self.output = output
        self.has_entry = not output
        self.has_exit = output


class _FixedStruct(_Directed):
    """A ``_Directed`` struct of ``size`` bytes; shown by ``show`` once all of it was read,
    else as its address."""

    size = 0

    def plan(self, d: Decoder, i: int, at_exit: bool) -> tuple[PlanOp, ...] | None:
        return (mem_op(i, self.size),)

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        return _read_exact(r, pid, args[i], self.size)

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        return _read_exact(r, pid, args[i], self.size)

    def render(self, c: _Ctx, i: int, ev: Any, xv: Any) -> str | None:
        data = xv if self.output else ev
        if not isinstance(data, bytes) or len(data) < self.size:
            return _ptr(c.args[i])
        return self.show(c, data)

    def show(self, c: _Ctx, data: bytes) -> str:
        """The struct's text; ``data`` holds at least ``size`` bytes."""
        raise NotImplementedError


class _TransferLimited(_Directed):
    """A ``_Directed`` argument carrying data: captured in full at entry, or at exit only as
    far as the ``rval`` bytes the call transferred. A subclass gives ``_capture``."""

    def entry(self, d: Decoder, args: Sequence[int], i: int, pid: int, r: MemoryReader) -> Any:
        return self._capture(d, args, i, _U64, pid, r)

    def exit(
        self, d: Decoder, args: Sequence[int], i: int, rval: int, pid: int, r: MemoryReader
    ) -> Any:
        return self._capture(d, args, i, rval, pid, r)

    def _capture(
        self, d: Decoder, args: Sequence[int], i: int, limit: int, pid: int, r: MemoryReader
    ) -> Any:
        raise NotImplementedError
