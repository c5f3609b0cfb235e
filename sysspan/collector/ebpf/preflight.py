"""What ``--backend ebpf`` needs from the machine, checked before anything starts.

Each missing piece is one ``EbpfUnavailable`` line saying what is missing and how to get it,
with ``--backend ptrace`` as the alternative.
"""

from __future__ import annotations

import os

from sysspan.collector.ebpf.tracefs import TRACEFS
from sysspan.errors import EbpfUnavailable

CAP_PERFMON, CAP_BPF = 38, 39
ALTERNATIVE = "or use --backend ptrace"


def _effective_caps() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def find_bpftrace() -> str:
    import shutil  # bpftrace only

    path = shutil.which("bpftrace")
    if path is None:
        raise EbpfUnavailable(
            "--backend ebpf needs bpftrace, which is not installed "
            f"(Debian/Ubuntu: apt-get install bpftrace); {ALTERNATIVE}"
        )
    return path


def check_privileges() -> None:
    caps = _effective_caps()
    if os.geteuid() == 0 or (caps >> CAP_BPF & 1 and caps >> CAP_PERFMON & 1):
        return
    raise EbpfUnavailable(
        "--backend ebpf needs root or the CAP_BPF and CAP_PERFMON capabilities "
        f"(run with sudo, or docker run --cap-add BPF --cap-add PERFMON); {ALTERNATIVE}"
    )


def check_btf() -> None:
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        raise EbpfUnavailable(
            "--backend ebpf needs a kernel with BTF (/sys/kernel/btf/vmlinux is missing; "
            f"CONFIG_DEBUG_INFO_BTF=y); {ALTERNATIVE}"
        )


def ensure_tracefs() -> None:
    """Mount tracefs when no copy of it is mounted (bpftrace reads tracepoint formats there)."""
    if any(os.path.isdir(os.path.join(base, "events")) for base in TRACEFS):
        return
    how = "mount -t tracefs nodev /sys/kernel/tracing"
    if os.geteuid() == 0:
        import subprocess  # only where tracefs is not mounted

        done = subprocess.run(  # noqa: S603 - fixed argv
            ["mount", "-t", "tracefs", "nodev", TRACEFS[0]], capture_output=True, check=False
        )
        if done.returncode == 0:
            return
    raise EbpfUnavailable(
        f"--backend ebpf needs tracefs mounted at {TRACEFS[0]} (as root: {how}); {ALTERNATIVE}"
    )


def preflight() -> str:
    """The bpftrace path, once every requirement is met."""
    path = find_bpftrace()
    check_privileges()
    check_btf()
    ensure_tracefs()
    return path
