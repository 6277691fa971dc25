"""qcow2 on-disk structures and constants (declarations and the header parse only).

Section names refer to qemu's ``docs/interop/qcow2.txt`` ("Header", "Header extensions",
"Cluster mapping", "Compressed Clusters Descriptor", "Extended L2 Entries"). Every field is
big-endian.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

MAGIC = b"QFI\xfb"

#: "Header": the version 2 header is 72 bytes; version 3 adds 32 (and an optional 8 more)
V2_HEADER = struct.Struct(">4sIQIIQIIQQIIQ")
V3_EXTRA = struct.Struct(">QQQII")
V2_HEADER_LENGTH = 72
V3_MIN_HEADER_LENGTH = 104

#: cluster_bits: qemu accepts 9 (512 bytes) to 21 (2 MiB)
MIN_CLUSTER_BITS = 9
MAX_CLUSTER_BITS = 21

#: incompatible feature bits ("Header", bytes 72-79)
INCOMPAT_DIRTY = 1 << 0
INCOMPAT_CORRUPT = 1 << 1
INCOMPAT_DATA_FILE = 1 << 2
INCOMPAT_COMPRESSION = 1 << 3
INCOMPAT_EXTL2 = 1 << 4
INCOMPAT_KNOWN = (INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE
                  | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2)

#: compression_type (byte 104): 0 zlib (raw deflate), 1 zstd
COMPRESSION_ZLIB = 0
COMPRESSION_ZSTD = 1
COMPRESSION_NAMES = {COMPRESSION_ZLIB: "zlib", COMPRESSION_ZSTD: "zstd"}

#: "Header extensions" types
EXT_END = 0x00000000
EXT_BACKING_FORMAT = 0xE2792ACA
EXT_FEATURE_TABLE = 0x6803F857
EXT_BITMAPS = 0x23852875
EXT_CRYPTO = 0x0537BE77
EXT_DATA_FILE = 0x44415441

#: "Cluster mapping": L1 / L2 entry bits
OFLAG_COPIED = 1 << 63
OFLAG_COMPRESSED = 1 << 62
OFLAG_ZERO = 1
L1E_OFFSET_MASK = 0x00FFFFFFFFFFFE00
L2E_OFFSET_MASK = 0x00FFFFFFFFFFFE00

#: a backing file name longer than this is refused (qemu: 1023)
MAX_BACKING_NAME = 1023
#: qemu's QCOW_MAX_L1_SIZE: an L1 table of at most 32 MiB (4 Mi entries)
MAX_L1_BYTES = 32 << 20
#: qemu's QCOW_MAX_REFTABLE_SIZE
MAX_REFTABLE_BYTES = 8 << 20
#: qemu refuses disks whose virtual size needs more than 2^63 bytes (INT64_MAX)
MAX_VIRTUAL_SIZE = (1 << 63) - 1

#: the header fields the writer fills in, by name (for tests and the writer)
HEADER_FIELDS = (
    "magic", "version", "backing_file_offset", "backing_file_size", "cluster_bits", "size",
    "crypt_method", "l1_size", "l1_table_offset", "refcount_table_offset",
    "refcount_table_clusters", "nb_snapshots", "snapshots_offset",
)


@dataclass
class Header:
    """The parsed qcow2 header (version 2 fields, plus the version 3 ones or their
    version 2 defaults)."""

    version: int
    backing_file_offset: int
    backing_file_size: int
    cluster_bits: int
    size: int
    crypt_method: int
    l1_size: int
    l1_table_offset: int
    refcount_table_offset: int
    refcount_table_clusters: int
    nb_snapshots: int
    snapshots_offset: int
    incompatible: int = 0
    compatible: int = 0
    autoclear: int = 0
    refcount_order: int = 4
    header_length: int = V2_HEADER_LENGTH
    compression_type: int = COMPRESSION_ZLIB
    extensions: dict[int, bytes] = field(default_factory=dict)

    @property
    def cluster_size(self) -> int:
        return 1 << self.cluster_bits

    @property
    def extended_l2(self) -> bool:
        return bool(self.incompatible & INCOMPAT_EXTL2)


def parse_header(buf: bytes) -> Header:
    """The header at the start of ``buf`` (which holds the whole first cluster, or the whole
    file when shorter). Raises ValueError with the reason for what is not a qcow2 header;
    range checks against the file are the reader's."""
    if len(buf) < V2_HEADER_LENGTH:
        raise ValueError(f"file too small for a qcow2 header ({len(buf)} bytes, need 72)")
    (magic, version, bfo, bfs, cbits, size, crypt, l1_size, l1_off, rt_off, rt_clusters,
     nb_snap, snap_off) = V2_HEADER.unpack_from(buf, 0)
    if magic != MAGIC:
        raise ValueError("no qcow2 magic")
    h = Header(version, bfo, bfs, cbits, size, crypt, l1_size, l1_off, rt_off, rt_clusters,
               nb_snap, snap_off)
    if version == 3:
        if len(buf) < V3_MIN_HEADER_LENGTH:
            raise ValueError("file too small for a qcow2 version 3 header")
        (h.incompatible, h.compatible, h.autoclear, h.refcount_order,
         h.header_length) = V3_EXTRA.unpack_from(buf, V2_HEADER_LENGTH)
        if h.header_length < V3_MIN_HEADER_LENGTH or h.header_length % 8:
            raise ValueError(f"header_length {h.header_length} is not valid (at least 104, a "
                             f"multiple of 8)")
        if h.header_length > len(buf):
            raise ValueError(f"header_length {h.header_length} exceeds the first cluster")
        if h.header_length > V3_MIN_HEADER_LENGTH:
            h.compression_type = buf[104]
    return h


def parse_extensions(buf: bytes, start: int, end: int) -> dict[int, bytes]:
    """"Header extensions" from ``start`` up to the end-of-extensions marker (or ``end``,
    the end of the first cluster). Raises ValueError on an extension running past ``end``."""
    out: dict[int, bytes] = {}
    pos = start
    while pos + 8 <= end:
        etype, length = struct.unpack_from(">II", buf, pos)
        if etype == EXT_END:
            return out
        pos += 8
        if pos + length > end:
            raise ValueError(f"header extension 0x{etype:08x} of {length} bytes runs past the "
                             f"first cluster")
        if etype in out:
            raise ValueError(f"header extension 0x{etype:08x} appears twice")
        out[etype] = bytes(buf[pos : pos + length])
        pos += (length + 7) & ~7
    return out
