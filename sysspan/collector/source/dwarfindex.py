"""DWARF lookups for ``symbolize``: a code address to its inline chain of (function, file,
line), read per compile unit and only for the units a looked-up address falls in.

The line table of a unit becomes two sorted arrays (address -> file, line) and its function
DIEs a sorted list of ranges, each with the inlined calls inside it, so one lookup is a
couple of bisects. A module of its own because only a run that misses the on-disk cache
needs it (it and pyelftools are then imported together).
"""

from __future__ import annotations

import os
from bisect import bisect_right
from typing import Any

__all__ = ["DwarfIndex"]


_SCOPES = frozenset({
    "DW_TAG_namespace", "DW_TAG_structure_type", "DW_TAG_class_type", "DW_TAG_union_type",
    "DW_TAG_module", "DW_TAG_interface_type",
})
_ADDR_FORMS = frozenset({"DW_FORM_addr", "DW_FORM_addrx", "DW_FORM_addrx1", "DW_FORM_addrx2",
                         "DW_FORM_addrx3", "DW_FORM_addrx4", "DW_FORM_GNU_addr_index"})


class _Func:
    __slots__ = ("lo", "hi", "name", "die", "inlines")

    def __init__(self, lo: int, hi: int, name: str, die: Any) -> None:
        self.lo = lo
        self.hi = hi
        self.name = name
        self.die = die
        self.inlines: list | None = None  # [(lo, hi, depth, name, call_file, call_line)]


class _Unit:
    """One compile unit: its line table and function ranges, built on first use."""

    def __init__(self, index: DwarfIndex, cu: Any) -> None:
        self.index = index
        self.cu = cu
        self.top = cu.get_top_DIE()
        attrs = self.top.attributes
        comp = attrs.get("DW_AT_comp_dir")
        self.comp_dir = comp.value.decode("utf-8", "replace") if comp else ""
        self.version = cu["version"]
        low = attrs.get("DW_AT_low_pc")
        self.base = low.value if low is not None else 0
        self._lp: Any = False
        self._addrs: list[int] | None = None
        self._rows: list[tuple[int, int, bool]] = []
        self._files: dict[int, str] = {}
        self._funcs: list[_Func] | None = None
        self._func_starts: list[int] = []
        self._names: dict[int, str] = {}
        self._scope: dict[int, tuple[str, ...]] = {}  # DIE offset -> enclosing scope names

    # -- line table ---------------------------------------------------------------------------
    def _program(self) -> Any:
        if self._lp is False:
            try:
                self._lp = self.index.di.line_program_for_CU(self.cu)
            except Exception:
                self._lp = None
        return self._lp

    def _build_lines(self) -> None:
        rows = []
        lp = self._program()
        if lp is not None:
            try:
                for n, entry in enumerate(lp.get_entries()):
                    st = entry.state
                    if st is None:
                        continue
                    end = bool(st.end_sequence)
                    rows.append((st.address, 0 if end else 1, n, st.file, st.line, end))
            except Exception:
                pass
        rows.sort()
        self._addrs = [r[0] for r in rows]
        self._rows = [(r[3], r[4], r[5]) for r in rows]

    def line_at(self, addr: int) -> tuple[str, int] | None:
        if self._addrs is None:
            self._build_lines()
        assert self._addrs is not None
        i = bisect_right(self._addrs, addr) - 1
        if i < 0:
            return None
        file_idx, line, end = self._rows[i]
        if end:
            return None
        return self.file_name(file_idx), line

    def file_name(self, idx: int) -> str:
        try:
            return self._files[idx]
        except KeyError:
            pass
        name = ""
        lp = self._program()
        if lp is not None:
            try:
                entries = lp["file_entry"]
                dirs = lp["include_directory"]
                is_comp_dir = False
                if self.version >= 5:
                    fe = entries[idx]
                    d = dirs[fe.dir_index] if fe.dir_index < len(dirs) else b""
                    is_comp_dir = fe.dir_index == 0  # entry 0 is the compilation directory
                else:
                    fe = entries[idx - 1]
                    d = dirs[fe.dir_index - 1] if 0 < fe.dir_index <= len(dirs) else b""
                fname = fe.name.decode("utf-8", "replace")
                dname = d.decode("utf-8", "replace") if isinstance(d, bytes) else str(d)
                if not os.path.isabs(fname):
                    if dname and not os.path.isabs(dname) and not is_comp_dir:
                        dname = os.path.join(self.comp_dir, dname)
                    fname = os.path.join(dname or self.comp_dir, fname)
                name = os.path.normpath(fname) if fname else ""
            except (IndexError, AttributeError, KeyError):
                name = ""
        self._files[idx] = name
        return name

    # -- functions ----------------------------------------------------------------------------
    def _ranges(self, die: Any) -> list[tuple[int, int]]:
        attrs = die.attributes
        low = attrs.get("DW_AT_low_pc")
        high = attrs.get("DW_AT_high_pc")
        if low is not None and high is not None:
            lo = low.value
            hi = high.value if high.form in _ADDR_FORMS else lo + high.value
            return [(lo, hi)] if hi > lo else []
        rng = attrs.get("DW_AT_ranges")
        if rng is None:
            return []
        rl = self.index.range_lists()
        if rl is None:
            return []
        out = []
        base = self.base
        try:
            for e in rl.get_range_list_at_offset(rng.value, cu=self.cu):
                if hasattr(e, "base_address"):
                    base = e.base_address
                elif e.is_absolute:
                    out.append((e.begin_offset, e.end_offset))
                else:
                    out.append((base + e.begin_offset, base + e.end_offset))
        except Exception:
            return out
        return [(lo, hi) for lo, hi in out if hi > lo]

    def _name(self, die: Any, hops: int = 0) -> str:
        try:
            return self._names[die.offset]
        except KeyError:
            pass
        name = ""
        attrs = die.attributes
        a = attrs.get("DW_AT_name")
        if a is not None:
            # Scopes come from the walk over the unit (pyelftools' get_parent on a DIE
            # reached by reference rescans the whole unit).
            scope = self._scope.get(die.offset, ())
            name = "::".join((*scope, a.value.decode("utf-8", "replace")))
        elif hops < 4:
            for ref in ("DW_AT_abstract_origin", "DW_AT_specification"):
                if ref in attrs:
                    try:
                        name = self._name(die.get_DIE_from_attribute(ref), hops + 1)
                    except Exception:
                        name = ""
                    break
        if not name:
            link = attrs.get("DW_AT_linkage_name") or attrs.get("DW_AT_MIPS_linkage_name")
            if link is not None:
                name = link.value.decode("utf-8", "replace")
        self._names[die.offset] = name
        return name

    def _inlines(self, die: Any, depth: int, out: list) -> None:
        for child in die.iter_children():
            tag = child.tag
            if tag == "DW_TAG_inlined_subroutine":
                attrs = child.attributes
                cf = attrs.get("DW_AT_call_file")
                cl = attrs.get("DW_AT_call_line")
                name = self._name(child)
                for lo, hi in self._ranges(child):
                    out.append((lo, hi, depth, name, cf.value if cf else -1, cl.value if cl else 0))
                if child.has_children:
                    self._inlines(child, depth + 1, out)
            elif tag == "DW_TAG_lexical_block" and child.has_children:
                self._inlines(child, depth, out)

    def _collect(self, die: Any, funcs: list[_Func], scope: tuple[str, ...]) -> None:
        for child in die.iter_children():
            tag = child.tag
            if tag == "DW_TAG_subprogram":
                self._scope[child.offset] = scope
                ranges = self._ranges(child)
                for lo, hi in ranges:
                    funcs.append(_Func(lo, hi, "", child))
                if not ranges and child.has_children:
                    self._collect(child, funcs, scope)  # C++/Rust nested definitions
            elif tag in _SCOPES and child.has_children:
                name = child.attributes.get("DW_AT_name")
                text = name.value.decode("utf-8", "replace") if name is not None else ""
                inner = scope if not text or text.startswith("{impl") else (*scope, text)
                self._collect(child, funcs, inner)

    def func_at(self, addr: int) -> _Func | None:
        """The function containing ``addr``, its name and inlined calls filled in."""
        if self._funcs is None:
            funcs: list[_Func] = []
            try:
                self._collect(self.top, funcs, ())
            except Exception:
                pass
            funcs.sort(key=lambda f: (f.lo, -f.hi))
            self._funcs = funcs
            self._func_starts = [f.lo for f in funcs]
        i = bisect_right(self._func_starts, addr) - 1
        best = None
        # Overlapping ranges are rare (nested functions); look back a little.
        for j in range(i, max(i - 8, -1), -1):
            f = self._funcs[j]
            if f.lo <= addr < f.hi and (best is None or f.hi - f.lo < best.hi - best.lo):
                best = f
        if best is not None and best.inlines is None:
            best.name = self._name(best.die)
            inl: list = []
            if best.die.has_children:
                try:
                    self._inlines(best.die, 1, inl)
                except Exception:
                    pass
            best.inlines = inl
        return best

    def lookup(self, addr: int) -> tuple[tuple[str, str, int], ...]:
        """Inline chain at ``addr``, innermost first: ((function, file, line), ...)."""
        loc = self.line_at(addr)
        func = self.func_at(addr)
        file, line = loc if loc else ("", 0)
        if func is None:
            return ((("", file, line),) if loc else ())
        chain = sorted((x for x in func.inlines or () if x[0] <= addr < x[1]), key=lambda x: x[2])
        out = []
        for k in range(len(chain) - 1, -1, -1):
            lo, hi, depth, name, call_file, call_line = chain[k]
            out.append((name, file, line))
            file = self.file_name(call_file) if call_file >= 0 else ""
            line = call_line
        out.append((func.name, file, line))
        return tuple(out)


class DwarfIndex:
    """Address lookups over one file's DWARF (.debug_info/.debug_line)."""

    def __init__(self, dwarfinfo: Any) -> None:
        self.di = dwarfinfo
        self._aranges: Any = False
        self._cu_starts: list[int] | None = None
        self._cu_ranges: list[tuple[int, int, int]] = []
        self._units: dict[int, _Unit] = {}
        self._rl: Any = False

    def range_lists(self) -> Any:
        if self._rl is False:
            try:
                self._rl = self.di.range_lists()
            except Exception:
                self._rl = None
        return self._rl

    def _unit(self, offset: int) -> _Unit | None:
        unit = self._units.get(offset)
        if unit is None:
            try:
                unit = _Unit(self, self.di.get_CU_at(offset))
            except Exception:
                return None
            self._units[offset] = unit
        return unit

    def _build_cu_ranges(self) -> None:
        ranges: list[tuple[int, int, int]] = []
        try:
            for cu in self.di.iter_CUs():
                unit = self._units.get(cu.cu_offset) or _Unit(self, cu)
                self._units[cu.cu_offset] = unit
                for lo, hi in unit._ranges(unit.top):
                    ranges.append((lo, hi, cu.cu_offset))
        except Exception:
            pass
        ranges.sort()
        self._cu_ranges = ranges
        self._cu_starts = [r[0] for r in ranges]

    def cu_offsets(self, addr: int) -> list[int]:
        out = []
        if self._aranges is False:
            try:
                self._aranges = self.di.get_aranges()
            except Exception:
                self._aranges = None
        if self._aranges is not None:
            try:
                off = self._aranges.cu_offset_at_addr(addr)
            except (IndexError, Exception):
                off = None
            if off is not None:
                return [off]
        if self._cu_starts is None:  # no .debug_aranges, or it misses this address
            self._build_cu_ranges()
        assert self._cu_starts is not None
        i = bisect_right(self._cu_starts, addr) - 1
        for j in range(i, max(i - 16, -1), -1):
            lo, hi, off = self._cu_ranges[j]
            if lo <= addr < hi and off not in out:
                out.append(off)
        return out

    def lookup(self, addr: int) -> tuple[tuple[str, str, int], ...]:
        for off in self.cu_offsets(addr):
            unit = self._unit(off)
            if unit is None:
                continue
            chain = unit.lookup(addr)
            if chain:
                return chain
        return ()
