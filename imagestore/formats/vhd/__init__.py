"""Microsoft VHD (Virtual Hard Disk, qemu's "vpc"): fixed, dynamic and differencing disks.

References are to the "Virtual Hard Disk Image Format Specification", version 1.0 (Microsoft,
2006), cited as "spec §N" below.

Layout reminders:

* fixed: the disk's bytes, then a 512-byte footer (spec "Hard Disk Footer Format").
* dynamic/differencing: footer copy at 0, dynamic disk header (1024 bytes) at the footer's
  data offset, block allocation table (BAT) of big-endian uint32 *sector* numbers
  (0xFFFFFFFF = unallocated), blocks of [sector bitmap padded to 512 bytes][block data], and
  the footer again at the end of the file.

Every problem found in a file is reported as one :class:`BadImage` line naming the file.

The package: ``structs`` (footer, dynamic header, locators, checksums, geometry), ``reader``
(fixed, dynamic and differencing readers), ``writer`` (fixed and dynamic writers).
"""

from __future__ import annotations

from .reader import VhdFixedReader, VhdSparseReader, open_vhd
from .structs import (
    CREATOR_APP,
    DISK_DIFFERENCING,
    DISK_DYNAMIC,
    DISK_FIXED,
    DISK_TYPE_NAMES,
    DYN_CHECKSUM_OFFSET,
    FIXED_ALIGN,
    FOOTER_CHECKSUM_OFFSET,
    FOOTER_COOKIE,
    NO_DATA_OFFSET,
    SECTOR,
    VHD_EPOCH,
    VHD_MAX_SIZE,
    build_dyn_header,
    build_footer,
    chs_geometry,
    too_large,
    vhd_checksum,
)
from .writer import VhdDynamicWriter, VhdFixedWriter, create_vhd_writer

__all__ = [
    "CREATOR_APP", "DISK_DIFFERENCING", "DISK_DYNAMIC", "DISK_FIXED", "DISK_TYPE_NAMES",
    "DYN_CHECKSUM_OFFSET", "FIXED_ALIGN", "FOOTER_CHECKSUM_OFFSET", "FOOTER_COOKIE",
    "NO_DATA_OFFSET", "SECTOR", "VHD_EPOCH", "VHD_MAX_SIZE", "VhdDynamicWriter",
    "VhdFixedReader", "VhdFixedWriter", "VhdSparseReader", "build_dyn_header", "build_footer",
    "chs_geometry", "create_vhd_writer", "open_vhd", "too_large", "vhd_checksum",
]
