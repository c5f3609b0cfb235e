"""What a span is, said explicitly: every span sysspan writes carries ``sysspan.span.role``.

Queries (the Grafana dashboards, TraceQL by hand) select spans by this attribute instead of
guessing from others: ``process.pid`` alone is on run, process and decision spans alike.
"""

from __future__ import annotations

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

ROLES = (RUN, PROCESS, SYSCALL, DECISION, STEP)
