"""The pure pieces of typed-argument extraction: flag lists and sockaddr fields."""

from __future__ import annotations

import socket
import struct

from sysspan.collector.decode import Decoder
from sysspan.collector.decode.typed import TypedArgs, flag_names, sockaddr_fields
from sysspan.collector.syscalls import table


def test_flag_names():
    assert flag_names("O_RDONLY|O_CLOEXEC") == ["O_RDONLY", "O_CLOEXEC"]
    assert flag_names("MAP_PRIVATE|0x40000000") == ["MAP_PRIVATE", "0x40000000"]
    assert flag_names("0") == [] and flag_names(None) == []


def test_sockaddr_fields():
    inet = struct.pack("<H", socket.AF_INET) + struct.pack(">H", 5432) + socket.inet_aton("10.1.2.3") + bytes(8)
    assert sockaddr_fields(inet) == ("ipv4", "10.1.2.3", 5432)
    inet6 = (struct.pack("<H", socket.AF_INET6) + struct.pack(">HI", 443, 0)
             + socket.inet_pton(socket.AF_INET6, "2001:db8::1") + bytes(4))
    assert sockaddr_fields(inet6) == ("ipv6", "2001:db8::1", 443)
    unix = struct.pack("<H", socket.AF_UNIX) + b"/run/app.sock\0junk"
    assert sockaddr_fields(unix) == ("unix", "/run/app.sock", None)
    abstract = struct.pack("<H", socket.AF_UNIX) + b"\0hidden\0"
    assert sockaddr_fields(abstract) == ("unix", "@hidden", None)
    assert sockaddr_fields(b"\x02") == (None, None, None)


def test_transport_follows_the_descriptor_socket_made():
    nrs = {name: nr for nr, name in table("x86_64").items()}
    typed = TypedArgs(Decoder("x86_64", capture_data=False)).attributes
    udp = typed(40, nrs["socket"], (socket.AF_INET, socket.SOCK_DGRAM, 0, 0, 0, 0), 7, None, None)
    assert udp == {"syscall.flags": ["SOCK_DGRAM"], "network.transport": "udp", "network.type": "ipv4"}
    sockaddr = struct.pack("<H", socket.AF_INET) + struct.pack(">H", 53) + socket.inet_aton("127.0.0.53") + bytes(8)
    conn = typed(40, nrs["connect"], (7, 0x1000, 16, 0, 0, 0), 0, (sockaddr,), None)
    assert conn == {"syscall.fd": 7, "network.peer.address": "127.0.0.53", "network.peer.port": 53,
                    "network.type": "ipv4", "network.transport": "udp"}
    # another process's fd 7, and fd 7 after close, are not known sockets
    assert "network.transport" not in typed(41, nrs["connect"], (7, 0x1000, 16, 0, 0, 0), 0, (sockaddr,), None)
    typed(40, nrs["close"], (7, 0, 0, 0, 0, 0), 0, None, None)
    assert "network.transport" not in typed(40, nrs["connect"], (7, 0x1000, 16, 0, 0, 0), 0, (sockaddr,), None)
    assert typed(40, nrs["getpid"], (0,) * 6, 40, None, None) == {}


def test_flags_follow_each_call_and_stay_its_own():
    # Each flag value is split once and remembered: the next call with another value gets
    # its own names, and a span's list is its own (changing it changes no other span).
    nrs = {name: nr for nr, name in table("x86_64").items()}
    typed = TypedArgs(Decoder("x86_64", capture_data=False)).attributes
    at = 0xFFFFFF9C
    first = typed(1, nrs["openat"], (at, 0x1000, 0o2000000, 0, 0, 0), 3, None, None)
    assert first["syscall.flags"] == ["O_RDONLY", "O_CLOEXEC"]
    first["syscall.flags"].append("changed")
    other = typed(1, nrs["openat"], (at, 0x1000, 0o1101, 0o644, 0, 0), 4, None, None)
    assert other["syscall.flags"] == ["O_WRONLY", "O_CREAT", "O_TRUNC"]
    again = typed(1, nrs["openat"], (at, 0x2000, 0o2000000, 0, 0, 0), 5, None, None)
    assert again["syscall.flags"] == ["O_RDONLY", "O_CLOEXEC"]
    # the same value in another call's flag argument is that call's flags, not openat's
    mmap = typed(1, nrs["mmap"], (0, 4096, 3, 0o2000000, 0xFFFFFFFF, 0), 0x7F0000000000, None, None)
    assert mmap["syscall.flags"] == ["MAP_FILE", "MAP_SYNC"]
    assert typed(1, nrs["openat"], (at, 0x1000, 0, 0, 0, 0), 3, None, None)["syscall.flags"] == ["O_RDONLY"]
