"""Code addresses to (function, file, line), with inlined calls expanded.

DWARF is read through ``dwarfindex`` (imported with pyelftools, on a cache miss only).
Results are cached per (build id, address) in memory and on disk (``diskcache``), so a hot
call site costs one dict lookup.
"""

from __future__ import annotations

from sysspan.collector.source import diskcache
from sysspan.collector.source.elfinfo import ElfInfo

__all__ = ["Symbolizer", "Symbol", "is_runtime_file", "is_runtime_symbol"]

# Source files of language runtimes and system headers: a frame whose location is in one of
# these is how the program reached the kernel, not where it asked to.
_RUNTIME_PREFIXES = ("/rustc/", "/usr/include/", "/usr/lib/gcc/", "/usr/local/go/src/",
                     "/usr/lib/go/src/", "/usr/share/go/src/", "<")
_RUNTIME_PARTS = ("/rust/deps/", "/library/std/src/", "/library/core/src/", "/library/alloc/src/",
                  "/.rustup/toolchains/", "/.cargo/registry/src/index.crates.io-",
                  "/libstd/", "/libcore/")


_RUST_RUNTIME_CRATES = frozenset({
    "std", "core", "alloc", "hashbrown", "gimli", "addr2line", "rustc_demangle",
    "miniz_oxide", "object", "std_detect", "panic_unwind", "panic_abort", "unwind",
    "compiler_builtins", "memchr", "adler", "adler2",
})
_GO_RUNTIME = ("runtime.", "syscall.", "internal/", "os.", "io/", "io.", "sync.")


def _rust_crate(sym: str) -> str | None:
    """The crate a mangled Rust symbol belongs to (legacy ``_ZN`` and v0 ``_R`` schemes)."""
    if sym.startswith("_ZN"):
        j = 3
        while j < len(sym) and sym[j].isdigit():
            j += 1
        if j == 3:
            return None
        return sym[j : j + int(sym[3:j])]
    if sym.startswith("_R"):
        k = sym.find("C", 2)
        while k != -1:
            j = k + 1
            if j < len(sym) and sym[j] == "s":  # disambiguator: s<base62>_
                end = sym.find("_", j)
                if end == -1:
                    return None
                j = end + 1
            d = j
            while d < len(sym) and sym[d].isdigit():
                d += 1
            if d > j:
                return sym[d : d + int(sym[j:d])]
            k = sym.find("C", k + 1)
    return None


def is_runtime_symbol(sym: str) -> bool:
    """ELF symbols of the Rust standard library and the Go runtime (no DWARF needed)."""
    if not sym:
        return False
    crate = _rust_crate(sym)
    if crate is not None:
        return crate in _RUST_RUNTIME_CRATES
    return sym.startswith(_GO_RUNTIME)


def is_runtime_file(path: str) -> bool:
    """Source paths of the Rust/Go standard libraries and C system headers."""
    return path.startswith(_RUNTIME_PREFIXES) or any(p in path for p in _RUNTIME_PARTS)


class Symbol:
    """What is known about one code address: the inline chain and the ELF symbol."""

    __slots__ = ("chain", "sym", "sym_off")

    def __init__(self, chain: tuple, sym: str, sym_off: int) -> None:
        self.chain = chain  # ((function, file, line), ...) innermost first; () without DWARF
        self.sym = sym  # ELF symbol name ("" if none)
        self.sym_off = sym_off

    @property
    def function(self) -> str:
        if self.chain and self.chain[0][0]:
            return self.chain[0][0]
        return self.sym


class Symbolizer:
    """Cached symbolisation per (build id, address)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, int], Symbol] = {}

    def symbol(self, module: ElfInfo, vaddr: int) -> Symbol:
        key = (module.key, vaddr)
        try:
            return self._cache[key]
        except KeyError:
            pass
        disk = module.disk
        kept = disk.sym.get(vaddr) if disk is not None else None
        if kept is not None:
            sym = Symbol(kept[0], kept[1], kept[2])
            self._cache[key] = sym
            return sym
        chain: tuple = ()
        with module.lock:
            dw = module.dwarf()
            if dw is not None:
                try:
                    chain = dw.lookup(vaddr)
                except Exception:
                    chain = ()
            try:
                s = module.symbol(vaddr)
            except Exception:
                s = None
        sym = Symbol(chain, s[0] if s else "", s[1] if s else 0)
        self._cache[key] = sym
        if disk is not None and len(disk.sym) < diskcache.MAX_ENTRIES:
            disk.sym[vaddr] = (sym.chain, sym.sym, sym.sym_off)
            disk.dirty = True
        return sym
