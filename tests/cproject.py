"""A small real C project for tests and benchmarks: ~30 sources built with ``make -j2``."""

from __future__ import annotations

from pathlib import Path


def make_project(root: Path, files: int = 30) -> None:
    """``files`` C sources, a shared header, and a Makefile whose include path lists
    directories that do not exist (the include-path probing a real build does)."""
    (root / "include").mkdir()
    (root / "include" / "common.h").write_text(
        "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\nint f_total(void);\n"
    )
    calls = []
    for i in range(files):
        (root / f"m{i:02d}.c").write_text(
            f'#include "common.h"\n#include <math.h>\n#include <errno.h>\n'
            f"int m{i:02d}(int x) {{ char b[32]; snprintf(b, sizeof b, \"%d\", x);"
            f" return (int)strlen(b) + {i}; }}\n"
        )
        calls.append(f"m{i:02d}({i})")
    decls = "".join(f"int m{i:02d}(int);\n" for i in range(files))
    (root / "main.c").write_text(
        f'#include "common.h"\n{decls}int f_total(void) {{ return {" + ".join(calls)}; }}\n'
        'int main(void) { printf("%d\\n", f_total()); return 0; }\n'
    )
    objs = " ".join([f"m{i:02d}.o" for i in range(files)] + ["main.o"])
    (root / "Makefile").write_text(
        "CFLAGS = -O1 -Imissing/a -Imissing/b -Imissing/c -Iinclude\n"
        f"prog: {objs}\n\t$(CC) -o $@ $^\n"
        "%.o: %.c include/common.h\n\t$(CC) $(CFLAGS) -c -o $@ $<\n"
    )
