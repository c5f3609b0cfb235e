"""Call frame information through pyelftools: the FDE covering a pc, compiled into the
small tuples the unwinder applies (``elfinfo``'s ``RULE_*`` rows). Imported only when a
file's rules are not in the on-disk cache: pyelftools takes tens of milliseconds to import.
"""

from __future__ import annotations

import io
import struct
from bisect import bisect_right
from typing import Any

from elftools.dwarf.callframe import FDE, CallFrameInfo, RegisterRule
from elftools.dwarf.dwarf_expr import DWARFExprParser
from elftools.dwarf.structs import DWARFStructs
from elftools.elf.elffile import ELFFile

from sysspan.collector.source.elfinfo import (
    R_EXPR,
    R_OFFSET,
    R_REGISTER,
    R_SAME,
    R_UNDEF,
    R_VAL_EXPR,
    R_VAL_OFFSET,
    RULE_END,
    RULE_GENERIC,
    RULE_SIMPLE,
    Arch,
)

_RTYPE = {
    RegisterRule.OFFSET: R_OFFSET,
    RegisterRule.VAL_OFFSET: R_VAL_OFFSET,
    RegisterRule.REGISTER: R_REGISTER,
    RegisterRule.EXPRESSION: R_EXPR,
    RegisterRule.VAL_EXPRESSION: R_VAL_EXPR,
    RegisterRule.UNDEFINED: R_UNDEF,
    RegisterRule.SAME_VALUE: R_SAME,
}


def _compile_expr(parser: DWARFExprParser, raw: Any) -> tuple:
    return tuple((op.op, tuple(op.args)) for op in parser.parse_expr(list(raw)))


def _compile_row(row: dict, arch: Arch, signal: bool, parser: DWARFExprParser) -> tuple:
    cfa = row["cfa"]
    ra_rule = row.get(arch.ra)
    regs = [(k, v) for k, v in row.items() if isinstance(k, int) and k != arch.ra]
    if ra_rule is not None and ra_rule.type == RegisterRule.UNDEFINED:
        return (RULE_END, 0, 0, 0, (), None)
    simple = (
        cfa.expr is None
        and cfa.reg is not None
        and not signal
        and ra_rule is not None
        and ra_rule.type == RegisterRule.OFFSET
        and all(v.type in (RegisterRule.OFFSET, RegisterRule.SAME_VALUE) for _, v in regs)
    )
    if simple and ra_rule is not None:
        saves = tuple(
            (k, v.arg) for k, v in regs if v.type == RegisterRule.OFFSET and k < arch.nregs
        )
        return (RULE_SIMPLE, cfa.reg, cfa.offset, ra_rule.arg, saves, None)
    cfa_expr = _compile_expr(parser, cfa.expr) if cfa.expr is not None else None
    rules = []
    all_regs = regs + ([(arch.ra, ra_rule)] if ra_rule is not None else [])
    for k, v in all_regs:
        if k >= arch.nregs:
            continue
        t = _RTYPE.get(v.type, R_UNDEF)
        arg = v.arg
        if t in (R_EXPR, R_VAL_EXPR):
            arg = _compile_expr(parser, arg)
        rules.append((k, t, arg))
    cfa_reg = cfa.reg if cfa.reg is not None else -1
    return (RULE_GENERIC, cfa_reg, cfa.offset or 0, 0, (), (cfa_expr, tuple(rules), signal))


class _CfiTable:
    """FDE lookup by address for one CFI section."""

    def __init__(self, cfi: CallFrameInfo, starts: list[int], items: list, ends: list[int] | None):
        self.cfi = cfi
        self.starts = starts
        self.items = items  # FDE offsets (lazy table) or FDE objects
        self.ends = ends  # None when items are offsets (range known after parsing the FDE)

    def find(self, vaddr: int) -> FDE | None:
        i = bisect_right(self.starts, vaddr) - 1
        if i < 0:
            return None
        item = self.items[i]
        if type(item) is int:
            try:
                item = self.cfi._parse_entry_at(item)
            except Exception:
                return None
            if not isinstance(item, FDE):
                return None
            self.items[i] = item
        elif self.ends is not None and self.ends[i] <= vaddr:
            return None
        if not isinstance(item, FDE):
            return None
        lo = item.header["initial_location"]
        if lo <= vaddr < lo + item.header["address_range"]:
            return item
        return None


def _structs(elf: ELFFile) -> DWARFStructs:
    return DWARFStructs(
        little_endian=elf.little_endian, dwarf_format=32, address_size=elf.elfclass // 8
    )


def _read_encoded(data: bytes, pos: int, enc: int, little: bool) -> tuple[int, int]:
    fmt = {0x00: "Q", 0x02: "H", 0x03: "I", 0x04: "Q", 0x0A: "h", 0x0B: "i", 0x0C: "q"}
    code = fmt.get(enc & 0x0F)
    if code is None:
        raise ValueError("unsupported pointer encoding")
    s = struct.Struct(("<" if little else ">") + code)
    return s.unpack_from(data, pos)[0], pos + s.size


def _table_from_hdr(elf: ELFFile, cfi: CallFrameInfo, eh_addr: int) -> _CfiTable | None:
    """The sorted search table of ``.eh_frame_hdr``: binary search without parsing every FDE."""
    hdr = elf.get_section_by_name(".eh_frame_hdr")
    if hdr is None:
        return None
    data = hdr.data()
    if len(data) < 12 or data[0] != 1 or data[3] != 0x3B:  # datarel | sdata4 table
        return None
    little = elf.little_endian
    try:
        _, pos = _read_encoded(data, 4, data[1], little)
        count, pos = _read_encoded(data, pos, data[2], little)
    except ValueError:
        return None
    if count <= 0 or pos + count * 8 > len(data):
        return None
    hdr_addr = hdr["sh_addr"]
    vals = struct.unpack_from(("<" if little else ">") + f"{2 * count}i", data, pos)
    starts = [hdr_addr + v for v in vals[0::2]]
    offs = [hdr_addr + v - eh_addr for v in vals[1::2]]
    return _CfiTable(cfi, starts, offs, None)


def _full_table(cfi: CallFrameInfo) -> _CfiTable:
    fdes = [e for e in cfi.get_entries() if isinstance(e, FDE)]
    fdes.sort(key=lambda f: f.header["initial_location"])
    starts = [f.header["initial_location"] for f in fdes]
    ends = [f.header["initial_location"] + f.header["address_range"] for f in fdes]
    return _CfiTable(cfi, starts, fdes, ends)


def _cfi_tables(elf: ELFFile, debug_elf: ELFFile | None) -> list[_CfiTable]:
    """``.eh_frame`` (what the unwinder at run time uses) first, then ``.debug_frame``."""
    tables: list[_CfiTable] = []
    structs = _structs(elf)
    eh = elf.get_section_by_name(".eh_frame")
    if eh is not None and eh["sh_type"] != "SHT_NOBITS" and eh.data_size:
        cfi = CallFrameInfo(
            stream=io.BytesIO(eh.data()),
            size=eh.data_size,
            address=eh["sh_addr"],
            base_structs=structs,
            for_eh_frame=True,
        )
        table = _table_from_hdr(elf, cfi, eh["sh_addr"])
        if table is None:
            try:
                table = _full_table(cfi)
            except Exception:
                table = None
        if table is not None:
            tables.append(table)
    for src in (elf, debug_elf):
        if src is None:
            continue
        dbg = src.get_section_by_name(".debug_frame")
        if dbg is None or dbg["sh_type"] == "SHT_NOBITS" or not dbg.data_size:
            continue
        try:
            data = dbg.data()  # pyelftools inflates SHF_COMPRESSED sections
            cfi = CallFrameInfo(
                stream=io.BytesIO(data),
                size=len(data),
                address=dbg["sh_addr"],
                base_structs=_structs(src),
            )
            tables.append(_full_table(cfi))
        except Exception:
            continue
        break
    return tables
