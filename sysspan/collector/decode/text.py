"""Text helpers shared by the argument printers: numbers, pointers, flags, quoting.

Everything here renders the way strace does (``0x1f``, ``NULL``, ``0644``, ``O_RDONLY|O_CLOEXEC``,
``"a\\n\\0"``).
"""

from __future__ import annotations

from sysspan.collector import constants as C

_U64 = (1 << 64) - 1
_U32 = (1 << 32) - 1


def _i32(v: int) -> int:
    v &= _U32
    return v - (1 << 32) if v & 0x80000000 else v


def _s64(v: int) -> int:
    v &= _U64
    return v - (1 << 64) if v & (1 << 63) else v


def _hex(v: int) -> str:
    return "0" if v == 0 else f"{v:#x}"


def _ptr(v: int) -> str:
    return "NULL" if v == 0 else f"{v & _U64:#x}"


def _oct(v: int) -> str:
    """C's ``%#03o``: 0644, 000, 04755."""
    return ("0" + format(v, "o") if v else "0").rjust(3, "0")


def _flags(v: int, table_: C.Flags, zero: str = "0", unknown: str | None = None) -> str:
    """strace's printflags: names in table order, each consuming its bits, then leftover hex."""
    if v == 0:
        return zero
    names = []
    rest = v
    for value, name in table_:
        if value and rest & value == value:
            names.append(name)
            rest &= ~value
    if rest:
        if not names and unknown:
            return f"{rest:#x} /* {unknown} */"
        names.append(f"{rest:#x}")
    return "|".join(names)


def _enum(v: int, table_: dict[int, str], unknown: str) -> str:
    name = table_.get(v)
    if name is not None:
        return name
    return f"{v & _U64:#x} /* {unknown} */"


def _build_quote_tables() -> tuple[list[str], list[str]]:
    short, long = [], []
    special = {0x22: '\\"', 0x5C: "\\\\", 0x0C: "\\f", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t",
               0x0B: "\\v"}  # fmt: skip
    for c in range(256):
        if c in special:
            short.append(special[c])
            long.append(special[c])
        elif 0x20 <= c <= 0x7E:
            short.append(chr(c))
            long.append(chr(c))
        else:
            short.append(f"\\{c:o}")
            long.append(f"\\{c:03o}")
    return short, long


_Q_SHORT, _Q_LONG = _build_quote_tables()
_OCTAL_DIGITS = frozenset(b"01234567")
_PLAIN = frozenset(range(0x20, 0x7F)) - {0x22, 0x5C}


def quote(data: bytes) -> str:
    """Quote bytes the way strace does: C escapes, octal for other non-printables."""
    if _PLAIN.issuperset(data):
        return '"' + data.decode("ascii") + '"'
    out = []
    last = len(data) - 1
    for i, c in enumerate(data):
        if c in _PLAIN:
            out.append(chr(c))
        elif i < last and data[i + 1] in _OCTAL_DIGITS:
            out.append(_Q_LONG[c])
        else:
            out.append(_Q_SHORT[c])
    return '"' + "".join(out) + '"'


def quote_hex(data: bytes) -> str:
    """Quote with every byte as ``\\xNN`` (strace does this for random bytes)."""
    return '"' + "".join(f"\\x{c:02x}" for c in data) + '"'


def _text(data: bytes) -> str:
    return data.decode("utf-8", "backslashreplace")


def _with_link(text: str, link: object) -> str:
    """strace -y: ``3</etc/passwd>``; a deleted file keeps its marker outside: ``<..>(deleted)``."""
    if not isinstance(link, str):
        return text
    if link.endswith(" (deleted)"):
        return f"{text}<{link[:-10]}>(deleted)"
    return f"{text}<{link}>"


# socket is imported on first use: only traces with network addresses need it, and it
# costs every start-up a few milliseconds.
def _inet_ntop(version: int, packed: bytes) -> str:
    """``socket.inet_ntop`` for IPv4 (``version`` 4) or IPv6 (6)."""
    from socket import AF_INET, AF_INET6, inet_ntop

    return inet_ntop(AF_INET if version == 4 else AF_INET6, packed)


def _ntohs(value: int) -> int:
    from socket import ntohs

    return ntohs(value)
