"""Build the C extension(s); everything else is in pyproject.toml."""

import shutil
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class BuildExt(build_ext):
    """Fails with one line naming the compiler when there is none."""

    def run(self) -> None:
        cc = (sysconfig.get_config_var("CC") or "gcc").split()[0]
        if shutil.which(cc) is None and shutil.which("gcc") is None:
            raise SystemExit(
                "error: building sysspan's C extensions needs a C compiler: install gcc "
                "(Debian/Ubuntu: apt-get install gcc)"
            )
        super().run()


ext_modules = [
    Extension(
        "sysspan.decisions._ring",
        ["sysspan/decisions/_ring.c"],
        include_dirs=["include"],
        extra_compile_args=["-std=gnu11", "-O2"],
        libraries=["m"],
    ),
]

setup(ext_modules=ext_modules, cmdclass={"build_ext": BuildExt})
