"""The typed reader (``report``'s aggregation pass) accepts only lines the validating
decoder accepts, with the same records; and the aggregator reading a file that way
gives the same report as one fed the validating decoder's spans."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sysspan.errors import TraceFileError
from sysspan.exporters.otlp_json import decode_line, encode_line_bytes
from sysspan.exporters.otlp_json_fast import span_facts
from sysspan.exporters.otlp_json_typed import typed_span_facts, typed_span_records
from sysspan.model import ResourceSpans, Span, SpanEvent, SpanKind, StatusCode
from sysspan.reporters.aggregate import Aggregator
from sysspan.tracefile import span_record

TID = "0" * 31 + "1"


def _syscall(span_id: int, parent: int, name: str, start: int, **attrs: Any) -> Span:
    return Span(7, span_id, parent, name, start, start + 5, SpanKind.INTERNAL,
                {"syscall.name": name, "sysspan.span.role": "syscall", "thread.id": 9, **attrs})  # fmt: skip


def _usual_line() -> bytes:
    spans = [
        Span(7, 1, 0, "run", 10, 90, SpanKind.INTERNAL, {"sysspan.span.role": "run", "process.pid": 4,
                                                         "process.command_args": ["a", "b"]}),
        _syscall(2, 1, "openat", 11, **{"error.type": "ENOENT", "ok": True, "x": 1.5}),
        Span(7, 3, 1, "read", 20, 30, SpanKind.CLIENT, {"syscall.name": "read", "sysspan.span.role": "syscall"},
             StatusCode.ERROR, "failed", trace_state="a=b", flags=1),
    ]  # fmt: skip
    return encode_line_bytes([ResourceSpans({"service.name": "x", "n": [1, 2]}, spans, "sysspan", "1")])


def _validated(line: bytes) -> list | None:
    try:
        batches = decode_line(line.decode())
    except TraceFileError:
        return None
    return [(b.resource.get("service.name"), [span_record(s) for s in b.spans]) for b in batches]


def _one_span(**fields: Any) -> bytes:
    span = {"traceId": TID, "spanId": "0" * 15 + "2", "kind": 1, "startTimeUnixNano": "5",
            "endTimeUnixNano": "6", **fields}  # fmt: skip
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()


def test_the_usual_line_is_read_typed_with_the_validating_decoders_records():
    line = _usual_line()
    typed = typed_span_records(line)
    assert typed is not None and typed == _validated(line)
    assert typed[0][1][2][6] is True  # status ERROR


@pytest.mark.parametrize(
    "line",
    [
        _one_span(flags=2**70),
        _one_span(kind=9),
        _one_span(kind=True),
        _one_span(status={"code": 5}),
        _one_span(status=[]),
        _one_span(status={"message": None}),
        _one_span(status={"code": 2, "message": "m"}),
        _one_span(events=None),
        _one_span(name=None),
        _one_span(parentSpanId=""),
        _one_span(parentSpanId="12"),
        _one_span(traceId="0" * 32),
        _one_span(spanId="zz" * 8),
        _one_span(startTimeUnixNano="1e3"),
        _one_span(somethingElse=[1]),
        _one_span(attributes=[{"key": "s", "value": {"stringValue": "x", "foo": 1}}]),
        _one_span(attributes=[{"key": "s", "value": {"stringValue": None}}]),
        _one_span(attributes=[{"key": "s", "value": {"stringValue": 3}}]),
        _one_span(attributes=[{"key": "n", "value": {"intValue": "12"}}]),
        _one_span(attributes=[{"key": "n", "value": {"intValue": 7}}]),
        _one_span(attributes=[{"key": "n", "value": {"intValue": "x1"}}]),
        _one_span(attributes=[{"key": "n", "value": {"intValue": "1", "stringValue": "a"}}]),
        _one_span(attributes=[{"key": "b", "value": {"boolValue": True}}, {"key": "d", "value": {"doubleValue": "1.5"}}]),
        _one_span(attributes=[{"key": "a", "value": {"arrayValue": {"values": [{"intValue": "3"}]}}}]),
        _one_span(attributes=[{"key": "k", "value": {"kvlistValue": {"values": [{"key": "i", "value": {"stringValue": "j"}}]}}}]),
        _one_span(attributes=[{"key": "y", "value": {"bytesValue": "AAE="}}, {"key": "e", "value": {}}]),
        _one_span(attributes=[{"key": 5, "value": {"stringValue": "x"}}]),
        _one_span(attributes={"key": "s"}),
        b'{"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"intValue": "3"}}]}}]}',
        b'{"resourceSpans": [{"resource": [], "scopeSpans": null}]}',
        b'{"resourceSpans": [{"scopeSpans": [{"scope": {"name": 3}, "spans": []}]}]}',
        b'{"resourceSpans": null}',
        b'{"resourceSpans": [], "x": NaN}',
    ],
)
def test_typed_reading_accepts_only_what_the_validating_decoder_accepts_alike(line):
    typed = typed_span_records(line)
    if typed is not None:
        assert typed == _validated(line)
    # stats' facts: where the typed reading takes the line, the orjson reader agrees.
    wanted = frozenset({"n", "s", "b", "k", "service.name"})
    facts = typed_span_facts(line, wanted)
    if facts is not None:
        assert facts == span_facts(line, wanted)


def test_stats_facts_of_the_usual_line_are_readtyped_span_records():
    wanted = frozenset({"syscall.name", "sysspan.span.role", "error.type", "process.command_args"})
    facts = typed_span_facts(_usual_line(), wanted)
    assert facts is not None and facts == span_facts(_usual_line(), wanted)
    assert facts[0][2] == {"sysspan.span.role": "run", "process.command_args": ["a", "b"]}


def test_aggregating_a_file_equals_aggregating_the_validating_decoders_spans(tmp_path):
    usual = _usual_line()
    # A span with events is not read typed: it and the rest of its line come from the
    # validating decoder, after the spans before it were added the fast way.
    mixed = [_syscall(10 + i, 1, "write", 40 + i) for i in range(3)]
    mixed[1].events = [SpanEvent("signal", 41, {"sig": "SIGINT"})]
    odd = encode_line_bytes([ResourceSpans({"service.name": "x"}, mixed),
                             ResourceSpans({"service.name": "z"}, [_syscall(20, 1, "close", 50)])])  # fmt: skip
    path = tmp_path / "t.jsonl"
    path.write_bytes(usual + b"\n" + odd + b"\n" + usual)  # the last line has no newline
    fast = Aggregator()
    fast.add_file(path)
    reference = Aggregator()
    reference.files.append(str(path))
    for line in (usual, odd, usual):
        for batch in decode_line(line.decode()):
            reference.add_batch(batch)
    assert fast.counts["syscalls"] == 2 * 2 + 4
    assert fast.services == {"x": 9, "z": 1}
    assert fast.report() == reference.report()


def test_a_bad_span_after_good_ones_is_the_error_of_its_line(tmp_path):
    good = _syscall(2, 1, "read", 5)
    bad = _syscall(3, 1, "read", 6)
    line = encode_line_bytes([ResourceSpans({}, [good, bad])]).replace(b'"' + f"{3:016x}".encode() + b'"', b'"3"')
    path = tmp_path / "t.jsonl"
    path.write_bytes(line + b"\n")
    with pytest.raises(TraceFileError, match=r"t\.jsonl:1"):
        Aggregator().add_file(path)
