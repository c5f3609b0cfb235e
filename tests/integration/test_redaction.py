"""A corpus of secrets passed the ways people pass them: none may reach the JSONL file, the
-o and -k lines, OTLP (a real loopback receiver), decision inputs or `sysspan span --attr`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.otlp_receiver import attrs
from tests.tracehelpers import load_spans, sysspan

# (argument(s) as passed, the secret part that must not appear anywhere)
CORPUS = [
    (["--password", "hunter2-SEKRIT"], "hunter2-SEKRIT"),
    (["--password=flagform-SEKRIT"], "flagform-SEKRIT"),
    (["--api-token", "spaced-SEKRIT"], "spaced-SEKRIT"),
    (["DB_PASSWORD=envstyle-SEKRIT"], "envstyle-SEKRIT"),
    (["MY_SECRET=secret-SEKRIT"], "secret-SEKRIT"),
    (["GITHUB_TOKEN=token-SEKRIT"], "token-SEKRIT"),
    (["SSH_KEY=key-SEKRIT"], "key-SEKRIT"),
    (["AWS_CREDENTIAL=cred-SEKRIT"], "cred-SEKRIT"),
    (["-H", "Authorization: Bearer bearer-SEKRIT"], "bearer-SEKRIT"),
    (["-H", "Cookie: sid=cookie-SEKRIT"], "cookie-SEKRIT"),
    (["https://alice:urlpw-SEKRIT@example.com/repo.git"], "urlpw-SEKRIT"),
    (["AKIAIOSFODNN7EXAMPLE"], "AKIAIOSFODNN7EXAMPLE"),
    (["ghp_abcdefghijklmnopqrstuvwxyz0123456789"], "ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
    (["xoxb-123456789012-abcdefghijkl"], "xoxb-123456789012-abcdefghijkl"),
]
ARGS = [a for args, _ in CORPUS for a in args]
SECRETS = [s for _, s in CORPUS]
# The stderr decision protocol, written to fd 2 itself (a shell's >&2 writes to fd 1).
DECISION = (
    "import os; os.write(2, b'[DECISION] auth::login "
    'input={"user": "bob", "password": "decision-SEKRIT"}\\n\')'
)


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS + ["decision-SEKRIT"] if s in text]


def test_no_secret_in_jsonl_o_k_or_otlp(tmp_path, http_receiver):
    trace = tmp_path / "t.jsonl"
    lines = tmp_path / "lines.txt"
    script = '"$PY" -c "$DECISION"; /bin/echo "$@" > /dev/null'
    proc = sysspan(
        "-f", "-k", "-o", str(lines), "--trace-file", str(trace),
        "--otlp-endpoint", http_receiver.endpoint, "--syscall-spans", "all",
        "--", "sh", "-c", script, "sh", *ARGS,
        cwd=tmp_path, env={"PY": sys.executable, "DECISION": DECISION},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    spans = load_spans(trace)
    execs = [s for s in spans if s.attrs.get("syscall.name") == "execve"]
    secret_execs = [s for s in execs if "[REDACTED]" in s.attrs["syscall.args"]]
    assert len(secret_execs) == 2  # sh itself and /bin/echo both carried the argv
    decision = next(s for s in spans if "decision.id" in s.attrs)
    assert decision.attrs["decision.input"] == '{"user":"bob","password":"[REDACTED]"}'
    run = next(s for s in spans if s.is_run)
    assert "[REDACTED]" in run.attrs["process.command_args"]
    assert _leaks(trace.read_text()) == []
    o_text = lines.read_text()
    assert "execve(" in o_text and " > " in o_text  # the -k stack lines are there too
    assert _leaks(o_text) == []
    assert http_receiver.wait_for_spans(len(spans), timeout=20)
    received = repr([(attrs(s.attributes), s.name) for _, s in http_receiver.spans()])
    assert "[REDACTED]" in received
    assert _leaks(received) == []


def test_span_attr_values_are_redacted(tmp_path):
    trace = tmp_path / "s.jsonl"
    proc = sysspan(
        "span", "--name", "deploy", "--start", "2024-05-01T10:00:00Z", "--end", "now",
        "--attr", "db.password=attr-SEKRIT", "--attr", "note=ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "--attr", "target=prod", "--trace-file", str(trace),
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (span,) = load_spans(trace)
    assert span.attrs["target"] == "prod"
    assert span.attrs["db.password"] == "[REDACTED]"
    assert "attr-SEKRIT" not in trace.read_text() and _leaks(trace.read_text()) == []


def test_unit_corpus_every_form():
    from sysspan.redact import redact

    out = redact(ARGS)
    assert _leaks(repr(out)) == []
    assert out[0] == "--password" and out[1] == "[REDACTED]"
    text = textwrap.dedent('"/bin/sh", ["sh", "--password", "x-SEKRIT", "--token=y"], 0x1 /* 3 vars */')
    assert "x-SEKRIT" not in redact(text) and "--password" in redact(text)


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
def test_source_attributes_and_stack_traces_are_redacted(tmp_path):
    """A program built in directories whose names hold tokens: code.stacktrace and
    code.file.path name them, and must reach neither the spans' code attributes nor the -k
    lines."""
    secrets = ["ghp_abcdefghijklmnopqrstuvwxyz0123456789", "AKIAIOSFODNN7EXAMPLE"]
    where = tmp_path.joinpath(*secrets)
    where.mkdir(parents=True)
    (where / "prog.c").write_text(
        '#include <fcntl.h>\n#include <unistd.h>\n'
        'int main(void) { close(open("marker", O_RDONLY)); return 0; }\n'
    )
    subprocess.run(["cc", "-g", "-O0", "-o", "prog", "prog.c"], cwd=where, check=True)
    trace = tmp_path / "t.jsonl"
    lines = tmp_path / "lines.txt"
    proc = sysspan("--trace-file", str(trace), "-k", "-o", str(lines), "-e", "trace=openat",
                   "--", str(where / "prog"), cwd=where)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (span,) = [s for s in load_spans(trace) if s.attrs.get("file.path") == "marker"]
    assert "[REDACTED]" in span.attrs["code.stacktrace"], span.attrs
    assert span.attrs["code.file.path"].endswith("/[REDACTED]/[REDACTED]/prog.c"), span.attrs
    code = repr([{k: v for k, v in s.attrs.items() if k.startswith("code.")} for s in load_spans(trace)])
    for text in (code, lines.read_text()):
        assert "/[REDACTED]/[REDACTED]/prog" in text  # the frames are there, masked
        assert [s for s in secrets if s in text] == []
