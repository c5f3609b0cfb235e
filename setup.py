"""Compiled parts of sysspan; everything else about the package is in pyproject.toml.

The ptrace stop loop (sysspan/collector/_stoploop.c, which says why) and the decision ring's
writer (sysspan/decisions/_ring.c: Python has no atomics on shared memory) are C. There is no pure
Python fallback: a build without a C compiler stops with one line naming the package.

The eBPF backend's loader (sysspan/collector/ebpf/_bpf.c) is optional: it is built when clang,
bpftool, libbpf's headers and the kernel's BTF are all here (the BPF program is compiled against
a vmlinux.h generated from this kernel's BTF); otherwise --backend ebpf runs through bpftrace.
"""

import os
import platform
import shlex
import shutil
import subprocess
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
        self._build_bpf_object()
        super().run()

    def _build_bpf_object(self) -> None:
        """Compile the BPF program and embed it in a header for the loader, or drop the
        loader (with one line naming what is missing)."""
        ext = next((e for e in self.extensions if e.name == BPF_EXT), None)
        if ext is None:
            return
        missing = [n for n in ("clang", "bpftool") if shutil.which(n) is None]
        if not os.path.exists("/usr/include/bpf/libbpf.h"):
            missing.append("libbpf-dev")
        if not os.path.exists(BTF):
            missing.append(f"kernel BTF ({BTF})")
        if missing:
            print(f"sysspan: not building the libbpf loader (missing: {', '.join(missing)}); "
                  "--backend ebpf will use bpftrace")
            self.extensions.remove(ext)
            return
        out = os.path.join(self.build_temp, "ebpf")
        try:
            self._compile_bpf(out)
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"sysspan: not building the libbpf loader ({exc}); --backend ebpf will use bpftrace")
            self.extensions.remove(ext)
            return
        ext.include_dirs.append(out)

    def _compile_bpf(self, out: str) -> None:
        """vmlinux.h from this kernel's BTF, the BPF objects (without and with the fentry
        programs), and the header embedding them."""
        os.makedirs(out, exist_ok=True)
        vmlinux = os.path.join(out, "vmlinux.h")
        with open(vmlinux, "wb") as fh:
            subprocess.run(["bpftool", "btf", "dump", "file", BTF, "format", "c"], stdout=fh,
                           check=True)
        # the fentry programs read the syscall arguments from this architecture's pt_regs
        arch = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86"
        objs = []
        for name, defines in (("sysspan", []), ("sysspan_fentry", ["-DSYSSPAN_FENTRY"])):
            raw, obj = os.path.join(out, f"{name}.bpf.raw.o"), os.path.join(out, f"{name}.bpf.o")
            subprocess.run(["clang", "-O2", "-g", "-target", "bpf", "-Wall",
                            f"-D__TARGET_ARCH_{arch}", *defines, "-I", out, "-c", BPF_SOURCE,
                            "-o", raw], check=True)
            # bpftool links it without the DWARF sections (the BTF that CO-RE needs stays)
            subprocess.run(["bpftool", "gen", "object", obj, raw], check=True)
            objs.append(obj)
        min_btf, notes = self._min_core_btf(out, objs)
        with open(os.path.join(out, "sysspan_bpf_obj.h"), "w") as fh:
            fh.write(_c_array("sysspan_bpf_obj", _read(objs[0])))
            fh.write(_c_array("sysspan_bpf_fentry_obj", _read(objs[1])))
            fh.write(_c_array("sysspan_min_btf", min_btf))
            fh.write(_c_array("sysspan_kernel_notes", notes))

    def _min_core_btf(self, out: str, objs: list[str]) -> tuple[bytes, bytes]:
        """The types the objects' CO-RE relocations use, from this kernel's BTF, and the
        kernel's notes (its build ID) that say which kernel that BTF is valid for. At load,
        a kernel with the same notes takes this BTF (under 1 KiB) instead of libbpf parsing
        all of /sys/kernel/btf/vmlinux (several MB, about 10 ms); (b"", b"") when bpftool
        cannot make it or the kernel has no build ID."""
        notes = _read(NOTES)
        if not _has_build_id(notes):
            return b"", b""
        path = os.path.join(out, "sysspan.min.btf")
        done = subprocess.run(["bpftool", "gen", "min_core_btf", BTF, path, *objs],
                              capture_output=True, check=False)
        if done.returncode != 0:
            return b"", b""
        return _read(path), notes


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def _has_build_id(notes: bytes) -> bool:
    """Whether the ELF notes hold a GNU build ID (NT_GNU_BUILD_ID): without one, two kernels
    could have the same notes."""
    pos = 0
    while pos + 12 <= len(notes):
        namesz, descsz, kind = (int.from_bytes(notes[pos + i : pos + i + 4], "little") for i in (0, 4, 8))
        name = notes[pos + 12 : pos + 12 + namesz]
        if kind == 3 and name == b"GNU\0" and descsz > 0:
            return True
        pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def _c_array(name: str, data: bytes) -> str:
    rows = (",".join(str(b) for b in data[i : i + 16]) for i in range(0, len(data), 16))
    # one zero byte when empty: C has no empty arrays; the length says what is real
    body = ",\n".join(rows) or "0"
    return (f"static const unsigned char {name}[] = {{\n{body}\n}};\n"
            f"static const unsigned long {name}_len = {len(data)};\n")


BPF_EXT = "sysspan.collector.ebpf._bpf"
BPF_SOURCE = "sysspan/collector/ebpf/sysspan.bpf.c"
BTF = "/sys/kernel/btf/vmlinux"
NOTES = "/sys/kernel/notes"
# The record layout and its parser, shared by the stop loop and the libbpf loader.
RECORDS_H = "sysspan/collector/_records.h"

ext_modules = [
    Extension(
        "sysspan.collector._stoploop",
        sources=["sysspan/collector/_stoploop.c"],
        depends=[RECORDS_H, "sysspan/collector/_sites.h"],
        extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wno-missing-field-initializers"],
    ),
    Extension(
        "sysspan.decisions._ring",
        ["sysspan/decisions/_ring.c"],
        include_dirs=["include"],
        extra_compile_args=["-std=gnu11", "-O2"],
        libraries=["m"],
    ),
    Extension(
        BPF_EXT,
        ["sysspan/collector/ebpf/_bpf.c"],
        depends=[BPF_SOURCE, RECORDS_H, "sysspan/collector/ebpf/records.h"],
        include_dirs=["sysspan/collector"],
        extra_compile_args=["-std=gnu11", "-O2", "-Wall"],
        libraries=["bpf"],
    ),
]

setup(ext_modules=ext_modules, cmdclass={"build_ext": BuildExt})
