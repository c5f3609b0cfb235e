"""W3C Baggage: the spec's examples, the W3C test suite's cases, limits and properties."""

from __future__ import annotations

import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sysspan.propagation.baggage import (
    MAX_BYTES,
    MAX_MEMBERS,
    InvalidBaggage,
    format_baggage,
    parse_baggage,
    parse_baggage_counted,
)


def test_spec_example_with_properties_and_ows() -> None:
    header = (
        "key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue"
    )
    assert parse_baggage(header) == [
        ("key1", "value1", "property1;property2"),
        ("key2", "value2", ""),
        ("key3", "value3", "propertyKey=propertyValue"),
    ]


def test_spec_example_percent_encoded_value() -> None:
    header = "userId=alice,serverNode=DF%2028,isProduction=false"
    assert parse_baggage(header) == [
        ("userId", "alice", ""),
        ("serverNode", "DF 28", ""),
        ("isProduction", "false", ""),
    ]


def test_spec_example_spaces_around_names_and_values() -> None:
    assert parse_baggage("userId =   alice") == [("userId", "alice", "")]
    assert parse_baggage("serverNode = DF%2028, isProduction = false") == [
        ("serverNode", "DF 28", ""),
        ("isProduction", "false", ""),
    ]


# -- W3C test suite (test/baggage/test_baggage.py) ---------------------------------------------


def test_suite_parse_multiple_ows() -> None:
    header = "SomeKey \t = \t SomeValue \t , \t SomeKey2 \t = \t SomeValue2 \t "
    assert parse_baggage(header) == [("SomeKey", "SomeValue", ""), ("SomeKey2", "SomeValue2", "")]


def test_suite_parse_properties_with_ows() -> None:
    header = (
        "SomeKey \t = \t SomeValue \t ; \t SomePropKey=SomePropValue \t , \t "
        "SomeKey2 \t = \t SomeValue2 \t ; \t SomePropKey2 \t = \t SomePropValue2"
    )
    assert parse_baggage(header) == [
        ("SomeKey", "SomeValue", "SomePropKey=SomePropValue"),
        ("SomeKey2", "SomeValue2", "SomePropKey2=SomePropValue2"),
    ]


def test_suite_value_may_contain_equals() -> None:
    assert parse_baggage("SomeKey=SomeValue=equals") == [("SomeKey", "SomeValue=equals", "")]


def test_suite_percent_encoded_value() -> None:
    value = "\t \"';=asdf!@#$%^&*()"
    encoded = urllib.parse.quote(value)
    assert parse_baggage(f"SomeKey={encoded}") == [("SomeKey", value, "")]
    assert parse_baggage(f"SomeKey \t = \t {encoded} \t ") == [("SomeKey", value, "")]
    assert format_baggage([("SomeKey", value)]) == (
        "SomeKey=%09%20%22%27%3B%3Dasdf%21%40%23%24%25%5E%26%2A%28%29"
    )


def test_utf8_values_round_trip() -> None:
    header = format_baggage([("user", "Zoë Ünïcødé ✓")])
    assert header.isascii()
    assert parse_baggage(header) == [("user", "Zoë Ünïcødé ✓", "")]


def test_empty_value_is_allowed() -> None:
    assert parse_baggage("k=") == [("k", "", "")]


# -- invalid members are dropped one by one ---------------------------------------------------


@pytest.mark.parametrize(
    "member",
    [
        "no-equals-sign",
        "=value",
        "bad key=v",
        "k(ey)=v",  # "(" is not a token character
        'k="quoted"',  # DQUOTE is not a baggage octet
        "k=back\\slash",
        "k=inner space",
        "k=%zz",  # bad percent-escape
        "k=%",
        "k=%ff%fe",  # not UTF-8
        "k=v;bad prop",
        "k=v;p=has space",
        "k=v;=novalue",
        "k=caf\u00e9",  # raw non-ASCII
    ],
)
def test_invalid_member_is_dropped_and_counted(member: str) -> None:
    items, dropped = parse_baggage_counted(f"a=1,{member},b=2")
    assert items == [("a", "1", ""), ("b", "2", "")]
    assert dropped == 1


def test_empty_members_are_not_counted_as_dropped() -> None:
    assert parse_baggage_counted("a=1,,  ,b=2") == ([("a", "1", ""), ("b", "2", "")], 0)
    assert parse_baggage_counted("") == ([], 0)


def test_member_limit_on_parse() -> None:
    header = ",".join(f"k{i}=v" for i in range(MAX_MEMBERS + 6))
    items, dropped = parse_baggage_counted(header)
    assert len(items) == MAX_MEMBERS
    assert dropped == 6
    assert items[-1][0] == f"k{MAX_MEMBERS - 1}"


def test_byte_limit_on_parse() -> None:
    value = "v" * 1000
    header = ",".join(f"k{i}={value}" for i in range(10))  # each member 1003-1004 bytes
    items, dropped = parse_baggage_counted(header)
    assert len(items) == 8
    assert dropped == 2
    assert len(format_baggage(items).encode()) <= MAX_BYTES


def test_single_oversized_member_is_dropped_but_later_ones_kept() -> None:
    items, dropped = parse_baggage_counted(f"big={'v' * 9000},small=1")
    assert items == [("small", "1", "")]
    assert dropped == 1


# -- format -----------------------------------------------------------------------------------


def test_format_accepts_pairs_and_triples() -> None:
    assert format_baggage([("a", "1"), ("b", "2", "p1;p2=x")]) == "a=1,b=2;p1;p2=x"


def test_format_trims_ows_in_properties() -> None:
    assert format_baggage([("a", "1", " p1 ; p2 = x ")]) == "a=1;p1;p2=x"


@pytest.mark.parametrize(
    "item",
    [("bad key", "v"), ("", "v"), ("k,", "v"), ("k", "v", "bad prop"), ("k", "v", "p=a b")],
)
def test_format_rejects_invalid_keys_and_properties(item: tuple[str, ...]) -> None:
    with pytest.raises(InvalidBaggage):
        format_baggage([item])  # type: ignore[list-item]


def test_format_enforces_limits() -> None:
    many = format_baggage([(f"k{i}", "v") for i in range(100)])
    assert len(many.split(",")) == MAX_MEMBERS
    big = format_baggage([(f"k{i}", "v" * 1000) for i in range(20)])
    assert len(big.encode()) <= MAX_BYTES
    assert len(big.split(",")) == 8


def test_format_empty() -> None:
    assert format_baggage([]) == ""


# -- properties -------------------------------------------------------------------------------

tokens = st.from_regex(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,20}", fullmatch=True)
items_strategy = st.lists(st.tuples(tokens, st.text(max_size=40)), max_size=20)


@pytest.mark.slow
@given(items_strategy)
def test_format_then_parse_round_trips(items: list[tuple[str, str]]) -> None:
    header = format_baggage(items)
    assert parse_baggage_counted(header) == ([(k, v, "") for k, v in items], 0)


@given(st.text())
def test_parse_never_raises(text: str) -> None:
    items, dropped = parse_baggage_counted(text)
    assert dropped >= 0
    # whatever survives can be formatted and parsed back unchanged
    assert parse_baggage(format_baggage(items)) == items
