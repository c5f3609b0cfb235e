"""The ring's own msgpack encoder and decoder (``sysspan.decisions._ring.pack`` for the Python
writer, so that recording a decision does not import msgpack into the program, and
``_ring.unpack`` for sysspan's reader) against msgpack-python itself."""

from __future__ import annotations

import collections
import random

import msgpack
import pytest

from sysspan.decisions import _ring, _safe_repr

EDGES = [
    None, True, False, 0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1,
    2**63, 2**64 - 1, -1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1,
    -(2**63), 0.0, -0.0, 1.5, float("inf"), 1e308, "", "a", "é" * 40, "x" * 31, "x" * 32,
    "y" * 255, "y" * 256, "z" * 65535, "z" * 65536, b"", b"\x00" * 300, bytearray(b"ab"),
    [], (), [1, [2, [3]]], {}, {"k": 1, 2: [3], None: {"n": b"b"}}, list(range(16)),
    list(range(70000)), {i: i for i in range(16)}, {str(i): i for i in range(70000)},
    collections.OrderedDict(a=1), collections.namedtuple("P", "x y")(1, 2),
]


class Odd:
    def __repr__(self) -> str:
        return "<odd>"


def _random_value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(10 if depth < 3 else 6)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.randint(-(2**63), 2**64 - 1) >> rng.randrange(64)
    if kind == 2:
        return rng.uniform(-1e12, 1e12)
    if kind == 3:
        return "".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(160, 0xD7FF)]))
                       for _ in range(rng.choice([0, 3, 31, 32, 300])))
    if kind == 4:
        return rng.randbytes(rng.choice([0, 5, 255, 256]))
    if kind == 5:
        return Odd()
    if kind in (6, 7):
        items = [_random_value(rng, depth + 1) for _ in range(rng.choice([0, 2, 15, 16, 17]))]
        return items if kind == 6 else tuple(items)
    return {_random_value(rng, 4): _random_value(rng, depth + 1) for _ in range(rng.choice([0, 3, 16]))}


@pytest.mark.parametrize("value", EDGES + [Odd(), 2**64, -(2**63) - 1, 10**40], ids=lambda v: type(v).__name__)
def test_pack_encodes_like_msgpack_python(value) -> None:
    ours = _ring.pack(value, _safe_repr)
    assert ours == msgpack.packb(value, default=_safe_repr, use_bin_type=True)


def test_pack_encodes_random_nested_values_like_msgpack_python() -> None:
    rng = random.Random(13)
    for _ in range(300):
        value = [_random_value(rng) for _ in range(5)]
        assert _ring.pack(value, _safe_repr) == msgpack.packb(value, default=_safe_repr, use_bin_type=True)


def test_pack_falls_back_where_msgpack_python_would_fail() -> None:
    # a lone surrogate is not UTF-8: its repr instead of an exception
    assert msgpack.unpackb(_ring.pack(["\ud800"], _safe_repr)) == [repr("\ud800")]
    deep: list = []
    deep.append(deep)
    with pytest.raises(ValueError):
        _ring.pack(deep, _safe_repr)  # the writer then records the reprs instead
    with pytest.raises(TypeError):
        _ring.pack(Odd(), lambda v: 42)  # default() must give a str or bytes


def test_pack_survives_a_default_that_empties_the_containers_being_packed() -> None:
    def thief(container: dict | list) -> object:
        class Thief:
            def __repr__(self) -> str:
                container.clear()
                return "thief"

        return Thief()

    lst: list = [None, None, None]
    lst[0] = thief(lst)
    d: dict = {"a": None, "b": None, "c": None}
    d["a"] = thief(d)
    # well formed all the same: the header's count holds, what went missing is nil
    assert msgpack.unpackb(_ring.pack(lst, _safe_repr)) == ["thief", None, None]
    assert msgpack.unpackb(_ring.pack(d, _safe_repr), strict_map_key=False) == {"a": "thief", None: None}


def _msgpack_says(data: bytes) -> tuple[str, object]:
    try:
        return "value", msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True)
    except Exception as exc:  # noqa: BLE001 - what msgpack raises for bad bytes varies
        return "error", type(exc)


def _same(a: object, b: object) -> bool:
    """Equal, with NaN equal to itself and float/int/bool told apart."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (a != a and b != b)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def test_unpack_decodes_what_msgpack_python_encodes_the_same() -> None:
    rng = random.Random(31)
    for i in range(600):
        value = [_random_value(rng) for _ in range(5)]
        data = msgpack.packb(value, default=_safe_repr, use_bin_type=True, use_single_float=i % 3 == 0)
        ours = _ring.unpack(data)
        assert ours is not NotImplemented
        assert _same(ours, _msgpack_says(data)[1])


@pytest.mark.parametrize("data", [
    msgpack.packb(msgpack.ExtType(5, b"x")), msgpack.packb([1, msgpack.ExtType(1, b"")]),
    b"\xc1", b"\xa3ab", b"\x92\x01", b"\x01\x02", b"\xa2\xff\xfe", b"\x81\x91\x01\x02",
    b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff", b"\xdb\xff\xff\xff\xff", b"",
    b"\x91" * 600 + b"\xc0",
], ids=lambda d: d[:12].hex())
def test_unpack_leaves_to_msgpack_what_it_does_not_decode_itself(data) -> None:
    """ext types, truncation, trailing bytes, invalid UTF-8, unhashable keys, huge claimed
    lengths, deep nesting: NotImplemented at once (no allocation of the claimed size)."""
    assert _ring.unpack(data) is NotImplemented


def test_unpack_of_hostile_bytes_agrees_with_msgpack_whenever_it_answers() -> None:
    rng = random.Random(7)
    seeds = [msgpack.packb([_random_value(rng) for _ in range(5)], default=_safe_repr) for _ in range(50)]
    answered = 0
    for i in range(20000):
        if i % 2:
            data = rng.randbytes(rng.randrange(0, 24))
        else:
            buf = bytearray(rng.choice(seeds))
            for _ in range(rng.randrange(1, 4)):
                if buf:
                    buf[rng.randrange(len(buf))] = rng.randrange(256)
            data = bytes(buf[: rng.randrange(len(buf) + 1)] if rng.random() < 0.3 else buf)
        ours = _ring.unpack(data)
        if ours is NotImplemented:
            continue
        answered += 1
        kind, theirs = _msgpack_says(data)
        assert kind == "value" and _same(ours, theirs), data
    assert answered > 1000
