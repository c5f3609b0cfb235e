"""W3C tracestate: the spec's examples, the W3C test suite's cases, mutation and truncation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sysspan.propagation.traceparent import InvalidTraceContext
from sysspan.propagation.tracestate import TraceState

LCALPHA = "abcdefghijklmnopqrstuvwxyz"
KEY_WITHOUT_VENDOR = LCALPHA + "0123456789" + "_-*/"
KEY_WITH_VENDOR = KEY_WITHOUT_VENDOR + "@a-z0-9_-*/"
ALL_VALUE_CHARS = (
    "".join(map(chr, range(0x20, 0x2B + 1)))
    + "".join(map(chr, range(0x2D, 0x3C + 1)))
    + "".join(map(chr, range(0x3E, 0x7E + 1)))
)


def test_spec_examples() -> None:
    single = TraceState.parse("rojo=00f067aa0ba902b7")
    assert single.items() == (("rojo", "00f067aa0ba902b7"),)
    multi = TraceState.parse("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
    assert multi.keys() == ["rojo", "congo"]
    assert multi.get("congo") == "t61rcWkgMzE"
    assert multi.to_header() == "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"


def test_spec_vendor_chain_moves_updated_key_left() -> None:
    # congo=t61rcWkgMzE -> rojo adds to the left -> congo updates its entry, moved left
    state = TraceState.parse("congo=t61rcWkgMzE")
    state = state.set("rojo", "00f067aa0ba902b7")
    assert state.to_header() == "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    state = state.set("congo", "ucfJifl5GOE")
    assert state.to_header() == "congo=ucfJifl5GOE,rojo=00f067aa0ba902b7"


def test_set_and_delete_return_new_states() -> None:
    original = TraceState.parse("a=1,b=2")
    updated = original.set("b", "3")
    assert original.to_header() == "a=1,b=2"
    assert updated.to_header() == "b=3,a=1"
    removed = updated.delete("a")
    assert removed.to_header() == "b=3"
    assert updated.delete("missing") == updated
    assert "a" not in removed and "b" in removed


def test_set_rejects_invalid_key_and_value() -> None:
    state = TraceState()
    with pytest.raises(InvalidTraceContext):
        state.set("Upper", "1")
    with pytest.raises(InvalidTraceContext):
        state.set("ok", "has,comma")
    with pytest.raises(InvalidTraceContext):
        state.set("ok", "trailing ")


def test_set_at_the_member_limit_drops_the_rightmost() -> None:
    state = TraceState([(f"k{i:02d}", str(i)) for i in range(32)])
    grown = state.set("new", "x")
    assert len(grown) == 32
    assert grown.keys()[0] == "new"
    assert "k31" not in grown and "k30" in grown


# -- W3C test suite cases -----------------------------------------------------------------------


def test_all_allowed_characters() -> None:
    for key in (KEY_WITHOUT_VENDOR, KEY_WITH_VENDOR):
        state = TraceState.parse(f"{key}={ALL_VALUE_CHARS}")
        assert state.get(key) == ALL_VALUE_CHARS


@pytest.mark.parametrize(
    "header",
    ["foo=1 \t , \t bar=2, \t baz=3", "foo=1\t \t,\t \tbar=2,\t \tbaz=3"],
)
def test_ows_around_members(header: str) -> None:
    state = TraceState.parse(header)
    assert state.items() == (("foo", "1"), ("bar", "2"), ("baz", "3"))


@pytest.mark.parametrize("header", [" foo=1", "\tfoo=1", "foo=1 ", "foo=1\t", "\t foo=1 \t"])
def test_ows_single_member(header: str) -> None:
    assert TraceState.parse(header).get("foo") == "1"


def test_leading_spaces_are_part_of_the_value() -> None:
    assert TraceState.parse("foo=  1").get("foo") == "  1"


@pytest.mark.parametrize(
    ("header", "keys"),
    [
        ("", []),
        ("   ", []),
        (",", []),
        (" , ,\t", []),
        ("foo=1,,bar=2", ["foo", "bar"]),
        (",foo=1, ,", ["foo"]),
    ],
)
def test_empty_members_are_ignored(header: str, keys: list[str]) -> None:
    assert TraceState.parse(header).keys() == keys


def test_empty_header_is_an_empty_state() -> None:
    state = TraceState.parse("")
    assert len(state) == 0
    assert not state
    assert state.to_header() == ""


@pytest.mark.parametrize(
    "header",
    [
        "foo =1",  # test_tracestate_key_illegal_characters
        "FOO=1",
        "foo.bar=1",
        "@foo=1,bar=2",  # test_tracestate_key_illegal_vendor_format: '@' may not lead
        "foo=bar=baz",  # test_tracestate_value_illegal_characters
        "foo=,bar=3",
        "foo",
        "=1",
        "_foo=1",  # a key starts with a lowercase letter or a digit
        "foo=a\tb",
        "foo=caf\u00e9",
        "foo=1,bar",
    ],
)
def test_invalid_headers_are_rejected_whole(header: str) -> None:
    with pytest.raises(InvalidTraceContext):
        TraceState.parse(header)


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("foo@=1,bar=2", "foo@"),  # Level 2: '@' anywhere after the first character
        ("foo@@bar=1,bar=2", "foo@@bar"),
        ("foo@bar@baz=1,bar=2", "foo@bar@baz"),
        ("1foo=1,bar=2", "1foo"),  # Level 2: a key may start with a digit
    ],
)
def test_level2_keys_with_at_signs_and_digits(header: str, key: str) -> None:
    state = TraceState.parse(header)
    assert state.get(key) == "1"
    assert state.get("bar") == "2"
    assert state.to_header() == header


@pytest.mark.parametrize(
    ("headers", "kept"),
    [
        (["foo=1,foo=1"], "foo=1"),  # test_tracestate_duplicated_keys
        (["foo=1,foo=2"], "foo=1"),
        (["foo=1", "foo=1"], "foo=1"),
        (["foo=1", "foo=2"], "foo=1"),
        (["a=0,foo=1,b=2,foo=3,c=4"], "a=0,foo=1,b=2,c=4"),
    ],
)
def test_duplicate_keys_keep_the_leftmost_entry(headers: list[str], kept: str) -> None:
    # Several tracestate headers arrive combined into one list, in order.
    state = TraceState.parse(",".join(headers))
    assert state.to_header() == kept


def test_duplicates_count_toward_the_member_limit() -> None:
    # The limit is on the list as received: 33 members are too many even if two are equal.
    members = [f"bar{i:02d}={i:02d}" for i in range(1, 33)]
    with pytest.raises(InvalidTraceContext, match="32"):
        TraceState.parse(",".join([*members, "bar01=01"]))


def test_constructor_still_refuses_duplicates() -> None:
    # Code building a state by hand has a bug if it repeats a key; only parsing forgives it.
    with pytest.raises(InvalidTraceContext, match="duplicate"):
        TraceState([("foo", "1"), ("foo", "2")])


def test_multiple_headers_with_different_keys_combine_in_order() -> None:
    state = TraceState.parse(",".join(["foo=1,bar=2", "rojo=1,congo=2", "baz=3"]))
    assert state.to_header() == "foo=1,bar=2,rojo=1,congo=2,baz=3"


def test_member_count_limit() -> None:
    members = [f"bar{i:02d}={i:02d}" for i in range(1, 33)]
    state = TraceState.parse(",".join(members))
    assert len(state) == 32
    assert state.get("bar01") == "01"
    with pytest.raises(InvalidTraceContext, match="32"):
        TraceState.parse(",".join([*members, "bar33=33"]))


def test_member_count_ignores_empty_members() -> None:
    members = [f"bar{i:02d}={i:02d}" for i in range(1, 33)]
    assert len(TraceState.parse(",,".join(members) + ",")) == 32


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("z" * 256, True),  # test_tracestate_key_length_limit
        ("z" * 257, False),
        ("t" * 241 + "@" + "v" * 14, True),
        ("t" * 242 + "@v", True),  # Level 2: no separate tenant/system limits
        ("t@" + "v" * 15, True),
        ("t" * 199 + "@" + "v" * 56, True),
        ("t" * 200 + "@" + "v" * 56, False),  # 257 characters
        ("0tenant@vendor", True),
        ("tenant@0vendor", True),
    ],
)
def test_key_length_limits(key: str, valid: bool) -> None:
    header = f"foo=1,{key}=1"
    if valid:
        assert TraceState.parse(header).get(key) == "1"
    else:
        with pytest.raises(InvalidTraceContext):
            TraceState.parse(header)


def test_value_length_limit() -> None:
    assert TraceState.parse("k=" + "v" * 256).get("k") == "v" * 256
    with pytest.raises(InvalidTraceContext):
        TraceState.parse("k=" + "v" * 257)


# -- truncation -------------------------------------------------------------------------------


def test_to_header_keeps_everything_that_fits() -> None:
    state = TraceState.parse("a=1,b=2")
    assert state.to_header(max_len=7) == "a=1,b=2"
    assert state.to_header(max_len=6) == "a=1"
    assert state.to_header(max_len=2) == ""


def test_truncation_removes_entries_over_128_chars_first() -> None:
    big = "x" * 200
    state = TraceState([("small1", "1"), ("big", big), ("small2", "2"), ("small3", "3")])
    header = state.to_header(max_len=512 - 300)
    assert header == "small1=1,small2=2,small3=3"


def test_truncation_then_removes_from_the_right() -> None:
    entries = [(f"k{i:02d}", "v" * 100) for i in range(8)]  # 8 x 104 chars + commas = 839
    header = TraceState(entries).to_header()
    assert len(header) <= 512
    kept = [member.split("=")[0] for member in header.split(",")]
    assert kept == ["k00", "k01", "k02", "k03"]  # 4 x 104 + 3 = 419; a fifth would be 524


def test_default_limit_is_512_and_none_means_unlimited() -> None:
    entries = [(f"k{i:02d}", "v" * 100) for i in range(8)]
    assert len(TraceState(entries).to_header(max_len=None)) == 8 * 104 + 7
    assert len(str(TraceState(entries))) == 8 * 104 + 7


def test_equality_and_hash_go_by_ordered_entries() -> None:
    assert TraceState.parse("a=1,b=2") == TraceState.parse(" a=1 , b=2 ")
    assert TraceState.parse("a=1,b=2") != TraceState.parse("b=2,a=1")
    assert hash(TraceState.parse("a=1")) == hash(TraceState([("a", "1")]))


# -- properties -------------------------------------------------------------------------------

simple_keys = st.from_regex(r"[a-z][a-z0-9_\-*/]{0,20}", fullmatch=True)
tenant_keys = st.from_regex(r"[a-z0-9][a-z0-9_\-*/]{0,10}@[a-z][a-z0-9_\-*/]{0,13}", fullmatch=True)
values = st.from_regex(
    r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,40}[\x21-\x2b\x2d-\x3c\x3e-\x7e]", fullmatch=True
)
entry_lists = st.lists(
    st.tuples(st.one_of(simple_keys, tenant_keys), values),
    max_size=32,
    unique_by=lambda kv: kv[0],
)


@given(entry_lists)
def test_format_then_parse_round_trips(entries: list[tuple[str, str]]) -> None:
    state = TraceState(entries)
    assert TraceState.parse(state.to_header(max_len=None)) == state


@given(entry_lists, st.integers(min_value=0, max_value=600))
def test_truncated_header_is_a_valid_subsequence(
    entries: list[tuple[str, str]], limit: int
) -> None:
    state = TraceState(entries)
    header = state.to_header(max_len=limit)
    assert len(header) <= limit
    kept = TraceState.parse(header).items()
    full = state.items()
    assert [kv for kv in full if kv in kept] == list(kept)


@given(st.text())
def test_parse_raises_only_invalid_trace_context(text: str) -> None:
    try:
        TraceState.parse(text)
    except InvalidTraceContext:
        pass
