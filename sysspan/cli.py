"""Command line entry point: argument parsing, subcommand dispatch, and the one place where
``SysspanError`` becomes a one-line message and an exit code."""

from __future__ import annotations

import argparse
import atexit
import gc
import os
import sys

from sysspan import __version__
from sysspan.errors import SysspanError
from sysspan.helpformat import HelpFormatter

TYPE_CHECKING = False

if TYPE_CHECKING:
    from sysspan.commands import Command, decisions, lambda_, merge, replay, report, span, stats

    # mypy holds every subcommand to the protocol (at run time none is imported here).
    _CHECKED: tuple[Command, ...] = (
        replay.COMMAND, stats.COMMAND, report.COMMAND, merge.COMMAND, span.COMMAND,
        lambda_.COMMAND, decisions.COMMAND,
    )

# Subcommand name -> module under sysspan.commands whose COMMAND implements the Command
# protocol. A module is imported only when its subcommand runs: tracing does not pay for the
# reporters' imports.
SUBCOMMANDS = {
    "replay": "replay",
    "stats": "stats",
    "report": "report",
    "merge": "merge",
    "span": "span",
    "lambda": "lambda_",
    "decisions": "decisions",
}

USAGE = """\
sysspan [OPTIONS] -- COMMAND [ARGS...]   trace a command
sysspan [OPTIONS] -p PID                 attach to a running process
sysspan SUBCOMMAND ...                   {subs}"""


def _trace_parser() -> argparse.ArgumentParser:
    from sysspan.commands import trace

    parser = argparse.ArgumentParser(
        prog="sysspan",
        usage=USAGE.format(subs=", ".join(SUBCOMMANDS)),
        description="Turn what a program does into OpenTelemetry traces.",
        formatter_class=HelpFormatter,
        epilog="Spans go to ./sysspan-traces/*.jsonl unless an OTLP endpoint is configured. "
        "Subcommands: " + ", ".join(SUBCOMMANDS) + " (sysspan SUBCOMMAND --help).",
    )
    parser.add_argument("--version", action="version", version=f"sysspan {__version__}")
    trace.register_options(parser)
    parser.add_argument("command", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def load_command(name: str) -> Command:
    import importlib

    command: Command = importlib.import_module(f"sysspan.commands.{SUBCOMMANDS[name]}").COMMAND
    return command


def command_parser(command: Command) -> argparse.ArgumentParser:
    """``sysspan COMMAND ...``'s parser (a subparser, so usage lines read ``sysspan NAME``)."""
    parser = argparse.ArgumentParser(prog="sysspan")
    subparsers = parser.add_subparsers(dest="subcommand", required=True)
    sub = subparsers.add_parser(command.name, help=command.help, description=command.description)
    command.prepare_parser(sub)
    return parser


def console() -> None:
    """The ``sysspan`` command (and ``python -m sysspan``): ``main``, then exit."""
    code = main()
    _exit_quickly(code)
    raise SystemExit(code)


def _exit_quickly(code: int) -> None:
    """End the process now, without the interpreter's teardown (freeing every module and
    object one by one: a few ms of every traced command), when nothing can need it: the
    atexit handlers have run, stdout and stderr are flushed, and no other non-daemon thread
    is alive. Every file sysspan writes is closed by the time ``main`` returns. Returns
    (and the caller exits the ordinary way) when a flush fails, so that failure is reported
    as before."""
    import threading

    main_thread = threading.main_thread()
    if any(t is not main_thread and not t.daemon and t.is_alive() for t in threading.enumerate()):
        return
    atexit._run_exitfuncs()
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        return
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ)
    try:
        if args and args[0] in SUBCOMMANDS:
            command = load_command(args[0])
            ns = command_parser(command).parse_args(args)
            return int(command.run(ns, env) or 0)
        # Importing the trace path and setting the run up (the decoder's tables, the ring,
        # the builder) make tens of thousands of objects that live as long as the process:
        # the cyclic collector would walk them again and again and free nothing. trace.run
        # turns it back on before the command starts (and freezes what exists then, so
        # those objects stay out of every later collection).
        gc.disable()
        from sysspan.commands import trace

        parser = _trace_parser()
        ns = parser.parse_args(args)
        gc.freeze()
        if ns.command and ns.command[0] == "--":
            ns.command = ns.command[1:]
        try:
            return trace.run(ns, env)
        except Exception as exc:
            status = getattr(ns, "command_status", None)
            if status is None or isinstance(exc, SysspanError):
                raise
            # The command has run: its status is ours, whatever went wrong with telemetry.
            print(f"sysspan: warning: internal error while writing telemetry: {type(exc).__name__}: {exc}", file=sys.stderr)
            return int(status)
        finally:
            gc.enable()  # also when the run ended before trace.run turned it on
    except SysspanError as exc:
        print(f"sysspan: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("sysspan: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 141
    except Exception as exc:  # noqa: BLE001 - the user gets one line, developers a traceback on request
        if os.environ.get("SYSSPAN_DEBUG"):
            import traceback

            traceback.print_exc()
        print(
            f"sysspan: internal error: {type(exc).__name__}: {exc} (set SYSSPAN_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return 1
