"""Subcommands: one module each, defining ``COMMAND``, an object of the :class:`Command`
protocol. ``sysspan.cli`` builds each subcommand's parser from it and imports the module only
when that subcommand runs."""

from __future__ import annotations

import argparse

TYPE_CHECKING = False

if TYPE_CHECKING:  # an interface for mypy (cli.py checks every COMMAND against it)
    from typing import Protocol

    class Command(Protocol):
        """One ``sysspan SUBCOMMAND``.

        ``name`` is the word on the command line; ``help`` its one-line summary and
        ``description`` (or None) the paragraph ``sysspan SUBCOMMAND --help`` starts with.
        ``run`` gets the environment as a dict rather than reading ``os.environ``, so tests can
        hand it one; it reports bad input by raising a ``SysspanError`` (the CLI turns that into
        one line and an exit status) and returns the exit status otherwise."""

        # Read-only, so a class attribute of a narrower type (a plain str description) fits.
        @property
        def name(self) -> str: ...

        @property
        def help(self) -> str: ...

        @property
        def description(self) -> str | None: ...

        def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
            """Add the subcommand's arguments to its own parser."""

        def run(self, args: argparse.Namespace, env: dict[str, str]) -> int:
            """Do the work; the exit status."""
