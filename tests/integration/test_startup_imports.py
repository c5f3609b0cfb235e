"""The default trace path imports only what it uses: every module a run loads is start-up
time of every traced command (`sysspan -qq -- true` is mostly imports). These tests run the
real CLI in a fresh interpreter, trace a real command and read ``sys.modules`` afterwards.
The OTLP case is the control: the same check sees grpc when an exporter does use it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.otlp_receiver import GrpcReceiver
from tests.tracehelpers import REPO, load_spans

# Loaded by a run only when the run needs them (an OTLP endpoint, a subcommand, --source,
# the eBPF backend, a decision payload, GitHub Actions, a failing trace file).
NOT_ON_THE_DEFAULT_PATH = (
    "grpc",
    "google.protobuf",
    "opentelemetry",
    "msgpack",
    "elftools",
    "ptrace",
    "sysspan.exporters.otlp",
    "sysspan.reporters",
    "sysspan.collector.ebpf",
    "sysspan.collector.source",
    "sysspan.commands.report",
    "sysspan.commands.stats",
    "sysspan.commands.merge",
    "sysspan.commands.replay",
    "sysspan.commands.span",
    "sysspan.commands.lambda_",
    "sysspan.commands.decisions",
    "sysspan.decisions.ruchy",
    "sysspan.merge",
    "dataclasses",
    "inspect",
    "secrets",
    "shutil",
    "tempfile",
    "hashlib",
    "subprocess",
    "http",
    "urllib.request",
    "email",
    "asyncio",
    "concurrent",
)

# Run main() in-process, then report what is loaded (after main: exporters and the run's
# end are included, not only the imports at the top).
DRIVER = """
import json, sys
from sysspan.cli import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as fh:
    json.dump({"code": code, "modules": sorted(sys.modules)}, fh)
"""


def _run(tmp_path, *args: str, env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("OTEL_", "TRACE", "SYSSPAN_", "BAGGAGE", "GITHUB_"))}
    full_env["PYTHONPATH"] = str(REPO)
    full_env.update(env or {})
    out = tmp_path / "modules.json"
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(out), *args], env=full_env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(out.read_text())
    return got["code"], got["modules"]


def _loaded(modules: list[str], names: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == n or m.startswith(n + ".") for n in names)]


def test_default_trace_path_imports_nothing_it_does_not_use(tmp_path):
    trace = tmp_path / "t.jsonl"
    code, modules = _run(tmp_path, "-qq", "--trace-file", str(trace), "--", "true")
    assert code == 0
    assert any(s.name == "execve" for s in load_spans(trace))  # the run did trace
    assert "sysspan.commands.trace" in modules
    assert _loaded(modules, NOT_ON_THE_DEFAULT_PATH) == []


def test_follow_and_strace_lines_import_nothing_more(tmp_path):
    code, modules = _run(tmp_path, "-qq", "-f", "-o", str(tmp_path / "lines.txt"),
                         "--trace-file", str(tmp_path / "t.jsonl"), "--",
                         "sh", "-c", "ls / >/dev/null; echo 'run --password x' >/dev/null")
    assert code == 0
    assert "execve(" in (tmp_path / "lines.txt").read_text()
    assert _loaded(modules, NOT_ON_THE_DEFAULT_PATH) == []


def test_otlp_grpc_loads_grpc_and_delivers(tmp_path):
    """The control: configured for OTLP/gRPC, the run loads grpc and the spans arrive."""
    rx = GrpcReceiver().start()
    try:
        code, modules = _run(tmp_path, "-qq", "--", "true", env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{rx.port}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        })
        assert code == 0
        assert "grpc" in modules
        assert rx.wait_for_spans(1)
    finally:
        rx.stop()


# What the console script (`sysspan -qq -- true`) must not import, by name as `python -X
# importtime` reports it: besides the above, what only some runs use (a URL setting, a carrier
# file, incoming baggage or tracestate, the line writers and the -c table, --stderr-tail, the
# --decision-pipe channel, a span budget), and typing (imported only under TYPE_CHECKING).
NOT_IMPORTED_BY_A_PLAIN_RUN = (
    *NOT_ON_THE_DEFAULT_PATH,
    "typing",
    "urllib",
    "ipaddress",
    "shlex",
    "sysspan.propagation.baggage",
    "sysspan.propagation.tracestate",
    "sysspan.decisions.channel",
    "sysspan.decisions._api",  # the traced programs' recording API
    "sysspan.exporters.budget",
    "sysspan.text",
    "sysspan.stderr_tail",
    "json",  # the JSON lines are written with the C escaper alone
    "base64",
    "sysspan.decisions.stderr_protocol",  # until a process writes to fd 2
)


def _console_script_imports(tmp_path, *args: str, env: dict[str, str] | None = None) -> list[str]:
    """Run the console script as an installed sysspan runs (no editable-install finder: -S
    with the site directories on PYTHONPATH, whose .pth files are then not run) and return
    every module `-X importtime` saw it import, the interpreter's own start included."""
    script = Path(sys.executable).parent / "sysspan"
    assert script.exists(), "the sysspan console script is installed beside the interpreter"
    paths = dict.fromkeys([str(REPO), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("OTEL_", "TRACE", "SYSSPAN_", "BAGGAGE", "GITHUB_", "PYTHON"))}
    full_env["PYTHONPATH"] = os.pathsep.join(paths)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-S", "-X", "importtime", str(script), *args],
                          env=full_env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    names = [m.group(1) for m in re.finditer(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", proc.stderr, re.M)]
    assert "sysspan.commands.trace" in names, proc.stderr[-2000:]
    return names


# What a --no-syscalls run (the command wrapped in its run span, decisions over the ring)
# does not use: the syscall decoder and its tables, the ptrace tracer, subprocess.
NOT_IMPORTED_WITHOUT_SYSCALLS = (
    *NOT_IMPORTED_BY_A_PLAIN_RUN,
    "sysspan.collector.decode",
    "sysspan.collector.tracer",
    "sysspan.collector._stoploop",
)
# ... and which a ptrace run does load (the control)
SYSCALL_PATH = ("sysspan.collector.decode", "sysspan.collector.tracer")


def test_console_script_plain_run_imports_only_what_it_uses(tmp_path):
    trace = tmp_path / "t.jsonl"
    names = _console_script_imports(tmp_path, "-qq", "--trace-file", str(trace), "--", "true")
    assert any(s.name == "execve" for s in load_spans(trace))
    assert _loaded(names, NOT_IMPORTED_BY_A_PLAIN_RUN) == []
    assert all(_loaded(names, (name,)) for name in SYSCALL_PATH)


def test_console_script_no_syscalls_run_loads_no_syscall_decoding(tmp_path):
    """--no-syscalls with a program that records a decision: the run and decision spans are
    written, and neither the decoder nor the tracer (nor subprocess) was imported."""
    trace = tmp_path / "t.jsonl"
    program = "import sysspan.decisions as d; d.record('cache', 'lookup', input=1, result=True)"
    names = _console_script_imports(tmp_path, "-qq", "--no-syscalls", "--trace-file", str(trace),
                                    "--", sys.executable, "-c", program)
    spans = load_spans(trace)
    assert [s.name for s in spans if s.name != "python"] == ["cache::lookup"], spans
    assert _loaded(names, NOT_IMPORTED_WITHOUT_SYSCALLS) == []


def test_console_script_source_run_does_not_import_typing(tmp_path):
    """A ``--source`` run whose files are in the on-disk cache loads the source modules (the
    control) but, like a plain run, not typing: its import was a third of what ``--source``
    added to such a run's start. (A cold run parses with pyelftools, which imports it.)"""
    env = {"SYSSPAN_SOURCE_CACHE": str(tmp_path / "cache")}
    args = ("-qq", "--source", "--trace-file", str(tmp_path / "t.jsonl"), "--", "true")
    cold = _console_script_imports(tmp_path, *args, env=env)
    assert "elftools" in cold  # the first run did parse: the second reads what it kept
    names = _console_script_imports(tmp_path, *args, env=env)
    assert any(s.name == "execve" for s in load_spans(tmp_path / "t.jsonl"))
    assert "sysspan.collector.source.unwind" in names
    assert "elftools" not in names
    assert "typing" not in names


def test_console_script_check_sees_what_a_run_does_use(tmp_path):
    """The control: the same check, on runs that use them, sees the modules listed above."""
    names = _console_script_imports(
        tmp_path, "-qq", "-c", "--stderr-tail", "3", "--decision-pipe", "--syscall-spans", "errors",
        "--trace-file", str(tmp_path / "t.jsonl"),
        "--", "sh", "-c", "echo to-stderr >&2", env={"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://not-http.invalid",
                           "TRACEPARENT": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                           "TRACESTATE": "k=v", "BAGGAGE": "user=alice"})
    assert {"urllib.parse", "ipaddress", "sysspan.text.summary", "sysspan.stderr_tail",
            "sysspan.propagation.baggage", "sysspan.propagation.tracestate",
            "sysspan.decisions.channel", "sysspan.exporters.budget", "json",
            "sysspan.decisions.stderr_protocol"} <= set(names)


def test_console_script_exits_quickly_with_every_output_and_the_status(tmp_path):
    """The console script ends with os._exit (no interpreter teardown): the command's status
    is still sysspan's, and what sysspan wrote to its pipes and files is all there."""
    script = Path(sys.executable).parent / "sysspan"
    trace = tmp_path / "t.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACE", "SYSSPAN_"))}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run([str(script), "-q", "-C", "-o", "/dev/stdout", "--trace-file", str(trace),
                           "--", "sh", "-c", "exit 7"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 7, proc.stderr
    assert "+++ exited with 7 +++" in proc.stdout  # the -o lines, then the -C table
    assert proc.stdout.endswith(" total\n")
    assert any(s.name == "exit_group" for s in load_spans(trace))
