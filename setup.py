"""Compiled parts of sysspan; everything else about the package is in pyproject.toml.

The ptrace stop loop (sysspan/collector/_stoploop.c, which says why) and the decision ring's
writer (sysspan/decisions/_ring.c: Python has no atomics on shared memory) are C. There is no pure
Python fallback: a build without a C compiler stops with one line naming the package.
"""

import os
import shlex
import shutil
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

NO_COMPILER = (
    "sysspan needs a C compiler to build its ptrace stop loop and decision ring: "
    "install the Debian package gcc (apt-get install gcc)"
)


class BuildExt(build_ext):
    def run(self) -> None:
        cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
        words = shlex.split(cc)
        if not words or shutil.which(words[0]) is None:
            raise SystemExit(f"error: {NO_COMPILER} (no {words[0] if words else 'cc'!r} found)")
        super().run()


ext_modules = [
    Extension(
        "sysspan.collector._stoploop",
        sources=["sysspan/collector/_stoploop.c"],
        extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wno-missing-field-initializers"],
    ),
    Extension(
        "sysspan.decisions._ring",
        ["sysspan/decisions/_ring.c"],
        include_dirs=["include"],
        extra_compile_args=["-std=gnu11", "-O2"],
        libraries=["m"],
    ),
]

setup(ext_modules=ext_modules, cmdclass={"build_ext": BuildExt})
