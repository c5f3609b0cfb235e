"""Human-readable units shared by the reporters."""

from __future__ import annotations


def fmt_ns(ns: float | int | None) -> str:
    """``850 ns``, ``12.3 µs``, ``4.56 ms``, ``1.23 s``, ``2m 03s``."""
    if ns is None:
        return ""
    ns = float(ns)
    if ns < 1_000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1e3:.3g} µs"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.3g} ms"
    if ns < 60e9:
        return f"{ns / 1e9:.3g} s"
    minutes, seconds = divmod(ns / 1e9, 60)
    return f"{int(minutes)}m {seconds:02.0f}s"
