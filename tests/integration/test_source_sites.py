"""``--source`` on the call-site benchmark's program and on C++ header templates: the line
named is the one that made the call, library code is stepped over whether it was inlined or
not, and a call whose frame a tail call removed is marked ``code.tail_call_suspected``."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from bench import bench_callsites as bc
from tests.tracehelpers import load_spans, sysspan

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


@needs_gcc
@pytest.mark.parametrize("level", ["O0", "O2"])
def test_call_sites_are_exact_and_tail_calls_marked(tmp_path: Path, level: str) -> None:
    score = bc.measure(level, tmp_path)
    assert score.plain == 9 and score.tail == 3, score
    # every call not in tail position is named exactly, and none is marked
    assert score.plain_exact == score.plain, score.misses
    assert score.plain_marked == 0
    # a tail-position call is exact (the compiler kept the call) or marked (it made a jump)
    assert score.tail_exact + score.tail_marked == score.tail, score.misses
    if level == "O0":
        assert score.tail_exact == score.tail  # no tail calls without optimisation


@needs_gcc
def test_tail_call_mark_needs_a_jump(tmp_path: Path) -> None:
    # At -O2 gcc turns other_file_tail's "return open(...)" into "jmp open@plt": its line is
    # lost, and the syscall is attributed to main's call, marked.
    score = bc.measure("O2", tmp_path)
    exe = tmp_path / "callsitesO2"
    dis = subprocess.run(["objdump", "-d", str(exe)], capture_output=True, text=True).stdout
    body = dis.split("<other_file_tail>:", 1)[1].split("\n\n", 1)[0]
    if "jmp" not in body or "call" in body:
        pytest.skip("this compiler kept the call in other_file_tail")
    assert score.tail_marked >= 1
    assert any(m.startswith("other-tail: helpers.c:") and "marked" in m for m in score.misses or [])


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
def test_system_header_template_is_stepped_over_when_not_inlined(tmp_path: Path) -> None:
    # At -O0, std::this_thread::sleep_for is a real function of the program, its code in
    # /usr/include: the site is the user's line that called it.
    src = tmp_path / "sleep.cpp"
    src.write_text(
        "#include <chrono>\n#include <thread>\nint main() {\n"
        "    std::this_thread::sleep_for(std::chrono::milliseconds(1));\n    return 0;\n}\n"
    )
    subprocess.run(["g++", "-O0", "-g", "-o", str(tmp_path / "sleep"), str(src)], check=True)
    out = tmp_path / "t.jsonl"
    res = sysspan("-q", "--source", "-e", "trace=clock_nanosleep,nanosleep", "--trace-file", str(out), "--", str(tmp_path / "sleep"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    sleeps = [s for s in load_spans(out) if s.is_syscall]
    assert sleeps, json.dumps([s.name for s in load_spans(out)])
    for s in sleeps:
        assert s.attrs.get("code.file.path") == str(src), s.attrs
        assert s.attrs.get("code.line.number") == 4
        assert s.attrs.get("code.function.name") == "main"


@pytest.mark.skipif(shutil.which("rustc") is None, reason="needs rustc")
def test_rust_closure_inlined_into_a_std_frame_gets_its_line(tmp_path: Path) -> None:
    # At -O the thread's closure is inlined into std's __rust_begin_short_backtrace: the
    # frame's ELF symbol is std's, the inlined frame inside it is the user's closure.
    src = tmp_path / "main.rs"
    src.write_text(
        "use std::fs::File;\nuse std::thread;\n\nfn main() {\n"
        "    let handle = thread::spawn(|| {\n"
        '        let f = File::open("/etc/hostname");\n'
        "        f.is_ok()\n    });\n"
        "    std::process::exit(if handle.join().unwrap() { 0 } else { 1 });\n}\n"
    )
    exe = tmp_path / "closure"
    subprocess.run(["rustc", "-O", "-g", "-o", str(exe), str(src)], check=True, cwd=tmp_path)
    res = sysspan("-q", "-f", "-k", "-e", "trace=openat", "-o", str(tmp_path / "k.txt"), "--", str(exe), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    frames = (tmp_path / "k.txt").read_text().split("/etc/hostname", 1)[1].splitlines()
    assert any("__rust_begin_short_backtrace" in f for f in frames[1:6])
    assert not any("4main4main" in f for f in frames[1:6])  # main::main::{closure}: no frame
    out = tmp_path / "t.jsonl"
    res = sysspan("-q", "-f", "--source", "-e", "trace=openat", "--trace-file", str(out), "--", str(exe), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    (span,) = [s for s in load_spans(out) if s.is_syscall and s.attrs.get("file.path") == "/etc/hostname"]
    assert span.attrs.get("code.file.path") == str(src), span.attrs
    assert span.attrs.get("code.line.number") == 6
    assert "{closure" in span.attrs.get("code.function.name", ""), span.attrs
