"""Environment-variable carrier, carrier file and the flag > file > env input order."""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sysspan.errors import ConfigError, PropagationError
from sysspan.propagation.carriers import (
    env_name,
    extract,
    inject,
    read_carrier_file,
    resolve_incoming,
    write_carrier_file,
)
from sysspan.propagation.traceparent import SpanContext, parse_traceparent
from sysspan.propagation.tracestate import TraceState

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TP2 = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TP3 = "00-12345678901234567890123456789012-1234567890123456-00"


# -- env names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("traceparent", "TRACEPARENT"),
        ("tracestate", "TRACESTATE"),
        ("baggage", "BAGGAGE"),
        ("x-b3-traceid", "X_B3_TRACEID"),
        ("1abc", "_1ABC"),
        ("", "_"),
    ],
)
def test_env_name_normalisation(header: str, name: str) -> None:
    assert env_name(header) == name


# -- extract ----------------------------------------------------------------------------------


def test_extract_nothing() -> None:
    assert extract({}) == (None, None, [])
    assert extract({"TRACEPARENT": "", "BAGGAGE": "  "}) == (None, None, [])


def test_extract_full_context() -> None:
    ctx, baggage, warnings = extract(
        {
            "TRACEPARENT": TP,
            "TRACESTATE": "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
            "BAGGAGE": "a=1",
        }
    )
    assert ctx is not None and ctx.traceparent == TP
    assert ctx.tracestate == TraceState.parse("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
    assert ctx.remote is True
    assert baggage == "a=1"
    assert warnings == []


def test_extract_is_case_sensitive_upper_case_names() -> None:
    assert extract({"traceparent": TP}) == (None, None, [])


def test_invalid_traceparent_gives_none_and_exactly_one_warning() -> None:
    bad = TP.replace("00f067aa0ba902b7", "0000000000000000")
    ctx, baggage, warnings = extract({"TRACEPARENT": bad, "TRACESTATE": "a=1"})
    assert ctx is None
    assert baggage is None
    assert len(warnings) == 1
    assert "TRACEPARENT" in warnings[0]
    assert "all-zero parent id" in warnings[0]
    assert "new trace" in warnings[0]


def test_invalid_tracestate_is_dropped_but_traceparent_kept() -> None:
    ctx, _, warnings = extract({"TRACEPARENT": TP, "TRACESTATE": "foo=1,FOO=2"})
    assert ctx is not None and ctx.traceparent == TP
    assert ctx.tracestate is None
    assert len(warnings) == 1
    assert warnings[0].startswith("TRACESTATE")
    assert "'FOO'" in warnings[0]


def test_duplicate_tracestate_key_keeps_the_first_entry_without_a_warning() -> None:
    ctx, _, warnings = extract({"TRACEPARENT": TP, "TRACESTATE": "foo=1,bar=3,foo=2"})
    assert ctx is not None and ctx.tracestate is not None
    assert ctx.tracestate.to_header() == "foo=1,bar=3"
    assert warnings == []


def test_tracestate_without_traceparent_is_ignored() -> None:
    assert extract({"TRACESTATE": "a=1"}) == (None, None, [])


def test_future_version_traceparent_is_extracted() -> None:
    ctx, _, warnings = extract({"TRACEPARENT": "cc" + TP[2:] + "-extra"})
    assert ctx is not None and ctx.traceparent == TP
    assert warnings == []


def test_baggage_keeps_valid_members_and_warns() -> None:
    ctx, baggage, warnings = extract({"BAGGAGE": "a=1,bad key=2,b=x%20y"})
    assert ctx is None
    assert baggage == "a=1,b=x%20y"
    assert len(warnings) == 1
    assert "BAGGAGE" in warnings[0] and "1" in warnings[0]


def test_long_bad_value_is_shortened_in_the_warning() -> None:
    _, _, warnings = extract({"TRACEPARENT": "x" * 5000})
    assert len(warnings) == 1
    assert len(warnings[0]) < 300


# -- inject -----------------------------------------------------------------------------------


def test_inject_returns_a_new_dict_and_never_touches_os_environ() -> None:
    before = dict(os.environ)
    ctx = parse_traceparent(TP)
    child = inject(os.environ, ctx, "a=1")
    assert child is not os.environ
    assert child["TRACEPARENT"] == TP
    assert child["BAGGAGE"] == "a=1"
    assert dict(os.environ) == before
    assert os.environ.get("TRACEPARENT") == before.get("TRACEPARENT")


def test_inject_sets_and_removes() -> None:
    env = {"PATH": "/bin", "TRACEPARENT": TP2, "TRACESTATE": "old=1", "BAGGAGE": "old=1"}
    snapshot = dict(env)
    ctx = parse_traceparent(TP)
    out = inject(env, ctx, None)
    assert out == {"PATH": "/bin", "TRACEPARENT": TP}
    assert env == snapshot
    with_state = SpanContext(ctx.trace_id, ctx.span_id, ctx.flags, TraceState.parse("sys=1"))
    out = inject(env, with_state, "b=2")
    assert out["TRACESTATE"] == "sys=1"
    assert out["BAGGAGE"] == "b=2"
    assert inject(env, None, None) == {"PATH": "/bin"}


def test_inject_reemits_version_00_and_known_flags_only() -> None:
    ctx = parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff-future")
    assert (
        inject({}, ctx)["TRACEPARENT"] == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03"
    )


def test_inject_truncates_tracestate_to_512() -> None:
    state = TraceState([(f"k{i:02d}", "v" * 100) for i in range(8)])
    ctx = SpanContext(1, 1, 1, state)
    assert len(inject({}, ctx)["TRACESTATE"]) <= 512


def test_extract_inject_round_trip() -> None:
    env = {"TRACEPARENT": TP, "TRACESTATE": "rojo=1,congo=2", "BAGGAGE": "k=v;p"}
    ctx, baggage, _ = extract(env)
    assert ctx is not None
    assert inject({}, ctx, baggage) == env


# -- carrier file -----------------------------------------------------------------------------


def test_read_carrier_file_shell_forms(tmp_path: Path) -> None:
    path = tmp_path / "ctx.env"
    path.write_text(
        "# written by a previous step\n"
        "\n"
        f"TRACEPARENT={TP}\n"
        "export TRACESTATE='rojo=00f067aa0ba902b7,congo=t61rcWkgMzE'\n"
        '  export\tBAGGAGE="a=1;p, b=2"   # trailing comment\n'
        "EMPTY=\n"
        "HASH=a#b\n"
        "CONCAT='it'\"'\"'s'\n"
        "ESCAPED=a\\ b\n"
    )
    assert read_carrier_file(str(path)) == {
        "TRACEPARENT": TP,
        "TRACESTATE": "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
        "BAGGAGE": "a=1;p, b=2",
        "EMPTY": "",
        "HASH": "a#b",
        "CONCAT": "it's",
        "ESCAPED": "a b",
    }


@pytest.mark.parametrize(
    ("content", "line"),
    [
        ("TRACEPARENT\n", 1),
        ("# ok\nnot an assignment\n", 2),
        ("TRACEPARENT='unterminated\n", 1),
        ("A=one two\n", 1),
        ("A= value\n", 1),
        ("1A=x\n", 1),
        ("export\n", 1),
        ("A-B=x\n", 1),
    ],
)
def test_read_carrier_file_malformed_names_file_and_line(
    tmp_path: Path, content: str, line: int
) -> None:
    path = tmp_path / "bad.env"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        read_carrier_file(str(path))
    assert f"{path}:{line}" in str(info.value)


def test_read_carrier_file_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing.env"):
        read_carrier_file(str(tmp_path / "missing.env"))
    with pytest.raises(ConfigError, match=str(tmp_path)):
        read_carrier_file(str(tmp_path))  # a directory
    binary = tmp_path / "binary.env"
    binary.write_bytes(b"TRACEPARENT=\xff\xfe\n")
    with pytest.raises(ConfigError, match="binary.env"):
        read_carrier_file(str(binary))


def test_write_carrier_file_content_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "ctx.env"
    ctx = SpanContext(
        0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, 1, TraceState.parse("a=x y,b=1")
    )
    write_carrier_file(str(path), ctx, "k=v;p")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == f"TRACEPARENT={TP}\nTRACESTATE='a=x y,b=1'\nBAGGAGE='k=v;p'\n"
    assert os.listdir(tmp_path) == ["ctx.env"]  # no temporary file left behind


def test_write_carrier_file_plain_values_stay_unquoted(tmp_path: Path) -> None:
    path = tmp_path / "ctx.env"
    write_carrier_file(str(path), SpanContext(1, 2, 1, TraceState.parse("rojo=00f0")), "a=1,b=2")
    assert path.read_text().splitlines()[1:] == ["TRACESTATE=rojo=00f0", "BAGGAGE=a=1,b=2"]


def test_write_carrier_file_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "ctx.env"
    path.write_text("OLD=1\n")
    os.chmod(path, 0o644)
    write_carrier_file(str(path), parse_traceparent(TP))
    assert path.read_text() == f"TRACEPARENT={TP}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_write_carrier_file_unwritable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no-such-dir"):
        write_carrier_file(str(tmp_path / "no-such-dir" / "ctx.env"), parse_traceparent(TP))


def test_written_file_is_shell_sourceable(tmp_path: Path) -> None:
    path = tmp_path / "ctx.env"
    state = TraceState.parse('a=it\'s $HOME `x` "q"; b,c=2')
    write_carrier_file(str(path), SpanContext(1, 2, 1, state), "k=v;p=$x")
    script = f'set -a; . "{path}"; printf "%s\\n%s\\n%s" "$TRACEPARENT" "$TRACESTATE" "$BAGGAGE"'
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True, env={})
    assert out.stdout.split("\n") == [SpanContext(1, 2).traceparent, state.to_header(), "k=v;p=$x"]


tracestate_values = st.from_regex(
    r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,30}[\x21-\x2b\x2d-\x3c\x3e-\x7e]", fullmatch=True
)


@settings(max_examples=50, deadline=None)
@given(st.lists(tracestate_values, max_size=5), st.text(max_size=30))
def test_carrier_file_round_trip(values: list[str], baggage_value: str) -> None:
    from sysspan.propagation.baggage import format_baggage

    state = TraceState([(f"k{i}", v) for i, v in enumerate(values)])
    ctx = SpanContext(0x1234, 0x5678, 1, state)
    baggage = format_baggage([("key", baggage_value, "prop=1")])
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ctx.env")
        write_carrier_file(path, ctx, baggage)
        back, back_baggage, warnings = extract(read_carrier_file(path))
    assert warnings == []
    assert back == SpanContext(0x1234, 0x5678, 1, state or None)
    assert back_baggage == baggage


# -- resolve_incoming -------------------------------------------------------------------------


def _carrier(tmp_path: Path, text: str) -> str:
    path = tmp_path / "ctx.env"
    path.write_text(text)
    return str(path)


def test_resolve_flag_wins(tmp_path: Path) -> None:
    path = _carrier(tmp_path, f"TRACEPARENT={TP2}\n")
    ctx, _, warnings = resolve_incoming(TP, path, {"TRACEPARENT": TP3, "TRACESTATE": "a=1"})
    assert ctx is not None and ctx.traceparent == TP
    assert ctx.tracestate is None  # the flag carries no tracestate; env's belongs to env's parent
    assert warnings == []


def test_resolve_carrier_file_beats_env(tmp_path: Path) -> None:
    path = _carrier(tmp_path, f"TRACEPARENT={TP2}\nTRACESTATE=file=1\n")
    ctx, _, warnings = resolve_incoming(None, path, {"TRACEPARENT": TP3, "TRACESTATE": "env=1"})
    assert ctx is not None and ctx.traceparent == TP2
    assert ctx.tracestate == TraceState.parse("file=1")
    assert warnings == []


def test_resolve_env_when_nothing_else(tmp_path: Path) -> None:
    ctx, baggage, warnings = resolve_incoming(None, None, {"TRACEPARENT": TP3, "BAGGAGE": "a=1"})
    assert ctx is not None and ctx.traceparent == TP3
    assert baggage == "a=1"
    assert warnings == []


def test_resolve_missing_carrier_file_falls_through_silently(tmp_path: Path) -> None:
    ctx, _, warnings = resolve_incoming(
        None, str(tmp_path / "first-step.env"), {"TRACEPARENT": TP3}
    )
    assert ctx is not None and ctx.traceparent == TP3
    assert warnings == []


def test_resolve_carrier_file_without_traceparent_falls_through(tmp_path: Path) -> None:
    path = _carrier(tmp_path, "BAGGAGE=from=file\n")
    ctx, baggage, warnings = resolve_incoming(
        None, path, {"TRACEPARENT": TP3, "BAGGAGE": "from=env"}
    )
    assert ctx is not None and ctx.traceparent == TP3
    assert baggage == "from=file"
    assert warnings == []


def test_resolve_invalid_flag_is_one_warning_and_a_new_trace(tmp_path: Path) -> None:
    path = _carrier(tmp_path, f"TRACEPARENT={TP2}\n")
    ctx, baggage, warnings = resolve_incoming(
        "ff" + TP[2:], path, {"TRACEPARENT": TP3, "BAGGAGE": "a=1"}
    )
    assert ctx is None
    assert baggage == "a=1"
    assert len(warnings) == 1
    assert warnings[0].startswith("--traceparent")
    assert "version ff is invalid" in warnings[0]


def test_resolve_invalid_traceparent_in_carrier_file_names_the_file(tmp_path: Path) -> None:
    path = _carrier(tmp_path, "TRACEPARENT=00-zz\n")
    ctx, _, warnings = resolve_incoming(None, path, {"TRACEPARENT": TP3})
    assert ctx is None
    assert len(warnings) == 1
    assert path in warnings[0] and "TRACEPARENT" in warnings[0]


def test_resolve_malformed_carrier_file_is_a_warning_and_a_new_trace(tmp_path: Path) -> None:
    path = _carrier(tmp_path, "this is not a carrier file\n")
    ctx, _, warnings = resolve_incoming(None, path, {"TRACEPARENT": TP3})
    assert ctx is None
    assert len(warnings) == 1
    assert path in warnings[0]


def test_resolve_blank_flag_is_ignored() -> None:
    ctx, _, _ = resolve_incoming("  ", None, {"TRACEPARENT": TP3})
    assert ctx is not None and ctx.traceparent == TP3


def test_resolve_required() -> None:
    with pytest.raises(PropagationError, match="no incoming trace context"):
        resolve_incoming(None, None, {}, required=True)
    with pytest.raises(PropagationError, match="all-zero trace id"):
        resolve_incoming("00-" + "0" * 32 + "-00f067aa0ba902b7-01", None, {}, required=True)
    ctx, _, _ = resolve_incoming(TP, None, {}, required=True)
    assert ctx is not None
