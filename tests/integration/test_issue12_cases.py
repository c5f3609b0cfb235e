"""The cases of the fault and bad-input campaign, each as it was found, under the real CLI."""

from __future__ import annotations

import sys
import textwrap

from tests.tracehelpers import load_spans, sysspan


def test_decision_after_an_overlong_stderr_write_is_kept(tmp_path):
    prog = tmp_path / "prog.py"
    prog.write_text(
        textwrap.dedent(
            """\
            import os
            os.write(2, b'[DECISION] big::one input=' + b'x' * 70000 + b'\\n')
            os.write(2, b'[DECISION] opt::after input={"n": 1}\\n')
            os.write(2, b'y' * 70000 + b'\\n[DECISION] opt::tail input={"n": 2}\\n')
            """
        )
    )
    out = tmp_path / "t.jsonl"
    proc = sysspan("--trace-file", str(out), "--", sys.executable, str(prog), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    names = sorted(s.name for s in load_spans(out) if "decision.id" in s.attrs)
    assert names == ["opt::after", "opt::tail"]
    assert "2 malformed decision records" in proc.stderr
