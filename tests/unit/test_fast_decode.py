"""The fast OTLP/JSON reader agrees with the validating decoder on every line, and a
cut-off last line is skipped with one warning."""

from __future__ import annotations

import json

import pytest

from sysspan.errors import TraceFileError
from sysspan.exporters.otlp_json import decode_line, encode_line_bytes
from sysspan.exporters.otlp_json_fast import decode_line_fast, span_facts, span_records
from sysspan.model import ResourceSpans, Span, SpanEvent, SpanKind, StatusCode
from sysspan.tracefile import (
    count_spans,
    expand_inputs,
    iter_span_records,
    iter_trace_file,
    span_record,
)


def _spans() -> list[Span]:
    return [
        Span(1, 2, 0, "run", 10, 20, SpanKind.INTERNAL, {"syscall.count": 3, "process.command_args": ["a", "b"]}),
        Span(1, 3, 2, "openat", 11, 12, SpanKind.CLIENT, {"syscall.name": "openat", "error.type": "ENOENT", "ok": True, "x": 1.5}, StatusCode.ERROR, "failed", trace_state="a=b", flags=1),
        Span(1, 4, 2, "ev", 11, 12, events=[SpanEvent("signal", 11, {"sig": "SIGINT"})]),
        Span(2**127, 2**63, 5, "ünï", 0, 0, attributes={}),
    ]


def test_fast_and_validating_decoders_agree_on_encoded_lines():
    line = encode_line_bytes([ResourceSpans({"service.name": "x"}, _spans(), "sysspan", "1")])
    assert decode_line_fast(line) == decode_line(line.decode())


@pytest.mark.parametrize(
    "doc",
    [
        {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "AAAAAAAAAAAAAAAAAAAAAQ==", "spanId": "AAAAAAAAAAI=", "name": "b64"}]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "0" * 31 + "1", "spanId": "0" * 15 + "2", "kind": "SPAN_KIND_SERVER", "status": {"code": "STATUS_CODE_ERROR"}}]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "0" * 31 + "1", "spanId": "0" * 15 + "2", "attributes": [{"key": "n", "value": {"intValue": 7}}]}]}]}]},
        {"resourceMetrics": []},
    ],
)
def test_unusual_valid_lines_take_the_validating_path(doc):
    line = json.dumps(doc).encode()
    assert decode_line_fast(line) == decode_line(line.decode())


@pytest.mark.parametrize(
    "text",
    [
        b"{not json",
        b'{"resourceSpans": {}}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "' + b"0" * 32 + b'", "spanId": "1"}]}]}]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "' + b"0" * 31 + b'1", "spanId": "' + b"0" * 15 + b'2", "attributes": [{"key": "s", "value": {"stringValue": 3}}]}]}]}]}',
    ],
)
def test_bad_lines_give_the_validating_decoders_error(text):
    with pytest.raises(TraceFileError) as slow:
        decode_line(text.decode(), 3, "f.jsonl")
    with pytest.raises(TraceFileError) as fast:
        decode_line_fast(text, 3, "f.jsonl")
    assert str(fast.value) == str(slow.value)


def _validated_records(line: bytes) -> list:
    return [
        (b.resource.get("service.name"), [span_record(s) for s in b.spans])
        for b in decode_line(line.decode())
    ]


def test_span_records_match_the_validating_decoder(tmp_path):
    plain = [s for s in _spans() if not s.events]
    line = encode_line_bytes([ResourceSpans({"service.name": "x"}, plain, "sysspan", "1"),
                              ResourceSpans({}, plain[:1])])  # fmt: skip
    records = span_records(line)
    assert records is not None and records == _validated_records(line)
    assert records[0][1][1][6] is True  # status ERROR
    # A line with events, or any unusual shape, is left to the full decoder; the file
    # reader gives the same records either way.
    odd = encode_line_bytes([ResourceSpans({"service.name": "y"}, _spans())])
    assert span_records(odd) is None
    path = tmp_path / "t.jsonl"
    path.write_bytes(line + b"\n" + odd + b"\n")
    assert list(iter_span_records(path)) == [_validated_records(line), _validated_records(odd)]


@pytest.mark.parametrize(
    "text",
    [
        b"{not json",
        b'{"resourceSpans": {}}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "' + b"0" * 31 + b'1", "spanId": "' + b"0" * 15 + b'2", "attributes": [{"key": "s", "value": {"stringValue": 3}}]}]}]}]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "' + b"0" * 31 + b'1", "spanId": "' + b"0" * 15 + b'2", "kind": 9}]}]}]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "' + b"0" * 31 + b'1", "spanId": "' + b"0" * 15 + b'2", "attributes": [{"key": 5, "value": {"stringValue": "x"}}]}]}]}]}',
    ],
)
def test_span_records_leave_bad_lines_to_the_validating_decoder(text):
    assert span_records(text) is None


def test_span_facts_decode_only_the_wanted_attributes():
    line = encode_line_bytes([ResourceSpans({}, _spans(), "sysspan", "1")])
    facts = span_facts(line, frozenset({"syscall.count", "error.type", "x"}))
    assert facts == [
        (1, "run", {"syscall.count": 3}),
        (1, "openat", {"error.type": "ENOENT", "x": 1.5}),
        (1, "ev", {}),
        (2**127, "ünï", {}),
    ]


def test_cut_off_last_line_is_skipped_with_one_warning(tmp_path, capsys):
    line = encode_line_bytes([ResourceSpans({}, _spans(), "sysspan", "1")])
    path = tmp_path / "t.jsonl"
    path.write_bytes(line + line[: len(line) // 2])
    assert len(list(iter_trace_file(path))) == 1
    assert count_spans(path)["total"] == 4
    err = capsys.readouterr().err
    assert err.count("the last line is cut off") == 1 and "t.jsonl:2" in err  # one warning per file
    path.write_bytes(line[: len(line) // 2] + b"\n" + line)  # a broken line inside stays an error
    with pytest.raises(TraceFileError, match="t.jsonl:1"):
        list(iter_trace_file(path))


def test_directories_expand_to_their_trace_files(tmp_path):
    (tmp_path / "b.jsonl").write_text("")
    (tmp_path / "a.jsonl.gz").write_bytes(b"")
    (tmp_path / "x-spool-1.jsonl").write_text("")
    (tmp_path / "notes.txt").write_text("")
    d = str(tmp_path)
    assert expand_inputs([d]) == [f"{d}/a.jsonl.gz", f"{d}/b.jsonl"]
    assert expand_inputs([d], include_spools=True)[-1] == f"{d}/x-spool-1.jsonl"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TraceFileError, match="no \\*.jsonl trace files"):
        expand_inputs([str(empty)])


def test_streaming_merge_reads_back_the_same_spans_in_causal_order(tmp_path):
    from sysspan.merge import merge_files
    from sysspan.merge_stream import merge_files_streaming, read_back

    a = tmp_path / "a.jsonl"
    b = tmp_path / "b.jsonl"
    spans = _spans()
    a.write_bytes(encode_line_bytes([ResourceSpans({"service.name": "a"}, spans[2:], "sysspan", "1")])
                  + encode_line_bytes([ResourceSpans({"service.name": "a"}, spans[:2], "sysspan", "1")]))  # fmt: skip
    b.write_bytes(encode_line_bytes([ResourceSpans({"service.name": "b"}, spans[1:3], "s", "2")]))
    full = merge_files([str(a), str(b)])
    streamed = merge_files_streaming([str(a), str(b)])
    got = list(read_back(streamed))
    assert [(e.span, e.resource, e.scope_name, e.source) for e in got] == [
        (e.span, e.resource, e.scope_name, e.source) for e in full.entries
    ]
    assert (streamed.duplicates, streamed.conflicting_duplicates) == (full.duplicates, full.conflicting_duplicates)
