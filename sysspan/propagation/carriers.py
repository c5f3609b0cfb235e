"""Where an incoming trace context is read from and where the outgoing one is written.

Carriers (docs/architecture.md §6):

- the OpenTelemetry *environment-variable carrier*: ``TRACEPARENT``, ``TRACESTATE`` and
  ``BAGGAGE`` (header names normalised to upper case; names are case-sensitive, so a
  lower-case ``traceparent`` variable is not read);
- the *carrier file* (``--tp-carrier FILE``): shell-sourceable ``KEY=value`` lines that chain
  CI steps which cannot share an environment.

Input order is ``--traceparent`` flag > carrier file > environment (``resolve_incoming``).
An invalid value is never an error: it yields one warning naming its source and the reason,
and a new trace starts (``required=True`` turns "no usable context" into PropagationError).
Nothing here mutates the mapping it is given; ``inject`` returns a new dict.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from sysspan.errors import ConfigError, PropagationError
from sysspan.fsutil import write_private_file
from sysspan.propagation.traceparent import InvalidTraceContext, SpanContext, parse_traceparent

_ENV_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def env_name(header: str) -> str:
    """OpenTelemetry env-carrier key normalisation: upper case, every character other than
    ``A-Z0-9_`` becomes ``_``, a leading digit gets a ``_`` prefix, empty becomes ``_``."""
    name = "".join(c if c in _ENV_CHARS else "_" for c in header.upper())
    if not name:
        return "_"
    return "_" + name if name[0].isdigit() else name


TRACEPARENT = env_name("traceparent")
TRACESTATE = env_name("tracestate")
BAGGAGE = env_name("baggage")

_SHOWN = 80  # characters of a bad value quoted in a warning
# compiled by re on first use: only --tp-carrier files have keys to check
_ENV_KEY = r"[A-Za-z_][A-Za-z0-9_]*"


def _shown(value: str) -> str:
    return repr(value if len(value) <= _SHOWN else value[:_SHOWN] + "...")


def _baggage_from(carrier: Mapping[str, str], source: str) -> tuple[str | None, list[str]]:
    """The ``BAGGAGE`` header of a carrier (only its valid members), with a warning when
    members had to be dropped."""
    raw = carrier.get(BAGGAGE)
    if raw is None or not raw.strip():
        return None, []
    # only a run given baggage (or a tracestate, below) builds that parser's expressions
    from sysspan.propagation.baggage import format_baggage, parse_baggage_counted

    items, dropped = parse_baggage_counted(raw)
    warnings: list[str] = []
    if dropped:
        warnings.append(
            f"{source}{BAGGAGE}: dropped {dropped} invalid or over-limit member(s)"
            " (limits: 64 members, 8192 bytes)"
        )
        return (format_baggage(items) or None), warnings
    return raw.strip(" \t"), warnings


def _context_from(carrier: Mapping[str, str], source: str) -> tuple[SpanContext | None, list[str]]:
    raw = carrier.get(TRACEPARENT)
    if raw is None or not raw.strip():
        # W3C: no traceparent, so tracestate MUST NOT be used either.
        return None, []
    try:
        ctx = parse_traceparent(raw)
    except InvalidTraceContext as exc:
        return None, [
            f"{source}{TRACEPARENT}: ignoring invalid value {_shown(raw)} ({exc}); "
            "starting a new trace"
        ]
    state_raw = carrier.get(TRACESTATE)
    if state_raw is None or not state_raw.strip():
        return ctx, []
    from sysspan.propagation.tracestate import TraceState

    try:
        state = TraceState.parse(state_raw)
    except InvalidTraceContext as exc:
        return ctx, [f"{source}{TRACESTATE}: dropping invalid value {_shown(state_raw)} ({exc})"]
    return (SpanContext(ctx.trace_id, ctx.span_id, ctx.flags, state, True) if state else ctx), []


def extract(env: Mapping[str, str]) -> tuple[SpanContext | None, str | None, list[str]]:
    """Read ``TRACEPARENT``/``TRACESTATE``/``BAGGAGE`` from an environment mapping.

    Returns (context or None, baggage header or None, warnings). An invalid traceparent gives
    None and exactly one warning naming the variable and the reason; an invalid tracestate is
    dropped with a warning while the traceparent is kept; baggage is independent of both and
    keeps only its valid members. Empty variables count as unset.
    """
    ctx, warnings = _context_from(env, "")
    baggage, more = _baggage_from(env, "")
    return ctx, baggage, warnings + more


def inject(
    env: Mapping[str, str], ctx: SpanContext | None, baggage: str | None = None
) -> dict[str, str]:
    """A new environment for a child process: a copy of ``env`` with ``TRACEPARENT`` set to
    ``ctx`` (re-emitted as version 00), ``TRACESTATE`` set or removed, ``BAGGAGE`` set or
    removed. ``ctx=None`` removes the trace variables. ``env`` itself is never modified."""
    out = dict(env)
    if ctx is None:
        out.pop(TRACEPARENT, None)
        out.pop(TRACESTATE, None)
    else:
        out[TRACEPARENT] = ctx.traceparent
        state = ctx.tracestate.to_header() if ctx.tracestate is not None else ""
        if state:
            out[TRACESTATE] = state
        else:
            out.pop(TRACESTATE, None)
    if baggage:
        out[BAGGAGE] = baggage
    else:
        out.pop(BAGGAGE, None)
    return out


# -- carrier file -----------------------------------------------------------------------------


def _strip_comment(text: str) -> str:
    """``text`` (what follows ``KEY=``) up to an unquoted ``#`` that starts a word, as the
    shell reads comments: ``a#b`` is one word, ``a #b`` is ``a`` and a comment."""
    quote: str | None = None
    escaped = False
    after_blank = False
    for i, ch in enumerate(text):
        if escaped:
            escaped = after_blank = False
        elif quote:
            if ch == quote:
                quote = None
            elif ch == "\\" and quote == '"':
                escaped = True
        elif ch == "#" and after_blank:
            return text[:i]
        else:
            after_blank = ch in (" ", "\t")
            if ch == "\\":
                escaped = True
            elif ch in ("'", '"'):
                quote = ch
    return text


def read_carrier_file(path: str) -> dict[str, str]:
    """Read a shell-sourceable carrier file into a dict.

    Accepts blank lines, ``# comments``, ``KEY=value`` and ``export KEY=value`` with shell
    quoting (``'...'``, ``"..."``, backslash escapes, trailing ``# comment``). Each
    assignment is one line; ``$VAR`` is not expanded. Raises ``ConfigError`` naming the
    file (and line) when it cannot be read, is not UTF-8, or a line is not one assignment.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except UnicodeDecodeError:
        raise ConfigError(f"--tp-carrier {path}: not a UTF-8 text file") from None
    except OSError as exc:
        raise ConfigError(f"--tp-carrier {path}: cannot read: {exc.strerror or exc}") from None
    result: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.startswith("export") and text[6:7] in (" ", "\t"):
            text = text[6:].lstrip()
        key, sep, rest = text.partition("=")
        if not sep or not re.fullmatch(_ENV_KEY, key):
            raise ConfigError(
                f"--tp-carrier {path}:{number}: expected KEY=value, got {_shown(line)}"
            )
        import shlex  # only --tp-carrier files are read as shell words

        try:
            words = shlex.split(_strip_comment(rest), posix=True)
        except ValueError as exc:
            raise ConfigError(f"--tp-carrier {path}:{number}: {exc} in {_shown(line)}") from None
        if len(words) > 1 or (rest[:1] in (" ", "\t") and words):
            raise ConfigError(
                f"--tp-carrier {path}:{number}: value of {key} must be one word (quote it)"
            )
        result[key] = words[0] if words else ""
    return result


def context_lines(ctx: SpanContext, baggage: str | None = None) -> list[str]:
    """Shell-sourceable ``TRACEPARENT=...`` lines (``TRACESTATE``/``BAGGAGE`` when present).
    Values are quoted only when the shell needs it (``shlex.quote`` leaves plain words as
    they are), so ``KEY=value`` readers that do not unquote (docker --env-file, CI dotenv
    files, ``$GITHUB_ENV``) read them too."""
    import shlex

    lines = [f"{TRACEPARENT}={ctx.traceparent}"]
    state = ctx.tracestate.to_header() if ctx.tracestate is not None else ""
    if state:
        lines.append(f"{TRACESTATE}={shlex.quote(state)}")
    if baggage:
        lines.append(f"{BAGGAGE}={shlex.quote(baggage)}")
    return lines


def write_carrier_file(path: str, ctx: SpanContext, baggage: str | None = None) -> None:
    """Write the context lines to ``path`` (mode 0600, atomically: a concurrent reader sees
    the old file or the new one, never half). ``ConfigError`` names the file on failure."""
    write_private_file(path, "\n".join(context_lines(ctx, baggage)) + "\n", f"--tp-carrier {path}")


# -- input order --------------------------------------------------------------------------------


def resolve_incoming(
    flag_traceparent: str | None,
    carrier_path: str | None,
    env: Mapping[str, str],
    *,
    required: bool = False,
) -> tuple[SpanContext | None, str | None, list[str]]:
    """The incoming context by docs/architecture.md §6's order: ``--traceparent`` > carrier file > env.

    - An explicit ``--traceparent`` that is invalid is a warning and a new trace (the carrier
      file and environment are not consulted for the trace: the user named the source).
      The flag carries no tracestate.
    - A carrier file that does not exist is skipped silently (the first step of a chain has
      none yet); one without ``TRACEPARENT`` falls through to the environment; one that is
      unreadable or malformed is a warning and a new trace; an invalid ``TRACEPARENT`` in it
      is a warning and a new trace.
    - Baggage comes from the carrier file when it has ``BAGGAGE``, else from the environment.

    With ``required=True`` a missing or invalid context raises ``PropagationError`` (the
    ``--tp-required`` flag) carrying the first warning as its message.
    """
    ctx: SpanContext | None = None
    warnings: list[str] = []
    baggage_source: Mapping[str, str] = env
    baggage_prefix = ""
    decided = False

    if flag_traceparent is not None and flag_traceparent.strip():
        decided = True
        try:
            ctx = parse_traceparent(flag_traceparent)
        except InvalidTraceContext as exc:
            warnings.append(
                f"--traceparent: ignoring invalid value {_shown(flag_traceparent)} ({exc}); "
                "starting a new trace"
            )
    elif carrier_path is not None and os.path.lexists(carrier_path):
        try:
            carrier = read_carrier_file(carrier_path)
        except ConfigError as exc:
            decided = True
            warnings.append(f"{exc}; starting a new trace")
        else:
            if carrier.get(BAGGAGE, "").strip():
                baggage_source, baggage_prefix = carrier, f"{carrier_path}: "
            if carrier.get(TRACEPARENT, "").strip():
                decided = True
                ctx, more = _context_from(carrier, f"{carrier_path}: ")
                warnings += more

    if not decided:
        ctx, more = _context_from(env, "")
        warnings += more
    baggage, more = _baggage_from(baggage_source, baggage_prefix)
    warnings += more

    if required and ctx is None:
        reason = warnings[0] if warnings else "no incoming trace context"
        raise PropagationError(f"{reason} (--tp-required)")
    return ctx, baggage, warnings
