"""The decision parsers: stderr protocol, channel lines, Ruchy msgpack and manifest.

Fuzzed with hypothesis: no input makes them raise, and what cannot be parsed is counted.
"""

from __future__ import annotations

import json
import os
import struct

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sysspan.decisions.channel import parse_channel_line
from sysspan.decisions.model import Decision
from sysspan.decisions.ruchy import (
    ImportCounters,
    import_dir,
    parse_source_location,
    read_manifest,
    read_msgpack,
    write_dir,
)
from sysspan.decisions.stderr_protocol import LineBuffer, StderrDecoder
from sysspan.errors import TraceFileError
from sysspan.ids import decision_id

fuzz = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
idents = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12)


# --------------------------------------------------------------------------- stderr protocol


def test_decision_and_result_forms() -> None:
    dec = StderrDecoder()
    out = dec.feed(
        b'[DECISION] optimization::inline input={"callee":"f"}\n'
        b'[DECISION] codegen::integer_type input={"max":300,"file":"a.rb","line":7,"column":3}\n',
        100,
        1,
        2,
    )
    assert out == []
    out = dec.feed(b'[RESULT] inline = {"inlined":true}\n', 150, 1, 2)
    assert len(out) == 1 and out[0].name == "inline"
    assert (out[0].start_ns, out[0].end_ns, out[0].result) == (100, 150, {"inlined": True})
    assert (out[0].file, out[0].line) == ("", 0)
    out = dec.feed(b'[RESULT] codegen::integer_type result="u16"\n', 180, 1, 3)
    assert out[0].result == "u16" and (out[0].file, out[0].line, out[0].column) == ("a.rb", 7, 3)
    assert (out[0].pid, out[0].tid, out[0].end_ns) == (1, 2, 180)
    assert dec.malformed == 0 and dec.open_count == 0


def test_ordinary_output_is_ignored_and_bad_protocol_lines_counted() -> None:
    dec = StderrDecoder()
    dec.feed(b"warning: something\n\n   \nDECISION without brackets\n", 1, 1, 1)
    assert dec.malformed == 0
    bad = [
        b"[DECISION] noseparator input=1",
        b"[DECISION] ::name input=1",
        b"[DECISION] cat:: input=1",
        b"[DECISION] cat::name input={not json",
        b"[DECISION] cat::name payload=1",
        b"[DECISION]",
        b"[RESULT] nobody = 1",  # no open decision
        b"[RESULT] x",
        b"[RESULT] x = {broken",
    ]
    dec.feed(b"\n".join(bad) + b"\n", 2, 1, 1)
    assert dec.malformed == len(bad)
    assert dec.flush(3) == []


def test_results_attach_to_latest_open_decision_of_that_name() -> None:
    dec = StderrDecoder()
    dec.feed(b"[DECISION] a::f input=1\n", 10, 1, 1)
    dec.feed(b"[DECISION] a::f input=2\n", 20, 1, 1)  # nested (recursion)
    inner = dec.feed(b"[RESULT] f = 20\n", 30, 1, 1)
    outer = dec.feed(b"[RESULT] f = 10\n", 40, 1, 1)
    assert inner[0].input == 2 and (inner[0].start_ns, inner[0].end_ns) == (20, 30)
    assert outer[0].input == 1 and (outer[0].start_ns, outer[0].end_ns) == (10, 40)


def test_category_in_result_selects_the_decision() -> None:
    dec = StderrDecoder()
    dec.feed(b"[DECISION] a::f input=1\n[DECISION] b::f input=2\n", 10, 1, 1)
    out = dec.feed(b"[RESULT] a::f result=9\n", 20, 1, 1)
    assert out[0].category == "a" and out[0].result == 9
    rest = dec.flush(30)
    assert [d.category for d in rest] == ["b"]
    assert rest[0].end_ns == rest[0].start_ns == 10  # never got a result: an instant


def test_split_lines_are_reassembled() -> None:
    dec = StderrDecoder()
    assert dec.feed(b"[DECI", 1, 7, 7) == []
    assert dec.feed(b'SION] a::b input={"k":', 2, 7, 7) == []
    assert dec.feed(b'"v"}\n[RESULT] b', 3, 7, 7) == []
    out = dec.feed(b" = 5\n", 4, 7, 7)
    assert len(out) == 1
    assert out[0].input == {"k": "v"} and out[0].result == 5
    assert (out[0].start_ns, out[0].end_ns) == (
        3,
        4,
    )  # a line's time is the write that completed it


def test_unterminated_last_line_is_parsed_at_flush() -> None:
    dec = StderrDecoder()
    dec.feed(b"[DECISION] a::b input=1", 5, 1, 1)
    out = dec.flush(9)
    assert len(out) == 1 and out[0].start_ns == 5


def test_overlong_line_is_counted_and_dropped_in_bounded_memory() -> None:
    dec = StderrDecoder(max_line=1024)
    chunk = b"[DECISION] a::b input=" + b"1" * 600
    dec.feed(chunk, 1, 1, 1)
    dec.feed(b"1" * 600, 2, 1, 1)  # now over the limit
    for _ in range(100):
        dec.feed(b"1" * 10_000, 3, 1, 1)
        assert dec.lines.pending <= 1024
    dec.feed(b"\n[DECISION] a::c input=2\n", 4, 1, 1)
    assert dec.malformed == 1
    assert [d.name for d in dec.flush(5)] == ["c"]


def test_open_decisions_are_bounded() -> None:
    dec = StderrDecoder(max_open=10)
    out = []
    for i in range(25):
        out += dec.feed(f"[DECISION] a::n{i % 3} input={i}\n".encode(), i, 1, 1)
    assert dec.open_count == 10
    assert [d.input for d in out] == list(range(15))  # the oldest went out first, as instants
    assert len(dec.flush(99)) == 10


results = json_values.filter(lambda v: v is not None)
protocol_lines = st.one_of(
    st.builds(
        lambda c, n, v: f"[DECISION] {c}::{n} input={json.dumps(v)}", idents, idents, json_values
    ),
    st.builds(lambda n, v: f"[RESULT] {n} = {json.dumps(v)}", idents, results),
    st.builds(lambda c, n, v: f"[RESULT] {c}::{n} result={json.dumps(v)}", idents, idents, results),
    st.text(
        alphabet=st.characters(blacklist_characters="[\n\r", blacklist_categories=("Cs",)),
        max_size=40,
    ),
)


@fuzz
@given(st.lists(st.binary(max_size=200), max_size=20))
def test_stderr_decoder_never_raises_on_random_bytes(chunks: list[bytes]) -> None:
    dec = StderrDecoder(max_line=256)
    for i, c in enumerate(chunks):
        for d in dec.feed(c, i, 1, 1):
            assert isinstance(d, Decision)
    dec.flush(len(chunks))
    assert dec.malformed >= 0


@pytest.mark.slow
@fuzz
@given(st.lists(protocol_lines, max_size=15), st.data())
def test_any_split_gives_the_same_decisions(lines: list[str], data: st.DataObject) -> None:
    stream = ("\n".join(lines) + "\n").encode()
    whole = StderrDecoder()
    expected = whole.feed(stream, 1, 1, 1) + whole.flush(2)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    split = StderrDecoder()
    got = []
    for p in pieces:
        got += split.feed(p, 1, 1, 1)
    got += split.flush(2)
    assert got == expected
    assert split.malformed == whole.malformed


@pytest.mark.slow
@fuzz
@given(st.lists(protocol_lines, max_size=15))
def test_every_protocol_line_is_a_decision_result_or_counted(lines: list[str]) -> None:
    dec = StderrDecoder()
    out = dec.feed(("\n".join(lines) + "\n").encode(), 1, 1, 1) + dec.flush(2)
    decisions = sum(1 for s in lines if s.startswith("[DECISION]"))
    n_results = sum(1 for s in lines if s.startswith("[RESULT]"))
    attached = sum(1 for d in out if d.result is not None)
    assert len(out) == decisions  # every decision comes out exactly once
    assert attached + dec.malformed == n_results  # every result attaches or is counted


# --------------------------------------------------------------------------- line buffer


@fuzz
@given(st.lists(st.binary(max_size=64), max_size=30), st.integers(1, 50))
def test_line_buffer_matches_split(chunks: list[bytes], limit: int) -> None:
    buf = LineBuffer(limit)
    got = []
    for c in chunks:
        got += buf.feed(c)
        assert buf.pending <= limit
    stream = b"".join(chunks)
    *complete, _rest = stream.split(b"\n")
    assert got == [line for line in complete if len(line) <= limit]
    assert buf.overlong >= sum(1 for line in complete if len(line) > limit)


# --------------------------------------------------------------------------- channel lines


def test_channel_line_fields() -> None:
    line = json.dumps(
        {
            "category": "c",
            "name": "n",
            "input": [1],
            "result": {"a": 1},
            "file": "x.py",
            "line": 3,
            "column": 4,
            "start_ns": 10,
            "end_ns": 20,
            "pid": 5,
            "tid": 6,
        }
    ).encode()
    d, skipped, presampled = parse_channel_line(line, 999)
    assert d == Decision("c", "n", [1], {"a": 1}, "x.py", 3, 4, 10, 20, 5, 6)
    assert (skipped, presampled) == (0, False)
    d, _, _ = parse_channel_line(b'{"category":"c","name":"n"}', 999)
    assert (d.start_ns, d.end_ns, d.file, d.line) == (999, 999, "", 0)
    assert parse_channel_line(b'{"skipped":7}', 1) == 7
    _, skipped, presampled = parse_channel_line(b'{"category":"c","name":"n","skipped":3}', 1)
    assert (skipped, presampled) == (3, True)


@pytest.mark.parametrize(
    "line",
    [
        b"not json",
        b"[1,2]",
        b'{"name":"n"}',
        b'{"category":"","name":"n"}',
        b'{"category":"c","name":"n","line":-1}',
        b'{"category":"c","name":"n","line":"3"}',
        b'{"category":"c","name":"n","file":3}',
        b'{"category":"c","name":"n","start_ns":1.5}',
        b'{"category":"c","name":"n","pid":true}',
        b'{"category":"c","name":"n","skipped":-2}',
        b"\xff\xfe",
    ],
)
def test_bad_channel_lines_are_rejected(line: bytes) -> None:
    assert parse_channel_line(line, 1) is None


@fuzz
@given(st.binary(max_size=300))
def test_channel_parser_never_raises_on_bytes(data: bytes) -> None:
    parse_channel_line(data, 1)


@pytest.mark.slow
@fuzz
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "category",
                "name",
                "input",
                "result",
                "file",
                "line",
                "column",
                "start_ns",
                "end_ns",
                "pid",
                "tid",
                "skipped",
                "x",
            ]
        ),
        json_values,
    )
)
def test_channel_parser_never_raises_on_objects(obj: dict) -> None:
    parsed = parse_channel_line(json.dumps(obj).encode(), 1)
    if isinstance(parsed, tuple):
        assert isinstance(parsed[0].category, str) and parsed[0].end_ns >= parsed[0].start_ns


# --------------------------------------------------------------------------- Ruchy files


def _decisions() -> list[Decision]:
    t = 1_700_000_000_000_000_000
    return [
        Decision(
            "optimization",
            "inline_candidate",
            {"size": 10},
            {"decision": "yes"},
            "foo.rb",
            42,
            0,
            t,
            t,
        ),
        Decision(
            "codegen", "integer_type", {"max": 300}, "u16", "src/a b:c.rb", 7, 3, t + 1000, t + 1000
        ),
        Decision(
            "codegen",
            "integer_type",
            {"max": 70000},
            "u32",
            "src/a b:c.rb",
            7,
            3,
            t + 2000,
            t + 2000,
        ),
        Decision("stdlib", "io_mapping", None, None, "", 0, 0, t + 3000, t + 3000),
    ]


def test_round_trip_write_then_read(tmp_path) -> None:
    written = _decisions()
    assert write_dir(tmp_path, written) == 4
    ruchy = tmp_path / ".ruchy"
    assert sorted(os.listdir(ruchy)) == ["decision_manifest.json", "decisions.msgpack"]

    counters = ImportCounters()
    back = list(read_msgpack(ruchy / "decisions.msgpack", counters=counters))
    assert back == written
    assert counters.malformed == 0 and counters.decisions == 4

    # positional arrays exactly as rmp_serde writes Vec<DecisionTrace>
    raw = msgpack.unpackb((ruchy / "decisions.msgpack").read_bytes(), raw=False)
    assert raw[0] == [
        1_700_000_000_000_000,
        "optimization",
        "inline_candidate",
        {"size": 10},
        {"decision": "yes"},
        "foo.rb:42",
        decision_id("optimization", "inline_candidate", "foo.rb", 42),
    ]
    assert raw[1][5] == "src/a b:c.rb:7:3"
    assert raw[3][5] is None

    doc = json.loads((ruchy / "decision_manifest.json").read_text())
    assert doc["version"] == "2.0.0"
    keys = [k for k in doc if k.startswith("0x")]
    assert len(keys) == 3 and all(len(k) == 18 and k[2:] == k[2:].upper() for k in keys)
    manifest = read_manifest(ruchy / "decision_manifest.json", counters=counters)
    assert counters.malformed == 0
    entry = manifest[written[1].id]
    assert (entry.file, entry.line, entry.column, entry.result) == (
        "src/a b:c.rb",
        7,
        3,
        "u32",
    )  # last wins

    decisions, c2 = import_dir(tmp_path)
    assert decisions == written and c2.malformed == 0
    assert import_dir(ruchy)[0] == written


def test_truncated_msgpack_keeps_what_was_complete(tmp_path) -> None:
    write_dir(tmp_path, _decisions())
    path = tmp_path / ".ruchy" / "decisions.msgpack"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 5])
    counters = ImportCounters()
    back = list(read_msgpack(path, counters=counters))
    assert back == _decisions()[:3]
    assert counters.truncated == 1 and counters.malformed == 1
    assert "truncated" in counters.summary()


def test_renacer_style_files(tmp_path) -> None:
    """What renacer writes: relative µs timestamps, "file:line" strings, nil ids from the
    stderr parser, mmap zero padding, manifest keys 0x{:X} unpadded, extra top-level fields."""
    d_id = decision_id("optimization", "inline", "foo.rb", 42)
    records = [
        [1000, "optimization", "inline", {"size": 10}, {"decision": "yes"}, "foo.rb:42", d_id],
        [2500, "exception_flow", "try_body", {"handlers": 2}, None, None, None],
        [3000, "type_inference", "infer", {}, None, "bar.rb:9 infer_return", None],
        [4000, "optimization", "inline", {"size": 3}, None, None, d_id],  # location via manifest
    ]
    rdir = tmp_path / ".ruchy"
    rdir.mkdir()
    (rdir / "decisions.msgpack").write_bytes(msgpack.packb(records) + b"\0" * 4096)
    os.utime(rdir / "decisions.msgpack", ns=(5_000_000_000_000_000_000, 5_000_000_000_000_000_000))
    wrong = decision_id("x", "y", "z.rb", 1) ^ 1
    manifest = {
        "version": "2.0.0",
        "git_commit": None,
        "transpiler_version": "ruchy 3.1",
        f"0x{d_id:X}": {
            "decision_id": d_id,
            "category": "optimization",
            "name": "inline",
            "source": {"file": "foo.rb", "line": 42},
            "input": {},
            "result": None,
        },
        f"0x{wrong:X}": {
            "decision_id": wrong,
            "category": "x",
            "name": "y",
            "source": {"file": "z.rb", "line": 1, "column": 2},
            "input": {},
            "result": None,
        },
    }
    (rdir / "decision_manifest.json").write_text(json.dumps(manifest))
    decisions, counters = import_dir(tmp_path)
    assert [d.name for d in decisions] == ["inline", "try_body", "infer", "inline"]
    assert (decisions[2].file, decisions[2].line) == ("bar.rb", 9)
    assert (decisions[3].file, decisions[3].line) == ("foo.rb", 42)
    assert decisions[0].id == d_id == decisions[3].id
    # relative timestamps end at the file's mtime
    assert decisions[3].start_ns == 5_000_000_000_000_000_000
    assert decisions[0].start_ns == 5_000_000_000_000_000_000 - 3_000_000
    assert counters.id_mismatch == 1 and counters.malformed == 1
    assert "wrong id" in counters.summary()


def test_manifest_only_directory(tmp_path) -> None:
    d_id = decision_id("a", "b", "f.rb", 1)
    (tmp_path / "decision_manifest.json").write_text(
        json.dumps(
            {
                "version": "2.0.0",
                f"0x{d_id:016x}": {
                    "decision_id": d_id,
                    "category": "a",
                    "name": "b",
                    "source": "f.rb:1:5",
                    "input": [1],
                    "result": 2,
                },
            }
        )
    )
    decisions, counters = import_dir(tmp_path)
    assert len(decisions) == 1 and decisions[0].column == 5 and decisions[0].result == 2
    assert counters.malformed == 0


def test_import_dir_errors(tmp_path) -> None:
    with pytest.raises(TraceFileError):
        import_dir(tmp_path / "missing")
    with pytest.raises(TraceFileError):
        import_dir(tmp_path)


def test_bare_records_and_named_maps(tmp_path) -> None:
    t = 2_000_000_000_000_000
    data = msgpack.packb([t, "a", "b", 1, 2, "f:1", None]) + msgpack.packb(
        {
            "timestamp_us": t + 1,
            "category": "c",
            "name": "d",
            "input": None,
            "result": None,
            "source_location": {"file": "g", "line": 2, "column": 3},
            "decision_id": None,
        }
    )
    path = tmp_path / "decisions.msgpack"
    path.write_bytes(data)
    counters = ImportCounters()
    out = list(read_msgpack(path, counters=counters))
    assert [(d.category, d.file, d.line, d.column) for d in out] == [
        ("a", "f", 1, 0),
        ("c", "g", 2, 3),
    ]
    assert out[0].start_ns == t * 1000 and counters.malformed == 0


def test_invalid_manifest_json_is_counted(tmp_path) -> None:
    path = tmp_path / "decision_manifest.json"
    path.write_text('{"version": "2.0.0", "0x1": ')
    counters = ImportCounters()
    assert read_manifest(path, counters=counters) == {}
    assert counters.malformed == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("foo.rb:42", ("foo.rb", 42, 0)),
        ("foo.rb:42:7", ("foo.rb", 42, 7)),
        ("C:\\src\\x.rb:4", ("C:\\src\\x.rb", 4, 0)),
        ("foo.rb:42 main", ("foo.rb", 42, 0)),
        ("justafile", ("justafile", 0, 0)),
        ({"file": "a", "line": 1}, ("a", 1, 0)),
        (["a", 1, 2], ("a", 1, 2)),
        (None, None),
        ({"file": 3, "line": 1}, None),
        ({"file": "a", "line": -1}, None),
    ],
)
def test_source_locations(text, expected) -> None:
    assert parse_source_location(text) == expected


@fuzz
@given(st.binary(max_size=400))
def test_msgpack_reader_never_raises_on_bytes(tmp_path_factory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("mp") / "decisions.msgpack"
    path.write_bytes(data)
    counters = ImportCounters()
    out = list(read_msgpack(path, counters=counters, base_ns=0))
    assert counters.decisions == len(out)


records = st.lists(
    st.one_of(
        st.tuples(
            st.integers(0, 2**64 - 1),
            idents,
            idents,
            json_values,
            json_values,
            st.one_of(st.none(), st.text(max_size=20)),
            st.one_of(st.none(), st.integers(0, 2**64 - 1)),
        ).map(list),
        json_values,
    ),
    max_size=8,
)


@pytest.mark.slow
@fuzz
@given(records, st.integers(0, 40))
def test_msgpack_reader_never_raises_on_structured_garbage(
    tmp_path_factory, recs, cut: int
) -> None:
    path = tmp_path_factory.mktemp("mp") / "decisions.msgpack"
    data = msgpack.packb(recs)
    path.write_bytes(data[: max(0, len(data) - cut)])
    counters = ImportCounters()
    list(read_msgpack(path, counters=counters, base_ns=0))
    if cut and len(data) > cut:
        assert counters.malformed >= 1 or counters.decisions >= 0


@fuzz
@given(
    st.dictionaries(
        st.one_of(
            st.just("version"),
            st.builds(lambda n: f"0x{n:X}", st.integers(0, 2**64 - 1)),
            st.text(max_size=6),
        ),
        json_values,
        max_size=6,
    )
)
def test_manifest_reader_never_raises(tmp_path_factory, doc: dict) -> None:
    path = tmp_path_factory.mktemp("mf") / "decision_manifest.json"
    path.write_text(json.dumps(doc))
    counters = ImportCounters()
    entries = read_manifest(path, counters=counters)
    hex_keys = sum(1 for k in doc if k.startswith("0x"))
    assert len(entries) + counters.malformed >= hex_keys


def test_msgpack_array32_header_is_patched(tmp_path) -> None:
    write_dir(tmp_path / ".ruchy", _decisions())
    data = (tmp_path / ".ruchy" / "decisions.msgpack").read_bytes()
    assert data[0] == 0xDD and struct.unpack(">I", data[1:5])[0] == 4


channel_lines = st.one_of(
    st.builds(
        lambda obj: json.dumps(obj).encode(),
        st.fixed_dictionaries(
            {"category": idents, "name": idents},
            optional={
                "input": json_values,
                "line": st.integers(-1, 5),
                "skipped": st.integers(0, 3),
            },
        ),
    ),
    st.builds(lambda v: json.dumps(v, indent=1).encode(), json_values),  # values spanning lines
    st.binary(max_size=30),
    st.sampled_from([b'{"category":"c",', b'"name":"n"}', b"1,2", b'"a', b'b"', b"  ", b"\xff"]),
)


@fuzz
@given(st.lists(channel_lines, max_size=12))
def test_chunk_decoder_agrees_with_line_by_line(chunks: list[bytes]) -> None:
    from sysspan.decisions.channel import _BAD, _decode_lines, decode_channel_object

    stream = b"\n".join(chunks) + b"\n"
    lines = [s for line in stream.split(b"\n") if (s := line.strip())]
    values = _decode_lines(lines)
    if values is None:
        return  # not UTF-8: the reader parses line by line
    assert len(values) == len(lines)
    for line, value in zip(lines, values, strict=True):
        fast = None if value is _BAD else decode_channel_object(value, 1)
        assert fast == parse_channel_line(line, 1), line
