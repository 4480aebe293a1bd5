"""Writing a password-protected ZIP (traditional PKWARE "ZipCrypto") for the tests.

Python's :mod:`zipfile` reads such archives but cannot write them, so the tests that read
the password-protected THINGS image zip write their archives with this: members stored
(no compression), each encrypted with the stream cipher of the PKWARE APPNOTE (section
6.1), which is what ``zip -P`` writes.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

_CRC = [0] * 256
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0xEDB88320 if _c & 1 else _c >> 1
    _CRC[_i] = _c


class _Keys:
    def __init__(self, password: bytes) -> None:
        self.k = [0x12345678, 0x23456789, 0x34567890]
        for b in password:
            self.update(b)

    def update(self, b: int) -> None:
        k0, k1, k2 = self.k
        k0 = (k0 >> 8) ^ _CRC[(k0 ^ b) & 0xFF]
        k1 = ((k1 + (k0 & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        k2 = (k2 >> 8) ^ _CRC[(k2 ^ (k1 >> 24)) & 0xFF]
        self.k = [k0, k1, k2]

    def encrypt(self, data: bytes) -> bytes:
        out = bytearray()
        for p in data:
            t = (self.k[2] | 2) & 0xFFFF
            out.append(p ^ (((t * (t ^ 1)) >> 8) & 0xFF))
            self.update(p)
        return bytes(out)


def write_zipcrypto(path: str | os.PathLike[str], members: dict[str, bytes],
                    password: str) -> Path:
    """A ZIP at ``path`` whose members (name -> bytes) are stored and ZipCrypto-encrypted."""
    local, central = bytearray(), bytearray()
    dostime, dosdate = 0, (2026 - 1980) << 9 | 1 << 5 | 1
    for name, data in members.items():
        crc = zlib.crc32(data) & 0xFFFFFFFF
        keys = _Keys(password.encode())
        header = os.urandom(11) + bytes([crc >> 24])  # the last byte lets readers check
        body = keys.encrypt(header) + keys.encrypt(data)
        fname = name.encode()
        offset = len(local)
        local += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 1, 0, dostime, dosdate, crc,
                             len(body), len(data), len(fname), 0) + fname + body
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 1, 0, dostime, dosdate,
                               crc, len(body), len(data), len(fname), 0, 0, 0, 0, 0,
                               offset) + fname
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central),
                      len(local), 0)
    p = Path(path)
    p.write_bytes(bytes(local + central + end))
    return p
