"""sysspan.lighttyping's run-time stand-ins behave like typing's for what sysspan uses them for,
and the module does not import typing."""

from __future__ import annotations

import pickle
import subprocess
import sys
import typing

import pytest

from sysspan.lighttyping import NamedTuple, Protocol, cast, runtime_checkable
from tests.tracehelpers import REPO


class Point(NamedTuple):
    """A point."""

    x: int
    y: int = 0
    label: str | None = None

    @property
    def norm1(self) -> int:
        return abs(self.x) + abs(self.y)

    def moved(self, dx: int) -> Point:
        return self._replace(x=self.x + dx)


class TypingPoint(typing.NamedTuple):
    """A point."""

    x: int
    y: int = 0
    label: str | None = None


def test_named_tuple_matches_typing_for_fields_defaults_and_methods():
    p = Point(3, -4)
    assert p == (3, -4, None) and p.norm1 == 7 and p.moved(1) == Point(4, -4)
    assert Point._fields == TypingPoint._fields
    assert Point._field_defaults == TypingPoint._field_defaults
    assert Point.__doc__ == TypingPoint.__doc__ == "A point."
    assert list(Point.__annotations__) == ["x", "y", "label"]
    assert repr(p) == "Point(x=3, y=-4, label=None)"
    assert isinstance(p, tuple) and Point.__module__ == __name__
    assert pickle.loads(pickle.dumps(p)) == p
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]


def test_named_tuple_rejects_a_field_without_default_after_one_with() -> None:
    with pytest.raises(TypeError, match="without a default"):

        class Bad(NamedTuple):
            a: int = 1
            b: int  # type: ignore[misc]


class Reader(Protocol):
    def read(self, n: int) -> bytes: ...


@runtime_checkable
class Writer(Protocol):
    name: str

    def write(self, data: bytes) -> int: ...


class FileLike:
    name = "f"

    def write(self, data: bytes) -> int:
        return len(data)


class Nameless:
    def write(self, data: bytes) -> int:
        return 0


class Explicit(Writer):
    pass


def test_runtime_checkable_protocol_checks_members_like_typing():
    assert isinstance(FileLike(), Writer)
    assert not isinstance(Nameless(), Writer)  # the annotated attribute is a member too
    assert not isinstance(object(), Writer)
    assert isinstance(Explicit(), Writer) and isinstance(Explicit(), Explicit)
    assert not isinstance(FileLike(), Explicit)  # a class implementing one is nominal
    with pytest.raises(TypeError, match="runtime_checkable"):
        isinstance(FileLike(), Reader)  # type: ignore[misc]


def test_cast_returns_its_value():
    value = object()
    assert cast(int, value) is value


def test_importing_it_does_not_import_typing():
    code = "import sys, sysspan.lighttyping; print('typing' in sys.modules)"
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True, env={"PYTHONPATH": str(REPO)})
    assert out.stdout.strip() == "False"
