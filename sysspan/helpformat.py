"""argparse's help formatter without its start-up cost.

argparse builds a formatter for every ``add_argument`` (to check the metavar) and each one
asks ``shutil.get_terminal_size()`` for the width, importing shutil, which imports the
compression modules: a visible part of a short trace's start-up for a width only ``--help``
uses. This formatter works the width out the same way (``COLUMNS``, then the terminal on
stdout, else 80) with ``os`` alone.
"""

from __future__ import annotations

import argparse
import os
import sys


def terminal_columns() -> int:
    """What ``shutil.get_terminal_size().columns`` answers."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class HelpFormatter(argparse.HelpFormatter):
    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        if width is None:
            width = terminal_columns() - 2  # argparse's own margin
        super().__init__(prog, indent_increment, max_help_position, width)
