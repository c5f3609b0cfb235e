"""`sysspan --source` and `-k` through the CLI: the openat of each marker file is attributed
to the source line that made the call."""

from __future__ import annotations

import shutil
import subprocess
import textwrap

import pytest

from tests.tracehelpers import load_spans, sysspan

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")

SRC = textwrap.dedent(
    """\
    #include <fcntl.h>
    #include <unistd.h>
    static void first(void) { close(open("marker-1", O_RDONLY)); }
    static void second(void) {
        close(open("marker-2", O_RDONLY));
    }
    int main(void) {
        first();
        second();
        close(open("marker-3", O_RDONLY));
        return 0;
    }
    """
)
LINES = {"marker-1": 3, "marker-2": 5, "marker-3": 10}


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_source_lines_through_the_cli(tmp_path, opt):
    (tmp_path / "prog.c").write_text(SRC)
    for name in LINES:
        (tmp_path / name).write_text("x")
    subprocess.run(["cc", "-g", opt, "-o", "prog", "prog.c"], cwd=tmp_path, check=True)
    out = tmp_path / "t.jsonl"
    lines = tmp_path / "lines.txt"
    proc = sysspan(
        "--trace-file", str(out), "-k", "-o", str(lines), "-e", "trace=openat", "--", "./prog",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    spans = [s for s in load_spans(out) if s.is_syscall and s.attrs.get("file.path") in LINES]
    assert len(spans) == 3
    for s in spans:
        assert s.attrs["code.file.path"].endswith("prog.c")
        assert s.attrs["code.line.number"] == LINES[s.attrs["file.path"]], s.attrs
        assert "code.stacktrace" in s.attrs
    text = lines.read_text()
    assert "(main+0x" in text or "(main)" in text
    assert " > " in text  # strace -k style frames under the syscall line
