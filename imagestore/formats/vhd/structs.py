"""VHD on-disk structures (all big-endian): the footer, the dynamic disk header, parent
locators, their checksums and geometry, parsed and built. Spec references as in
``formats/vhd/__init__.py``."""

from __future__ import annotations

import struct
import time

import numpy as np

from ...errors import BadImage, TooLarge

# --------------------------------------------------------------------------------------------
# On-disk structures (all big-endian).
# --------------------------------------------------------------------------------------------

#: Hard disk footer (spec "Hard Disk Footer Format"): cookie, features, file format version,
#: data offset, timestamp, creator application, creator version, creator host OS, original
#: size, current size, geometry (cylinders u16, heads u8, sectors/track u8), disk type,
#: checksum, unique id, saved state, reserved.
FOOTER = struct.Struct(">8sIIQI4sI4sQQHBBII16sB427s")
FOOTER_CHECKSUM_OFFSET = 64
FOOTER_COOKIE = b"conectix"

#: Dynamic disk header (spec "Dynamic Disk Header Format"), first 576 bytes: cookie, data
#: offset, table offset, header version, max table entries, block size, checksum, parent
#: unique id, parent timestamp, reserved, parent unicode name (UTF-16BE, 512 bytes).
DYN_HEADER = struct.Struct(">8sQQIIII16sII512s")
DYN_HEADER_SIZE = 1024
DYN_CHECKSUM_OFFSET = 36
DYN_COOKIE = b"cxsparse"
#: Parent locator entry (8 of them at offset 576): platform code, platform data space,
#: platform data length, reserved, platform data offset.
LOCATOR = struct.Struct(">4sIIIQ")
LOCATOR_TABLE_OFFSET = 576
LOCATOR_COUNT = 8

DISK_FIXED = 2
DISK_DYNAMIC = 3
DISK_DIFFERENCING = 4
DISK_TYPE_NAMES = {DISK_FIXED: "vhd-fixed", DISK_DYNAMIC: "vhd-dynamic",
                   DISK_DIFFERENCING: "vhd-differencing"}

SECTOR = 512
UNALLOCATED = 0xFFFFFFFF
NO_DATA_OFFSET = 0xFFFFFFFFFFFFFFFF
FEATURES_RESERVED = 0x00000002  # spec: "this bit must always be set to 1"
FILE_FORMAT_VERSION = 0x00010000
DYN_HEADER_VERSION = 0x00010000

#: VHD stops at 2040 GiB (0xFF000000 sectors; qemu's VHD_MAX_SECTORS, Hyper-V's limit too).
VHD_MAX_SIZE = 2040 * 2**30
MIN_BLOCK_SIZE = 4096
MAX_BLOCK_SIZE = 256 * 2**20
WRITER_BLOCK_SIZE = 2 * 2**20  # spec: "the default block size is 0x00200000 (2 MB)"
FIXED_ALIGN = 2**20  # Azure requires fixed VHDs whose virtual size is a whole number of MiB
MAX_LOCATOR_BYTES = 65536
MAX_PARENT_PATH = 4096  # PATH_MAX: longer locator paths are ignored

#: "win " is what Hyper-V writes; qemu (block/vpc.c) then takes the footer's current size as the
#: virtual size instead of cylinders*heads*sectors, so `qemu-img info` reports the exact size.
CREATOR_APP = b"win "
CREATOR_VERSION = 0x000A0000
CREATOR_HOST_OS = b"Wi2k"
VHD_EPOCH = 946684800  # 2000-01-01 00:00:00 UTC, the timestamp origin (spec "Time Stamp")

BITMAP_CACHE_SECTORS = 2**24  # decoded sector bitmaps kept (one byte per sector): 16 MiB


def vhd_checksum(buf: bytes, checksum_offset: int) -> int:
    """One's complement of the byte sum, the checksum field counted as zero (spec "Checksum")."""
    a = np.frombuffer(buf, dtype=np.uint8)
    total = int(a.sum(dtype=np.uint64)) - sum(buf[checksum_offset : checksum_offset + 4])
    return (~total) & 0xFFFFFFFF


def chs_geometry(size: int) -> tuple[int, int, int]:
    """(cylinders, heads, sectors per track) for ``size`` bytes, per spec Appendix "CHS
    Calculation" (the geometry is capped at 65535/16/255; larger disks rely on current size)."""
    total = size // SECTOR
    total = min(total, 65535 * 16 * 255)
    if total >= 65535 * 16 * 63:
        spt, heads = 255, 16
        cth = total // spt
    else:
        spt = 17
        cth = total // spt
        heads = max((cth + 1023) // 1024, 4)
        if cth >= heads * 1024 or heads > 16:
            spt, heads = 31, 16
            cth = total // spt
        if cth >= heads * 1024:
            spt, heads = 63, 16
            cth = total // spt
    return cth // heads, heads, spt


def align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def bitmap_bytes(block_size: int) -> int:
    """Size of a block's sector bitmap: one bit per sector, padded to a sector (spec "Block
    Allocation Table and Data Blocks")."""
    return align(max(block_size // SECTOR // 8, 1), SECTOR)


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


class Footer:
    __slots__ = ("data_offset", "current_size", "disk_type", "unique_id", "creator_app")

    def __init__(self, raw: bytes) -> None:
        f = FOOTER.unpack(raw)
        self.data_offset = f[3]
        self.creator_app = f[5]
        self.current_size = f[9]
        self.disk_type = f[13]
        self.unique_id = f[15]


def parse_footer(path: str, raw: bytes) -> tuple[Footer | None, str]:
    """Return (footer, "") or (None, reason)."""
    if len(raw) < 511 or raw[:8] != FOOTER_COOKIE:
        return None, "no VHD footer cookie 'conectix'"
    raw = raw.ljust(512, b"\0")  # pre-Virtual-Server-2004 footers are 511 bytes
    stored = struct.unpack_from(">I", raw, FOOTER_CHECKSUM_OFFSET)[0]
    if vhd_checksum(raw, FOOTER_CHECKSUM_OFFSET) != stored:
        return None, "VHD footer checksum mismatch: the footer is damaged"
    return Footer(raw), ""


def check_size(path: str, size: int) -> None:
    if size > VHD_MAX_SIZE:
        raise BadImage(f"{path}: virtual size {size} bytes exceeds the VHD limit of 2040 GiB")
    if size % SECTOR:
        raise BadImage(f"{path}: virtual size {size} is not a multiple of 512 bytes")


def build_footer(virtual_size: int, disk_type: int, data_offset: int,
                 unique_id: bytes, timestamp: int | None = None) -> bytes:
    """A footer with a valid checksum and the spec's CHS geometry."""
    if timestamp is None:
        timestamp = max(0, int(time.time()) - VHD_EPOCH) & 0xFFFFFFFF
    cyl, heads, spt = chs_geometry(virtual_size)
    fields = [FOOTER_COOKIE, FEATURES_RESERVED, FILE_FORMAT_VERSION, data_offset, timestamp,
              CREATOR_APP, CREATOR_VERSION, CREATOR_HOST_OS, virtual_size, virtual_size,
              cyl, heads, spt, disk_type, 0, unique_id, 0, b""]
    raw = FOOTER.pack(*fields)
    fields[14] = vhd_checksum(raw, FOOTER_CHECKSUM_OFFSET)
    return FOOTER.pack(*fields)


def build_dyn_header(table_offset: int, max_entries: int, block_size: int, *,
                     parent_uuid: bytes = bytes(16), parent_timestamp: int = 0,
                     parent_name: str = "",
                     locators: list[tuple[bytes, int, int, int]] = ()) -> bytes:
    """A dynamic disk header with a valid checksum. ``locators``: (code, space, length, off)."""
    name = parent_name.encode("utf-16-be")[:512]
    head = DYN_HEADER.pack(DYN_COOKIE, NO_DATA_OFFSET, table_offset, DYN_HEADER_VERSION,
                           max_entries, block_size, 0, parent_uuid, parent_timestamp, 0, name)
    locs = b"".join(LOCATOR.pack(c, sp, ln, 0, off) for c, sp, ln, off in locators)
    raw = bytearray((head + locs).ljust(DYN_HEADER_SIZE, b"\0"))
    struct.pack_into(">I", raw, DYN_CHECKSUM_OFFSET, vhd_checksum(bytes(raw), DYN_CHECKSUM_OFFSET))
    return bytes(raw)


def too_large(path: str, virtual_size: int) -> TooLarge:
    return TooLarge(f"{path}: a disk of {virtual_size} bytes ({virtual_size / 2**30:.1f} GiB) "
                    f"does not fit VHD, which stops at 2040 GiB; use --format vhdx")


