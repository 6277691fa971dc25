"""VHDX on-disk structures and constants (Microsoft MS-VHDX v1.0).

Only declarations, packing and unpacking live here; the behaviour (validation, reading,
writing) is in the other modules of :mod:`imagestore.formats.vhdx`. Section numbers refer to MS-VHDX v1.0.

All integers are little-endian. GUIDs are stored in the Windows mixed-endian layout
(``uuid.UUID.bytes_le``).
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB

# --- 2.1 Layout: the 1 MiB header section -------------------------------------------------
FILE_ID_SIGNATURE = b"vhdxfile"  # 2.2.1
FILE_ID_OFFSET = 0
HEADER1_OFFSET = 64 * KiB  # 2.2.2: two headers, 64 KiB apart
HEADER2_OFFSET = 128 * KiB
HEADER_SIZE = 4 * KiB  # the checksum covers the whole 4 KiB
REGION_TABLE1_OFFSET = 192 * KiB  # 2.2.3
REGION_TABLE2_OFFSET = 256 * KiB
REGION_TABLE_SIZE = 64 * KiB  # the checksum covers the whole 64 KiB
HEADER_SECTION_SIZE = 1 * MiB

HEADER_SIGNATURE = b"head"
REGION_SIGNATURE = b"regi"
METADATA_SIGNATURE = b"metadata"
LOG_ENTRY_SIGNATURE = b"loge"

#: 2.2.3: "EntryCount ... MUST be less than or equal to 2,047"
REGION_MAX_ENTRIES = 2047
#: 2.6.1: "EntryCount ... MUST be less than or equal to 2,047"
METADATA_MAX_ENTRIES = 2047
METADATA_TABLE_SIZE = 64 * KiB

# --- Region GUIDs (2.2.3.1) ---------------------------------------------------------------
BAT_GUID = uuid.UUID("2DC27766-F623-4200-9D64-115E9BFD4A08")
METADATA_GUID = uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E")

# --- Metadata item GUIDs (2.6.2) ----------------------------------------------------------
FILE_PARAMETERS_GUID = uuid.UUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
VIRTUAL_DISK_SIZE_GUID = uuid.UUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
PAGE83_GUID = uuid.UUID("BECA12AB-B2E6-4523-93EF-C309E000C746")
LOGICAL_SECTOR_SIZE_GUID = uuid.UUID("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
PHYSICAL_SECTOR_SIZE_GUID = uuid.UUID("CDA348C7-445D-4471-9CC9-E9885251C556")
PARENT_LOCATOR_GUID = uuid.UUID("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
#: 2.6.2.6.1: the locator type of a VHDX parent
VHDX_PARENT_LOCATOR_TYPE = uuid.UUID("B04AEFB7-D19E-4A81-B789-25B8E9445913")

# --- BAT (2.5) ----------------------------------------------------------------------------
PAYLOAD_BLOCK_NOT_PRESENT = 0
PAYLOAD_BLOCK_UNDEFINED = 1
PAYLOAD_BLOCK_ZERO = 2
PAYLOAD_BLOCK_UNMAPPED = 3
PAYLOAD_BLOCK_FULLY_PRESENT = 6
PAYLOAD_BLOCK_PARTIALLY_PRESENT = 7
SB_BLOCK_NOT_PRESENT = 0
SB_BLOCK_PRESENT = 6
BAT_STATE_MASK = 0x7
BAT_OFFSET_SHIFT = 20  # 2.5.1: FileOffsetMB occupies bits 20..63
SECTOR_BITMAP_BLOCK_SIZE = 1 * MiB  # 2.5.1.2: covers 2**23 sectors, one bit each
SECTORS_PER_BITMAP = 2**23

# --- Limits (2.6.2.1, 2.6.2.2, 2.6.2.4) ---------------------------------------------------
MIN_BLOCK_SIZE = 1 * MiB
MAX_BLOCK_SIZE = 256 * MiB
MAX_VIRTUAL_SIZE = 64 * TiB
LOGICAL_SECTOR_SIZES = (512, 4096)
PHYSICAL_SECTOR_SIZES = (512, 4096)

# File parameter flags (2.6.2.1)
FP_LEAVE_BLOCKS_ALLOCATED = 0x1
FP_HAS_PARENT = 0x2

# Metadata entry flags (2.6.1.2)
MD_IS_USER = 0x1
MD_IS_VIRTUAL_DISK = 0x2
MD_IS_REQUIRED = 0x4

# Region entry flags (2.2.3.2)
REGION_REQUIRED = 0x1

ZERO_GUID = uuid.UUID(int=0)

# struct layouts
HEADER_FMT = struct.Struct("<4sIQ16s16s16sHHIQ")  # 2.2.2, followed by 4016 reserved bytes
REGION_TABLE_HEADER_FMT = struct.Struct("<4sIII")  # 2.2.3.1
REGION_ENTRY_FMT = struct.Struct("<16sQII")  # 2.2.3.2
METADATA_HEADER_FMT = struct.Struct("<8sHH20s")  # 2.6.1.1
METADATA_ENTRY_FMT = struct.Struct("<16sIIII")  # 2.6.1.2
FILE_PARAMETERS_FMT = struct.Struct("<II")  # 2.6.2.1
PARENT_LOCATOR_HEADER_FMT = struct.Struct("<16sHH")  # 2.6.2.6.1
PARENT_LOCATOR_ENTRY_FMT = struct.Struct("<IIHH")  # 2.6.2.6.2
LOG_ENTRY_HEADER_FMT = struct.Struct("<4sIIIQII16sQQ")  # 2.3.1.1


def guid_from_le(b: bytes) -> uuid.UUID:
    return uuid.UUID(bytes_le=bytes(b))


@dataclass(frozen=True)
class Header:
    """2.2.2 Header."""

    signature: bytes
    checksum: int
    sequence_number: int
    file_write_guid: uuid.UUID
    data_write_guid: uuid.UUID
    log_guid: uuid.UUID
    log_version: int
    version: int
    log_length: int
    log_offset: int

    @classmethod
    def unpack(cls, buf: bytes) -> Header:
        sig, crc, seq, fwg, dwg, lg, lver, ver, llen, loff = HEADER_FMT.unpack_from(buf, 0)
        return cls(
            sig, crc, seq, guid_from_le(fwg), guid_from_le(dwg), guid_from_le(lg),
            lver, ver, llen, loff,
        )

    def pack(self) -> bytes:
        """Pack to 4 KiB with the checksum field as stored in ``self.checksum``."""
        head = HEADER_FMT.pack(
            self.signature, self.checksum, self.sequence_number,
            self.file_write_guid.bytes_le, self.data_write_guid.bytes_le,
            self.log_guid.bytes_le, self.log_version, self.version,
            self.log_length, self.log_offset,
        )
        return head + bytes(HEADER_SIZE - len(head))


@dataclass(frozen=True)
class RegionEntry:
    """2.2.3.2 Region Table Entry."""

    guid: uuid.UUID
    file_offset: int
    length: int
    required: bool


@dataclass(frozen=True)
class MetadataEntry:
    """2.6.1.2 Metadata Table Entry."""

    item_id: uuid.UUID
    offset: int
    length: int
    flags: int

    @property
    def required(self) -> bool:
        return bool(self.flags & MD_IS_REQUIRED)


def chunk_ratio(logical_sector_size: int, block_size: int) -> int:
    """2.5: number of payload blocks described by one sector bitmap block."""
    return (SECTORS_PER_BITMAP * logical_sector_size) // block_size


def bat_entry_count(virtual_size: int, block_size: int, ratio: int, has_parent: bool) -> int:
    """2.5: total BAT entries for the disk geometry."""
    data_blocks = -(-virtual_size // block_size)
    if has_parent:
        sb_blocks = -(-data_blocks // ratio)
        return sb_blocks * (ratio + 1)
    if data_blocks == 0:
        return 0
    return data_blocks + (data_blocks - 1) // ratio
