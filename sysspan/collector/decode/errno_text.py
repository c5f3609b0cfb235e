"""Return values of failed calls: errno names and strace's ``-1 ENOENT (No such file ...)``."""

from __future__ import annotations

import errno
import os

from sysspan.collector import constants as C


def errno_name(err: int) -> str:
    """Symbolic errno name (``ENOENT``) as strace prints it; ``E<n>`` when unknown."""
    name = C.ERRNO_PREFERRED.get(err) or C.KERNEL_ERRNOS.get(err) or errno.errorcode.get(err)
    return name or f"E{err}"


def format_error(err: int) -> tuple[str, str]:
    """(return text, errno name) for a failed call returning ``-err``."""
    name = errno_name(err)
    restart = C.RESTART_TEXT.get(err)
    if restart is not None:
        return f"? {name} ({restart})", name
    if err not in errno.errorcode and err not in C.KERNEL_ERRNOS:
        return f"-1 (errno {err})", name
    return f"-1 {name} ({os.strerror(err)})", name


def is_error(rval: int) -> bool:
    """True when a raw syscall return value encodes ``-errno`` (the kernel's -4095..-1)."""
    return -4096 < rval < 0
