"""Kinds for what the kernel says about a whole system: ``struct statfs`` (statfs, fstatfs)
and ``struct sysinfo``. Both layouts are the same on x86_64 and aarch64 (LP64)."""

from __future__ import annotations

import struct

from sysspan.collector.decode.kinds.base import _Ctx, _FixedStruct
from sysspan.collector.decode.text import _flags, _hex

#: f_type values strace names (linux/magic.h); ext2, ext3 and ext4 share EXT2_SUPER_MAGIC.
FS_MAGIC: dict[int, str] = {
    0xEF53: "EXT2_SUPER_MAGIC",
    0x9FA0: "PROC_SUPER_MAGIC",
    0x01021994: "TMPFS_MAGIC",
    0x794C7630: "OVERLAYFS_SUPER_MAGIC",
    0x62656572: "SYSFS_MAGIC",
    0x9123683E: "BTRFS_SUPER_MAGIC",
    0x58465342: "XFS_SUPER_MAGIC",
    0x63677270: "CGROUP2_SUPER_MAGIC",
    0x27E0EB: "CGROUP_SUPER_MAGIC",
    0x1CD1: "DEVPTS_SUPER_MAGIC",
    0x6969: "NFS_SUPER_MAGIC",
    0x65735546: "FUSE_SUPER_MAGIC",
    0x858458F6: "RAMFS_MAGIC",
    0x73717368: "SQUASHFS_MAGIC",
    0x9660: "ISOFS_SUPER_MAGIC",
    0x4D44: "MSDOS_SUPER_MAGIC",
    0x2011BAB0: "EXFAT_SUPER_MAGIC",
    0x5346544E: "NTFS_SB_MAGIC",
    0xF2F52010: "F2FS_SUPER_MAGIC",
    0x73636673: "SECURITYFS_MAGIC",
    0xF97CFF8C: "SELINUX_MAGIC",
    0x64626720: "DEBUGFS_MAGIC",
    0x74726163: "TRACEFS_MAGIC",
    0xCAFE4A11: "BPF_FS_MAGIC",
    0x42494E4D: "BINFMTFS_MAGIC",
    0x6E736673: "NSFS_MAGIC",
    0x50495045: "PIPEFS_MAGIC",
    0x534F434B: "SOCKFS_MAGIC",
    0x19800202: "MQUEUE_MAGIC",
    0x958458F6: "HUGETLBFS_MAGIC",
    0x01021997: "V9FS_MAGIC",
    0xFF534D42: "CIFS_SUPER_MAGIC",
    0x5A3C69F0: "AAFS_MAGIC",
    0x6165676C: "PSTOREFS_MAGIC",
    0xDE5E81E4: "EFIVARFS_MAGIC",
    0x1373: "DEVFS_SUPER_MAGIC",
}

#: f_flags (the ST_* mount flags statvfs reports, plus ST_VALID).
ST_FLAGS = (
    (0x0001, "ST_RDONLY"),
    (0x0002, "ST_NOSUID"),
    (0x0004, "ST_NODEV"),
    (0x0008, "ST_NOEXEC"),
    (0x0010, "ST_SYNCHRONOUS"),
    (0x0020, "ST_VALID"),
    (0x0040, "ST_MANDLOCK"),
    (0x0080, "ST_WRITE"),
    (0x0100, "ST_APPEND"),
    (0x0200, "ST_IMMUTABLE"),
    (0x0400, "ST_NOATIME"),
    (0x0800, "ST_NODIRATIME"),
    (0x1000, "ST_RELATIME"),
    (0x2000, "ST_NOSYMFOLLOW"),
)


class _Statfs(_FixedStruct):
    """``struct statfs`` filled at exit."""

    size = 120

    def show(self, c: _Ctx, data: bytes) -> str:
        (ftype, bsize, blocks, bfree, bavail, files, ffree) = struct.unpack_from("<qqQQQQQ", data)
        fsid0, fsid1 = struct.unpack_from("<II", data, 56)
        namelen, frsize, flags = struct.unpack_from("<qqq", data, 64)
        ftype &= 0xFFFFFFFF
        return (
            f"{{f_type={FS_MAGIC.get(ftype) or _hex(ftype)}, f_bsize={bsize}, "
            f"f_blocks={blocks}, f_bfree={bfree}, f_bavail={bavail}, f_files={files}, "
            f"f_ffree={ffree}, f_fsid={{val=[{_hex(fsid0)}, {_hex(fsid1)}]}}, "
            f"f_namelen={namelen}, f_frsize={frsize}, f_flags={_flags(flags, ST_FLAGS)}}}"
        )


class _Sysinfo(_FixedStruct):
    """``struct sysinfo`` filled at exit."""

    size = 112

    def show(self, c: _Ctx, data: bytes) -> str:
        uptime, l1, l2, l3, tram, fram, sram, bram, tswap, fswap = struct.unpack_from(
            "<q9Q", data
        )
        (procs,) = struct.unpack_from("<H", data, 80)
        thigh, fhigh = struct.unpack_from("<QQ", data, 88)
        (unit,) = struct.unpack_from("<I", data, 104)
        return (
            f"{{uptime={uptime}, loads=[{l1}, {l2}, {l3}], totalram={tram}, freeram={fram}, "
            f"sharedram={sram}, bufferram={bram}, totalswap={tswap}, freeswap={fswap}, "
            f"procs={procs}, totalhigh={thigh}, freehigh={fhigh}, mem_unit={unit}}}"
        )
