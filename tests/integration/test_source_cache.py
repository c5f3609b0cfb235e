"""The on-disk cache of ``--source``: written by build id after a run, read by the next run
on the same file, ignored (and rewritten) when damaged, off with SYSSPAN_SOURCE_CACHE=off;
a run that finds everything it needs there does not import pyelftools."""

from __future__ import annotations

import marshal
import shutil
import subprocess
from pathlib import Path

import pytest

from sysspan.collector.source import diskcache
from tests.tracehelpers import load_spans, sysspan

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")

PROGRAM = """\
#include <fcntl.h>
#include <unistd.h>
int main(void) {
    int fd = open("marker", O_RDONLY);
    return fd < 0;
}
"""


def _build_id(exe: Path) -> str:
    notes = subprocess.run(["readelf", "-n", str(exe)], capture_output=True, text=True).stdout
    return notes.split("Build ID:", 1)[1].split()[0]


def _site(tmp_path: Path, exe: Path, cache: str) -> dict:
    out = tmp_path / "t.jsonl"
    out.unlink(missing_ok=True)
    res = sysspan("-q", "--source", "-e", "trace=openat", "--trace-file", str(out), "--", str(exe), cwd=tmp_path, env={"SYSSPAN_SOURCE_CACHE": cache})
    assert res.returncode == 0, res.stderr
    (span,) = [s for s in load_spans(out) if s.is_syscall and s.attrs.get("file.path", "").endswith("marker")]
    return {k: v for k, v in span.attrs.items() if k.startswith("code.")}


def _traced_once(tmp_path: Path) -> tuple[Path, Path]:
    """The program built at -O1 and traced once with --source: (program, cache dir)."""
    (tmp_path / "prog.c").write_text(PROGRAM)
    (tmp_path / "marker").write_text("x")
    exe = tmp_path / "prog"
    subprocess.run(["gcc", "-g", "-O1", "-o", str(exe), str(tmp_path / "prog.c")], check=True)
    cache = tmp_path / "cache"
    _site(tmp_path, exe, str(cache))
    return exe, cache


def test_cache_is_written_by_build_id_and_read_back(tmp_path: Path) -> None:
    (tmp_path / "prog.c").write_text(PROGRAM)
    (tmp_path / "marker").write_text("x")
    exe = tmp_path / "prog"
    subprocess.run(["gcc", "-g", "-O1", "-o", str(exe), str(tmp_path / "prog.c")], check=True)
    cache = tmp_path / "cache"
    first = _site(tmp_path, exe, str(cache))
    assert first["code.line.number"] == 4 and first["code.file.path"] == str(tmp_path / "prog.c")
    kept = cache / diskcache.file_name(_build_id(exe))
    assert kept.is_file() and (cache.stat().st_mode & 0o777) == 0o700

    # The next run takes the site from the cache: a doctored entry shows through.
    data = marshal.loads(kept.read_bytes())
    doctored = 0
    for vaddr, (chain, sym, off) in data["sym"].items():
        if any(f == str(tmp_path / "prog.c") for _, f, _ in chain):
            data["sym"][vaddr] = (tuple((fn, f, 9999) for fn, f, _ in chain), sym, off)
            doctored += 1
    assert doctored
    kept.write_bytes(marshal.dumps(data))
    assert _site(tmp_path, exe, str(cache))["code.line.number"] == 9999

    # A damaged file is ignored and replaced; with the cache off nothing is read.
    kept.write_bytes(b"\x00not marshal")
    assert _site(tmp_path, exe, str(cache)) == first
    assert marshal.loads(kept.read_bytes())["format"] == diskcache._FORMAT
    kept.write_bytes(marshal.dumps(data))
    assert _site(tmp_path, exe, "off") == first


def test_a_run_the_cache_answers_does_not_import_pyelftools(tmp_path: Path) -> None:
    (tmp_path / "prog.c").write_text(PROGRAM)
    (tmp_path / "marker").write_text("x")
    exe = tmp_path / "prog"
    subprocess.run(["gcc", "-g", "-O2", "-o", str(exe), str(tmp_path / "prog.c")], check=True)
    cache = str(tmp_path / "cache")
    runs = []
    for _ in range(2):
        out = tmp_path / "t.jsonl"
        out.unlink(missing_ok=True)
        # -X importtime lists every module the run imports on stderr
        res = sysspan("-q", "--source", "--trace-file", str(out), "--", str(exe),
                      cwd=tmp_path, env={"SYSSPAN_SOURCE_CACHE": cache, "PYTHONPROFILEIMPORTTIME": "1"})  # fmt: skip
        assert res.returncode == 0, res.stderr
        spans = [s for s in load_spans(out) if s.is_syscall]
        runs.append((res.stderr, sorted(str(s.attrs.get("code.line.number")) for s in spans)))
    (cold, cold_lines), (warm, warm_lines) = runs
    assert "elftools.elf.elffile" in cold
    assert "elftools" not in warm
    # nor reads an ELF header: the index of files names the build ids and segments
    assert "sysspan.collector.source.elfhead" in cold and "sysspan.collector.source.elfhead" not in warm
    assert warm_lines == cold_lines and "4" in warm_lines


def test_the_index_of_files_stands_in_for_the_headers_until_the_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file an earlier run met is known by its identity (device, inode, size, mtime): its
    build id and segments come from the index, the file is opened only when its bytes are
    read, and a file changed since is read afresh (never taken for the indexed one)."""
    import os

    from sysspan.collector.source.elfhead import ElfHead
    from sysspan.collector.source.elfinfo import ElfCache

    exe, cache = _traced_once(tmp_path)
    monkeypatch.setenv("SYSSPAN_SOURCE_CACHE", str(cache))
    with open(exe, "rb") as fh:
        head = ElfHead(fh)
    st = os.stat(exe)
    identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    index = diskcache.load_index()
    assert index[identity] == (head.build_id, head.machine, head.loads)

    info = ElfCache().get(str(exe), str(exe))
    assert info is not None and info._stream is None and info._head is None
    assert (info.build_id, info.machine, info.loads) == (head.build_id, head.machine, head.loads)
    offset, vaddr, filesz, _ = next(seg for seg in head.loads if seg[3] & 1)  # PF_X
    raw = exe.read_bytes()
    assert info.read_code(vaddr, 16) == raw[offset : offset + 16]  # opened now

    # What the index says is what is used: a doctored build id shows through.
    index[identity] = ("ab" * 20, head.machine, head.loads)
    diskcache.save_index(index)
    assert ElfCache().get(str(exe), str(exe)).build_id == "ab" * 20

    # Changed after the index named it: the lazy open refuses the other file.
    info = ElfCache().get(str(exe), str(exe))
    os.utime(exe, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    with pytest.raises(OSError):
        info.stream  # noqa: B018 - the lazy open is what is tested
    assert info.read_code(vaddr, 16) is None  # unknown: the tail-call check then says no
    # ... and a new lookup reads its headers afresh.
    again = ElfCache().get(str(exe), str(exe))
    assert again is not None and again._head is not None and again.build_id == head.build_id


def test_section_header_facts_are_kept_and_a_warm_run_reads_no_section_headers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the capture asks of the section headers (a linked-in language runtime, the PLT
    ranges) is kept with the file's entry: the next run answers it without reading them."""
    from elftools.elf.elffile import ELFFile

    from sysspan.collector.source.elfinfo import ElfInfo

    exe, cache = _traced_once(tmp_path)
    with open(exe, "rb") as fh:
        plt = {(s["sh_addr"], s["sh_addr"] + s["sh_size"]) for s in ELFFile(fh).iter_sections()
               if s.name.startswith(".plt")}
    assert plt  # a dynamically linked program calls open through its PLT
    kept = cache / diskcache.file_name(_build_id(exe))
    data = marshal.loads(kept.read_bytes())
    assert data["head"]["mixed"] is False and set(data["head"]["plt"]) == plt

    monkeypatch.setenv("SYSSPAN_SOURCE_CACHE", str(cache))
    with open(exe, "rb") as fh:
        info = ElfInfo(str(exe), fh)
        lo, hi = min(plt)
        assert info.in_plt(lo) and not info.in_plt(hi + 0x100000) and not info.mixed_runtime
        assert info.head._sections is None  # answered from the cache
    # What the entry says is what is answered: a doctored entry shows through.
    data["head"] = {"mixed": True, "plt": ((0, 1 << 63),)}
    kept.write_bytes(marshal.dumps(data))
    with open(exe, "rb") as fh:
        info = ElfInfo(str(exe), fh)
        assert info.mixed_runtime and info.in_plt(hi + 0x100000)
