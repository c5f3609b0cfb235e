"""What sysspan needs from one ELF file, opened lazily and parsed once.

The headers (``elfhead``) are read at once, unless the on-disk cache's index of files already
names the file's build id and segments (then the file is opened only if something is asked of
it that the cache does not hold); pyelftools is imported and the file parsed only for what the
on-disk cache (``diskcache``) does not hold:

* Call frame information (``.eh_frame`` through the ``.eh_frame_hdr`` search table, else
  every FDE of ``.eh_frame``/``.debug_frame`` sorted by start address) compiled per pc into
  small tuples the unwinder applies without touching pyelftools again.
* The symbol table (``.symtab``, else ``.dynsym``) for frames without debug information.
* DWARF line tables and function DIEs, per compile unit and only for the units a pc falls
  in, from the file itself or from a separate debug file found by build id
  (``/usr/lib/debug/.build-id/xx/yyyy.debug``) or ``.gnu_debuglink``.

Files are cached by identity (path, device, inode, size, mtime) so each is parsed once
however many processes map it.
"""

from __future__ import annotations

import io
import os
import struct
import threading

from sysspan.collector.source import diskcache
from sysspan.collector.source.maps import is_system_path, segment_delta

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any

    from elftools.elf.elffile import ELFFile

    from sysspan.collector.source.elfcfi import _CfiTable
    from sysspan.collector.source.elfhead import ElfHead

__all__ = [
    "ARCHS",
    "ElfCache",
    "ElfInfo",
    "Arch",
    "RULE_SIMPLE",
    "RULE_GENERIC",
    "RULE_END",
]

DEBUG_ROOT = "/usr/lib/debug"

# Compiled CFI rows: (kind, cfa_reg, cfa_off, ra_off, saves, generic)
#   RULE_SIMPLE:  CFA = reg + off; RA at CFA + ra_off; saves = ((reg, off), ...) at CFA + off
#   RULE_GENERIC: anything else; generic = (cfa_expr, reg_rules, is_signal_frame)
#   RULE_END:     the return address is undefined: the outermost frame (_start, clone)
RULE_SIMPLE, RULE_GENERIC, RULE_END = 0, 1, 2
R_OFFSET, R_VAL_OFFSET, R_REGISTER, R_EXPR, R_VAL_EXPR, R_UNDEF, R_SAME = range(7)


class Arch:
    """DWARF register numbering of one architecture and how ptrace lays registers out."""

    def __init__(
        self,
        name: str,
        nregs: int,
        sp: int,
        ra: int,
        fp: int,
        pc_reg: int,
        from_user: tuple[int, ...],
        user_pc: int,
        user_sp: int,
        syscall_insn: int,
        ra_mask: int,
    ) -> None:
        self.name = name
        self.nregs = nregs  # DWARF registers tracked
        self.sp = sp  # DWARF number of the stack pointer
        self.ra = ra  # return address column
        self.fp = fp  # frame pointer register
        self.pc_reg = pc_reg  # pseudo-register holding the current pc (DW_OP_breg16 in PLTs)
        self.from_user = from_user  # DWARF reg i = getregs()[from_user[i]]
        self.user_pc = user_pc  # index of the pc in getregs()
        self.user_sp = user_sp  # index of the stack pointer in getregs()
        self.syscall_insn = syscall_insn  # bytes of the syscall instruction (pc - this)
        self.ra_mask = ra_mask  # strips pointer-authentication bits (aarch64)


# x86_64 DWARF: rax rdx rcx rbx rsi rdi rbp rsp r8..r15 rip(RA); user_regs_struct order:
# r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags rsp
X86_64 = Arch(
    "x86_64", 17, 7, 16, 6, 16,
    (10, 12, 11, 5, 13, 14, 4, 19, 9, 8, 7, 6, 3, 2, 1, 0, 16),
    16, 19, 2, (1 << 64) - 1,
)
# aarch64 DWARF: x0..x30 (x29 fp, x30 lr = RA), 31 sp, 32 pc pseudo; user_pt_regs:
# x0..x30 sp pc pstate
AARCH64 = Arch(
    "aarch64", 33, 31, 30, 29, 32, tuple(range(33)), 32, 31, 4, (1 << 48) - 1,
)
ARCHS = {"x86_64": X86_64, "amd64": X86_64, "aarch64": AARCH64, "arm64": AARCH64}




class ElfInfo:
    """One ELF image (file or in-memory vdso) and its lazily built indexes."""

    def __init__(
        self,
        path: str,
        stream: IO[bytes] | None,
        *,
        display: str | None = None,
        known: tuple[str, str, list[tuple[int, int, int, int]]] | None = None,
        identity: tuple[int, int, int, int] | None = None,
    ) -> None:
        """``known`` (build id, machine, loadable segments), from the cache's index of files,
        spares reading the headers; ``stream`` may then be None: the file is opened when first
        needed, and must still be the one ``identity`` (device, inode, size, mtime) named."""
        # pyelftools reads through one shared file position: the tracer thread (CFI at
        # capture) and an exporter thread (symbolisation) take turns on the parser.
        self.lock = threading.RLock()
        self.path = display or path  # what users see (the path in /proc/PID/maps)
        self.open_path = path
        self._stream = stream
        self._identity = identity
        # The headers alone answer what a run whose rules and sites come from the on-disk
        # cache asks; pyelftools (``elf``) is imported and the file parsed on a miss.
        self._head: ElfHead | None = None
        self._elf: ELFFile | None = None
        self.build_id: str | None
        if known is None:
            head = self.head
            self.machine, self.build_id, self.loads = head.machine, head.build_id, head.loads
        else:
            self.build_id, self.machine, self.loads = known
        self.is_system = is_system_path(self.path)
        self._deltas: dict[int, int] = {}  # mapping offset -> delta (a file has few segments)
        self.key: str = self.build_id or f"{self.path}@{id(self):x}"
        self._mixed: bool | None = None
        self._cfi: list[_CfiTable] | None = None
        self._rules: dict[tuple[int, str], tuple | None] = {}
        self._parser: Any = None
        self._symtab: tuple[list[int], list[tuple[int, int, str]]] | None = None
        self._own_symtab: tuple[list[int], list[tuple[int, int, str]]] | None = None
        self._plt: list[tuple[int, int]] | None = None
        #: facts about this file kept from earlier runs (``diskcache``), None without a build id
        self.disk = diskcache.load(self.build_id)
        self._debug: ELFFile | None | bool = False  # False: not looked for yet
        self._dwarf: Any = False  # DwarfIndex, None (no DWARF), or False (not built yet)

    @property
    def stream(self) -> IO[bytes]:
        """The file, opened on first use when the cache's index spared reading it."""
        if self._stream is None:
            with self.lock:
                if self._stream is None:
                    fh = open(self.open_path, "rb")  # noqa: SIM115 - kept open
                    st = os.fstat(fh.fileno())
                    if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != self._identity:
                        fh.close()
                        raise OSError(f"{self.open_path} changed while traced")
                    self._stream = fh
        return self._stream

    @property
    def head(self) -> ElfHead:
        """The file's headers (read on first use when the cache's index named the file)."""
        if self._head is None:
            from sysspan.collector.source.elfhead import ElfHead

            with self.lock:
                if self._head is None:
                    self._head = ElfHead(self.stream)
        return self._head

    @property
    def elf(self) -> ELFFile:
        """The file parsed by pyelftools (imported here, on first use)."""
        if self._elf is None:
            with self.lock:
                if self._elf is None:
                    from elftools.elf.elffile import ELFFile

                    self._elf = ELFFile(self.stream)
        return self._elf

    # -- identity --------------------------------------------------------------------------

    def delta(self, map_offset: int) -> int:
        """ELF vaddr minus file offset for code mapped from ``map_offset``."""
        try:
            return self._deltas[map_offset]
        except KeyError:
            found = self._deltas[map_offset] = segment_delta(map_offset, self.loads)
            return found

    @property
    def mixed_runtime(self) -> bool:
        """True for binaries that link their language runtime in (Rust, Go): frames of the
        runtime sit in the same file as the program, so the unwinder must go past them."""
        if self._mixed is None:
            mixed = self._head_fact("mixed")
            if mixed is None:
                head = self.head
                mixed = any(
                    head.section(name) is not None
                    for name in (".go.buildinfo", ".gopclntab", ".note.go.buildid")
                )
                if not mixed:
                    with self.lock:
                        mixed = b"rustc" in (head.section_data(".comment") or b"")
                self._keep_head_fact("mixed", mixed)
            self._mixed = bool(mixed)
        return self._mixed

    # -- separate debug information -------------------------------------------------------------
    def debug_file(self) -> ELFFile | None:
        """The ELF file holding this one's DWARF: itself, or a separate debug file."""
        if self._debug is not False:
            return self._debug  # type: ignore[return-value]
        with self.lock:
            if self._debug is False:
                self._debug = self._find_debug()
        return self._debug  # type: ignore[return-value]

    def _find_debug(self) -> ELFFile | None:
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile

        from sysspan.collector.source.elfhead import ElfHead

        if self.elf.get_section_by_name(".debug_info") is not None:
            return self.elf
        for cand in self._debug_candidates():
            try:
                fh = open(cand, "rb")  # noqa: SIM115 - kept open for lazy parsing
            except OSError:
                continue
            try:
                dbg = ELFFile(fh, stream_loader=_loader(os.path.dirname(cand)))
                if dbg.get_section_by_name(".debug_info") is None:
                    fh.close()
                    continue
                other = ElfHead(fh).build_id
                if self.build_id and other and other != self.build_id:
                    fh.close()
                    continue
            except (ELFError, OSError, ValueError, struct.error):
                fh.close()
                continue
            return dbg
        return None

    def _debug_candidates(self) -> list[str]:
        out: list[str] = []
        if self.build_id and len(self.build_id) > 2:
            bid = self.build_id
            out.append(os.path.join(DEBUG_ROOT, ".build-id", bid[:2], bid[2:] + ".debug"))
        link = self.elf.get_section_by_name(".gnu_debuglink")
        if link is not None:
            data = link.data()
            name = data.split(b"\0", 1)[0].decode("utf-8", "replace")
            crc_pos = (len(name) + 1 + 3) & ~3
            crc = struct.unpack_from("<I", data, crc_pos)[0] if crc_pos + 4 <= len(data) else None
            real = os.path.realpath(self.open_path)
            found: list[str] = []
            for base in {os.path.dirname(self.path), os.path.dirname(real)}:
                if not base:
                    continue
                found += [
                    os.path.join(base, name),
                    os.path.join(base, ".debug", name),
                    DEBUG_ROOT + os.path.join(base, name),
                ]
            for cand in found:
                if cand in out or not os.path.isfile(cand):
                    continue
                if os.path.realpath(cand) == real:
                    continue
                if crc is not None and not self.build_id and _file_crc(cand) != crc:
                    continue
                out.append(cand)
        return out

    # -- CFI -----------------------------------------------------------------------------
    def cfi_rule(self, vaddr: int, arch: Arch) -> tuple | None:
        """The compiled CFI row covering ``vaddr`` (None: no CFI covers it)."""
        key = (vaddr, arch.name)
        try:
            return self._rules[key]
        except KeyError:
            pass
        disk = self.disk
        if disk is not None and vaddr in disk.cfi:
            rule = disk.cfi[vaddr]
        else:
            with self.lock:
                rule = self._cfi_rule(vaddr, arch)
            if disk is not None and len(disk.cfi) < diskcache.MAX_ENTRIES:
                disk.cfi[vaddr] = rule
                disk.dirty = True
        self._rules[key] = rule
        return rule

    def _cfi_rule(self, vaddr: int, arch: Arch) -> tuple | None:
        from bisect import bisect_right

        from sysspan.collector.source import elfcfi

        rule = None
        try:
            if self._parser is None:
                self._parser = elfcfi.DWARFExprParser(elfcfi._structs(self.elf))
            if self._cfi is None:
                dbg = self.debug_file() if self.elf.get_section_by_name(".eh_frame") is None else None
                self._cfi = elfcfi._cfi_tables(self.elf, dbg if dbg is not self.elf else None)
            for table in self._cfi:
                fde = table.find(vaddr)
                if fde is None:
                    continue
                decoded = fde.get_decoded().table
                if not decoded:
                    continue
                pcs = [row["pc"] for row in decoded]
                row = decoded[max(bisect_right(pcs, vaddr) - 1, 0)]
                cie = fde.cie
                aug = (cie.header.get("augmentation") if cie is not None else None) or b""
                rule = elfcfi._compile_row(row, arch, b"S" in aug, self._parser)
                break
        except Exception:
            rule = None
        return rule

    # -- symbols ----------------------------------------------------------------------------
    def symbol(self, vaddr: int) -> tuple[str, int] | None:
        """(name, offset) of the function symbol containing ``vaddr``."""
        disk = self.disk
        if disk is not None:
            try:
                kept = disk.func[vaddr]
                return None if kept is None else (kept[0], kept[1])
            except KeyError:
                pass
            found = self._symbol(vaddr)
            if len(disk.func) < diskcache.MAX_ENTRIES:
                disk.func[vaddr] = found
                disk.dirty = True
            return found
        return self._symbol(vaddr)

    def _symbol(self, vaddr: int) -> tuple[str, int] | None:
        from bisect import bisect_right  # here: a warm run's lookups are all in the cache

        if self._symtab is None:
            with self.lock:
                if self._symtab is None:
                    self._symtab = self._load_symtab()
        starts, syms = self._symtab
        i = bisect_right(starts, vaddr) - 1
        while i >= 0:
            lo, size, name = syms[i]
            if vaddr < lo + max(size, 1) or size == 0:
                return name, vaddr - lo
            # Nested or overlapping symbols: an earlier, larger one may still cover vaddr.
            if i > 0 and syms[i - 1][0] == lo:
                i -= 1
                continue
            return None
        return None

    def read_code(self, vaddr: int, size: int) -> bytes | None:
        """``size`` bytes of the file's loaded image at ``vaddr`` (None outside it, or when
        the file can no longer be opened: gone or changed since it was indexed)."""
        for offset, start, filesz, _flags in self.loads:
            if start <= vaddr and vaddr + size <= start + filesz:
                try:
                    with self.lock:
                        stream = self.stream
                        stream.seek(offset + vaddr - start)
                        data = stream.read(size)
                except OSError:
                    return None
                return data if len(data) == size else None
        return None

    def in_plt(self, vaddr: int) -> bool:
        """Whether ``vaddr`` lies in a PLT section (stubs that jump to another file)."""
        if self._plt is None:
            plt = self._head_fact("plt")
            if plt is None:
                plt = tuple(
                    (sec.addr, sec.addr + sec.size)
                    for sec in self.head.sections
                    if sec.name.startswith(".plt")
                )
                self._keep_head_fact("plt", plt)
            self._plt = list(plt)
        return any(lo <= vaddr < hi for lo, hi in self._plt)

    def _head_fact(self, name: str) -> Any:
        """What the on-disk cache kept of the section headers under ``name`` (None: not
        kept): a warm run's capture otherwise never reads them."""
        disk = self.disk
        return disk.head.get(name) if disk is not None else None

    def _keep_head_fact(self, name: str, value: Any) -> None:
        disk = self.disk
        if disk is not None:
            disk.head[name] = value
            disk.dirty = True

    def nearest_symbol(self, vaddr: int) -> tuple[str, int] | None:
        """(name, offset) of the closest function symbol at or below ``vaddr`` in this
        file's own symbol tables, whatever its size: how strace -k (libunwind) names a
        frame. It does not read separate debug files, so a stripped library's internal
        functions show as the exported function before them, as in strace."""
        from bisect import bisect_right

        if self._own_symtab is None:
            with self.lock:
                if self._own_symtab is None:
                    self._own_symtab = self._load_symtab(own_only=True)
        starts, syms = self._own_symtab
        i = bisect_right(starts, vaddr) - 1
        if i < 0:
            return None
        return syms[i][2], vaddr - syms[i][0]

    def _load_symtab(self, own_only: bool = False) -> tuple[list[int], list[tuple[int, int, str]]]:
        from elftools.common.exceptions import ELFError
        from elftools.elf.sections import SymbolTableSection

        # Of aliases at one address the first in the file's own symbol tables wins (in
        # section order, so .dynsym before .symtab), then the debug file's: strace -k's
        # rule (libunwind keeps the first symbol at the smallest distance), which names
        # glibc's open __open64 and not open. A sized alias replaces a sizeless one, since
        # only a size tells whether an address lies inside the function.
        entries: dict[int, tuple[int, int, str]] = {}
        sources = [self.elf]
        if not own_only and self.elf.get_section_by_name(".symtab") is None:
            dbg = self.debug_file()
            if dbg is not None and dbg is not self.elf:
                sources.append(dbg)
        for src in sources:
            for sec in src.iter_sections():
                if not isinstance(sec, SymbolTableSection):  # .symtab, .dynsym
                    continue
                try:
                    for sym in sec.iter_symbols():
                        st = sym["st_info"]["type"]
                        if st not in ("STT_FUNC", "STT_GNU_IFUNC") or not sym["st_value"]:
                            continue
                        if sym["st_shndx"] == "SHN_UNDEF":
                            continue
                        lo = sym["st_value"]
                        prev = entries.get(lo)
                        if prev is None or (prev[1] == 0 and sym["st_size"]):
                            entries[lo] = (lo, sym["st_size"], sym.name)
                except (ELFError, ValueError):
                    continue
        syms = sorted(entries.values())
        return [s[0] for s in syms], syms

    # -- DWARF ------------------------------------------------------------------------------
    def dwarf(self) -> Any:
        """The DwarfIndex of this file (None without debug information)."""
        if self._dwarf is False:
            with self.lock:
                if self._dwarf is False:
                    self._dwarf = self._load_dwarf()
        return self._dwarf

    def _load_dwarf(self) -> Any:
        dbg = self.debug_file()
        if dbg is None:
            return None
        from sysspan.collector.source.dwarfindex import DwarfIndex

        try:
            return DwarfIndex(dbg.get_dwarf_info(relocate_dwarf_sections=False))
        except Exception:
            return None


def _loader(base: str):
    def load(path: str | bytes) -> IO[bytes]:
        p = os.fsdecode(path)
        if not os.path.isabs(p):
            p = os.path.join(base, p)
        return open(p, "rb")  # noqa: SIM115 - pyelftools closes it

    return load


def _file_crc(path: str) -> int:
    crc = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            crc = _crc32(chunk, crc)
    return crc & 0xFFFFFFFF


class ElfCache:
    """ELF files by identity, shared by every traced process."""

    def __init__(self) -> None:
        self._files: dict[tuple, ElfInfo | None] = {}
        self._vdso: dict[bytes, ElfInfo | None] = {}
        #: the on-disk cache's index: file identity -> (build id, machine, segments)
        self._index: dict | None = None
        self._index_grew = False

    def get(self, open_path: str, display: str) -> ElfInfo | None:
        try:
            st = os.stat(open_path)
        except OSError:
            return None
        key = (display, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        try:
            return self._files[key]
        except KeyError:
            pass
        if self._index is None:
            self._index = diskcache.load_index()
        identity = key[1:]
        known = diskcache.indexed(self._index, identity) if self._index else None
        info: ElfInfo | None = None
        if known is not None:
            # A file an earlier run met: its headers are not read (nor the file opened)
            # unless something the cache does not hold is asked of it.
            info = ElfInfo(open_path, None, display=display, known=known, identity=identity)
            self._files[key] = info
            return info
        try:
            fh = open(open_path, "rb")  # noqa: SIM115 - ELFFile parses lazily from it
        except OSError:
            fh = None
        if fh is not None:
            try:
                info = ElfInfo(open_path, fh, display=display)
            except (OSError, ValueError, struct.error):
                fh.close()
                info = None
        if info is not None and info.disk is not None:  # a build id, and the cache is on
            self._index[identity] = (info.build_id, info.machine, info.loads)
            self._index_grew = True
        self._files[key] = info
        return info

    def save(self) -> None:
        """Keep what this run learned about each file on disk (``diskcache``)."""
        for info in list(self._files.values()) + list(self._vdso.values()):
            if info is not None and info.disk is not None:
                diskcache.save(info.disk)
        if self._index is not None and self._index_grew:
            diskcache.save_index(self._index)
            self._index_grew = False

    def from_memory(self, name: str, image: bytes) -> ElfInfo | None:
        """An ELF image read out of the tracee (the vdso), cached by content."""
        digest = _crc32(image, 0).to_bytes(4, "little") + len(image).to_bytes(4, "little")
        try:
            return self._vdso[digest]
        except KeyError:
            pass
        try:
            info: ElfInfo | None = ElfInfo(name, io.BytesIO(image), display=name)
        except (ValueError, struct.error):
            info = None
        self._vdso[digest] = info
        return info


def _crc32(data: bytes, crc: int) -> int:
    """zlib's CRC-32 (debug links and in-memory images), imported only by the runs that
    need one."""
    import zlib

    return zlib.crc32(data, crc)
