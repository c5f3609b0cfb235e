"""decision span attributes: the shortcut for plain scalars gives the same text as the
general path (JSON text, then redaction) for every kind of value."""

import enum
import math

import pytest

from sysspan.decisions.model import Decision, decision_attributes, decision_span, json_text
from sysspan.redact import redact


class Level(enum.IntEnum):
    HIGH = 3


class Loud(int):
    def __repr__(self) -> str:
        return "Loud!"


VALUES = [
    None, True, False, 0, 1, -1, 2**63, -(2**200), Level.HIGH, Loud(7),
    0.5, -0.0, math.inf, math.nan, 1e300,
    "", "plain", "password=hunter2", "ghp_" + "a" * 30, "https://u:pw@host/x",
    ["--token", "abc"], {"password": "x", "n": 1}, {"nested": {"api_key": "k"}}, (1, "t"),
    b"bytes", object(),
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_attribute_text_equals_the_general_path(value: object) -> None:
    d = Decision("cat", "name", value, value, "f.py", 3, 0, 10, 10, 42, 43)
    attrs = decision_attributes(d)
    expected = redact(json_text(value))
    assert attrs["decision.input"] == expected
    if value is None:
        assert "decision.result" not in attrs
    else:
        assert attrs["decision.result"] == expected


def test_secret_is_still_masked_in_a_span() -> None:
    d = Decision("cat", "login", {"password": "hunter2"}, 1, "f.py", 3, 0, 10, 10, 42, 43)
    span = decision_span(d, trace_id=1, span_id=2, parent_id=3)
    assert "hunter2" not in span.attributes["decision.input"]
    assert span.attributes["decision.result"] == "1"
