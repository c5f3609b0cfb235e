"""OTLP/JSON codec, trace-file reader and JSONL sink.

The cross-check test parses our lines with protobuf's own ``json_format`` (after the one
documented OTLP/JSON difference, hex ids) and compares with the official classes' parse of
the protobuf encoder's bytes for the same spans: that is what proves the files are real
OTLP/JSON that a Collector accepts.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sysspan.errors import TraceFileError
from sysspan.exporters.jsonl import JsonlSink, default_trace_path
from sysspan.exporters.otlp_json import (
    decode_line,
    encode_line,
    encode_line_bytes,
    from_proto,
)
from sysspan.exporters.otlp_proto import ProtoEncoder
from sysspan.model import ResourceSpans, Span, SpanEvent, SpanKind, StatusCode
from sysspan.tracefile import count_spans, iter_trace_file
from tests.otlp_receiver import decode_request, otlp_json_to_proto

# --------------------------------------------------------------------------- helpers


def typed(value: Any) -> Any:
    """A comparable form that tells bool from int from float (True == 1 in Python)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else repr(value))
    if isinstance(value, str):
        return ("str", value)
    if isinstance(value, bytes):
        return ("bytes", value)
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    if isinstance(value, dict):
        return ("dict", [(k, typed(v)) for k, v in value.items()])
    if value is None:
        return ("none",)
    raise AssertionError(f"unexpected attribute type {type(value)}")


def assert_span_equal(got: Span, want: Span) -> None:
    for name in Span._FIELDS:
        g, w = getattr(got, name), getattr(want, name)
        if name == "attributes":
            assert typed(g) == typed(w), name
        elif name == "events":
            assert len(g) == len(w)
            for ge, we in zip(g, w, strict=True):
                assert (ge.name, ge.time_ns, typed(ge.attributes)) == (
                    we.name,
                    we.time_ns,
                    typed(we.attributes),
                )
        else:
            assert g == w, f"{name}: {g!r} != {w!r}"
            assert type(g) is type(w) or name in ("kind", "status"), name
    assert isinstance(got.kind, SpanKind) and isinstance(got.status, StatusCode)


def assert_batches_equal(got: list[ResourceSpans], want: list[ResourceSpans]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert typed(g.resource) == typed(w.resource)
        assert (g.scope_name, g.scope_version) == (w.scope_name, w.scope_version)
        assert len(g.spans) == len(w.spans)
        for gs, ws in zip(g.spans, w.spans, strict=True):
            assert_span_equal(gs, ws)


# --------------------------------------------------------------------------- strategies

int64 = st.integers(-(2**63), 2**63 - 1)
uint64 = st.integers(0, 2**64 - 1)
finite_or_inf = st.floats(allow_nan=False)
scalar = st.one_of(st.text(), st.booleans(), int64, finite_or_inf)
attr_value = st.one_of(
    scalar,
    st.lists(st.text(), max_size=4),
    st.lists(int64, max_size=4),
    st.lists(st.booleans(), max_size=3),
    st.lists(finite_or_inf, max_size=3),
    st.lists(scalar, max_size=3),  # OTLP arrays may mix types
)
attributes = st.dictionaries(st.text(max_size=20), attr_value, max_size=5)

events = st.lists(
    st.builds(SpanEvent, name=st.text(max_size=20), time_ns=uint64, attributes=attributes),
    max_size=3,
)

spans = st.builds(
    Span,
    trace_id=st.integers(1, 2**128 - 1),
    span_id=st.integers(1, 2**64 - 1),
    parent_id=st.one_of(st.just(0), st.integers(1, 2**64 - 1)),
    name=st.text(),
    start_ns=uint64,
    end_ns=uint64,
    kind=st.sampled_from(SpanKind),
    attributes=attributes,
    status=st.sampled_from(StatusCode),
    status_message=st.text(max_size=30),
    events=events,
    trace_state=st.text(max_size=30),
    flags=st.integers(0, 2**32 - 1),
)

batches = st.lists(
    st.builds(
        ResourceSpans,
        resource=st.dictionaries(st.text(max_size=20), attr_value, max_size=4).map(
            lambda d: {"service.name": "svc-ü", **d}
        ),
        spans=st.lists(spans, max_size=4),
        scope_name=st.text(max_size=10),
        scope_version=st.text(max_size=10),
    ),
    min_size=1,
    max_size=3,
)

slow = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- round trips


@pytest.mark.slow
@slow
@given(batches)
def test_json_round_trip_field_by_field(bs: list[ResourceSpans]) -> None:
    line = encode_line(bs)
    assert "\n" not in line
    assert_batches_equal(decode_line(line), bs)


@pytest.mark.slow
@slow
@given(batches)
def test_proto_round_trip(bs: list[ResourceSpans]) -> None:
    assert_batches_equal(from_proto(decode_request(ProtoEncoder().request(bs))), bs)


@pytest.mark.slow
@slow
@given(batches)
def test_line_is_real_otlp_json(bs: list[ResourceSpans]) -> None:
    """protobuf's json_format (strict) reads our line as the same message the official
    classes read from the protobuf encoder's bytes."""
    assert otlp_json_to_proto(encode_line(bs)) == decode_request(ProtoEncoder().request(bs))


def test_single_batch_argument_is_accepted() -> None:
    b = ResourceSpans({"service.name": "x"}, [Span(1, 2, 0, "n", 1, 2)])
    assert encode_line(b) == encode_line([b])
    assert ProtoEncoder().request(b) == ProtoEncoder().request([b])


# --------------------------------------------------------------------------- exact format

GOLDEN_SPAN = Span(
    trace_id=0x0AF7651916CD43DD8448EB211C80319C,
    span_id=0xB7AD6B7169203331,
    parent_id=0x00F067AA0BA902B7,
    name="openat",
    start_ns=1_700_000_000_000_000_001,
    end_ns=1_700_000_000_000_004_321,
    kind=SpanKind.INTERNAL,
    attributes={
        "syscall.name": "openat",
        "syscall.return": -2,
        "ok": False,
        "ratio": 0.5,
        "args": ["AT_FDCWD", '"/etc/ä"'],
    },
    status=StatusCode.ERROR,
    status_message="ENOENT",
    events=[SpanEvent("signal", 1_700_000_000_000_000_002, {"signal.number": 17})],
    trace_state="vendor=1",
    flags=1,
)


def test_golden_line_matches_collector_file_exporter_layout() -> None:
    line = encode_line(ResourceSpans({"service.name": "ls"}, [GOLDEN_SPAN], "sysspan", "0.1.0"))
    assert line == (
        '{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"ls"}}]},'
        '"scopeSpans":[{"scope":{"name":"sysspan","version":"0.1.0"},"spans":[{'
        '"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331",'
        '"traceState":"vendor=1","parentSpanId":"00f067aa0ba902b7","flags":1,'
        '"name":"openat","kind":1,'
        '"startTimeUnixNano":"1700000000000000001","endTimeUnixNano":"1700000000000004321",'
        '"attributes":[{"key":"syscall.name","value":{"stringValue":"openat"}},'
        '{"key":"syscall.return","value":{"intValue":"-2"}},'
        '{"key":"ok","value":{"boolValue":false}},'
        '{"key":"ratio","value":{"doubleValue":0.5}},'
        '{"key":"args","value":{"arrayValue":{"values":[{"stringValue":"AT_FDCWD"},{"stringValue":"\\"/etc/ä\\""}]}}}],'
        '"events":[{"timeUnixNano":"1700000000000000002","name":"signal",'
        '"attributes":[{"key":"signal.number","value":{"intValue":"17"}}]}],'
        '"status":{"message":"ENOENT","code":2}}]}]}]}'
    )
    json.loads(line)  # and it is JSON


def test_root_span_defaults_are_omitted() -> None:
    doc = json.loads(encode_line(ResourceSpans({}, [Span(1, 2, 0, "r", 5, 6, flags=0)])))
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert "parentSpanId" not in span and "traceState" not in span and "flags" not in span
    assert "attributes" not in span and "events" not in span
    assert span["status"] == {}
    assert span["traceId"] == "0" * 31 + "1" and span["spanId"] == "0" * 15 + "2"


def test_non_finite_doubles_use_proto3_json_strings() -> None:
    line = encode_line(ResourceSpans({}, [Span(1, 2, 0, "r", 5, 6, attributes={"a": math.inf, "b": -math.inf, "c": math.nan})]))
    assert '"doubleValue":"Infinity"' in line and '"doubleValue":"-Infinity"' in line
    assert '"doubleValue":"NaN"' in line
    attrs = decode_line(line)[0].spans[0].attributes
    assert attrs["a"] == math.inf and attrs["b"] == -math.inf and math.isnan(attrs["c"])


def test_unusual_values_round_trip() -> None:
    span = Span(1, 2, 0, "r", 5, 6, attributes={"m": {"k": [1, "x"]}, "b": b"\x00\xff", "n": None, "e": []})
    got = decode_line(encode_line(ResourceSpans({}, [span])))[0].spans[0].attributes
    assert typed(got) == typed(span.attributes)
    # SpanKind values are IntEnums: written as plain integers
    assert '"intValue":"3"' in encode_line(ResourceSpans({}, [Span(1, 2, 0, "r", 5, 6, attributes={"k": SpanKind.CLIENT})]))


def test_lone_surrogates_survive_a_file_round_trip() -> None:
    """Paths decoded with surrogateescape: the bytes are valid UTF-8 JSON and lossless."""
    name = os.fsdecode(b"/tmp/\xff\xfe")
    data = encode_line_bytes(ResourceSpans({}, [Span(1, 2, 0, "openat", 5, 6, attributes={"file.path": name})]))
    assert data.endswith(b"\n")
    data.decode("utf-8")  # strict: no surrogates in the bytes
    assert decode_line(data.decode("utf-8"))[0].spans[0].attributes["file.path"] == name
    # protobuf cannot carry them: the protobuf encoder escapes them instead of failing
    req = decode_request(ProtoEncoder().request(ResourceSpans({"p": name}, [])))
    assert req.resource_spans[0].resource.attributes[0].value.string_value == "/tmp/\\udcff\\udcfe"


# --------------------------------------------------------------------------- lenient decoding


def test_decode_accepts_numbers_as_numbers_base64_ids_and_enum_names() -> None:
    line = json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "s"}}]},
                    "scopeSpans": [
                        {
                            "scope": {"name": "other"},
                            "spans": [
                                {
                                    "traceId": "CvdlGRbNQ92ESOshHIAxnA==",
                                    "spanId": "t61rcWkgMzE=",
                                    "name": "x",
                                    "kind": "SPAN_KIND_SERVER",
                                    "startTimeUnixNano": 10,
                                    "endTimeUnixNano": 20,
                                    "attributes": [{"key": "n", "value": {"intValue": 7}}],
                                    "status": {"code": "STATUS_CODE_ERROR"},
                                }
                            ],
                        }
                    ],
                }
            ]
        }
    )
    (batch,) = decode_line(line)
    span = batch.spans[0]
    assert span.trace_id == GOLDEN_SPAN.trace_id and span.span_id == GOLDEN_SPAN.span_id
    assert span.kind is SpanKind.SERVER and span.status is StatusCode.ERROR
    assert (span.start_ns, span.end_ns, span.attributes) == (10, 20, {"n": 7})
    assert batch.scope_name == "other" and batch.scope_version == ""


def test_other_signals_yield_no_spans() -> None:
    assert decode_line('{"resourceMetrics":[]}') == []
    assert decode_line('{"resourceSpans":[]}') == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"foo": 1}', "no 'resourceSpans'"),
        ('{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz","spanId":"01"}]}]}]}', "traceId must be 32 hex digits"),
        ('{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"x"}]}]}]}', "has no traceId/spanId"),
        ('{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"' + "1" * 32 + '","spanId":"' + "2" * 16 + '","startTimeUnixNano":"soon"}]}]}]}', "startTimeUnixNano must be an integer"),
        ('{"resourceSpans":[{"resource":{"attributes":[{"key":"k","value":{"boolValue":"yes"}}]}}]}', "boolValue must be true or false"),
        ('{"resourceSpans":"nope"}', "resourceSpans must be a list"),
    ],
)
def test_malformed_lines_raise_trace_file_error_with_location(line: str, message: str) -> None:
    with pytest.raises(TraceFileError) as info:
        decode_line(line, 7, "t.jsonl")
    assert str(info.value).startswith("t.jsonl:7: ")
    assert message in str(info.value)


# --------------------------------------------------------------------------- trace files


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _batch(service: str, n: int, start_id: int = 1) -> ResourceSpans:
    return ResourceSpans(
        {"service.name": service},
        [
            Span(0xABC, start_id + i, 0 if i == 0 else start_id, "read" if i % 2 else "openat", 100 + i, 200 + i,
                 status=StatusCode.ERROR if i == 1 else StatusCode.UNSET)
            for i in range(n)
        ],
        "sysspan",
        "1",
    )


def test_iter_trace_file_streams_lines_and_skips_blank_ones(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.jsonl", [encode_line(_batch("a", 3)), "", "   ", encode_line(_batch("b", 2, 10))])
    got = list(iter_trace_file(path))
    assert [b.resource["service.name"] for b in got] == ["a", "b"]
    assert_batches_equal(got, [_batch("a", 3), _batch("b", 2, 10)])


def test_iter_trace_file_is_lazy(tmp_path: Path) -> None:
    """A bad line far down the file is only reached when the stream gets there."""
    path = _write(tmp_path / "t.jsonl", [encode_line(_batch("a", 1)), "garbage"])
    stream = iter_trace_file(path)
    assert next(stream).resource["service.name"] == "a"
    with pytest.raises(TraceFileError, match=re.escape(f"{path}:2: not valid JSON")):
        next(stream)


def test_missing_file_directory_and_binary_garbage(tmp_path: Path) -> None:
    with pytest.raises(TraceFileError, match="no such file"):
        list(iter_trace_file(tmp_path / "nope.jsonl"))
    with pytest.raises(TraceFileError, match="is a directory"):
        list(iter_trace_file(tmp_path))
    bad = tmp_path / "bin.jsonl"
    bad.write_bytes(b"\xff\xfe\x00garbage\n")
    with pytest.raises(TraceFileError, match=r"bin.jsonl:1: not UTF-8"):
        list(iter_trace_file(bad))


def test_gzip_files_are_read_transparently(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(encode_line(_batch("a", 2)) + "\n")
    assert sum(len(b.spans) for b in iter_trace_file(path)) == 2
    fake = tmp_path / "fake.jsonl.gz"
    fake.write_text("{}\n")
    with pytest.raises(TraceFileError, match="cannot read"):
        list(iter_trace_file(fake))


def test_count_spans(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.jsonl", [encode_line(_batch("a", 3)), encode_line(_batch("b", 2, 10))])
    counts = count_spans(path)
    assert counts["total"] == 5 and counts["lines"] == 2 and counts["traces"] == 1
    assert counts["errors"] == 2
    assert counts["by_name_kind"] == {("openat", "INTERNAL"): 3, ("read", "INTERNAL"): 2}
    assert counts["by_name"] == {"openat": 3, "read": 2}
    assert counts["duration_ns_by_name"]["read"] == 200
    assert counts["first_start_ns"] == 100 and counts["last_end_ns"] == 202
    assert counts["services"] == {"a": 3, "b": 2}


# --------------------------------------------------------------------------- JSONL sink


def test_jsonl_sink_appends_one_line_per_batch(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "run.jsonl"
    sink = JsonlSink(str(path), {"service.name": "ls"}, "0.1.0")
    first, second = _batch("ls", 3).spans, _batch("ls", 2, 10).spans
    sink.export(first)
    assert len(path.read_text().splitlines()) == 1  # flushed per batch, before close
    sink.export(second)
    sink.export([])
    report = sink.close()
    assert report.ok and report.spans_written == 5 and report.path == str(path)
    assert report.messages == [f"wrote 5 spans to {path}"]
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    got = [decode_line(line)[0] for line in lines]
    assert all(b.resource == {"service.name": "ls"} and b.scope_version == "0.1.0" for b in got)
    assert [s.span_id for b in got for s in b.spans] == [s.span_id for s in first + second]


def test_jsonl_sink_counts_failures_instead_of_raising(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    sink = JsonlSink(str(blocker / "sub" / "run.jsonl"), {}, "")
    sink.export(_batch("a", 4).spans)  # parent "directory" is a file: cannot be created
    report = sink.close()
    assert not report.ok and report.spans_failed == 4 and report.spans_written == 0
    assert report.path is None
    assert "4 spans lost" in report.messages[-1]


def test_jsonl_sink_without_spans_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "never.jsonl"
    report = JsonlSink(str(path), {}, "").close()
    assert report.ok and report.path is None and not path.exists()


def test_default_trace_path_shape() -> None:
    path = default_trace_path("out", "/usr/bin/python3", 0xDEADBEEF12345678 << 64)
    assert re.fullmatch(r"out/python3-\d{8}T\d{6}Z-deadbeef\.jsonl", path), path
    odd = default_trace_path("out", "../we ird/x y", 1)
    assert re.fullmatch(r"out/x_y-\d{8}T\d{6}Z-00000000\.jsonl", odd), odd
    assert os.path.dirname(default_trace_path("o", "..", 1)) == "o"
