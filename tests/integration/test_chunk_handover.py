"""What the stop loop drained reaches the sink while the command still runs: the trace
command hands the pipeline's partial batch to the export thread after every drained chunk
(``_take_chunk``), instead of waiting until a full batch of 512 spans or the end."""

from __future__ import annotations

import json
import os
import shutil

from sysspan.builder import SpanBuilder
from sysspan.collector.decode import Decoder
from sysspan.collector.syscalls import machine_arch, table
from sysspan.collector.tracer import Tracer
from sysspan.commands.trace import _take_chunk
from sysspan.exporters.jsonl import JsonlSink
from sysspan.exporters.pipeline import Pipeline
from sysspan.ids import SpanIds

ARCH = machine_arch()
EXECVE = frozenset(nr for nr, name in table(ARCH).items() if name in ("execve", "execveat"))


def _spans_per_line(path: str) -> list[int]:
    with open(path) as f:
        return [
            sum(len(ss["spans"]) for rs in json.loads(line)["resourceSpans"] for ss in rs["scopeSpans"])
            for line in f
        ]


def test_spans_reach_the_file_while_the_command_runs(tmp_path):
    trace = str(tmp_path / "t.jsonl")
    decoder = Decoder(ARCH)
    pipeline = Pipeline([JsonlSink(trace, {"service.name": "t"}, "0")], start=False)
    builder = SpanBuilder(
        trace_id=0x1234, run_span_id=7, ids=SpanIds(99), format_call=decoder.format,
        emit=pipeline.emit, emit_all=pipeline.emit_all,
    )
    tracer = Tracer(decoder, follow=False, execve_nrs=EXECVE)
    # The shell makes far fewer than 512 syscalls before it looks: its spans are in the
    # file by then only if they were handed over while it slept. Exit 3 says they were not.
    sh = shutil.which("sh") or "/bin/sh"
    tracer.spawn(sh, [sh, "-c", f'sleep 2; test -s "{trace}" || exit 3'], dict(os.environ))
    pipeline.start(builder.materialize)
    try:
        status = tracer.run(lambda records: _take_chunk(builder, pipeline, records), batch=True)
        builder.finish(0)
    finally:
        reports = pipeline.close()

    assert status is not None and os.waitstatus_to_exitcode(status) == 0
    per_line = _spans_per_line(trace)
    assert len(per_line) >= 2  # a line while it ran, the rest at the end
    # nothing was lost on the way: every syscall and the process span are in the file
    assert sum(per_line) == reports[0].spans_written == builder.syscall_count + 1
