"""Each dashboard panel selects exactly the spans its title names.

Every span sysspan writes says what it is in ``sysspan.span.role``; every panel's TraceQL must
select by it. The spanset filter of each query (the ``{ ... }`` part) is evaluated here against
a real trace with runs, processes, syscalls and decisions, and the roles of the spans it
matches must be the roles the panel's title names (``syscalls`` → syscall, ``processes`` →
process, ``runs`` → run, ``decisions`` → decision). The evaluator covers the part of TraceQL the
dashboards use: ``&&``, ``||``, parentheses, ``= != =~ > < >= <=`` on ``span.``/``resource.``
attributes, ``span:duration``, ``span:status`` and ``span:name``, strings, numbers, durations
and ``nil``.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from sysspan.span_roles import ROLES
from tests.tracehelpers import JSpan, load_spans, sysspan

DASHBOARDS = Path(__file__).resolve().parents[2] / "compose" / "tempo" / "dashboards"
_TITLE_ROLE = re.compile(r"\b(syscall|system call|process|run|decision)(?:es|s)?\b", re.I)
_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<dur>\d+(?:\.\d+)?(?:ns|us|ms|s|m|h))\b'
    r"|(?P<num>-?\d+(?:\.\d+)?)|(?P<op>&&|\|\||=~|!=|>=|<=|[=<>()])"
    r"|(?P<ident>(?:span|resource)?[.:]?[A-Za-z_][\w.:]*))"
)
_DURATION_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_STATUS = {0: "unset", 1: "ok", 2: "error"}


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        assert m and m.end() > pos, f"cannot read TraceQL at {text[pos:]!r}"
        kind = m.lastgroup
        assert kind is not None
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Filter:
    """A spanset filter (the text between ``{`` and ``}``), compiled to a predicate."""

    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.tree = self._or()
        assert self.i == len(self.toks), f"unread TraceQL: {self.toks[self.i:]}"

    def _peek(self) -> str | None:
        return self.toks[self.i][1] if self.i < len(self.toks) else None

    def _next(self) -> tuple[str, str]:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def _or(self) -> Any:
        node = self._and()
        while self._peek() == "||":
            self._next()
            node = ("or", node, self._and())
        return node

    def _and(self) -> Any:
        node = self._atom()
        while self._peek() == "&&":
            self._next()
            node = ("and", node, self._atom())
        return node

    def _atom(self) -> Any:
        if self._peek() == "(":
            self._next()
            node = self._or()
            assert self._next()[1] == ")"
            return node
        kind, field = self._next()
        assert kind == "ident", field
        _, op = self._next()
        vkind, value = self._next()
        return ("cmp", field, op, vkind, value)

    def matches(self, span: JSpan, resource: dict[str, Any]) -> bool:
        return self._eval(self.tree, span, resource)

    def _eval(self, node: Any, span: JSpan, resource: dict[str, Any]) -> bool:
        if node[0] == "or":
            return self._eval(node[1], span, resource) or self._eval(node[2], span, resource)
        if node[0] == "and":
            return self._eval(node[1], span, resource) and self._eval(node[2], span, resource)
        _, field, op, vkind, raw = node
        if field.startswith("resource."):
            have: Any = resource.get(field[len("resource.") :])
        elif field == "span:duration":
            have = span.end - span.start
        elif field == "span:status":
            have = _STATUS[span.status.get("code", 0)]
        elif field == "span:name":
            have = span.name
        else:
            assert field.startswith("span."), field
            have = span.attrs.get(field[len("span.") :])
        if vkind == "ident" and raw == "nil":
            return (have is None) == (op == "=")
        if have is None:
            return False
        want: Any
        if vkind == "str":
            want = json.loads(raw)
        elif vkind == "dur":
            number, unit = re.fullmatch(r"([\d.]+)(\w+)", raw).groups()  # type: ignore[union-attr]
            want = float(number) * _DURATION_NS[unit]
        elif vkind == "num":
            want = float(raw)
        else:
            want = raw  # error, ok, unset
        if op == "=~":
            return re.fullmatch(want, str(have)) is not None
        ops = {"=": have == want, "!=": have != want}
        if op in ops:
            return ops[op]
        return {">": have > want, "<": have < want, ">=": have >= want, "<=": have <= want}[op]


def _panels() -> list[tuple[str, str, str]]:
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                out.append((path.name, panel["title"], target["query"]))
    return out


PANELS = _panels()


def _title_roles(title: str) -> set[str]:
    return {m.lower().replace("system call", "syscall") for m in _TITLE_ROLE.findall(title)}


def _filter_text(query: str) -> str:
    return query[query.index("{") + 1 : query.index("}")].replace("$service", ".*")


def test_the_filter_evaluator_reads_and_decides() -> None:
    f = _Filter('span.a = "x" && (span.n > 2 || span:duration > 1ms) && span.z = nil')
    span = JSpan("s", "", "", "", 0, 0, 2_000_000, {"a": "x", "n": 1}, {})
    assert f.matches(span, {})
    span.end = 10
    assert not f.matches(span, {})
    span.attrs["n"] = 3
    assert f.matches(span, {})
    span.attrs["z"] = 1
    assert not f.matches(span, {})


@pytest.mark.parametrize(("dashboard", "title", "query"), PANELS, ids=[f"{d}:{t}" for d, t, _ in PANELS])
def test_every_title_names_roles_and_the_query_selects_them_explicitly(dashboard: str, title: str, query: str) -> None:
    roles = _title_roles(title)
    assert roles, f"{dashboard}: the title {title!r} names no kind of span"
    named = set(re.findall(r'span\.sysspan\.span\.role = "(\w+)"', query))
    assert named == roles, f"{dashboard}: {title!r} selects roles {named}"
    assert named <= set(ROLES)


PROGRAM = textwrap.dedent(
    """\
    import subprocess, sys
    import sysspan.decisions as d
    d.record("plan", "pick", input={"n": 1}, result="a")
    with d.decision("io", "read_config", input={}) as dec:
        open("/etc/hostname").read()
        dec.result = True
    subprocess.run(["sh", "-c", "sleep 0.15; cat /nonexistent"])
    subprocess.run(["sh", "-c", "kill -TERM $$"])  # a process that fails with error.type
    sys.exit(3)
    """
)


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> list[JSpan]:
    work = tmp_path_factory.mktemp("roles")
    (work / "prog.py").write_text(PROGRAM)
    out = work / "t.jsonl"
    res = sysspan("--trace-file", str(out), "-f", "--", sys.executable, str(work / "prog.py"), cwd=work)
    assert res.returncode == 3, res.stderr
    return load_spans(out)


def test_every_span_of_a_real_trace_has_a_role(trace: list[JSpan]) -> None:
    spans = trace
    roles = [s.attrs.get("sysspan.span.role") for s in spans]
    assert None not in roles
    assert {"run", "process", "syscall", "decision"} <= set(roles)
    # the attribute agrees with what else marks each kind of span
    for s in spans:
        role = s.attrs["sysspan.span.role"]
        assert ("syscall.name" in s.attrs) == (role == "syscall")
        assert ("decision.id" in s.attrs) == (role == "decision")
        assert ("syscall.count" in s.attrs) == (role == "run")


@pytest.mark.parametrize(("dashboard", "title", "query"), PANELS, ids=[f"{d}:{t}" for d, t, _ in PANELS])
def test_query_selects_exactly_the_spans_its_title_names(
    trace: list[JSpan], dashboard: str, title: str, query: str
) -> None:
    f = _Filter(_filter_text(query))
    matched = [s for s in trace if f.matches(s, s.resource)]
    assert matched, f"{dashboard}: {title!r} selects nothing in a trace made for it"
    got = {s.attrs["sysspan.span.role"] for s in matched}
    assert got == _title_roles(title), f"{dashboard}: {title!r} selected {got}"
