"""CRC-32C (Castagnoli), reflected polynomial 0x82F63B78, as required by MS-VHDX 2.2.2.

Table-driven in Python; large buffers are split into lanes that numpy checksums side by side
and then combined (the CRC is linear), so a 64 KiB region table costs little.
"""

from __future__ import annotations

import struct

import numpy as np


def _make_crc_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _make_crc_table()


_CRC_NP = np.array(_CRC_TABLE, dtype=np.uint32)
_CRC_LANES = 4096
_SHIFT_CACHE: dict[int, list[list[int]]] = {}


def _crc_raw_py(data: bytes, c: int) -> int:
    t = _CRC_TABLE
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c


def _shift_tables(n: int) -> list[list[int]]:
    """Byte tables of the linear map "feed ``n`` zero bytes" on the raw CRC register."""
    got = _SHIFT_CACHE.get(n)
    if got is None:
        v = (np.arange(256, dtype=np.uint32)[None, :] << (8 * np.arange(4, dtype=np.uint32))[:, None])
        v = v.reshape(-1)
        for _ in range(n):
            v = _CRC_NP[v & 0xFF] ^ (v >> 8)
        got = [v[k * 256 : (k + 1) * 256].tolist() for k in range(4)]
        _SHIFT_CACHE[n] = got
    return got


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-32C of ``data``. Table-driven; buffers of 64 KiB and more are split into 4096
    lanes whose CRCs numpy computes side by side, then combined (the CRC is linear)."""
    data = bytes(data)
    c = crc ^ 0xFFFFFFFF
    n = len(data)
    if n >= 16 * _CRC_LANES:
        lane = n // _CRC_LANES
        body = lane * _CRC_LANES
        cols = np.frombuffer(data, dtype=np.uint8, count=body).reshape(_CRC_LANES, lane).T.copy()
        reg = np.zeros(_CRC_LANES, dtype=np.uint32)
        for j in range(lane):
            reg = _CRC_NP[(reg ^ cols[j]) & 0xFF] ^ (reg >> 8)
        t0, t1, t2, t3 = _shift_tables(lane)
        for r in reg.tolist():
            c = t0[c & 0xFF] ^ t1[(c >> 8) & 0xFF] ^ t2[(c >> 16) & 0xFF] ^ t3[c >> 24] ^ r
        data = data[body:]
    return _crc_raw_py(data, c) ^ 0xFFFFFFFF


def checksum_ok(buf: bytes, crc_offset: int = 4) -> bool:
    """True when the CRC-32C stored at ``crc_offset`` matches ``buf`` with that field zeroed
    (how MS-VHDX checksums headers, region tables and log entries)."""
    stored = struct.unpack_from("<I", buf, crc_offset)[0]
    zeroed = buf[:crc_offset] + b"\0\0\0\0" + buf[crc_offset + 4 :]
    return crc32c(zeroed) == stored


def with_checksum(buf: bytes, crc_offset: int = 4) -> bytes:
    """``buf`` with the CRC-32C of its zeroed-field form stored at ``crc_offset``."""
    zeroed = buf[:crc_offset] + b"\0\0\0\0" + buf[crc_offset + 4 :]
    return zeroed[:crc_offset] + struct.pack("<I", crc32c(zeroed)) + zeroed[crc_offset + 4 :]

