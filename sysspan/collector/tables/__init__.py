"""Generated syscall number -> name tables, one module per architecture.

The modules ``x86_64.py`` and ``aarch64.py`` are written by ``tools/gen_syscall_tables.py`` from
the kernel UAPI headers; edit the generator, not the tables. Use
:func:`sysspan.collector.syscalls.table` rather than importing these directly.
"""

from __future__ import annotations

ARCHES: tuple[str, ...] = ("x86_64", "aarch64")
