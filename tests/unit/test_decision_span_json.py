"""Decision spans are encoded to OTLP/JSON through a per-site cache; the text must be the
one the general encoder writes for the same span, for every kind of input and result."""

from __future__ import annotations

import json

from sysspan.decisions.model import Decision, decision_attributes, decision_span
from sysspan.exporters import otlp_json
from sysspan.model import DecisionSpan, Span, StatusCode

VALUES = [None, True, False, 0, -7, 2**70, 1.5, float("nan"), "", "plain", 'quote " and \\ and \n',
          "caf\u00e9 \u2603", "--password=SEKRIT", {"password": "SEKRIT", "n": [1, 2]}, [1, "a", None],
          b"\x00\xff", ("t", 1)]


def _general(span: Span) -> str:
    plain = Span(**{name: getattr(span, name) for name in Span._FIELDS})
    return otlp_json._span(plain)


def test_cached_decision_json_equals_the_general_encoder() -> None:
    seen = 0
    for trace_state, flags in (("", 1), ("k=v", 0)):
        for site in range(3):  # several sites, each hit many times
            for i, value in enumerate(VALUES):
                for result in (VALUES[-1 - i], None):
                    d = Decision("cat", f"site{site}", value, result, "/src/f.py" if site else "", 10 + site,
                                 site, 1000 + i, 1000 + i + site, 42 if site != 1 else 0, 43)
                    span = decision_span(d, trace_id=0xABC, span_id=100 + i, parent_id=(7 if i % 2 else 0),
                                         trace_state=trace_state, flags=flags)
                    assert type(span) is DecisionSpan
                    want = decision_attributes(d)
                    assert span.attributes == want and list(span.attributes) == list(want)
                    assert span.name == d.qualified_name
                    text = otlp_json._span(span)
                    assert text == _general(span)
                    json.loads(text)
                    seen += 1
    assert seen == 2 * 3 * len(VALUES) * 2


def test_a_status_set_later_is_encoded() -> None:
    span = decision_span(Decision("c", "n", 1, 2, "f", 1), trace_id=1, span_id=2, parent_id=3)
    otlp_json._span(span)  # cache the site
    span.status, span.status_message = StatusCode.ERROR, "boom"
    assert otlp_json._span(span) == _general(span)
