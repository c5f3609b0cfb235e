"""``sysspan lambda layer``: build the Lambda layer zip.

Layout (a layer is unpacked under /opt):

* ``extensions/sysspan`` — executable launcher; Lambda starts every file in
  /opt/extensions during Init. It runs ``python3 -m sysspan lambda extension`` with the
  runtime's own interpreter and ``/opt/python`` on the path.
* ``sysspan-wrapper`` — the handler wrapper script for ``AWS_LAMBDA_EXEC_WRAPPER``.
* ``python/`` — sysspan and its dependencies, installed by pip for the *target* runtime
  (``--platform manylinux…``, ``--python-version``, ``--only-binary=:all:``,
  ``--implementation cp``), whatever machine builds the layer. Python runtimes put
  /opt/python on ``sys.path``, so the wrapper imports sysspan from there.

The zip is reproducible: entries sorted, timestamps fixed, modes explicit.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import sysspan
from sysspan.errors import SysspanError, UsageError

ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}
#: Layers may hold at most 250 MB unzipped (with the function and other layers).
LAYER_LIMIT = 250 * 1024 * 1024
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)

LAUNCHER = """\
#!/bin/sh
# sysspan Lambda extension launcher (built by `sysspan lambda layer`).
# Lambda starts every executable in /opt/extensions during Init; this one runs the sysspan
# extension with the runtime's Python {python} and the layer's /opt/python on the path.
export PYTHONPATH="/opt/python${{PYTHONPATH:+:$PYTHONPATH}}"
for py in "${{SYSSPAN_PYTHON:-}}" /var/lang/bin/python{python} /var/lang/bin/python3 python{python} python3; do
  [ -n "$py" ] || continue
  if command -v "$py" >/dev/null 2>&1; then
    exec "$py" -m sysspan lambda extension --name "$(basename "$0")"
  fi
done
echo "[sysspan extension] no Python {python} interpreter found; the sysspan layer needs a Python runtime (or set SYSSPAN_PYTHON)" >&2
exit 1
"""


@dataclass
class LayerReport:
    path: str
    python: str
    arch: str
    files: int
    zip_bytes: int
    unzipped_bytes: int
    dependencies: list[str]
    deps_installed: bool


def normalise_arch(arch: str) -> str:
    """``x86_64``/``amd64`` → x86_64, ``arm64``/``aarch64`` → aarch64 (the wheel tag)."""
    try:
        return ARCHES[arch.lower()]
    except KeyError:
        raise UsageError(f"--arch {arch!r}: expected x86_64 or arm64") from None


def check_python(version: str) -> str:
    m = re.fullmatch(r"3\.(\d{1,2})", version.strip())
    if not m:
        raise UsageError(f"--python {version!r}: expected a version like 3.12")
    if int(m.group(1)) < 10:
        raise UsageError(f"--python {version}: sysspan needs Python 3.10 or newer")
    return version.strip()


def platform_tags(python: str, machine: str) -> list[str]:
    """pip ``--platform`` tags the target runtime accepts. Python 3.12+ runtimes run on
    Amazon Linux 2023 (glibc 2.34), older ones on Amazon Linux 2 (glibc 2.26): only
    manylinux2014 (glibc 2.17) wheels are safe there."""
    tags = [f"manylinux2014_{machine}"]
    if int(python.split(".")[1]) >= 12:
        tags.append(f"manylinux_2_28_{machine}")
    return tags


def package_dir() -> Path:
    return Path(sysspan.__file__).resolve().parent


def wrapper_script() -> Path:
    path = package_dir() / "lambda_" / "sysspan-wrapper"
    if not path.is_file():
        raise SysspanError(
            f"{path} is missing: this sysspan installation lacks its package data "
            "(reinstall sysspan, or build the layer from a checkout)"
        )
    return path


def _pyproject_dependencies(pyproject: Path) -> list[str] | None:
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return None
    if sys.version_info >= (3, 11):
        import tomllib

        deps = tomllib.loads(text).get("project", {}).get("dependencies")
        return [str(d) for d in deps] if isinstance(deps, list) else None
    m = re.search(r"^dependencies\s*=\s*\[(.*?)\]", text, re.S | re.M)  # 3.10: no tomllib
    return re.findall(r"\"([^\"]+)\"", m.group(1)) if m else None


def dependencies() -> list[str]:
    """sysspan's runtime requirements: from the checkout's pyproject.toml when sysspan runs
    from one (so a layer built from a checkout matches it), else the installed metadata."""
    deps = _pyproject_dependencies(package_dir().parent / "pyproject.toml")
    if deps is not None:
        return deps
    from importlib import metadata

    try:
        reqs = metadata.requires("sysspan") or []
    except metadata.PackageNotFoundError:
        raise SysspanError(
            "cannot find sysspan's dependency list (no pyproject.toml next to the package and "
            "sysspan is not installed); use --skip-deps"
        ) from None
    return [r for r in reqs if "extra ==" not in r]


def _copy_package(dest: Path) -> None:
    shutil.copytree(
        package_dir(),
        dest / "sysspan",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo"),
    )


def _pip_install(
    target: Path, deps: Sequence[str], python: str, machine: str, wheel_dir: str | None, pip_args: Sequence[str]
) -> None:
    cmd = [
        sys.executable, "-m", "pip", "install",
        "--quiet", "--disable-pip-version-check", "--no-compile",
        "--target", str(target),
        "--implementation", "cp",
        "--python-version", python,
        "--only-binary=:all:",
    ]  # fmt: skip
    for tag in platform_tags(python, machine):
        cmd += ["--platform", tag]
    if wheel_dir:
        cmd += ["--no-index", "--find-links", wheel_dir]
    cmd += list(pip_args)
    cmd += list(deps)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)  # noqa: S603 - our own pip
    except subprocess.TimeoutExpired:
        raise SysspanError("pip install for the layer took more than 15 minutes; giving up") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-6:])
        raise SysspanError(
            f"pip could not install the layer's dependencies for Python {python} on {machine} "
            f"(exit {proc.returncode}):\n{tail}"
        )


def _add(zf: zipfile.ZipFile, arcname: str, data: bytes, mode: int) -> None:
    info = zipfile.ZipInfo(arcname, date_time=_ZIP_TIME)
    info.external_attr = (stat.S_IFREG | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3  # Unix: keep the mode bits
    zf.writestr(info, data)


def build_layer(
    out: str,
    *,
    python: str = "3.12",
    arch: str = "x86_64",
    skip_deps: bool = False,
    wheel_dir: str | None = None,
    pip_args: Sequence[str] = (),
) -> LayerReport:
    """Build the layer zip at ``out`` (written atomically) and say what went in."""
    python = check_python(python)
    machine = normalise_arch(arch)
    if wheel_dir and not os.path.isdir(wheel_dir):
        raise UsageError(f"--wheel-dir {wheel_dir}: not a directory")
    wrapper = wrapper_script().read_bytes()
    deps = [] if skip_deps else dependencies()
    out_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(out_dir):
        raise UsageError(f"--out {out}: directory {out_dir} does not exist")

    with tempfile.TemporaryDirectory(prefix="sysspan-layer-") as tmp:
        root = Path(tmp) / "python"
        root.mkdir()
        if deps:
            _pip_install(root, deps, python, machine, wheel_dir, pip_args)
        shutil.rmtree(root / "sysspan", ignore_errors=True)  # a dependency cannot shadow us
        _copy_package(root)
        files: list[tuple[str, Path]] = []
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                files.append(("python/" + path.relative_to(root).as_posix(), path))
        fd, tmp_zip = tempfile.mkstemp(dir=out_dir, prefix=".layer-", suffix=".zip.tmp")
        os.close(fd)
        unzipped = 0
        try:
            with zipfile.ZipFile(tmp_zip, "w", zipfile.ZIP_DEFLATED) as zf:
                launcher = LAUNCHER.format(python=python).encode()
                _add(zf, "extensions/sysspan", launcher, 0o755)
                _add(zf, "sysspan-wrapper", wrapper, 0o755)
                unzipped += len(launcher) + len(wrapper)
                for arcname, path in files:
                    data = path.read_bytes()
                    mode = 0o755 if os.access(path, os.X_OK) else 0o644
                    _add(zf, arcname, data, mode)
                    unzipped += len(data)
            os.chmod(tmp_zip, 0o644)
            os.replace(tmp_zip, out)
        except BaseException:
            try:
                os.unlink(tmp_zip)
            except OSError:
                pass
            raise
    return LayerReport(
        path=out,
        python=python,
        arch="arm64" if machine == "aarch64" else "x86_64",
        files=len(files) + 2,
        zip_bytes=os.path.getsize(out),
        unzipped_bytes=unzipped,
        dependencies=deps,
        deps_installed=bool(deps),
    )
