"""Small file-system helpers shared by the commands."""

from __future__ import annotations

import os
import tempfile

from sysspan.errors import ConfigError


def write_private_file(path: str, text: str, what: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, atomically: a temporary file in the same
    directory, fsync'd, then renamed over ``path``, so a concurrent reader (the next CI step
    sourcing a carrier file) sees the old content or the new, never half. Raises
    ``ConfigError`` starting with ``what`` (the flag, e.g. ``--tp-carrier FILE``)."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise ConfigError(f"{what}: cannot write: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
