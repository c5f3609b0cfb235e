"""What a span is, said explicitly: every span sysspan writes carries ``sysspan.span.role``.

Queries (the Grafana dashboards, TraceQL by hand) select spans by this attribute instead of
guessing from others: ``process.pid`` alone is on run, process and decision spans alike.
Readers (``stats``, ``report``, ``merge``, ``decisions``) ask :func:`role_of`, the one place
that also understands files written before the attribute existed.
"""

from __future__ import annotations

from collections.abc import Mapping

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

ROLE_KEY = "sysspan.span.role"
#: The span of one traced command (or attached process): the root of what sysspan recorded.
RUN = "run"
#: One process (thread group) of the traced tree, from its fork (or attach) to its exit.
PROCESS = "process"
#: One system call.
SYSCALL = "syscall"
#: One decision the program recorded (through the channel, the stderr protocol or the API).
DECISION = "decision"
#: A span ``sysspan span`` writes for a step of a pipeline.
STEP = "step"
#: What :func:`role_of` says of a span that is none of the above (another writer's span).
OTHER = "other"

ROLES = (RUN, PROCESS, SYSCALL, DECISION, STEP)
_KNOWN = frozenset(ROLES)

# Files written before the role attribute: the attribute each role carried, in the order
# that decides (a syscall span also has thread.id, a run span also has process.pid).
_LEGACY = (("syscall.name", SYSCALL), ("decision.id", DECISION), ("syscall.count", RUN),
           ("process.pid", PROCESS))  # fmt: skip
#: Every attribute :func:`role_of` may read: a reader that decodes only some attributes
#: of a span must decode these to learn its role.
ROLE_KEYS = frozenset((ROLE_KEY, *(key for key, _role in _LEGACY)))


def role_of(attrs: Mapping[str, Any]) -> str:
    """The role of the span with attributes ``attrs``: its ``sysspan.span.role`` when that
    names a role; for a span without it (a file from an older sysspan), the role its
    attributes imply; :data:`OTHER` for anything else."""
    role = attrs.get(ROLE_KEY)
    if role in _KNOWN:
        return role  # type: ignore[return-value]  # a member of _KNOWN is a str
    for key, legacy in _LEGACY:
        if key in attrs:
            return legacy
    return OTHER
