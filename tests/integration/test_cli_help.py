"""Every command's --help works (argparse help strings are %-formatted: a stray % breaks it)."""

from __future__ import annotations

import pytest

from sysspan.cli import SUBCOMMANDS
from tests.tracehelpers import sysspan


@pytest.mark.parametrize("sub", ["", *SUBCOMMANDS])
def test_help(tmp_path, sub):
    proc = sysspan(*([sub] if sub else []), "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout
    assert "internal error" not in proc.stderr


def test_version(tmp_path):
    proc = sysspan("--version", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("sysspan ")
