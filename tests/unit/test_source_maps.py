"""Pure pieces of source correlation: /proc/PID/maps parsing, load bias, the per-process
maps cache, which files count as the C runtime, and the CFI expression evaluator."""

from __future__ import annotations

import os
import re

from sysspan.collector.source import maps
from sysspan.collector.source.maps import (
    Mapping,
    MapsCache,
    is_system_path,
    parse_maps,
    read_code_maps,
    read_maps,
    segment_delta,
)
from sysspan.collector.source.symbolize import is_runtime_file, is_runtime_symbol
from sysspan.collector.source.unwind import _eval

MAPS = """\
55d0c0a00000-55d0c0a01000 r--p 00000000 08:01 1311 /usr/bin/my prog
55d0c0a01000-55d0c0a02000 r-xp 00001000 08:01 1311 /usr/bin/my prog
55d0c0a02000-55d0c0a03000 r--p 00002000 08:01 1311 /usr/bin/my prog
55d0c1f00000-55d0c1f21000 rw-p 00000000 00:00 0                          [heap]
7f1e2a000000-7f1e2a028000 r--p 00000000 08:01 4242                       /usr/lib/x86_64-linux-gnu/libc.so.6
7f1e2a028000-7f1e2a19d000 r-xp 00028000 08:01 4242                       /usr/lib/x86_64-linux-gnu/libc.so.6
7f1e2a300000-7f1e2a301000 r-xp 00000000 08:01 77 /tmp/gone.so (deleted)
7ffd4a1e0000-7ffd4a201000 rw-p 00000000 00:00 0                          [stack]
7ffd4a3f6000-7ffd4a3f8000 r-xp 00000000 00:00 0                          [vdso]
garbage line
"""


def test_parse_maps_fields_and_paths():
    maps = parse_maps(MAPS)
    assert len(maps) == 9
    exe = maps[1]
    assert exe == Mapping(0x55D0C0A01000, 0x55D0C0A02000, "r-xp", 0x1000, "08:01", 1311,
                          "/usr/bin/my prog")
    assert exe.executable and not maps[0].executable
    assert maps[3].path == "[heap]" and maps[3].inode == 0
    assert maps[6].deleted and maps[6].path == "/tmp/gone.so (deleted)"
    assert maps[-1].path == "[vdso]"
    assert [m.start for m in maps] == sorted(m.start for m in maps)


def test_parse_maps_sorts_and_tolerates_anonymous_lines():
    text = "2000-3000 r-xp 00000000 00:00 0\n1000-2000 r--p 00000000 00:00 0 \n"
    maps = parse_maps(text)
    assert [m.start for m in maps] == [0x1000, 0x2000]
    assert maps[0].path == "" and maps[1].path == ""


def test_maps_cache_reads_once_until_invalidated():
    calls = []

    def reader(pid):
        calls.append(pid)
        return parse_maps(MAPS)

    cache = MapsCache(reader)
    libc_text = 0x7F1E2A030000
    assert cache.lookup(7, libc_text).path.endswith("libc.so.6")
    assert cache.lookup(7, 0x55D0C0A01234).offset == 0x1000
    assert cache.lookup(7, 0x10) is None  # below every mapping
    assert cache.lookup(7, 0x55D0C0A03000) is None  # in a gap
    assert calls == [7]
    cache.lookup(8, libc_text)
    assert calls == [7, 8]  # per process
    cache.invalidate(7)
    cache.lookup(7, libc_text)
    assert calls == [7, 8, 7]
    assert cache.reads == 3


def test_segment_delta_gnu_ld_pie():
    # gcc/ld -z separate-code: R at 0, R E at 0x1000, R at 0x2000, RW at 0x2db8 (vaddr +0x1000)
    loads = [(0, 0, 0x628, 4), (0x1000, 0x1000, 0x1B5, 5), (0x2000, 0x2000, 0x10C, 4),
             (0x2DB8, 0x3DB8, 0x258, 6)]
    assert segment_delta(0x1000, loads) == 0
    assert segment_delta(0x2000, loads) == 0  # .rodata: file offset == vaddr


def test_segment_delta_non_pie():
    loads = [(0, 0x400000, 0x4F0, 4), (0x1000, 0x401000, 0x1C5, 5)]
    assert segment_delta(0x1000, loads) == 0x400000
    # pc 0x401136 in a mapping starting at 0x401000 with offset 0x1000
    pc, start, off = 0x401136, 0x401000, 0x1000
    assert pc - start + off + segment_delta(off, loads) == 0x401136


def test_segment_delta_segments_sharing_a_page():
    # rustc / lld layout: the R E segment starts inside the R segment's last page
    loads = [(0, 0, 0x14518, 4), (0x14520, 0x15520, 0x401E0, 5), (0x54700, 0x56700, 0x28D8, 6)]
    # kernel maps R E from file offset 0x14000 at vaddr 0x15000 (+ bias)
    assert segment_delta(0x14000, loads) == 0x1000
    bias = 0x5555_5555_0000
    pc = bias + 0x2D4B0
    start = bias + 0x15000
    assert pc - start + 0x14000 + segment_delta(0x14000, loads) == 0x2D4B0


def test_segment_delta_two_segments_in_one_page_prefers_code():
    loads = [(0x0, 0x0, 0x800, 4), (0x800, 0x1800, 0x400, 5)]
    assert segment_delta(0, loads) == 0x1000


def test_segment_delta_vdso():
    assert segment_delta(0, [(0, 0, 0x1000, 5)]) == 0
    assert segment_delta(0, []) == 0


def test_system_paths():
    for path in (
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/lib/x86_64-linux-gnu/libc-2.31.so",
        "/usr/lib64/ld-linux-x86-64.so.2",
        "/lib/ld-linux-aarch64.so.1",
        "/lib/x86_64-linux-gnu/ld-2.31.so",
        "/lib/x86_64-linux-gnu/libpthread.so.0",
        "/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
        "/lib/libc.musl-x86_64.so.1",
        "/lib/ld-musl-x86_64.so.1",
        "/usr/lib/x86_64-linux-gnu/libc.so.6 (deleted)",
        "[vdso]",
    ):
        assert is_system_path(path), path
    for path in (
        "/usr/bin/python3.11",
        "/usr/lib/x86_64-linux-gnu/libcurl.so.4",
        "/usr/lib/x86_64-linux-gnu/libcrypto.so.3",
        "/tmp/build/libmark.so",
        "/opt/libc/app",
        "/usr/lib/libcx.so",
        "[stack]",
        "",
    ):
        assert not is_system_path(path), path


def test_runtime_symbols_and_files():
    assert is_runtime_symbol("_ZN3std2fs11OpenOptions3new17hbfb35424e1b22c00E")
    assert is_runtime_symbol("_RNvMsi_NtNtNtCsjrHSEGnQ3l9_3std3sys2fs4unixNtB5_4File6open_c")
    assert is_runtime_symbol("runtime.goexit")
    assert not is_runtime_symbol("_ZN7markers4main17h0123456789abcdefE")
    assert not is_runtime_symbol("_RNvCs1234_7markers4main")
    assert not is_runtime_symbol("main")
    assert not is_runtime_symbol("")
    assert is_runtime_file("/rustc/5980761/library/std/src/fs.rs")
    assert is_runtime_file("/usr/include/x86_64-linux-gnu/bits/fcntl2.h")
    assert not is_runtime_file("/home/me/src/main.rs")


def test_cfa_expression_of_a_plt_entry():
    """glibc/binutils PLT CFI: CFA = rsp + 8 + ((rip & 15) >= 11) << 3."""
    ops = (
        (0x77, (8,)),  # DW_OP_breg7 (rsp) 8
        (0x80, (0,)),  # DW_OP_breg16 (rip) 0
        (0x3F, ()),  # DW_OP_lit15
        (0x1A, ()),  # DW_OP_and
        (0x3B, ()),  # DW_OP_lit11
        (0x2A, ()),  # DW_OP_ge
        (0x33, ()),  # DW_OP_lit3
        (0x24, ()),  # DW_OP_shl
        (0x22, ()),  # DW_OP_plus
    )
    regs = [0] * 17
    regs[7] = 0x7FFC0000
    regs[16] = 0x401020 + 6  # before the push: offset 6 in the 16-byte entry
    assert _eval(ops, regs, lambda a: None, None) == 0x7FFC0000 + 8
    regs[16] = 0x401020 + 11  # after the push
    assert _eval(ops, regs, lambda a: None, None) == 0x7FFC0000 + 16


def test_expression_with_deref_and_unknown_opcode():
    memory = {0x1000 + 160: 0xDEADBEEF}
    regs = [0] * 17
    regs[7] = 0x1000
    ops = ((0x77, (160,)), (0x06, ()))  # breg7 160; deref (the sigreturn frame's CFA)
    assert _eval(ops, regs, memory.get, None) == 0xDEADBEEF
    assert _eval(((0x77, (8,)), (0x06, ())), regs, memory.get, None) is None  # unreadable
    assert _eval(((0x2F, (4,)),), regs, memory.get, None) is None  # DW_OP_skip: unsupported


# The expression is_system_path used before it became string tests: the reference they must
# agree with on every name below.
_REFERENCE = re.compile(
    r"^(?:ld-linux[^/]*\.so[.\d]*|ld64\.so[.\d]*|ld-musl-[^/]*\.so[.\d]*|ld-[\d.]+\.so"
    r"|lib(?:c|pthread|dl|rt|m|resolv|util|nsl|anl|stdc\+\+|gcc_s|c\+\+|c\+\+abi|unwind)"
    r"(?:-[\d.]+)?\.so(?:\.[\d.]+)?|libc\.musl-[^/]*\.so[.\d]*)$"
)


def test_system_names_agree_with_the_expression_they_replaced():
    heads = ["ld-linux", "ld-linux-x86-64", "ld64", "ld-musl-x86_64", "ld-musl-", "ld-", "ld-2.31",
             "ld-2.", "ld-x", "ld", "libc.musl-x86_64", "libc.musl-", "lib", "libc", "libcx", "libm",
             "libmx", "libstdc++", "libstdc++-6", "libc-2.31", "libc-", "libc-x", "libgcc_s",
             "libc++abi", "libunwind-1.2", "libpthread", "libcurl", "libresolv-2", "one", "python3.11",
             "libc.so.6.libc", "libc.so.so"]
    tails = ["", ".so", ".so.", ".so.6", ".so.6.1", ".so.x", ".so6", ".so.6a", ".sox", ".so.1.so",
             ".so.2.so.3", "so", ".s", ".so..", ".so.1-2"]
    names = [h + t for h in heads for t in tails]
    assert len(names) > 400
    for name in names:
        assert maps._is_system_name(name) == bool(_REFERENCE.match(name)), name


def test_code_maps_of_a_live_process_are_its_executable_mappings():
    pid = os.getpid()
    every = read_maps(pid)
    code = read_code_maps(pid)
    assert code == [m for m in every if m.executable]
    assert len(code) < len(every)
    # the default reader of the cache: a data address is as good as unmapped
    cache = MapsCache()
    data = next(m for m in every if not m.executable and m.path)
    assert cache.lookup(pid, data.start) is None
    for m in code:
        assert cache.lookup(pid, m.start) == m
        assert cache.lookup(pid, m.end - 1) == m
