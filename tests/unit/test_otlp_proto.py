"""The direct protobuf encoder, checked against the official opentelemetry-proto classes."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sysspan.config import OtlpSettings
from sysspan.exporters.otlp import OtlpSink
from sysspan.exporters.otlp_json import from_proto
from sysspan.exporters.otlp_proto import ProtoEncoder, varint
from sysspan.model import ResourceSpans, Span, SpanEvent, SpanKind, StatusCode

scalars = st.one_of(
    st.text(max_size=20),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
)
attr_values = st.one_of(scalars, st.lists(st.text(max_size=8), max_size=4))
attr_dicts = st.dictionaries(st.text(min_size=1, max_size=12), attr_values, max_size=6)
u64 = st.integers(min_value=1, max_value=2**64 - 1)

spans = st.builds(
    Span,
    trace_id=st.integers(min_value=1, max_value=2**128 - 1),
    span_id=u64,
    parent_id=st.one_of(st.just(0), u64),
    name=st.text(max_size=20),
    start_ns=st.integers(min_value=0, max_value=2**64 - 1),
    end_ns=st.integers(min_value=0, max_value=2**64 - 1),
    kind=st.sampled_from(list(SpanKind)),
    attributes=attr_dicts,
    status=st.sampled_from(list(StatusCode)),
    status_message=st.text(max_size=10),
    events=st.lists(
        st.builds(SpanEvent, name=st.text(max_size=8), time_ns=st.integers(0, 2**63), attributes=attr_dicts),
        max_size=2,
    ),
    trace_state=st.text(alphabet="abc=,", max_size=10),
    flags=st.integers(min_value=0, max_value=0xFF),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(spans, max_size=5), attr_dicts)
def test_bytes_equal_official_serialisation(span_list, resource):
    batch = ResourceSpans(resource, span_list, "sysspan", "1.2.3")
    ours = ProtoEncoder().request(batch)
    # the official parser reads every field back...
    req = ExportTraceServiceRequest()
    req.ParseFromString(ours)
    back = from_proto(req)[0]
    assert (back.resource, back.scope_name, back.scope_version) == (resource, "sysspan", "1.2.3")
    assert [s.span_id for s in back.spans] == [s.span_id for s in span_list]
    for a, b in zip(back.spans, span_list, strict=True):
        assert (a.trace_id, a.parent_id, a.name, a.start_ns, a.end_ns, a.trace_state) == (
            b.trace_id, b.parent_id, b.name, b.start_ns, b.end_ns, b.trace_state,
        )
        assert a.attributes == b.attributes
        assert int(a.kind) == int(b.kind) and int(a.status) == int(b.status)
        assert a.status_message == b.status_message
        assert a.flags == b.flags
        assert [(e.name, e.time_ns, e.attributes) for e in a.events] == [
            (e.name, e.time_ns, e.attributes) for e in b.events
        ]
    # ...and serialises it to the same bytes: field order and omitted defaults are canonical
    assert req.SerializeToString() == ours


def test_cache_hits_give_the_same_bytes_and_stay_bounded():
    enc = ProtoEncoder(cache_size=8)
    span = Span(1, 2, 3, "read", 10, 20, attributes={"syscall.name": "read", "thread.id": 7})
    first = enc.span(span)
    for i in range(100):
        enc.span(Span(1, 2, 3, "read", 10, 20, attributes={"syscall.name": "read", "thread.id": i}))
    assert enc.span(span) == first
    assert len(enc._kv) <= 8


def test_remote_parent_flags():
    enc = ProtoEncoder(remote_parent_ids={99})
    req = ExportTraceServiceRequest()
    req.ParseFromString(
        enc.request(ResourceSpans({}, [Span(1, 2, 99, "run", 1, 2), Span(1, 3, 2, "child", 1, 2)]))
    )
    flags = [s.flags for s in req.resource_spans[0].scope_spans[0].spans]
    assert flags == [0x301, 0x101]


def test_spans_sized_first_are_written_with_those_bytes_once():
    """The budget sizes kept spans with span_kept(); request() reuses those bytes, consumes
    them, and the request equals a fresh encoder's."""
    spans = [
        Span(1, 2, 99, "run", 1, 2, attributes={"k": "v"}),
        Span(1, 3, 2, "read", 3, 4, attributes={"syscall.name": "read", "syscall.args": "0, \"x\", 1"}),
        Span(1, 4, 2, "write", 5, 6, attributes={"syscall.name": "write"}),
    ]
    batch = ResourceSpans({"service.name": "s"}, spans, "sysspan", "1")
    enc = ProtoEncoder(remote_parent_ids={99})
    sized = [enc.span_kept(s) for s in spans[:2]]
    assert enc.request(batch) == ProtoEncoder(remote_parent_ids={99}).request(batch)
    assert not enc._kept
    # a span that was sized and then not sent is forgotten on discard
    enc.span_kept(spans[2])
    enc.discard([spans[2]])
    assert not enc._kept and sized[0] == enc.span(spans[0])


def test_varint_negative_is_ten_bytes():
    assert varint(-1) == b"\xff" * 9 + b"\x01"
    assert varint(300) == b"\xac\x02"


def test_grpc_retry_info_delay_is_honoured(grpc_receiver, tmp_path):
    import grpc

    grpc_receiver.fail(1, grpc.StatusCode.UNAVAILABLE, retry_after_s=1.0)
    sink = OtlpSink(
        OtlpSettings(endpoint=grpc_receiver.endpoint, protocol="grpc", insecure=True),
        {"service.name": "t"}, str(tmp_path / "spool.jsonl"), "1",
    )
    started = time.monotonic()
    sink.export([Span(1, 2, 0, "x", 1, 2)])
    sink.flush()  # the sender thread did the waiting
    elapsed = time.monotonic() - started
    assert sink.close().ok
    assert elapsed >= 0.95  # waited what the server asked, not the 0.25-0.75 s first backoff
    assert len(grpc_receiver.spans()) == 1


def test_http_retry_after_is_honoured(http_receiver, tmp_path):
    http_receiver.fail(1, status=429, retry_after_s=1)
    sink = OtlpSink(
        OtlpSettings(endpoint=http_receiver.endpoint, protocol="http/protobuf"),
        {"service.name": "t"}, str(tmp_path / "spool.jsonl"), "1",
    )
    started = time.monotonic()
    sink.export([Span(1, 2, 0, "x", 1, 2)])
    sink.flush()  # the sender thread did the waiting
    elapsed = time.monotonic() - started
    assert sink.close().ok
    assert elapsed >= 0.95
    assert len(http_receiver.spans()) == 1
