"""``elfhead`` against pyelftools on real files: the build id (from the note segments, or the
note sections when no segment has one) and the section headers read on demand."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from sysspan.collector.source.elfhead import ElfHead


def _mapped_files() -> list[str]:
    """This interpreter and the shared libraries it has loaded (libc, ld.so, ...)."""
    paths = {sys.executable}
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].startswith("/") and ".so" in parts[5]:
            paths.add(parts[5])
    return sorted(paths)


def _pyelftools(path: str) -> tuple[str | None, list[tuple[str, int, int]]]:
    with open(path, "rb") as fh:
        elf = ELFFile(fh)
        build_id = None
        sections = []
        for sec in elf.iter_sections():
            sections.append((sec.name, sec["sh_offset"], sec["sh_size"]))
            if sec["sh_type"] == "SHT_NOTE" and build_id is None:
                for note in sec.iter_notes():
                    if note["n_type"] == "NT_GNU_BUILD_ID":
                        build_id = note["n_desc"]
        return build_id, sections


def _check(path: str) -> str | None:
    """The build id, checked; a file whose build id is in a note segment must have been
    identified without reading its section headers (what a warm --source run relies on)."""
    want_id, want_sections = _pyelftools(path)
    with open(path, "rb") as fh:
        head = ElfHead(fh)
        assert head.build_id == want_id, path
        if want_id is not None:
            assert head._sections is None, path
        assert [(s.name, s.offset, s.size) for s in head.sections] == want_sections, path
    return head.build_id


def test_system_files_agree_with_pyelftools():
    files = _mapped_files()
    assert len(files) >= 2
    ids = [_check(f) for f in files]
    assert any(ids)  # Debian's libraries carry build ids


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
@pytest.mark.parametrize("link", ["-Wl,--build-id=sha1", "-Wl,--build-id=none", "-static"])
def test_built_programs_agree_with_pyelftools(tmp_path, link):
    (tmp_path / "p.c").write_text("int main(void) { return 0; }\n")
    exe = tmp_path / "p"
    built = subprocess.run(["cc", "-g", link, "-o", str(exe), str(tmp_path / "p.c")],
                           capture_output=True)
    if built.returncode != 0:
        pytest.skip(f"cc {link} failed: {built.stderr.decode()[-200:]}")
    got = _check(str(exe))
    assert (got is None) == (link == "-Wl,--build-id=none")
