"""W3C traceparent parsing: the spec's examples, the W3C test-suite's cases, properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sysspan.plainrecord import FrozenInstanceError
from sysspan.propagation.traceparent import (
    FLAG_RANDOM,
    FLAG_SAMPLED,
    InvalidTraceContext,
    SpanContext,
    format_traceparent,
    parse_traceparent,
    xray_to_traceparent,
)
from sysspan.propagation.tracestate import TraceState

SPEC_SAMPLED = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
SPEC_NOT_SAMPLED = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
TRACE = "12345678901234567890123456789012"
SPAN = "1234567890123456"


def test_spec_example_sampled() -> None:
    ctx = parse_traceparent(SPEC_SAMPLED)
    assert ctx.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    assert ctx.span_id == 0x00F067AA0BA902B7
    assert ctx.flags == 0x01
    assert ctx.sampled is True
    assert ctx.remote is True
    assert ctx.tracestate is None
    assert ctx.traceparent == SPEC_SAMPLED


def test_spec_example_not_sampled() -> None:
    ctx = parse_traceparent(SPEC_NOT_SAMPLED)
    assert ctx.sampled is False
    assert ctx.traceparent == SPEC_NOT_SAMPLED


def test_hex_accessors() -> None:
    ctx = parse_traceparent(SPEC_SAMPLED)
    assert ctx.trace_id_hex == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert ctx.span_id_hex == "00f067aa0ba902b7"


@pytest.mark.parametrize(
    "value",
    [
        f" 00-{TRACE}-{SPAN}-01",
        f"\t00-{TRACE}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-01 ",
        f"00-{TRACE}-{SPAN}-01\t",
        f"\t 00-{TRACE}-{SPAN}-01 \t",
    ],
)
def test_optional_whitespace_is_tolerated(value: str) -> None:
    assert parse_traceparent(value).trace_id_hex == TRACE


def test_newline_is_not_optional_whitespace() -> None:
    with pytest.raises(InvalidTraceContext):
        parse_traceparent(f"00-{TRACE}-{SPAN}-01\n")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        # W3C test suite: test_traceparent_version_0x00 (extra trailing characters)
        (f"00-{TRACE}-{SPAN}-01.", "trace flags must be 2 hex digits"),
        (f"00-{TRACE}-{SPAN}-01-what-the-future-will-be-like", "exactly 55 characters"),
        # test_traceparent_version_0xff
        (f"ff-{TRACE}-{SPAN}-01", "version ff is invalid"),
        # test_traceparent_version_illegal_characters
        (f".0-{TRACE}-{SPAN}-01", "version must be 2 lowercase hex digits"),
        (f"0.-{TRACE}-{SPAN}-01", "version must be 2 lowercase hex digits"),
        # test_traceparent_version_too_long / too_short
        (f"000-{TRACE}-{SPAN}-01", "version must be 2 hex digits followed by '-'"),
        (f"0000-{TRACE}-{SPAN}-01", "version must be 2 hex digits followed by '-'"),
        (f"0-{TRACE}-{SPAN}-01", "version must be 2 hex digits followed by '-'"),
        # test_traceparent_trace_id_all_zero / parent_id_all_zero
        (f"00-{'0' * 32}-{SPAN}-01", "all-zero trace id"),
        (f"00-{TRACE}-{'0' * 16}-01", "all-zero parent id"),
        # test_traceparent_trace_id_illegal_characters
        (f"00-.{TRACE[1:]}-{SPAN}-01", "trace id must be 32 lowercase hex digits"),
        (f"00-{TRACE[:-1]}.-{SPAN}-01", "trace id must be 32 lowercase hex digits"),
        # test_traceparent_trace_id_too_long / too_short
        (f"00-{TRACE}3-{SPAN}-01", "trace id must be 32 hex digits, got 33"),
        (f"00-{TRACE[:-1]}-{SPAN}-01", "trace id must be 32 hex digits, got 31"),
        # test_traceparent_parent_id_illegal_characters / too_long / too_short
        (f"00-{TRACE}-.{SPAN[1:]}-01", "parent id must be 16 lowercase hex digits"),
        (f"00-{TRACE}-{SPAN[:-1]}.-01", "parent id must be 16 lowercase hex digits"),
        (f"00-{TRACE}-{SPAN}7-01", "parent id must be 16 hex digits, got 17"),
        (f"00-{TRACE}-{SPAN[:-1]}-01", "parent id must be 16 hex digits, got 15"),
        # test_traceparent_trace_flags_illegal_characters / too_long / too_short
        (f"00-{TRACE}-{SPAN}-.0", "trace flags must be 2 lowercase hex digits"),
        (f"00-{TRACE}-{SPAN}-0.", "trace flags must be 2 lowercase hex digits"),
        (f"00-{TRACE}-{SPAN}-001", "trace flags must be 2 hex digits, got 3"),
        (f"00-{TRACE}-{SPAN}-1", "trace flags must be 2 hex digits, got 1"),
        # a future version whose flags are not followed by '-'
        (f"cc-{TRACE}-{SPAN}-01.what-the-future-will-be-like", "must be followed by '-'"),
        (f"cc-{TRACE}-{SPAN}-0", "at least 55 characters"),
        # uppercase hex is not W3C
        (f"00-{TRACE.replace('1', 'A')}-{SPAN}-01", "trace id must be lowercase hex"),
        (f"00-{TRACE}-00F067AA0BA902B7-01", "parent id must be lowercase hex"),
        (f"00-{TRACE}-{SPAN}-0A", "trace flags must be lowercase hex"),
        (f"0A-{TRACE}-{SPAN}-01", "version must be lowercase hex"),
        # wrong separators, empty
        (f"00_{TRACE}-{SPAN}-01", "version must be 2 hex digits followed by '-'"),
        (f"00-{TRACE}_{SPAN}-01", "fields must be separated by '-'"),
        ("", "empty traceparent"),
        ("  \t ", "empty traceparent"),
        # int() would accept these; W3C does not
        (f"00-{TRACE}-{SPAN}-\u0661\u0661", "trace flags must be 2 lowercase hex digits"),
        (f"00-{TRACE[:-2]}_1-{SPAN}-01", "trace id must be 32 lowercase hex digits"),
    ],
)
def test_invalid_values_are_rejected_with_a_reason(value: str, reason: str) -> None:
    with pytest.raises(InvalidTraceContext) as info:
        parse_traceparent(value)
    assert reason in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "value",
    [
        # W3C test suite: test_traceparent_version_0xcc
        f"cc-{TRACE}-{SPAN}-01",
        f"cc-{TRACE}-{SPAN}-01-what-the-future-will-be-like",
        f"01-{TRACE}-{SPAN}-01-",
    ],
)
def test_future_versions_parse_by_prefix_and_reemit_as_00(value: str) -> None:
    ctx = parse_traceparent(value)
    assert ctx.trace_id_hex == TRACE
    assert ctx.span_id_hex == SPAN
    assert ctx.traceparent == f"00-{TRACE}-{SPAN}-01"


def test_flags_are_a_bit_field() -> None:
    # 0x09 = sampled + an unknown bit: still sampled (a mask, not a value comparison)
    ctx = parse_traceparent(f"00-{TRACE}-{SPAN}-09")
    assert ctx.sampled is True
    assert ctx.flags == 0x09
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-08").sampled is False


def test_unknown_flags_are_kept_on_parse_but_dropped_on_emit() -> None:
    ctx = parse_traceparent(f"00-{TRACE}-{SPAN}-ff")
    assert ctx.flags == 0xFF
    assert ctx.traceparent.endswith("-03")


def test_level2_random_flag_survives_reemission() -> None:
    ctx = parse_traceparent(f"00-{TRACE}-{SPAN}-02")
    assert ctx.random is True
    assert ctx.sampled is False
    assert ctx.traceparent.endswith("-02")
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-03").traceparent.endswith("-03")


def test_format_traceparent_pads_and_masks() -> None:
    assert format_traceparent(1, 2, 0) == f"00-{1:032x}-{2:016x}-00"
    assert format_traceparent(1, 2, FLAG_SAMPLED | FLAG_RANDOM | 0x80) == f"00-{1:032x}-{2:016x}-03"
    assert format_traceparent((1 << 128) - 1, (1 << 64) - 1) == f"00-{'f' * 32}-{'f' * 16}-01"


@pytest.mark.parametrize(
    ("trace_id", "span_id", "flags"),
    [(0, 1, 1), (1, 0, 1), (1 << 128, 1, 1), (1, 1 << 64, 1), (1, 1, 256), (-1, 1, 1)],
)
def test_format_traceparent_refuses_invalid_ids(trace_id: int, span_id: int, flags: int) -> None:
    with pytest.raises(InvalidTraceContext):
        format_traceparent(trace_id, span_id, flags)


def test_span_context_refuses_invalid_ids() -> None:
    with pytest.raises(InvalidTraceContext):
        SpanContext(trace_id=0, span_id=1)
    with pytest.raises(InvalidTraceContext):
        SpanContext(trace_id=1, span_id=0)


def test_span_context_is_frozen() -> None:
    ctx = parse_traceparent(SPEC_SAMPLED)
    with pytest.raises(FrozenInstanceError):
        ctx.span_id = 5  # type: ignore[misc]


def test_with_span_id_keeps_trace_flags_and_state() -> None:
    state = TraceState.parse("rojo=00f067aa0ba902b7")
    ctx = parse_traceparent(f"00-{TRACE}-{SPAN}-03").replace(tracestate=state)
    child = ctx.with_span_id(0xABC)
    assert child.trace_id == ctx.trace_id
    assert child.span_id == 0xABC
    assert child.flags == 0x03
    assert child.tracestate is state
    assert child.remote is False
    assert child.traceparent == f"00-{TRACE}-{0xABC:016x}-03"


# -- properties -------------------------------------------------------------------------------

trace_ids = st.integers(min_value=1, max_value=(1 << 128) - 1)
span_ids = st.integers(min_value=1, max_value=(1 << 64) - 1)
flag_bytes = st.integers(min_value=0, max_value=255)


@given(trace_ids, span_ids, flag_bytes)
def test_format_then_parse_round_trips(trace_id: int, span_id: int, flags: int) -> None:
    header = format_traceparent(trace_id, span_id, flags)
    assert len(header) == 55
    ctx = parse_traceparent(header)
    assert (ctx.trace_id, ctx.span_id, ctx.flags) == (trace_id, span_id, flags & 0x03)
    assert ctx.traceparent == header


@given(st.text())
def test_parse_raises_only_invalid_trace_context_on_any_text(text: str) -> None:
    try:
        ctx = parse_traceparent(text)
    except InvalidTraceContext:
        return
    # whatever is accepted re-emits as a canonical, re-parseable version-00 header
    assert parse_traceparent(ctx.traceparent).trace_id == ctx.trace_id


hex_chars = st.sampled_from("0123456789abcdefABCDEF-xz ")


@given(st.text(alphabet=hex_chars, min_size=50, max_size=70))
def test_parse_near_miss_headers_raise_only_invalid_trace_context(text: str) -> None:
    try:
        parse_traceparent(text)
    except InvalidTraceContext:
        pass


# -- X-Ray ------------------------------------------------------------------------------------


def test_xray_header_converts_to_w3c() -> None:
    ctx = xray_to_traceparent(
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    )
    assert ctx is not None
    assert ctx.trace_id_hex == "5759e988bd862e3fe1be46a994272793"
    assert ctx.span_id_hex == "53995c3f42cd8ad8"
    assert ctx.sampled is True
    assert ctx.traceparent == "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"


def test_xray_header_with_lineage_spaces_and_not_sampled() -> None:
    ctx = xray_to_traceparent(
        "Root=1-5759e988-bd862e3fe1be46a994272793; Parent=53995c3f42cd8ad8; Sampled=0;"
        " Lineage=a87bd80c:1|68fd508a:5"
    )
    assert ctx is not None
    assert ctx.sampled is False
    assert ctx.span_id_hex == "53995c3f42cd8ad8"


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",  # no parent: nothing to continue
        "Root=2-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",  # unknown version
        "Root=1-5759e98-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",  # short epoch
        "Root=1-5759e988-bd862e3fe1be46a99427279;Parent=53995c3f42cd8ad8",  # short unique id
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad",  # short parent
        "Root=1-5759e988-bd862e3fe1be46a99427279g;Parent=53995c3f42cd8ad8",  # not hex
        "Root=1-00000000-000000000000000000000000;Parent=53995c3f42cd8ad8",  # all zero
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0000000000000000",
    ],
)
def test_xray_header_unusable(header: str) -> None:
    assert xray_to_traceparent(header) is None


@given(st.text())
def test_xray_never_raises(text: str) -> None:
    xray_to_traceparent(text)
