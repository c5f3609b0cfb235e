"""A number read from an environment variable by code that must not stop on a bad one (the
decision recorder inside a traced program, the Lambda extension): an unparsable or
out-of-range value gives the default, and is named in ``problems`` when the caller keeps
them."""

from __future__ import annotations

from collections.abc import Callable, Mapping

TYPE_CHECKING = False

if TYPE_CHECKING:  # N appears only in annotations, which are never evaluated
    from typing import TypeVar

    N = TypeVar("N", bound=float)

_INF = float("inf")


def env_number(
    env: Mapping[str, str],
    name: str,
    default: N,
    parse: Callable[[str], N],
    low: float = -_INF,
    high: float = _INF,
    problems: list[str] | None = None,
) -> N:
    """``parse`` of the variable ``name``; ``default`` when it is unset or blank, does not
    parse, or lies outside ``low``..``high`` (a NaN lies outside any range)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = parse(raw)
    except ValueError:
        if problems is not None:
            kind = "an integer" if parse is int else "a number"
            problems.append(f"{name}: expected {kind}, got {raw!r}; using {default}")
        return default
    if not low <= value <= high:
        if problems is not None:
            problems.append(f"{name}: must be between {low} and {high}, got {value}; using {default}")
        return default
    return value
