"""The decision channel with real processes and pipes, and the Python API's standalone
OpenTelemetry SDK mode against real loopback OTLP receivers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from sysspan.decisions.channel import open_channel
from sysspan.decisions.model import Decision
from sysspan.decisions.sampling import DecisionGate
from sysspan.ids import decision_id

REPO = Path(__file__).resolve().parents[2]

PROGRAM = textwrap.dedent(
    """\
    import os, sys
    import sysspan.decisions as d

    assert d.mode() == sys.argv[1], d.mode()
    d.record("codegen", "integer_type", input={"max": 300}, result="u16")
    with d.decision("optimization", "inline", input={"callee": "f"}) as dec:
        os.stat("/")
        dec.result = {"inlined": True}
    for i in range(int(sys.argv[2])):
        d.record("loop", "step", input=i)
    d.flush()
    """
)
RECORD_LINE = 5
WITH_LINE = 6
LOOP_LINE = 10


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "SYSSPAN_", "TRACEPARENT"))
    }
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


@pytest.fixture
def program(tmp_path) -> Path:
    path = tmp_path / "decide.py"
    path.write_text(PROGRAM)
    return path


def test_python_api_through_the_channel_with_callers_file_and_line(program) -> None:
    got: list[Decision] = []
    channel = open_channel(got.append)
    try:
        proc = subprocess.run(
            [sys.executable, str(program), "channel", "3"],
            env=_env(**channel.env()),
            pass_fds=(channel.child_fd,),
            timeout=60,
        )
    finally:
        channel.close()
    assert proc.returncode == 0
    assert channel.malformed == 0 and channel.received == 5 and len(got) == 5
    first, timed, *loop = got
    assert (first.category, first.name, first.input, first.result) == (
        "codegen",
        "integer_type",
        {"max": 300},
        "u16",
    )
    assert (first.file, first.line) == (str(program), RECORD_LINE)
    assert first.id == decision_id("codegen", "integer_type", str(program), RECORD_LINE)
    assert first.pid > 0 and first.pid != os.getpid()
    assert first.tid == first.pid  # main thread
    assert first.start_ns == first.end_ns
    assert (timed.name, timed.result, timed.line) == ("inline", {"inlined": True}, WITH_LINE)
    assert timed.end_ns > timed.start_ns  # a real duration (os.stat ran inside)
    assert [x.input for x in loop] == [0, 1, 2] and {x.line for x in loop} == {LOOP_LINE}


def test_threads_and_forked_children_share_the_channel(tmp_path) -> None:
    script = tmp_path / "many.py"
    script.write_text(
        textwrap.dedent(
            """\
        import os, threading
        import sysspan.decisions as d

        def work(tag):
            for i in range(500):
                d.record("t", tag, input={"i": i, "pad": "x" * 200})

        threads = [threading.Thread(target=work, args=(f"th{k}",)) for k in range(4)]
        for t in threads:
            t.start()
        pid = os.fork()
        if pid == 0:
            work("child")
            os._exit(0)
        for t in threads:
            t.join()
        os.waitpid(pid, 0)
        """
        )
    )
    got: list[Decision] = []
    channel = open_channel(got.append)
    try:
        subprocess.run(
            [sys.executable, str(script)],
            env=_env(**channel.env()),
            pass_fds=(channel.child_fd,),
            timeout=60,
            check=True,
        )
    finally:
        channel.close()
    assert channel.malformed == 0
    assert len(got) == 2500
    by_name = {}
    for x in got:
        by_name.setdefault(x.name, set()).add((x.pid, x.tid))
    assert len(by_name["child"]) == 1
    child_pid = next(iter(by_name["child"]))[0]
    assert all(
        pid != child_pid for name, ids in by_name.items() if name != "child" for pid, _ in ids
    )
    assert len({tid for name in ("th0", "th1", "th2", "th3") for _, tid in by_name[name]}) == 4


def test_in_process_sampling_keeps_counts_exact(program) -> None:
    gate = DecisionGate(sample_ratio=0.2, max_per_second=0)
    got: list[Decision] = []
    channel = open_channel(got.append, gate=gate, sample_ratio=0.2)
    assert channel.env()["SYSSPAN_DECISION_SAMPLE"] == "0.2"
    try:
        subprocess.run(
            [sys.executable, str(program), "channel", "5000"],
            env=_env(**channel.env()),
            pass_fds=(channel.child_fd,),
            timeout=60,
            check=True,
        )
    finally:
        channel.close()
    assert gate.count == 5002  # every decision is counted, sampled in or not
    assert gate.kept == len(got) == channel.received
    assert 700 < len(got) < 1300
    assert gate.dropped == 5002 - len(got)


def test_in_process_rate_limit_writes_little_and_counts_exact(program) -> None:
    gate = DecisionGate(max_per_second=200)
    got: list[Decision] = []
    channel = open_channel(got.append, gate=gate)
    assert channel.env()["SYSSPAN_DECISION_RATE"] == "200"
    try:
        subprocess.run(
            [sys.executable, str(program), "channel", "20000"],
            env=_env(**channel.env()),
            pass_fds=(channel.child_fd,),
            timeout=60,
            check=True,
        )
    finally:
        channel.close()
    assert gate.count == 20002  # exact although most never left the program
    assert gate.kept == len(got) and gate.dropped == 20002 - len(got)
    assert 200 <= channel.received < 2000  # the burst and the refill, not 20,000 writes
    assert channel.skipped == 20002 - channel.received


def test_rate_limit_and_malformed_lines_are_counted() -> None:
    gate = DecisionGate(max_per_second=5)
    got: list[Decision] = []
    channel = open_channel(got.append, gate=gate)
    fd = channel.child_fd
    lines = b"".join(b'{"category":"c","name":"n","input":%d}\n' % i for i in range(1000))
    lines += b'garbage\n{"category":1}\n' + b"x" * 70_000 + b"\n"
    writer = threading.Thread(target=lambda: os.write(fd, lines))
    writer.start()
    writer.join()
    channel.close()
    assert gate.count == 1000
    assert len(got) == gate.kept and 5 <= gate.kept <= 7  # the burst of a 5/s limit (+ refill while reading)
    assert gate.malformed == channel.malformed == 3


def test_close_does_not_hang_on_a_descendant_that_keeps_the_pipe(tmp_path) -> None:
    got: list[Decision] = []
    channel = open_channel(got.append)
    fd = channel.child_fd
    # the command exits at once but leaves a background process holding the write end
    code = (
        f'import os, subprocess; os.write({fd}, b\'{{"category":"a","name":"b"}}\\n\'); '
        f"subprocess.Popen(['sleep', '30'], pass_fds=({fd},))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], pass_fds=(fd,), start_new_session=True)
    proc.wait(timeout=30)
    t0 = time.monotonic()
    channel.close(timeout=0.5)
    assert time.monotonic() - t0 < 5
    os.killpg(proc.pid, 9)
    assert [x.name for x in got] == ["b"]


def test_channel_needs_pass_fds_only_and_env_names_the_pipe() -> None:
    channel = open_channel()
    try:
        env = channel.env()
        assert env["SYSSPAN_DECISION_FD"] == str(channel.child_fd)
        assert int(env["SYSSPAN_DECISION_INO"]) == os.fstat(channel.child_fd).st_ino
        assert os.get_inheritable(channel.child_fd)
    finally:
        channel.close()


def test_api_without_sysspan_or_otel_is_off(program) -> None:
    proc = subprocess.run([sys.executable, str(program), "off", "10"], env=_env(), timeout=60)
    assert proc.returncode == 0


# --------------------------------------------------------------------------- SDK mode


def _sdk_run(program: Path, **env: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(program), "otel", "2"],
        env=_env(OTEL_SERVICE_NAME="decider", **env),
        timeout=120,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


def _check_sdk_spans(receiver, program: Path, parent_trace: str | None) -> None:
    from tests.otlp_receiver import attrs

    assert receiver.wait_for_spans(4, timeout=30)
    spans = receiver.spans()
    assert len(spans) == 4
    resource, _ = spans[0]
    assert resource["service.name"] == "decider"
    by_name = {}
    for _res, span in spans:
        by_name.setdefault(span.name, []).append(span)
    span = by_name["codegen::integer_type"][0]
    a = attrs(span.attributes)
    assert (
        a["decision.id"]
        == f"{decision_id('codegen', 'integer_type', str(program), RECORD_LINE):016x}"
    )
    assert a["decision.category"] == "codegen" and a["decision.name"] == "integer_type"
    assert a["decision.input"] == '{"max":300}' and a["decision.result"] == '"u16"'
    assert a["code.file.path"] == str(program) and a["code.line.number"] == RECORD_LINE
    assert a["process.pid"] > 0 and a["thread.id"] > 0
    timed = by_name["optimization::inline"][0]
    assert timed.end_time_unix_nano > timed.start_time_unix_nano
    assert len(by_name["loop::step"]) == 2
    if parent_trace is not None:
        for _res, s in spans:
            assert s.trace_id.hex() == parent_trace
            assert s.parent_span_id.hex() == "00f067aa0ba902b7"


def test_standalone_sdk_export_over_http(program, http_receiver) -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    _sdk_run(
        program,
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http_receiver.endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        TRACEPARENT=f"00-{trace}-00f067aa0ba902b7-01",
    )
    _check_sdk_spans(http_receiver, program, trace)


def test_standalone_sdk_export_over_grpc(program, grpc_receiver) -> None:
    _sdk_run(
        program,
        OTEL_EXPORTER_OTLP_ENDPOINT=grpc_receiver.endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
    )
    _check_sdk_spans(grpc_receiver, program, None)
