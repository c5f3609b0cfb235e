"""The named tuples on the trace path are declared twice, a ``typing.NamedTuple`` that mypy
checks against and the ``collections.namedtuple`` that runs; the two must have the same fields
in the same order, with the same defaults, or mypy would be checking a different record."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from tests.tracehelpers import REPO

MODULES = ("sysspan.collector.records", "sysspan.collector.decode.decoder")


def _source(module: str) -> str:
    return Path(REPO, *module.split(".")).with_suffix(".py").read_text()


def _declared(source: str) -> dict[str, tuple[list[str], dict[str, object]]]:
    """Fields and defaults of each ``class X(NamedTuple)`` under ``if TYPE_CHECKING:``."""
    out: dict[str, tuple[list[str], dict[str, object]]] = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.If) and isinstance(node.test, ast.Name)
                and node.test.id == "TYPE_CHECKING"):
            continue
        for cls in node.body:
            if isinstance(cls, ast.ClassDef) and any(
                    isinstance(b, ast.Name) and b.id == "NamedTuple" for b in cls.bases):
                fields = [s for s in cls.body if isinstance(s, ast.AnnAssign)]
                out[cls.name] = (
                    [f.target.id for f in fields if isinstance(f.target, ast.Name)],
                    {f.target.id: ast.literal_eval(f.value) for f in fields
                     if f.value is not None and isinstance(f.target, ast.Name)},
                )
    return out


def _run_time(module: str) -> dict[str, type]:
    mod = importlib.import_module(module)
    return {name: obj for name, obj in vars(mod).items()
            if isinstance(obj, type) and issubclass(obj, tuple) and hasattr(obj, "_fields")
            and obj.__module__ == module}


@pytest.mark.parametrize("module", MODULES)
def test_each_run_time_named_tuple_matches_its_typed_declaration(module: str) -> None:
    declared = _declared(_source(module))
    running = _run_time(module)
    assert declared, f"{module}: no typed declarations found"
    assert sorted(declared) == sorted(running)
    for name, cls in running.items():
        fields, defaults = declared[name]
        assert list(cls._fields) == fields, name
        assert cls._field_defaults == defaults, name


def test_the_check_sees_a_declaration_out_of_step() -> None:
    """The control: a typed field the run-time tuple lacks, or a changed default, shows."""
    source = _source("sysspan.collector.records")
    running = _run_time("sysspan.collector.records")["ThreadExit"]
    assert _declared(source)["ThreadExit"] == (list(running._fields), running._field_defaults)
    extra = source.replace("        execve_tid: int = 0\n",
                           "        execve_tid: int = 0\n        extra: int = 1\n", 1)
    other_default = source.replace("        execve_tid: int = 0\n", "        execve_tid: int = 1\n", 1)
    assert extra != source and other_default != source
    assert _declared(extra)["ThreadExit"][0] != list(running._fields)
    assert _declared(other_default)["ThreadExit"][1] != running._field_defaults
