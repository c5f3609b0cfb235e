"""A CFI stack unwinder over a stopped tracee's memory.

At a syscall-entry stop the registers come from one ``PTRACE_GETREGSET`` and the stack
from one ``pread`` of ``/proc/PID/mem`` (``process_vm_readv`` where that fails) of a window
above the stack pointer. Every code address seen
is resolved once per process into an *entry*: where it lives (file, ELF address) and the
compiled CFI row that recovers the caller (CFA = register + offset, return address and
callee-saved registers at CFA-relative slots). Warm captures therefore touch no parser: a
dict lookup and a few ``unpack_from`` per frame.

A whole stack walked from the instruction and stack pointers alone (``-k``) is a function of
those two, the stack words it read and the process's image. The last few such walks are
remembered per (pc, sp) with the words each read: the same call reached again at the same
depth (a loop) costs one read and a comparison per remembered walk. A different caller
leaves another return address there, which matches none of them, so the walk is redone;
exec and mmap forget everything remembered. (The call site alone,
``--source``, usually costs one read anyway: it is not remembered.)

CFI comes from ``.eh_frame`` (then ``.debug_frame``); where none covers a pc the frame
pointer chain is followed instead. Unwinding stops at depth 64, at an undefined return
address (``_start``), or when the stack stops growing upwards.
"""

from __future__ import annotations

import os
import struct
from collections import deque
from collections.abc import Callable

from sysspan.collector._stoploop import getregs
from sysspan.collector.source.elfinfo import (
    RULE_END,
    RULE_GENERIC,
    RULE_SIMPLE,
    Arch,
    ElfCache,
    ElfInfo,
)
from sysspan.collector.source.maps import Mapping, MapsCache, is_system_path

__all__ = ["Frame", "Unwinder", "MAX_DEPTH"]

MAX_DEPTH = 64
MAX_WALKS = 4096  # (pc, sp) pairs with remembered walks, per process
WALKS_PER_SITE = 4  # walks remembered per (pc, sp): the callers a loop alternates between
MAX_FINISHED = 1024  # finished processes whose captured stacks can still be symbolised
WINDOW = 2048  # bytes of stack read at once; frames beyond it cost one more read
#: A later window starts this far below the word asked for: a frame's saved registers lie
#: just below its return address, and a window starting at the return address made every
#: big frame (ld.so's at start-up) cost two reads.
BACKOFF = 256
KIND_FP, KIND_STOP = 3, 4
# What the stop loop is taught of a code address (``Loop.learn_rules``; see _sites.h): one
# packed record per address: (address, S_*, W_*, CFA base (0 sp, 1 fp), in a system library
# (1: a stack of such frames only has no call site, and the loop keeps none), CFA offset,
# return address offset, saved fp offset or NO_SAVE).
_FACT = struct.Struct("=QBBBBiii")
_FACTS_VERSION = 2  # what a cache entry's packed facts were packed as (1: no system flag)
S_TOP, S_RET, S_BOTH = 1, 2, 3
W_SITE, W_STEP, W_FP, W_END = 1, 2, 3, 4
NO_SAVE = -(1 << 31)
#: Files with more rules kept than this are not taught from the cache at once: the loop's
#: table would be emptied over and over (it holds 8192), and teaching costs ~50 ns a rule.
PRELOAD_MAX = 2048
_I32 = range(-(1 << 31) + 1, 1 << 31)
_U64 = struct.Struct("<Q")
_MASK = (1 << 64) - 1


class Frame:
    """Where one pc of a captured stack lives: enough to symbolise it after the process
    has exited (the ELF file stays open in the cache)."""

    __slots__ = ("module", "vaddr", "pc", "path", "foff", "adj")

    def __init__(
        self, module: ElfInfo | None, vaddr: int, pc: int, path: str, foff: int, adj: int = 0
    ) -> None:
        self.module = module  # None: anonymous memory or an unreadable file
        self.vaddr = vaddr  # ELF address used for lookups (return addresses: minus one)
        self.pc = pc
        self.path = path  # the mapping's path as the process saw it
        self.foff = foff  # offset of pc in the file (strace -k's bracket)
        self.adj = adj  # pc - lookup address: 1 for return addresses, 0 for frame 0

    def __repr__(self) -> str:
        return f"Frame({self.path!r}, vaddr={self.vaddr:#x}, pc={self.pc:#x})"


class _Proc:
    __slots__ = ("top", "ret", "retired", "vdso", "walks", "modules", "taught", "preloaded", "fresh")

    def __init__(self) -> None:
        self.top: dict[int, tuple] = {}  # frame 0: pc is the syscall instruction
        self.ret: dict[int, tuple] = {}  # outer frames: pc is a return address
        self.retired: list[tuple[dict, dict, list]] = []  # previous images (before exec)
        self.vdso: ElfInfo | None = None
        #: (pc, sp) -> the whole-stack walks made from them (see the module doc)
        self.walks: dict[tuple[int, int], _Walks] = {}
        #: a mapping of this image -> its file (one stat per mapping, not one per address)
        self.modules: dict[Mapping, ElfInfo | None] = {}
        #: (S_TOP or S_RET, pc) already taught to the stop loop in this image
        self.taught: set[tuple[int, int]] = set()
        #: (mapping, file) whose rules from earlier runs the loop was taught: the loop may
        #: answer with addresses never resolved here, which ``frames`` resolves from these
        self.preloaded: list[tuple[Mapping, ElfInfo]] = []
        self.fresh = True  # no capture made in this image yet


def _all_system_in(gen: tuple, pcs: tuple[int, ...]) -> bool | None:
    """Whether every pc of a stack is in a system library in the image ``gen`` (top, ret,
    preloaded); None when the image lacks one of them."""
    top, ret, preloaded = gen
    system = True
    for i, pc in enumerate(pcs):
        e = (ret if i else top).get(pc)
        if e is not None:
            module = e[0].module
            if module is None or not module.is_system:
                system = False
            continue
        lookup = pc - 1 if i else pc
        for m, module in preloaded:
            if m.start <= lookup < m.end:
                if not module.is_system:
                    system = False
                break
        else:
            return None
    return system


def _has_all(gen: tuple, pcs: tuple[int, ...]) -> bool:
    """Whether every pc of a stack was resolved in the image ``gen`` (top, ret, preloaded),
    or lies in a mapping whose rules the stop loop was taught in it."""
    top, ret, preloaded = gen
    for i, pc in enumerate(pcs):
        if pc in (ret if i else top):
            continue
        lookup = pc - 1 if i else pc
        for m, _ in preloaded:
            if m.start <= lookup < m.end:
                break
        else:
            return False
    return True


class _Walk:
    """A remembered walk: the words it read (``words`` unpacks them from sp + ``lo``), their
    values, and the pcs they gave."""

    __slots__ = ("lo", "words", "values", "pcs")

    def __init__(
        self, lo: int, words: struct.Struct, values: tuple[int, ...], pcs: tuple[int, ...]
    ) -> None:
        self.lo = lo
        self.words = words
        self.values = values
        self.pcs = pcs


class _Walks:
    """The walks remembered for one (pc, sp), newest first; together they read within
    [sp + lo, sp + hi)."""

    __slots__ = ("lo", "hi", "walks")

    def __init__(self, lo: int, hi: int) -> None:
        self.lo = lo
        self.hi = hi
        self.walks: list[_Walk] = []


class MemReader:
    """Stack reads through ``/proc/PID/mem`` (one ``pread``, no ctypes marshalling), kept
    open per process and reopened after exec; ``Ptrace.read`` where that fails."""

    MAX_OPEN = 64

    def __init__(self, ptrace) -> None:
        self.pt = ptrace
        self.fds: dict[int, int] = {}

    def forget(self, pid: int) -> None:
        fd = self.fds.pop(pid, None)
        if fd is not None and fd >= 0:
            os.close(fd)

    def _open(self, pid: int) -> int:
        if len(self.fds) >= self.MAX_OPEN:
            self.forget(next(iter(self.fds)))
        try:
            fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            fd = -1
        self.fds[pid] = fd
        return fd

    def read(self, pid: int, tid: int, addr: int, size: int) -> bytes:
        fd = self.fds.get(pid)
        if fd is None:
            fd = self._open(pid)
        if fd >= 0:
            try:
                return os.pread(fd, size, addr)
            except OSError:
                # The window ran past the end of the mapping: read up to the page end.
                room = 4096 - (addr & 4095)
                if room < size:
                    try:
                        return os.pread(fd, room, addr)
                    except OSError:
                        pass
        return self.pt.read(tid, addr, size)


def _eval(ops: tuple, R: list, mem, push: int | None) -> int | None:
    """A DWARF expression as CFI uses it (register arithmetic and dereferences)."""
    stack: list[int] = [] if push is None else [push]
    for op, args in ops:
        if 0x70 <= op <= 0x8F:  # DW_OP_bregN
            v = R[op - 0x70] if op - 0x70 < len(R) else None
            if v is None:
                return None
            stack.append((v + args[0]) & _MASK)
        elif 0x30 <= op <= 0x4F:  # DW_OP_litN
            stack.append(op - 0x30)
        elif op == 0x92:  # bregx
            if args[0] >= len(R) or R[args[0]] is None:
                return None
            stack.append((R[args[0]] + args[1]) & _MASK)
        elif 0x50 <= op <= 0x6F:  # regN
            stack.append(R[op - 0x50] if op - 0x50 < len(R) else 0)
        elif 0x08 <= op <= 0x11:  # constants
            stack.append(args[0] & _MASK)
        elif op == 0x06:  # deref
            v = mem(stack.pop())
            if v is None:
                return None
            stack.append(v)
        elif op == 0x23:  # plus_uconst
            stack.append((stack.pop() + args[0]) & _MASK)
        elif op == 0x12:
            stack.append(stack[-1])
        elif op == 0x13:
            stack.pop()
        elif op == 0x14:
            stack.append(stack[-2])
        elif op == 0x15:
            stack.append(stack[-1 - args[0]])
        elif op == 0x16:
            stack[-1], stack[-2] = stack[-2], stack[-1]
        elif op == 0x17:
            stack[-1], stack[-2], stack[-3] = stack[-2], stack[-3], stack[-1]
        elif op == 0x96:  # nop
            continue
        elif op in _BINOPS:
            b = stack.pop()
            a = stack.pop()
            stack.append(_BINOPS[op](a, b) & _MASK)
        elif op == 0x1F:
            stack.append(-stack.pop() & _MASK)
        elif op == 0x20:
            stack.append(~stack.pop() & _MASK)
        else:
            return None
    return stack[-1] if stack else None


def _signed(v: int) -> int:
    return v - (1 << 64) if v & (1 << 63) else v


_BINOPS = {
    0x1A: lambda a, b: a & b,
    0x1B: lambda a, b: int(_signed(a) / _signed(b)) if b else 0,
    0x1C: lambda a, b: a - b,
    0x1D: lambda a, b: a % b if b else 0,
    0x1E: lambda a, b: a * b,
    0x21: lambda a, b: a | b,
    0x22: lambda a, b: a + b,
    0x24: lambda a, b: a << b if b < 64 else 0,
    0x25: lambda a, b: a >> b,
    0x26: lambda a, b: _signed(a) >> b,
    0x27: lambda a, b: a ^ b,
    0x29: lambda a, b: int(a == b),
    0x2A: lambda a, b: int(_signed(a) >= _signed(b)),
    0x2B: lambda a, b: int(_signed(a) > _signed(b)),
    0x2C: lambda a, b: int(_signed(a) <= _signed(b)),
    0x2D: lambda a, b: int(_signed(a) < _signed(b)),
    0x2E: lambda a, b: int(a != b),
}


class Unwinder:
    """Captures pc lists at syscall entry; owns the per-process address caches."""

    def __init__(self, ptrace, arch: Arch, elfs: ElfCache | None = None) -> None:
        self.pt = ptrace
        self.arch = arch
        self.maps = MapsCache()
        self.elfs = elfs or ElfCache()
        self._procs: dict[int, _Proc] = {}
        self._dead: deque[tuple[int, _Proc]] = deque()  # oldest first, MAX_FINISHED at most
        self._dead_of: dict[int, list[_Proc]] = {}  # the same by pid, oldest first
        self.words = 27 if arch.name == "x86_64" else 34  # user_regs_struct / user_pt_regs
        self.mem = MemReader(ptrace)
        self._structs: dict[str, struct.Struct] = {}  # unpackers of remembered walks' words
        # statistics for tests and the benchmark
        self.resolved = 0
        #: ``(module, vaddr) -> bool``: the code at a return address of a program's own file
        #: is library code (a system-header template, standard-library code) that a site
        #: walk must step over instead of stopping at. Asked once per address.
        self.library_code: Callable[[ElfInfo, int], bool] | None = None
        #: ``(pid, facts, bias, lo, hi)``: told the unwind rules of the frames walked here and
        #: of system libraries as earlier runs met them, so the stop loop walks the same
        #: stacks alone next time (``Loop.learn_rules``).
        self.teach: Callable[[int, bytes, int, int, int], int] | None = None
        self._epoch = 0  # the loop's count of emptied tables, as last told
        self._facts: dict[str, bytes] = {}  # file key -> its packed rules from the disk cache

    # -- process lifecycle ----------------------------------------------------------------
    def on_exec(self, pid: int) -> None:
        proc = self._procs.get(pid)
        if proc is not None:
            if proc.top or proc.ret:
                proc.retired.insert(0, (proc.top, proc.ret, proc.preloaded))
                del proc.retired[8:]
            proc.top, proc.ret, proc.vdso = {}, {}, None
            proc.walks = {}
            proc.modules = {}
            proc.taught = set()
            proc.preloaded = []
            proc.fresh = True
        self.maps.invalidate(pid)
        self.mem.forget(pid)  # the old file still points at the replaced address space
        if self.teach is not None:
            if proc is None:
                proc = self._procs[pid] = _Proc()
            proc.fresh = False
            try:
                self._preload_image(proc, pid)
            except Exception:  # the cache only saves work: the first capture walks instead
                proc.fresh = True

    def _preload_image(self, proc: _Proc, pid: int) -> None:
        """Just after exec the new image's files (ld.so, the program) are mapped: taught
        what earlier runs kept of them now, the loop answers the image's first stop too."""
        for m in self.maps.mappings(pid):
            if m.executable and m.path and not m.path.startswith("["):
                self._module(proc, pid, pid, m)

    def on_mmap(self, pid: int) -> None:
        self.maps.invalidate(pid)
        proc = self._procs.get(pid)
        if proc is not None:
            proc.walks = {}  # code may have moved under a remembered pc
            proc.modules = {}
            # Addresses that were unmapped may be code now.
            for table in (proc.top, proc.ret):
                dead = [pc for pc, e in table.items() if e[0].module is None]
                for pc in dead:
                    del table[pc]

    def release(self, pid: int) -> None:
        """``pid`` exited: its caches go to a bounded list of finished processes, so spans
        formatted later still symbolise and a recycled pid starts afresh."""
        proc = self._procs.pop(pid, None)
        if proc is not None:
            proc.walks = {}
            if len(self._dead) >= MAX_FINISHED:
                old_pid, old = self._dead.popleft()
                kept = self._dead_of[old_pid]
                kept.remove(old)
                if not kept:
                    del self._dead_of[old_pid]
            self._dead.append((pid, proc))
            self._dead_of.setdefault(pid, []).append(proc)
        self.maps.invalidate(pid)
        self.mem.forget(pid)

    # -- resolving one address -------------------------------------------------------------
    def _module(self, proc: _Proc, pid: int, tid: int, m: Mapping) -> ElfInfo | None:
        if m.path == "[vdso]":
            if proc.vdso is None:
                image = self.pt.read(tid, m.start, m.end - m.start)
                if image[:4] == b"\x7fELF":
                    proc.vdso = self.elfs.from_memory("[vdso]", image)
            return proc.vdso
        if not m.path or m.path.startswith("["):
            return None
        try:
            return proc.modules[m]
        except KeyError:
            if len(proc.modules) >= MAX_WALKS:  # a program mapping and unmapping files forever
                proc.modules.clear()
            module = proc.modules[m] = self.elfs.get(self.maps.mapping_path(pid, m), m.path)
            if module is not None and self.teach is not None:
                self._preload(proc, pid, m, module)
            return module

    def _preload(self, proc: _Proc, pid: int, m: Mapping, module: ElfInfo) -> None:
        """Teach the stop loop the rules earlier runs kept for a file's code, and which of
        its addresses are sites: ld.so's start-up stops, and the program's call sites, then
        need no call here. An address whose site-ness the cache cannot tell (its symbol was
        not kept) is left to the Python walk."""
        disk = module.disk
        if disk is None or not disk.cfi or not m.executable:
            return
        facts = self._facts.get(module.key)
        if facts is None:
            # Packed once per file and kept with its cache entry while nothing was added.
            kept = disk.head.get("loop")
            stamp = (self.arch.name, len(disk.cfi), len(disk.sym), module.is_system, _FACT.size,
                     _FACTS_VERSION)
            if type(kept) is tuple and len(kept) == 2 and kept[0] == stamp:
                facts = kept[1]
            else:
                packed = []
                system = module.is_system
                for vaddr, rule in disk.cfi.items():
                    if not system and vaddr not in disk.sym:
                        continue  # telling whether it is a site would parse the DWARF
                    site = not system and self._site_stop(module, vaddr)
                    fact = self._fact(rule[:5] if rule is not None else (KIND_FP,), site, system)
                    if fact is not None:
                        packed.append(_FACT.pack(vaddr, S_BOTH, *fact))
                facts = b"".join(packed)
                disk.head["loop"] = (stamp, facts)
                disk.dirty = True
            self._facts[module.key] = facts
        if len(facts) > PRELOAD_MAX * _FACT.size:
            return  # a file many programs met (a big libc cache): the walks teach what is used
        bias = m.start - m.offset - module.delta(m.offset)
        if (m, module) not in proc.preloaded:
            proc.preloaded.append((m, module))
        self._taught(self.teach(pid, facts, bias & _MASK, m.start, m.end))  # type: ignore[misc]

    def _taught(self, epoch: int) -> None:
        """After teaching the loop: if it emptied its table since the last time, forget what
        was taught, so that the walks and the next lookups of each file teach it again."""
        if epoch != self._epoch:
            self._epoch = epoch
            for proc in self._procs.values():
                proc.taught = set()
                proc.modules = {}

    def _fact(
        self, rule: tuple, site: bool, system: bool
    ) -> tuple[int, int, int, int, int, int] | None:
        """(W_*, base, system, cfa, ra, fp) of a frame's rule (kind, reg, off, ra_off, saves)
        as the stop loop follows it, ``system`` for code in a system library; None for rules
        only the Python walk follows."""
        sys_flag = 1 if system else 0
        if site:
            return (W_SITE, 0, sys_flag, 0, 0, NO_SAVE)
        kind = rule[0]
        if kind == RULE_SIMPLE:
            arch = self.arch
            base = 0 if rule[1] == arch.sp else 1 if rule[1] == arch.fp else -1
            fp = NO_SAVE
            for reg, off in rule[4]:
                if reg == arch.fp:
                    fp = off
            if base < 0 or rule[2] not in _I32 or rule[3] not in _I32 or fp not in _I32 and fp != NO_SAVE:
                return None
            return (W_STEP, base, sys_flag, rule[2], rule[3], fp)
        if kind == KIND_FP:
            return (W_FP, 0, sys_flag, 0, 0, NO_SAVE)
        if kind == RULE_END:
            return (W_END, 0, sys_flag, 0, 0, NO_SAVE)
        return None

    def _preload_exe(self, proc: _Proc, pid: int, tid: int) -> None:
        """At an image's first capture (in ld.so, before the program ran), teach the loop
        what earlier runs kept of the executable too: its call sites are then answered
        without a call here from the first one on."""
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            return
        for m in self.maps.mappings(pid):
            if m.path == exe and m.executable:
                self._module(proc, pid, tid, m)

    def _site_stop(self, module: ElfInfo, vaddr: int) -> bool:
        """Whether a site walk stops at the frame of ``vaddr`` in ``module``: the program's
        own code (or a library's outside the system ones), not a language runtime's."""
        if module.is_system or module.mixed_runtime:
            return False
        return self.library_code is None or not self.library_code(module, vaddr)

    def _resolve(self, proc: _Proc, pid: int, tid: int, pc: int, top: bool) -> tuple:
        """Build (and cache) the entry of ``pc``: the Frame plus its compiled unwind rule."""
        self.resolved += 1
        lookup = pc if top else pc - 1
        m = self.maps.lookup(pid, lookup)
        if m is None or not m.executable:
            self.maps.reload(pid)  # a library loaded since we last looked
            m = self.maps.lookup(pid, lookup)
        table = proc.top if top else proc.ret
        if m is None or not m.executable:
            frame = Frame(None, lookup, pc, "", 0, pc - lookup)
            kind = KIND_FP if top else KIND_STOP
            entry = (frame, kind, 0, 0, 0, (), None, False)
            table[pc] = entry
            return entry
        module = self._module(proc, pid, tid, m)
        foff = pc - m.start + m.offset
        rule = None
        if module is not None:
            vaddr = lookup - m.start + m.offset + module.delta(m.offset)
            rule = module.cfi_rule(vaddr, self.arch)
            site_stop = self._site_stop(module, vaddr)
        else:
            vaddr = lookup
            site_stop = bool(m.path) and not is_system_path(m.path)
        frame = Frame(module, vaddr, pc, m.path, foff, pc - lookup)
        if rule is None:
            entry = (frame, KIND_FP, 0, 0, 0, (), None, site_stop)
        else:
            entry = (frame, rule[0], rule[1], rule[2], rule[3], rule[4], rule[5], site_stop)
        table[pc] = entry
        return entry

    # -- the hot path ----------------------------------------------------------------------
    def unwind(
        self, pid: int, tid: int, site_only: bool, hint: tuple[int, int] | None = None
    ) -> tuple[int, ...] | None:
        """pcs of the stack of ``tid`` (stopped at syscall entry), innermost first.

        ``site_only`` stops at the first frame outside libc/ld.so/vdso (unless that file
        links a language runtime in, whose own frames must be walked past). ``hint`` is
        (instruction pointer, stack pointer) as PTRACE_GET_SYSCALL_INFO reported them at
        this stop: with it the usual site capture needs no register read at all."""
        arch = self.arch
        proc = self._procs.get(pid)
        if proc is None:
            proc = self._procs[pid] = _Proc()
        if proc.fresh:
            proc.fresh = False
            if self.teach is not None:
                self._preload_exe(proc, pid, tid)
        if hint is not None and site_only:
            # The common case, kept free of the general loop: a libc wrapper whose CFA is
            # the stack pointer plus a constant, called from the program itself.
            pc = hint[0] - arch.syscall_insn
            ent = proc.top.get(pc) or self._resolve(proc, pid, tid, pc, True)
            if ent[7]:
                if self.teach is not None:
                    self._teach(proc, pid, (pc,))
                return (pc,)
            if ent[1] == RULE_SIMPLE and ent[2] == arch.sp and ent[3] > 0:
                word = self._read(pid, tid, hint[1] + ent[3] + ent[4], 8)
                if len(word) == 8:
                    ra = _U64.unpack_from(word)[0] & arch.ra_mask
                    if ra >= 4096:
                        nxt = proc.ret.get(ra) or self._resolve(proc, pid, tid, ra, False)
                        if nxt[7]:
                            if self.teach is not None:
                                self._teach(proc, pid, (pc, ra))
                            return (pc, ra)
        elif hint is not None:
            # Whole stacks of code whose CFA rules only use the stack pointer (optimised
            # code) need no register read either; anything else retries with registers.
            pc = hint[0] - arch.syscall_insn
            key = (pc, hint[1])
            seen = proc.walks.get(key)
            if seen is not None:
                # A remembered walk holds while the stack has the same words where it read.
                lo = seen.lo
                data = self._read(pid, tid, hint[1] + lo, seen.hi - lo)
                if len(data) == seen.hi - lo:
                    for w in seen.walks:
                        if w.words.unpack_from(data, w.lo - lo) == w.values:
                            return w.pcs
            ent = proc.top.get(pc) or self._resolve(proc, pid, tid, pc, True)
            R: list = [None] * arch.nregs
            R[arch.sp] = hint[1]
            buf = self.mem.read(pid, tid, hint[1], WINDOW)
            read: list[int] = []
            got = self._walk(proc, pid, tid, R, pc, ent, hint[1], buf, False, True, read)
            if got is not None:
                self._remember(proc, key, sorted({addr - hint[1] for addr in read}), buf, got)
                return got
        regs = getregs(tid, self.words)
        if regs is None:
            return None
        pc = regs[arch.user_pc] - arch.syscall_insn
        ent = proc.top.get(pc) or self._resolve(proc, pid, tid, pc, True)
        if site_only and ent[7]:
            if self.teach is not None:
                self._teach(proc, pid, (pc,))
            return (pc,)
        sp = regs[arch.user_sp]
        buf = self.mem.read(pid, tid, sp, WINDOW)
        if site_only and ent[1] == RULE_SIMPLE and ent[2] == arch.sp and ent[3] > 0:
            a = ent[3] + ent[4]
            if 0 <= a <= len(buf) - 8:
                ra = _U64.unpack_from(buf, a)[0] & arch.ra_mask
                if ra >= 4096:
                    nxt = proc.ret.get(ra) or self._resolve(proc, pid, tid, ra, False)
                    if nxt[7]:
                        if self.teach is not None:
                            self._teach(proc, pid, (pc, ra))
                        return (pc, ra)
        R = [regs[i] for i in arch.from_user]
        got = self._walk(proc, pid, tid, R, pc, ent, sp, buf, site_only, False)
        if site_only and got and self.teach is not None:
            self._teach(proc, pid, got)
        return got

    def _teach(self, proc: _Proc, pid: int, pcs: tuple[int, ...]) -> None:
        """Tell the stop loop the rules of the frames of a site walk it was not told yet: it
        then walks the same stacks alone (each rule is a fact about the code at its address,
        so any walk through them ends where this one would)."""
        taught = proc.taught
        packed = []
        for i, pc in enumerate(pcs):
            kind = S_RET if i else S_TOP
            if (kind, pc) in taught:
                continue
            ent = (proc.ret if i else proc.top).get(pc)
            if ent is None:
                return
            fact = None
            module = ent[0].module
            if ent[7] or module is not None:  # unmapped code may be mapped later
                fact = self._fact(ent[1:6], ent[7], module is not None and module.is_system)
            if fact is None:
                continue
            taught.add((kind, pc))
            packed.append(_FACT.pack(pc, kind, *fact))
        if packed and self.teach is not None:
            self._taught(self.teach(pid, b"".join(packed), 0, 0, _MASK))

    def _walk(
        self,
        proc: _Proc,
        pid: int,
        tid: int,
        R: list,
        pc: int,
        ent: tuple,
        base: int,
        buf: bytes,
        site_only: bool,
        partial: bool,
        read: list[int] | None = None,
    ) -> tuple[int, ...] | None:
        """Walk from frame 0 (``R`` holds its registers by DWARF number). ``partial``: only
        the stack pointer is known; give up (None) where another register is needed.
        ``read`` (a list) collects the addresses of the stack words the result depends on."""
        arch = self.arch
        sp_reg = arch.sp
        pc_reg = arch.pc_reg
        fp_reg = arch.fp
        ra_mask = arch.ra_mask
        R[pc_reg] = pc
        ret = proc.ret
        unpack = _U64.unpack_from
        nbuf = len(buf) - 8
        pcs = [pc]
        loaded: dict[int, int] = {}  # register -> stack address it was restored from
        window = self._window
        floor = base  # the stack pointer: what lies below it may be unmapped

        def mem(addr: int) -> int | None:
            nonlocal buf, base, nbuf
            a = addr - base
            if not 0 <= a <= nbuf:
                buf, base = window(pid, tid, max(addr - BACKOFF, floor) if addr >= floor else addr)
                if not 0 <= addr - base <= len(buf) - 8:  # the stack's end cut the window short
                    buf, base = window(pid, tid, addr)
                nbuf = len(buf) - 8
                a = addr - base
                if not 0 <= a <= nbuf:
                    return None
            return unpack(buf, a)[0]

        while True:
            try:
                if site_only and ent[7]:
                    break
                kind = ent[1]
                sp = R[sp_reg]
                if kind == RULE_SIMPLE:
                    cfa = R[ent[2]] + ent[3]
                    if cfa <= sp:
                        break
                    a = cfa + ent[4] - base
                    if read is not None:
                        # The words the result depends on: return addresses, and registers
                        # restored from the stack once a later CFA is computed from them
                        # (other restored registers, a loop counter say, do not count).
                        if ent[2] in loaded:
                            read.append(loaded[ent[2]])
                        read.append(cfa + ent[4])
                        for reg, off in ent[5]:
                            loaded[reg] = cfa + off
                    ra = unpack(buf, a)[0] if 0 <= a <= nbuf else mem(cfa + ent[4])
                    for reg, off in ent[5]:
                        a = cfa + off - base
                        R[reg] = unpack(buf, a)[0] if 0 <= a <= nbuf else mem(cfa + off)
                elif partial and kind != RULE_END and kind != KIND_STOP:
                    return None
                elif kind == RULE_GENERIC:
                    got = self._generic(R, ent, mem)
                    if got is None:
                        break
                    cfa, ra, signal = got
                    if cfa <= sp and not signal:
                        break
                elif kind == KIND_FP:
                    fp = R[fp_reg]
                    if not fp or fp <= sp:
                        break
                    saved = mem(fp)
                    ra = mem(fp + 8)
                    R[fp_reg] = saved
                    cfa = fp + 16
                else:  # RULE_END, KIND_STOP
                    break
                if ra is None:
                    break
                ra &= ra_mask
                if ra < 4096:
                    break
                R[sp_reg] = cfa
                R[pc_reg] = ra
                if loaded:
                    loaded.pop(sp_reg, None)
                    loaded.pop(pc_reg, None)
                pcs.append(ra)
                if len(pcs) >= MAX_DEPTH:
                    break
                ent = ret.get(ra) or self._resolve(proc, pid, tid, ra, False)
            except (TypeError, IndexError, struct.error):
                if partial:
                    return None
                break
        return tuple(pcs)

    def _read(self, pid: int, tid: int, addr: int, size: int) -> bytes:
        fd = self.mem.fds.get(pid, -1)
        try:
            return os.pread(fd, size, addr) if fd >= 0 else self.mem.read(pid, tid, addr, size)
        except OSError:
            return b""

    def _remember(
        self, proc: _Proc, key: tuple[int, int], offs: list[int], buf: bytes, pcs: tuple[int, ...]
    ) -> None:
        """Remember a walk that read the words at ``offs`` (from sp, sorted) of ``buf``."""
        if not offs or offs[0] < 0 or offs[-1] > len(buf) - 8:
            return  # it read beyond the window: not worth a second read to check
        fmt = ["<"]
        at = offs[0]
        for off in offs:
            if off < at:
                return  # overlapping words (a bizarre CFI): do not remember
            if off > at:
                fmt.append(f"{off - at}x")
            fmt.append("Q")
            at = off + 8
        words = self._structs.get("".join(fmt))
        if words is None:
            words = self._structs["".join(fmt)] = struct.Struct("".join(fmt))
        if len(proc.walks) >= MAX_WALKS:
            proc.walks.clear()  # a program wandering through many stacks: start over
        lo = offs[0]
        seen = proc.walks.get(key)
        if seen is None:
            seen = proc.walks[key] = _Walks(lo, at)
        seen.lo, seen.hi = min(seen.lo, lo), max(seen.hi, at)
        seen.walks.insert(0, _Walk(lo, words, words.unpack_from(buf, lo), pcs))
        del seen.walks[WALKS_PER_SITE:]

    def _window(self, pid: int, tid: int, addr: int) -> tuple[bytes, int]:
        return self.mem.read(pid, tid, addr, WINDOW), addr

    def _generic(self, R: list, ent: tuple, mem) -> tuple[int, int | None, bool] | None:
        cfa_expr, rules, signal = ent[6]
        arch = self.arch
        if cfa_expr is not None:
            cfa = _eval(cfa_expr, R, mem, None)
        else:
            base = R[ent[2]] if 0 <= ent[2] < len(R) else None
            cfa = None if base is None else base + ent[3]
        if cfa is None:
            return None
        new: dict[int, int | None] = {}
        for reg, t, arg in rules:
            if t == 0:  # offset(N)
                v = mem(cfa + arg)
            elif t == 1:  # val_offset(N)
                v = cfa + arg
            elif t == 2:  # register
                v = R[arg] if arg < len(R) else None
            elif t == 3:  # expression
                addr = _eval(arg, R, mem, cfa)
                v = None if addr is None else mem(addr)
            elif t == 4:  # val_expression
                v = _eval(arg, R, mem, cfa)
            elif t == 5:  # undefined
                v = None
            else:  # same value
                continue
            new[reg] = v
        if arch.ra in new:
            ra = new[arch.ra]
        elif arch.ra != arch.pc_reg:
            ra = R[arch.ra]  # aarch64 leaf: the return address is still in the link register
        else:
            ra = None
        for reg, v in new.items():
            if reg != arch.pc_reg:
                R[reg] = v
        if arch.sp not in new:
            R[arch.sp] = cfa
        return cfa, ra, signal

    # -- records for symbolisation ---------------------------------------------------------
    def frames(self, pid: int, pcs: tuple[int, ...]) -> list[Frame | None]:
        """The Frame of each pc as resolved at capture time (works after the process
        exited, and after exec as long as the stack came from a recent image)."""
        if not pcs:
            return []
        chosen, gens = self._image_of(pid, pcs)
        if chosen is None:
            if not gens:
                return [None] * len(pcs)
            chosen = gens[0]
        return self._frames_in(chosen, pcs, gens)

    def _image_of(self, pid: int, pcs: tuple[int, ...]) -> tuple[tuple | None, list]:
        """The image (top, ret, preloaded) of ``pid`` that a stack came from (None when
        none has all its pcs), and every image of ``pid`` kept (empty when the running
        image has them all: the usual case)."""
        live = self._procs.get(pid)
        if live is not None:
            current = (live.top, live.ret, live.preloaded)
            if _has_all(current, pcs):
                return current, []
        gens = self._images(pid)
        for gen in gens:
            if _has_all(gen, pcs):
                return gen, gens
        return None, gens

    def _images(self, pid: int) -> list[tuple]:
        """Every image of ``pid`` still kept, as (top, ret, preloaded), newest first."""
        procs = self._dead_of.get(pid, [])[::-1]
        live = self._procs.get(pid)
        if live is not None:
            procs.insert(0, live)
        return [g for p in procs for g in ((p.top, p.ret, p.preloaded), *p.retired)]

    def all_system(self, pid: int, pcs: tuple[int, ...]) -> bool:
        """Whether every frame of a stack lies in a system library (libc, ld.so, the vdso):
        such a stack has no call site, and ``frames`` need not be built to say so (ld.so's
        start-up stacks, a dozen frames each). Decided in the image ``frames`` would pick."""
        if not pcs:
            return False
        live = self._procs.get(pid)
        if live is not None:
            found = _all_system_in((live.top, live.ret, live.preloaded), pcs)
            if found is not None:
                return found
        for gen in self._images(pid):
            found = _all_system_in(gen, pcs)
            if found is not None:
                return found
        return False

    def _frames_in(self, chosen: tuple, pcs: tuple[int, ...], gens: list) -> list[Frame | None]:
        """The Frames of ``pcs`` in the image ``chosen``, else in any of ``gens``."""
        out: list[Frame | None] = []
        for i, pc in enumerate(pcs):
            e = (chosen[0] if i == 0 else chosen[1]).get(pc)
            if e is None:
                e = self._from_preloaded(chosen, pc, i == 0)
            if e is None:
                for gen in gens:
                    e = (gen[0] if i == 0 else gen[1]).get(pc)
                    if e is not None:
                        break
            out.append(e[0] if e is not None else None)
        return out

    def _from_preloaded(self, gen: tuple, pc: int, top: bool) -> tuple | None:
        """The entry of a pc the stop loop answered from rules taught by ``_preload``
        (never resolved here), as ``_resolve`` would have made it at capture time."""
        lookup = pc if top else pc - 1
        for m, module in gen[2]:
            if m.start <= lookup < m.end:
                vaddr = lookup - m.start + m.offset + module.delta(m.offset)
                rule = module.cfi_rule(vaddr, self.arch)
                frame = Frame(module, vaddr, pc, m.path, pc - m.start + m.offset, pc - lookup)
                site = self._site_stop(module, vaddr)
                if rule is None:
                    entry = (frame, KIND_FP, 0, 0, 0, (), None, site)
                else:
                    entry = (frame, rule[0], rule[1], rule[2], rule[3], rule[4], rule[5], site)
                (gen[0] if top else gen[1])[pc] = entry
                return entry
        return None
