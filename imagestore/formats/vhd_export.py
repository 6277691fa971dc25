"""A fixed-VHD *view* of any readable disk: the bytes Azure serves when a managed disk is
exported (``beginGetAccess``): the disk's raw bytes followed by a 512-byte VHD footer (spec
"Hard Disk Footer Format", disk type 2 = fixed), without writing a copy.

``FixedVhdView(reader, unique_id=…, timestamp=…)`` has a ``size`` (virtual size + 512) and
``read(offset, length)`` over it: bytes below the virtual size come from the reader (zeros
where it has none), the rest from the footer, which is built once and is a pure function of
(virtual size, unique id, timestamp), so that every range request of one download sees the
same footer. ``page_ranges()`` is the allocated map in 512-byte pages (the reader's extents
rounded out, plus the footer's page), what a page blob's ``Get Page Ranges`` returns.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from ..errors import InvalidArgument
from .base import DiskReader
from .vhd import DISK_FIXED, NO_DATA_OFFSET, SECTOR, VHD_EPOCH, VHD_MAX_SIZE, build_footer

FOOTER_SIZE = 512


def export_footer(virtual_size: int, unique_id: str | bytes, timestamp: int) -> bytes:
    """The fixed-VHD footer for a disk of ``virtual_size`` bytes; ``unique_id`` a GUID
    (the disk's ``uniqueId``), ``timestamp`` Unix seconds (the footer counts from 2000)."""
    uid = unique_id if isinstance(unique_id, bytes) else uuid.UUID(str(unique_id)).bytes
    stamp = max(0, int(timestamp) - VHD_EPOCH) & 0xFFFFFFFF
    return build_footer(virtual_size, DISK_FIXED, NO_DATA_OFFSET, uid, timestamp=stamp)


class FixedVhdView:
    """The disk of ``reader`` as a fixed VHD, read by ranges. The reader stays owned by the
    caller (and must not be used concurrently by others while a read runs)."""

    def __init__(self, reader: DiskReader, *, unique_id: str | bytes, timestamp: int) -> None:
        vsize = reader.virtual_size
        if vsize % SECTOR:
            raise InvalidArgument(f"{reader.path}: virtual size {vsize} is not a whole number of "
                                  f"512-byte sectors; it cannot be exported as a VHD")
        if vsize > VHD_MAX_SIZE:
            raise InvalidArgument(f"{reader.path}: a disk of {vsize} bytes does not fit a VHD "
                                  f"(2040 GiB at most)")
        self.reader = reader
        self.virtual_size = vsize
        self.size = vsize + FOOTER_SIZE
        self.footer = export_footer(vsize, unique_id, timestamp)

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset`` of the VHD (``offset + length <= size``)."""
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ValueError(f"read of {length} at {offset} outside a {self.size}-byte VHD")
        end = offset + length
        parts = []
        if offset < self.virtual_size:
            n = min(end, self.virtual_size) - offset
            parts.append(self.reader.read(offset, n))
        if end > self.virtual_size:
            a = max(offset, self.virtual_size) - self.virtual_size
            parts.append(self.footer[a : end - self.virtual_size])
        return b"".join(parts) if len(parts) != 1 else parts[0]

    def iter_range(self, offset: int, length: int, step: int = 1 << 20) -> Iterator[bytes]:
        """The range as pieces of at most ``step`` bytes."""
        pos, end = offset, offset + length
        while pos < end:
            n = min(step, end - pos)
            yield self.read(pos, n)
            pos += n

    def page_ranges(self) -> list[tuple[int, int]]:
        """Allocated (start, end-inclusive) byte ranges in whole 512-byte pages, merged,
        the footer's page last."""
        out: list[tuple[int, int]] = []
        for off, n in self.reader.extents():
            a = off // SECTOR * SECTOR
            b = min(-(-(off + n) // SECTOR) * SECTOR, self.virtual_size)
            if b <= a:
                continue
            if out and a <= out[-1][1] + 1:
                out[-1] = (out[-1][0], max(out[-1][1], b - 1))
            else:
                out.append((a, b - 1))
        foot = (self.virtual_size, self.size - 1)
        if out and out[-1][1] + 1 == foot[0]:
            out[-1] = (out[-1][0], foot[1])
        else:
            out.append(foot)
        return out

