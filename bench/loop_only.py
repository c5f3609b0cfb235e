"""Trace a command with the compiled stop loop and the record parsing only: no span
builder, no export. What a full trace costs beyond this is the Python work per span.

    python bench/loop_only.py COMMAND [ARGS...]
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sysspan.collector.decode import Decoder  # noqa: E402
from sysspan.collector.syscalls import machine_arch, table  # noqa: E402
from sysspan.collector.tracer import Tracer  # noqa: E402


def main() -> int:
    argv = sys.argv[1:]
    arch = machine_arch()
    execve = frozenset(nr for nr, name in table(arch).items() if name in ("execve", "execveat"))
    # the CLI's defaults: buffer contents are not captured
    tracer = Tracer(Decoder(arch, capture_data=False), follow=True, execve_nrs=execve)
    path = shutil.which(argv[0])
    if path is None:
        raise SystemExit(f"{argv[0]}: command not found")
    tracer.spawn(path, argv, dict(os.environ))
    records = 0

    def count(_rec: object) -> None:
        nonlocal records
        records += 1

    status = tracer.run(count)
    print(f"{records} records", file=sys.stderr)
    return os.waitstatus_to_exitcode(status) if status is not None else 1


if __name__ == "__main__":
    from common import use_release_venv

    use_release_venv()
    raise SystemExit(main())
