"""The builder's shared-shape path for repeated syscalls against its full path, on the records
of a real trace: the same spans, the same OTLP/JSON line, byte for byte."""

from __future__ import annotations

import os
import shutil
import sys
import textwrap

from sysspan.builder import SpanBuilder
from sysspan.collector.decode import Decoder
from sysspan.collector.decode.typed import TypedArgs
from sysspan.collector.syscalls import machine_arch, table
from sysspan.collector.tracer import Tracer
from sysspan.exporters.otlp_json import encode_line
from sysspan.exporters.otlp_proto import ProtoEncoder
from sysspan.ids import SpanIds
from sysspan.model import ResourceSpans, Span, SyscallSpan

ARCH = machine_arch()
NR = {name: nr for nr, name in table(ARCH).items()}

# Repeated calls (reads, failing opens, socket calls whose attributes depend on earlier
# calls), a path, an error status, a child process and a thread.
PROGRAM = textwrap.dedent(
    """
    import os, socket, threading
    for _ in range(50):
        os.read(os.open("/dev/zero", os.O_RDONLY), 3)
        try:
            os.stat("/nonexistent/sysspan")
        except OSError:
            pass
    for _ in range(5):
        a, b = socket.socketpair()
        a.send(b"x"); b.recv(1); a.close(); b.close()
    t = threading.Thread(target=lambda: [os.getpid() for _ in range(20)] and os.stat("/"))
    t.start(); t.join()
    if os.fork() == 0:
        os.stat("/")
        os._exit(3)
    os.wait()
    """
)


def _records(decoder: Decoder) -> list:
    tracer = Tracer(decoder, follow=True, execve_nrs=frozenset({NR["execve"], NR["execveat"]}))
    argv = [sys.executable, "-c", PROGRAM]
    tracer.spawn(shutil.which(argv[0]) or argv[0], argv, dict(os.environ))
    out: list = []
    tracer.run(out.append)
    return out


def _spans(decoder: Decoder, records: list, *, shapes: bool) -> list[Span]:
    typed = TypedArgs(decoder)
    items: list = []
    builder = SpanBuilder(
        trace_id=0x1234, run_span_id=7, ids=SpanIds(99), format_call=decoder.format,
        emit=items.append, typed=typed.attributes,
        # without shapes: no syscall's attributes count as reusable, every span takes the full path
        typed_stateless=typed.stateless if shapes else (lambda _nr: False),
    )
    for rec in records:
        builder.handle(rec)
    builder.finish(records[-1].t if hasattr(records[-1], "t") else 0)
    out: list[Span] = []
    for start in range(0, len(items), 64):  # several batches, as the pipeline hands them over
        out += builder.materialize(items[start : start + 64])
    return out


def _plain(span: Span) -> Span:
    return Span(span.trace_id, span.span_id, span.parent_id, span.name, span.start_ns,
                span.end_ns, span.kind, dict(span.attributes), span.status,
                span.status_message, list(span.events), span.trace_state, span.flags)


def test_shaped_spans_equal_the_full_path_on_a_real_trace():
    decoder = Decoder(ARCH)
    records = _records(decoder)
    shaped = _spans(decoder, records, shapes=True)
    full = _spans(decoder, records, shapes=False)

    assert len(shaped) == len(full) > 200
    reused = [s for s in shaped if type(s) is SyscallSpan]
    assert len(reused) > 100
    # spans of one shape share it (a loop's calls), and the full path made none
    assert len({id(s.key) for s in reused}) < len(reused)
    assert not any(type(s) is SyscallSpan for s in full)
    # the socket calls' attributes depend on earlier calls: those stay on the full path
    names = {s.name for s in shaped if type(s) is not SyscallSpan and "syscall.name" in s.attributes}
    assert names & {"sendto", "recvfrom", "close", "socketpair"}
    assert any(s.status and type(s) is SyscallSpan for s in shaped)  # ENOENT from the loop

    assert [_plain(s) for s in shaped] == [_plain(s) for s in full]
    # the encoders' shape caches against their general paths, twice (the second from the
    # cache); protobuf also with the remote-parent flag bits, for a parent that is remote
    remote = {shaped[0].parent_id}
    proto = {None: ProtoEncoder(), 1: ProtoEncoder(remote_parent_ids=remote)}
    for _ in range(2):
        line = encode_line(ResourceSpans({"service.name": "t"}, shaped))
        assert line == encode_line(ResourceSpans({"service.name": "t"}, [_plain(s) for s in shaped]))
        assert line == encode_line(ResourceSpans({"service.name": "t"}, full))
        for key, enc in proto.items():
            general = (ProtoEncoder() if key is None else ProtoEncoder(remote_parent_ids=remote))
            data = enc.request(ResourceSpans({"service.name": "t"}, shaped))
            assert data == general.request(ResourceSpans({"service.name": "t"}, [_plain(s) for s in shaped]))
            assert data == general.request(ResourceSpans({"service.name": "t"}, full))

    # another trace state, no flags, root spans: the cached parts must follow the span
    for n, s in enumerate(shaped):
        s.trace_state = 'vendor=a"b'
        s.flags = 0
        if n % 2:
            s.parent_id = 0
    line = encode_line(ResourceSpans({}, shaped))
    assert line == encode_line(ResourceSpans({}, [_plain(s) for s in shaped]))
    for enc in proto.values():
        assert enc.request(ResourceSpans({}, shaped)) == ProtoEncoder(
            remote_parent_ids=enc._remote).request(ResourceSpans({}, [_plain(s) for s in shaped]))
    assert '"traceState":"vendor=a\\"b"' in line and '"flags"' not in line
