"""Source correlation's public face: capture stacks at syscall entry, name them later.

The tracer calls ``capture`` at a traced syscall's entry stop (cheap once caches are warm)
and keeps the returned pc tuple with the event; in site mode the stop loop answers the call
sites found before itself (``use_loop``) and calls only for the others. The span builder calls
``attributes`` / ``stack_lines`` off the hot path, possibly after the process exited:
everything needed to symbolise was recorded at capture time.
"""

from __future__ import annotations

from collections import defaultdict

from sysspan.collector.source.elfinfo import ARCHS, ElfInfo
from sysspan.collector.source.symbolize import (
    Symbol,
    Symbolizer,
    is_runtime_file,
    is_runtime_symbol,
)
from sysspan.collector.source.tailcall import tail_call_suspected
from sysspan.collector.source.unwind import Frame, Unwinder
from sysspan.redact import redact

__all__ = ["SourceCapture"]


class SourceCapture:
    """Stacks for ``--source`` (the call site of each syscall) and ``-k`` (whole stacks)."""

    def __init__(self, ptrace, arch: str, full_stack: bool) -> None:
        if arch not in ARCHS:
            raise ValueError(f"source correlation does not support {arch}")
        self.arch = ARCHS[arch]
        self.full_stack = full_stack
        self.unwinder = Unwinder(ptrace, self.arch)
        self.symbolizer = Symbolizer()
        self.unwinder.library_code = self._library_code
        self._attrs: dict[tuple, dict] = {}  # (pid, exec generation, pcs) -> attributes
        self._gen: defaultdict[int, int] = defaultdict(int)
        #: ``generation(pid)`` counts the images ``pid`` ran (exec, or the pid released and
        #: reused): the same pcs under another generation may be other code. The span
        #: builder asks at every syscall, so it is the dictionary's own lookup, not a method.
        self.generation = self._gen.__getitem__

    # -- hot path ------------------------------------------------------------------------------
    def capture(
        self, pid: int, tid: int, hint: tuple[int, int] | None = None
    ) -> tuple[int, ...] | None:
        """The stack of ``tid`` (thread of process ``pid``) stopped at a syscall entry:
        pcs innermost first, the first being the syscall instruction. None if the thread
        could not be read. Without ``full_stack`` the walk stops at the call site.

        ``hint`` (optional) is ``(instruction_pointer, stack_pointer)`` from the
        PTRACE_GET_SYSCALL_INFO the tracer already made at this stop (``si[2], si[3]``):
        the site capture then usually costs one memory read and no register read."""
        try:
            return self.unwinder.unwind(pid, tid, not self.full_stack, hint)
        except Exception:
            return None

    def use_loop(self, loop) -> None:
        """Let the stop loop answer the call sites this capture found on its one-read path
        (``_sites.h``): a known site then costs no call into Python. Site mode only; whole
        stacks (``-k``) are always walked here."""
        if not self.full_stack:
            loop.answer_sites(self.arch.syscall_insn, self.arch.ra_mask)
            self.unwinder.teach = loop.learn_rules

    def save_cache(self) -> None:
        """Write what was learned about each ELF file to the on-disk cache, so the next run
        on the same files skips their parsing (call it once the trace ended)."""
        self.unwinder.elfs.save()

    def on_exec(self, pid: int) -> None:
        """The image of ``pid`` was replaced: forget its maps (stacks already captured
        still symbolise)."""
        self.unwinder.on_exec(pid)
        self._gen[pid] += 1

    def on_mmap(self, pid: int) -> None:
        """A file was mapped into ``pid`` (a library loaded): re-read its maps when next
        needed."""
        self.unwinder.on_mmap(pid)

    def release(self, pid: int) -> None:
        """``pid`` exited (call it when the process ends). Its stacks still symbolise for a
        while (the last 1024 finished processes are kept) and a recycled pid starts with
        empty caches."""
        self.unwinder.release(pid)
        self._gen[pid] += 1

    def _library_code(self, module: ElfInfo, vaddr: int) -> bool:
        """Whether a program's own code at ``vaddr`` is wholly system-header or runtime
        code (every frame of its inline chain is), so the call site lies further out."""
        try:
            chain = self.symbolizer.symbol(module, vaddr).chain
        except Exception:
            return False
        files = [f for _, f, _ in chain if f]
        return bool(files) and all(is_runtime_file(f) for f in files)

    # -- off the hot path -------------------------------------------------------------------
    def frames(self, pid: int, pcs: tuple[int, ...]) -> list[tuple[Frame | None, Symbol | None]]:
        """Each pc with where it lives and what it is."""
        out: list[tuple[Frame | None, Symbol | None]] = []
        for fr in self.unwinder.frames(pid, pcs):
            sym = None
            if fr is not None and fr.module is not None:
                sym = self.symbolizer.symbol(fr.module, fr.vaddr)
            out.append((fr, sym))
        return out

    def site(self, pid: int, pcs: tuple[int, ...]) -> tuple[str, str, int] | None:
        """(function, file, line) of the first frame outside libc / ld.so / vdso and outside
        language-runtime code; line 0 and file "" when only the symbol is known."""
        found = self.site_frame(pid, pcs)
        return found[0] if found is not None else None

    def site_frame(self, pid: int, pcs: tuple[int, ...]) -> tuple[tuple[str, str, int], bool] | None:
        """The call site as ``site`` gives it, and whether a tail call probably removed the
        frame of the function that was called there (see ``tailcall``).

        Every frame is looked at through its inlined frames: a user's function inlined into
        a standard-library frame (a Rust closure in ``__rust_begin_short_backtrace``) is the
        site, and system-header code (``/usr/include``, the Rust and Go standard libraries)
        is passed over whether it was inlined or not."""
        if self.unwinder.all_system(pid, pcs):
            return None  # what the walk below gives for them, without building the frames
        fallback: tuple[str, str, int] | None = None
        frames = self.unwinder.frames(pid, pcs)
        for k, fr in enumerate(frames):
            if fr is None or not fr.path:
                continue
            module = fr.module
            if module is None:
                if fallback is None and not fr.path.startswith("["):
                    fallback = ("", "", 0)
                continue
            if module.is_system:
                continue
            sym = self.symbolizer.symbol(module, fr.vaddr)
            for func, file, line in sym.chain:
                if file and line and not is_runtime_file(file):
                    inner = frames[k - 1] if k > 0 else None
                    tail = inner is not None and tail_call_suspected(fr, inner)
                    return (func or sym.sym, file, line), tail
            if sym.chain and all(is_runtime_file(f) for _, f, _ in sym.chain if f):
                continue  # runtime or system-header code, inlined or not: look further out
            if not sym.chain and module.mixed_runtime and is_runtime_symbol(sym.sym):
                continue
            if fallback is None:
                if sym.chain:
                    func, file, line = sym.chain[-1]
                    fallback = (func or sym.sym, file, line)
                elif sym.sym:
                    fallback = (sym.sym, "", 0)
            if not module.mixed_runtime and fallback is not None:
                return fallback, False
        return (fallback, False) if fallback is not None else None

    def attributes(self, pid: int, pcs: tuple[int, ...] | None) -> dict:
        """Span attributes (docs/architecture.md §4): ``code.function.name``, ``code.file.path``,
        ``code.line.number`` of the call site and, with ``-k``, ``code.stacktrace``. The
        dictionary is shared by every span of the same stack: read it, do not change it."""
        if not pcs:
            return {}
        # Called for most syscall spans: a known stack is one lookup, kept free of calls.
        key = (pid, self._gen[pid], pcs)
        cached = self._attrs.get(key)
        if cached is not None:
            return cached
        try:
            return self._attributes(pid, pcs, key)
        except Exception:  # never let a malformed debug file break span export
            return {}

    def _attributes(self, pid: int, pcs: tuple[int, ...], key: tuple) -> dict:
        attrs: dict = {}
        if len(self._attrs) >= 8192:
            self._attrs.clear()
        self._attrs[key] = attrs
        found = self.site_frame(pid, pcs)
        if found is not None:
            (func, file, line), tail = found
            if tail:
                attrs["code.tail_call_suspected"] = True
            if func:
                attrs["code.function.name"] = func
            if file:
                attrs["code.file.path"] = redact(file)
            if line:
                attrs["code.line.number"] = line
        if self.full_stack:
            # Frames name files and directories, which can hold a token like any argv.
            attrs["code.stacktrace"] = "\n".join(redact(line) for line in self._trace_lines(pid, pcs))
        return dict(attrs)

    def _trace_lines(self, pid: int, pcs: tuple[int, ...]) -> list[str]:
        lines = []
        for (fr, sym), pc in zip(self.frames(pid, pcs), pcs, strict=True):
            if fr is None or sym is None:
                where = fr.path if fr is not None and fr.path else "?"
                lines.append(f"?? ({where}) [{pc:#x}]")
                continue
            if sym.chain:
                last = len(sym.chain) - 1
                for k, (func, file, line) in enumerate(sym.chain):
                    name = func or sym.sym or "??"
                    loc = f"{file}:{line}" if file else fr.path
                    tag = " (inlined)" if k < last else ""
                    lines.append(f"{name} ({loc}) [{pc:#x}]{tag}")
            elif sym.sym:
                lines.append(f"{sym.sym}+{sym.sym_off + fr.adj:#x} ({fr.path}) [{pc:#x}]")
            else:
                lines.append(f"?? ({fr.path}) [{pc:#x}]")
        return lines

    def stack_lines(self, pid: int, pcs: tuple[int, ...] | None) -> list[str]:
        """strace ``-k`` lines: `` > /path/lib.so(func+0x1b) [0xoffset]``, innermost first."""
        try:
            return self._stack_lines(pid, pcs)
        except Exception:
            return []

    def _stack_lines(self, pid: int, pcs: tuple[int, ...] | None) -> list[str]:
        out: list[str] = []
        frames = self.frames(pid, pcs or ())
        for k, ((fr, sym), pc) in enumerate(zip(frames, pcs or (), strict=True)):
            if fr is None or not fr.path:
                out.append(f" > unexpected_backtracing_error [{pc:#x}]")
                continue
            # strace shows frame 0 at the instruction after the syscall (the stopped pc)
            after = self.arch.syscall_insn if k == 0 else 0
            # named as strace names it: from the file's own symbol tables
            near = fr.module.nearest_symbol(fr.vaddr) if fr.module is not None else None
            if near is not None:
                inner = f"{near[0]}+{near[1] + fr.adj + after:#x}"
            elif sym is not None and sym.sym:
                inner = f"{sym.sym}+{sym.sym_off + fr.adj + after:#x}"
            elif sym is not None and sym.function:
                inner = sym.function
            else:
                inner = ""  # strace: "/usr/bin/cat() [0x243e]"
            out.append(f" > {fr.path}({inner}) [{fr.foff + after:#x}]")
        return out
