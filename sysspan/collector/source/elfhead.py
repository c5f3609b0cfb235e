"""An ELF file's headers, read with ``struct``: what a ``--source`` run needs of a file whose
unwind rules and symbolised sites the on-disk cache already holds (build id, machine,
loadable segments, section names and a few sections' bytes), so that such a run never
imports pyelftools (about half of ``--source``'s fixed cost).
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO

#: e_machine → the names pyelftools' ``get_machine_arch`` gives them
_MACHINES = {62: "x64", 183: "AArch64", 3: "x86", 40: "ARM"}
_PT_LOAD = 1
_PT_NOTE = 4
_SHT_NOTE = 7
_NT_GNU_BUILD_ID = 3
_SHN_XINDEX = 0xFFFF


class Section:
    """One section header (a plain class: a NamedTuple's class creation cost more than a
    warm run reads here)."""

    __slots__ = ("name", "type", "flags", "addr", "offset", "size")

    def __init__(self, name: str, type: int, flags: int, addr: int, offset: int, size: int) -> None:
        self.name = name
        self.type = type
        self.flags = flags
        self.addr = addr
        self.offset = offset
        self.size = size


class ElfHead:
    """The headers of the ELF file in ``stream`` (ValueError or struct.error: not one)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        stream.seek(0)
        ident = stream.read(64)
        if len(ident) < 52 or ident[:4] != b"\x7fELF" or ident[4] not in (1, 2) or ident[5] not in (1, 2):
            raise ValueError("not an ELF file")
        wide = ident[4] == 2
        end = "<" if ident[5] == 1 else ">"
        if wide:
            (_, machine, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum,
             shstrndx) = struct.unpack_from(end + "HHIQQQIHHHHHH", ident, 16)  # fmt: skip
        else:
            (_, machine, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum,
             shstrndx) = struct.unpack_from(end + "HHIIIIIHHHHHH", ident, 16)  # fmt: skip
        self.machine = _MACHINES.get(machine, f"EM_{machine}")
        #: PT_LOAD segments as (p_offset, p_vaddr, p_filesz, p_flags)
        self.loads: list[tuple[int, int, int, int]] = []
        notes: list[tuple[int, int]] = []  # PT_NOTE segments as (p_offset, p_filesz)
        phdr = struct.Struct(end + ("IIQQQQQQ" if wide else "IIIIIIII"))
        table = self._read(phoff, phentsize * phnum) if phoff and phnum else b""
        for k in range(len(table) // max(phentsize, 1)):
            f = phdr.unpack_from(table, k * phentsize)
            if f[0] == _PT_LOAD:
                if wide:  # p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, ...
                    self.loads.append((f[2], f[3], f[5], f[1]))
                else:  # p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags, ...
                    self.loads.append((f[1], f[2], f[4], f[6]))
            elif f[0] == _PT_NOTE:
                notes.append((f[2], f[5]) if wide else (f[1], f[4]))
        self._end = end
        self._shdrs = (wide, shoff, shentsize, shnum, shstrndx)
        self._sections: list[Section] | None = None
        # The build id from the note segments, which a loaded file has: the section headers
        # (dozens in a libc) are then read only when a section is asked for, which a warm
        # --source run does for the program's own file alone.
        self.build_id = self._build_id(notes) or self._build_id(
            [(s.offset, s.size) for s in self.sections if s.type == _SHT_NOTE]
        )

    def _read(self, offset: int, size: int) -> bytes:
        self.stream.seek(offset)
        return self.stream.read(size)

    @property
    def sections(self) -> list[Section]:
        """Every section header, in file order."""
        if self._sections is None:
            try:
                self._sections = self._read_sections(self._end, *self._shdrs)
            except (ValueError, struct.error):  # a cut-off table: the segments still serve
                self._sections = []
        return self._sections

    def _read_sections(
        self, end: str, wide: bool, shoff: int, shentsize: int, shnum: int, shstrndx: int
    ) -> list[Section]:
        if not shoff or shentsize < (64 if wide else 40):
            return []
        shdr = struct.Struct(end + ("IIQQQQIIQQ" if wide else "IIIIIIIIII"))
        first = shdr.unpack_from(self._read(shoff, shdr.size))
        if shnum == 0:  # more sections than e_shnum holds: the count is in section 0
            shnum = first[5]
        if shstrndx == _SHN_XINDEX:
            shstrndx = first[6]
        table = self._read(shoff, shentsize * shnum)
        raw = [shdr.unpack_from(table, k * shentsize) for k in range(len(table) // shentsize)]
        names = b""
        if 0 < shstrndx < len(raw):
            names = self._read(raw[shstrndx][4], raw[shstrndx][5])
        out = []
        for name_off, typ, flags, addr, offset, size, *_ in raw:
            stop = names.find(b"\0", name_off)
            name = names[name_off : stop if stop >= 0 else None].decode("utf-8", "replace")
            out.append(Section(name, typ, flags, addr, offset, size))
        return out

    def _build_id(self, areas: list[tuple[int, int]]) -> str | None:
        """The GNU build id among the notes at (file offset, size) ``areas``."""
        end = self._end
        for offset, size in areas:
            data = self._read(offset, size)
            pos = 0
            while pos + 12 <= len(data):
                namesz, descsz, typ = struct.unpack_from(end + "III", data, pos)
                name_at = pos + 12
                desc_at = name_at + ((namesz + 3) & ~3)
                if typ == _NT_GNU_BUILD_ID and data[name_at : name_at + namesz] == b"GNU\0":
                    return data[desc_at : desc_at + descsz].hex() or None
                pos = desc_at + ((descsz + 3) & ~3)
        return None

    def section(self, name: str) -> Section | None:
        return next((s for s in self.sections if s.name == name), None)

    def section_data(self, name: str) -> bytes | None:
        sec = self.section(name)
        return None if sec is None else self._read(sec.offset, sec.size)
