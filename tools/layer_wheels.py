"""Download the wheels a Lambda layer for this machine's Python and architecture needs into
a directory, so the layer test builds one with ``--wheel-dir`` and no network.

    python tools/layer_wheels.py .venv/layer-wheels

Run by ``make test`` when the directory is missing (install time, like the test extra).
"""

from __future__ import annotations

import platform
import subprocess
import sys

from sysspan.lambda_.layer import dependencies, platform_tags


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tools/layer_wheels.py DEST_DIR", file=sys.stderr)
        return 2
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    machine = "aarch64" if platform.machine().lower() in ("aarch64", "arm64") else "x86_64"
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--dest", argv[0]]
    cmd += ["--implementation", "cp", "--python-version", python, "--only-binary=:all:"]
    for tag in platform_tags(python, machine):
        cmd += ["--platform", tag]
    return subprocess.run([*cmd, *dependencies()], check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
