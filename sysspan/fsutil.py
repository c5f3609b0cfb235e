"""Small file-system helpers: files and directories only their owner can read, and the
directories output falls back to."""

from __future__ import annotations

import os
from collections.abc import Mapping

from sysspan.errors import ConfigError

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import IO, Any


def write_private_file(path: str, text: str, what: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, atomically: a temporary file in the same
    directory, fsync'd, then renamed over ``path``, so a concurrent reader (the next CI step
    sourcing a carrier file) sees the old content or the new, never half. Raises
    ``ConfigError`` starting with ``what`` (the flag, e.g. ``--tp-carrier FILE``)."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        import tempfile  # not at import: every run imports this module, few write this way

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


PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def make_private_dirs(path: str) -> None:
    """``os.makedirs(path)``, each directory it creates mode 0700 (traces can hold argv,
    paths and buffer contents; only their owner should read them)."""
    path = os.path.abspath(path)
    missing = []
    while path and not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, PRIVATE_DIR)
        except FileExistsError:
            if not os.path.isdir(directory):
                raise


def open_private(path: str, flags: int = os.O_WRONLY | os.O_CREAT | os.O_TRUNC) -> int:
    """A descriptor on ``path``, created 0600 (an existing file keeps its mode), parent
    directories created 0700."""
    parent = os.path.dirname(path)
    if parent:
        make_private_dirs(parent)
    return os.open(path, flags | os.O_CLOEXEC, PRIVATE_FILE)


def fallback_dirs(env: Mapping[str, str]) -> list[str]:
    """Where spans go when the chosen location fails, in order: ``$XDG_STATE_HOME/sysspan``,
    ``~/.local/state/sysspan``, ``/tmp/sysspan-<uid>``."""
    dirs = []
    state = env.get("XDG_STATE_HOME", "").strip()
    if state and os.path.isabs(state):
        dirs.append(os.path.join(state, "sysspan"))
    home = env.get("HOME", "").strip() or os.path.expanduser("~")
    if home and os.path.isabs(home):
        dirs.append(os.path.join(home, ".local", "state", "sysspan"))
    import tempfile

    dirs.append(os.path.join(tempfile.gettempdir(), f"sysspan-{os.getuid()}"))
    return dirs


def private_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: object) -> IO[Any]:
    """``open(path, mode)`` for writing a new file, created 0600 (parents 0700)."""
    return os.fdopen(open_private(os.fspath(path)), mode, **kwargs)  # type: ignore[call-overload]
