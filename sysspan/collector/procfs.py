"""/proc lookups used for process bookkeeping (off the per-syscall hot path)."""

from __future__ import annotations


def proc_ids(tid: int) -> tuple[int, int]:
    """(tgid, ppid) of a thread from /proc/TID/status; (0, 0) when it is gone."""
    tgid = ppid = 0
    try:
        with open(f"/proc/{tid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"Tgid:"):
                    tgid = int(line.split()[1])
                elif line.startswith(b"PPid:"):
                    ppid = int(line.split()[1])
                    break
    except (OSError, ValueError, IndexError):
        return 0, 0
    return tgid, ppid


def read_cmdline(pid: int) -> list[str]:
    """argv of a process as the kernel holds it."""
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        raw = fh.read()
    if not raw:
        return []
    return [part.decode("utf-8", "replace") for part in raw.rstrip(b"\0").split(b"\0")]


def proc_comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", "rb") as fh:
            return fh.read().strip().decode("utf-8", "replace")
    except OSError:
        return str(pid)


def is_running(pid: int) -> bool:
    """The process exists and is not a zombie (``/proc/PID/stat``)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")
