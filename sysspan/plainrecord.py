"""Equality, repr and (for frozen records) immutability for plain slotted classes.

The records every run builds (spans, the trace context, decisions, sink reports, settings)
were dataclasses; importing ``dataclasses`` (it imports inspect, ast, dis and tokenize) and
generating their methods was the largest single part of a traced command's start-up. A
class lists its fields in ``_FIELDS`` and writes its own ``__init__``; these bases add what
the dataclass added: equality (same class, equal fields in order), a ``repr`` naming the
fields, ``replace`` (``dataclasses.replace``), and for :class:`FrozenRecord` hashing and no
assignment after ``__init__``.
"""

from __future__ import annotations

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any


class Record:
    __slots__ = ()
    _FIELDS: tuple[str, ...] = ()

    def _values(self) -> tuple:
        return tuple(getattr(self, name) for name in self._FIELDS)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._FIELDS)
        return f"{type(self).__qualname__}({fields})"

    def replace(self, **changes: Any) -> Any:
        """A copy with ``changes`` applied (through ``__init__``, so it is validated again)."""
        values = {name: getattr(self, name) for name in self._FIELDS}
        values.update(changes)
        return type(self)(**values)


class FrozenInstanceError(AttributeError):
    """Assignment to a field of a frozen record."""


class FrozenRecord(Record):
    """A record whose fields are set once, in ``__init__`` (with ``_set``)."""

    __slots__ = ()

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(self._values())

    # copy and pickle restore state with setattr, which a frozen record refuses
    def __getstate__(self) -> tuple:
        return self._values()

    def __setstate__(self, state: tuple) -> None:
        for name, value in zip(self._FIELDS, state, strict=True):
            object.__setattr__(self, name, value)
