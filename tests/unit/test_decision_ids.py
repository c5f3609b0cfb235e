"""Decision ids (docs/architecture.md §5): FNV-1a 64 vectors and the category::name::file::line scheme."""

from __future__ import annotations

import struct

import pytest

from sysspan.decisions.model import Decision, decision_span, span_to_decision
from sysspan.ids import decision_id, fnv1a64
from sysspan.model import SpanKind


def reference_fnv1a64(data: bytes) -> int:
    """Textbook FNV-1a 64, written out independently of sysspan.ids."""
    h = 14695981039346656037  # 0xcbf29ce484222325
    for b in data:
        h ^= b
        h = (h * 1099511628211) % (1 << 64)  # 0x100000001b3
    return h


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", 0xCBF29CE484222325),
        (b"a", 0xAF63DC4C8601EC8C),
        (b"foobar", 0x85944171F73967E8),
    ],
)
def test_fnv1a64_standard_vectors(data: bytes, expected: int) -> None:
    assert fnv1a64(data) == expected
    assert reference_fnv1a64(data) == expected


def test_fnv1a64_continues_from_a_previous_hash() -> None:
    assert fnv1a64(b"bar", fnv1a64(b"foo")) == fnv1a64(b"foobar")


def test_hand_computed_decision_id() -> None:
    # "c::n::f::" then line 1 as u32 little endian: 63 3a 3a 6e 3a 3a 66 3a 3a 01 00 00 00
    data = b"c::n::f::\x01\x00\x00\x00"
    assert data.hex() == "633a3a6e3a3a663a3a01000000"
    h = 0xCBF29CE484222325
    for byte in data:  # FNV-1a: xor first, then multiply
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    assert decision_id("c", "n", "f", 1) == h == reference_fnv1a64(data)


def test_renacer_example_id_is_pinned() -> None:
    # renacer's doc example: generate_decision_id("optimization", "inline_candidate", "foo.rb", 3)
    data = b"optimization::inline_candidate::foo.rb::" + struct.pack("<I", 3)
    assert decision_id("optimization", "inline_candidate", "foo.rb", 3) == reference_fnv1a64(data)
    assert (
        f"{decision_id('optimization', 'inline_candidate', 'foo.rb', 3):016x}" == "75662dcf23047dfe"
    )


def test_line_is_four_bytes_little_endian_not_text() -> None:
    text_form = reference_fnv1a64(b"c::n::f::258")
    assert decision_id("c", "n", "f", 258) != text_form
    assert decision_id("c", "n", "f", 258) == reference_fnv1a64(b"c::n::f::\x02\x01\x00\x00")


def test_every_part_changes_the_id() -> None:
    base = decision_id("cat", "name", "file.py", 10)
    assert (
        len(
            {
                base,
                decision_id("cat2", "name", "file.py", 10),
                decision_id("cat", "name2", "file.py", 10),
                decision_id("cat", "name", "file2.py", 10),
                decision_id("cat", "name", "file.py", 11),
            }
        )
        == 5
    )


def test_utf8_names_are_hashed_as_utf8() -> None:
    assert decision_id("é", "n", "f", 0) == reference_fnv1a64("é::n::f::".encode() + b"\0\0\0\0")


def test_decision_id_hex_is_16_lowercase_digits_with_leading_zeros() -> None:
    # find a decision whose id has a leading zero nibble so the padding is exercised
    for i in range(1000):
        d = Decision("c", f"n{i}", file="f", line=i)
        if d.id < 1 << 60:
            break
    assert d.id < 1 << 60
    assert len(d.id_hex) == 16 and d.id_hex.startswith("0")
    assert d.id_hex == d.id_hex.lower()
    assert int(d.id_hex, 16) == decision_id("c", d.name, "f", d.line)


def test_decision_span_carries_the_id_and_attributes() -> None:
    d = Decision(
        "codegen",
        "integer_type",
        input={"max": 300},
        result="u16",
        file="src/a.rs",
        line=42,
        column=7,
        start_ns=100,
        end_ns=250,
        pid=10,
        tid=11,
    )
    span = decision_span(d, trace_id=1, span_id=2, parent_id=3)
    assert span.name == "codegen::integer_type"
    assert span.kind == SpanKind.INTERNAL
    assert (span.start_ns, span.end_ns, span.parent_id) == (100, 250, 3)
    a = span.attributes
    assert a["decision.id"] == f"{decision_id('codegen', 'integer_type', 'src/a.rs', 42):016x}"
    assert a["decision.category"] == "codegen"
    assert a["decision.name"] == "integer_type"
    assert a["decision.input"] == '{"max":300}'
    assert a["decision.result"] == '"u16"'
    assert a["code.file.path"] == "src/a.rs"
    assert a["code.line.number"] == 42
    assert a["code.column.number"] == 7
    assert a["process.pid"] == 10
    assert a["thread.id"] == 11
    assert span_to_decision(span) == d


def test_decision_span_omits_unknowns() -> None:
    d = Decision("c", "n", start_ns=5, end_ns=5)
    a = decision_span(d, trace_id=1, span_id=2, parent_id=3).attributes
    assert "decision.result" not in a
    assert "code.column.number" not in a and "thread.id" not in a and "code.file.path" not in a
    assert a["decision.input"] == "null"


def test_unserialisable_input_does_not_raise() -> None:
    loop: list = []
    loop.append(loop)
    d = Decision("c", "n", input={"s": {1, 2}, "o": object()}, result=loop)
    a = decision_span(d, trace_id=1, span_id=2, parent_id=3).attributes
    assert a["decision.input"].startswith("{")
    assert isinstance(a["decision.result"], str)
