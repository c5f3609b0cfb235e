"""The ``typing`` names the trace path uses, without importing ``typing`` at run time.

Every traced command pays for sysspan's start-up, and ``import typing`` alone is about 3 ms
of it (its module body builds hundreds of generic aliases). ``typing.NamedTuple`` adds a
``compile`` per annotated field (it turns each string annotation into a ``ForwardRef``).
Under ``from __future__ import annotations`` most of these names only appear in annotations,
which are never evaluated, so modules import them from here instead of from ``typing``:

- type checkers see ``typing``'s own objects (the ``TYPE_CHECKING`` branch below);
- at run time ``NamedTuple`` builds the class with ``collections.namedtuple`` (fields from
  the annotations, defaults and methods from the class body); ``Protocol`` is a base class
  whose ``isinstance``, for a ``@runtime_checkable`` one, checks for every member by name
  (as ``typing``'s does); ``cast`` returns its value;
  ``Any``, ``IO`` and ``TypeVar`` are placeholders that annotations never evaluate.

``tests/integration/test_startup_imports.py`` fails when a plain run imports ``typing``.
"""

from __future__ import annotations

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import IO as IO
    from typing import Any as Any
    from typing import NamedTuple as NamedTuple
    from typing import Protocol as Protocol
    from typing import TypeVar as TypeVar
    from typing import cast as cast
    from typing import runtime_checkable as runtime_checkable
else:
    from collections import namedtuple as _namedtuple

    Any = IO = object

    def cast(_type, value):
        return value

    def TypeVar(name, *_constraints, **_options):  # noqa: N802 - typing's spelling
        return name

    # Protocol machinery that is not part of the interface a protocol describes
    _NOT_MEMBERS = frozenset({"__module__", "__qualname__", "__doc__", "__dict__", "__weakref__",
                              "__slots__", "__annotations__", "__init__", "__new__",
                              "__parameters__", "__orig_bases__", "_is_runtime_protocol"})

    def runtime_checkable(cls):
        cls._is_runtime_protocol = True
        return cls

    class _ProtocolMeta(type):
        def __instancecheck__(cls, instance):
            if type.__instancecheck__(cls, instance):
                return True
            if Protocol not in cls.__bases__:  # a class implementing a protocol: nominal
                return False
            if not cls.__dict__.get("_is_runtime_protocol"):
                raise TypeError(f"isinstance() with {cls.__name__}: not a @runtime_checkable protocol")
            members = set()
            for base in cls.__mro__:
                if base is Protocol or base is object:
                    continue
                members.update(base.__dict__.get("__annotations__", {}))
                members.update(base.__dict__)
            return all(hasattr(instance, name) for name in members - _NOT_MEMBERS)

    class Protocol(metaclass=_ProtocolMeta):
        """Marks an interface: conformance is the type checker's job, and ``isinstance``
        against a ``@runtime_checkable`` one checks that every member is there, as
        ``typing``'s does."""

        __slots__ = ()

    # What namedtuple already defines, or the class statement adds, is not copied over.
    _NOT_COPIED = frozenset({"__module__", "__qualname__", "__annotations__", "__dict__",
                             "__weakref__", "__slots__", "__orig_bases__"})

    class _NamedTupleMeta(type):
        def __new__(mcls, name, bases, namespace):
            if not bases:  # NamedTuple itself
                return super().__new__(mcls, name, bases, namespace)
            fields = list(namespace.get("__annotations__", {}))
            defaults = [namespace[f] for f in fields if f in namespace]
            if any(f not in namespace for f in fields[len(fields) - len(defaults):]):
                raise TypeError(f"{name}: a field without a default follows one with a default")
            cls = _namedtuple(name, fields, defaults=defaults, module=namespace["__module__"])
            cls.__qualname__ = namespace.get("__qualname__", name)
            cls.__annotations__ = dict(namespace.get("__annotations__", {}))
            for key, value in namespace.items():
                if key not in _NOT_COPIED and key not in fields:
                    setattr(cls, key, value)
            return cls

    class NamedTuple(metaclass=_NamedTupleMeta):
        """``class Point(NamedTuple): x: int; y: int = 0`` builds a ``collections.namedtuple``."""
