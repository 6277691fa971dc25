"""Writing VHDs: fixed ("vhd-fixed": data then footer) and dynamic ("vhd": blocks allocated
on first write, the BAT and footers written at close)."""

from __future__ import annotations

import os
import uuid

import numpy as np

from ...errors import InvalidArgument, from_oserror
from ..base import pwrite_full, sync_close
from ..source import close_any
from .structs import (
    DISK_DYNAMIC,
    DISK_FIXED,
    DYN_HEADER_SIZE,
    FIXED_ALIGN,
    NO_DATA_OFFSET,
    SECTOR,
    UNALLOCATED,
    VHD_MAX_SIZE,
    WRITER_BLOCK_SIZE,
    align,
    bitmap_bytes,
    build_dyn_header,
    build_footer,
    too_large,
)


def create_vhd_writer(path: str, virtual_size: int, *, fixed: bool):
    """Writer for a fixed ("vhd-fixed") or dynamic ("vhd") VHD. Checks the size first."""
    if virtual_size < 0:
        raise InvalidArgument(f"{path}: negative virtual size {virtual_size}")
    rounded = align(virtual_size, FIXED_ALIGN if fixed else SECTOR)
    if virtual_size > VHD_MAX_SIZE or rounded > VHD_MAX_SIZE:
        raise too_large(path, virtual_size)
    return (VhdFixedWriter if fixed else VhdDynamicWriter)(path, rounded)


def _create(path: str) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise from_oserror(e, path) from None


class _WriterBase:
    path: str
    virtual_size: int
    fd: int

    def _check_write(self, offset: int, n: int) -> None:
        if offset < 0 or offset + n > self.virtual_size:
            raise InvalidArgument(f"{self.path}: write of {n} bytes at {offset} outside the "
                                  f"virtual size {self.virtual_size}")

    def _sync_close(self) -> None:
        fd, self.fd = self.fd, -1
        sync_close(fd, self.path)

    def abort(self) -> None:
        self.fd = close_any(self.fd)


class VhdFixedWriter(_WriterBase):
    """Fixed VHD ready for Azure: the virtual size is rounded up to a whole MiB (the extra tail
    reads as zeros); the data area is a sparse file, then the 512-byte footer."""

    format = "vhd-fixed"

    def __init__(self, path: str, virtual_size: int) -> None:
        self.path = path
        self.virtual_size = virtual_size
        self.fd = _create(path)
        try:
            os.ftruncate(self.fd, virtual_size + SECTOR)
        except OSError as e:
            os.close(self.fd)
            self.fd = -1
            raise from_oserror(e, path) from None

    def write(self, offset: int, data: bytes | memoryview) -> None:
        self._check_write(offset, len(data))
        try:
            pwrite_full(self.fd, data, offset)
        except OSError as e:
            raise from_oserror(e, self.path) from None

    def finish(self) -> None:
        footer = build_footer(self.virtual_size, DISK_FIXED, NO_DATA_OFFSET, uuid.uuid4().bytes)
        try:
            pwrite_full(self.fd, footer, self.virtual_size)
        except OSError as e:
            self.abort()
            raise from_oserror(e, self.path) from None
        self._sync_close()


class VhdDynamicWriter(_WriterBase):
    """Dynamic VHD, 2 MiB blocks. Layout: footer copy (0), dynamic header (512), BAT (1536,
    padded to 512), blocks of [bitmap, all ones][data] in first-write order, footer.
    Blocks are allocated on first write; unwritten parts of a block stay file holes."""

    format = "vhd-dynamic"

    def __init__(self, path: str, virtual_size: int) -> None:
        self.path = path
        self.virtual_size = virtual_size
        self.block_size = WRITER_BLOCK_SIZE
        self.bitmap_size = bitmap_bytes(self.block_size)
        self.max_entries = -(-virtual_size // self.block_size)
        self.table_offset = SECTOR + DYN_HEADER_SIZE
        self.bat = np.full(self.max_entries, UNALLOCATED, dtype=np.uint32)
        self.next_off = align(self.table_offset + self.max_entries * 4, SECTOR)
        self._ones = b"\xff" * self.bitmap_size
        self.fd = _create(path)

    def write(self, offset: int, data: bytes | memoryview) -> None:
        mv = memoryview(data).cast("B")
        self._check_write(offset, len(mv))
        bs = self.block_size
        try:
            while mv:
                blk, bo = divmod(offset, bs)
                n = min(bs - bo, len(mv))
                if self.bat[blk] == UNALLOCATED:
                    self.bat[blk] = self.next_off // SECTOR
                    pwrite_full(self.fd, self._ones, self.next_off)
                    self.next_off += self.bitmap_size + bs
                pwrite_full(self.fd, mv[:n], int(self.bat[blk]) * SECTOR + self.bitmap_size + bo)
                mv = mv[n:]
                offset += n
        except OSError as e:
            raise from_oserror(e, self.path) from None

    def finish(self) -> None:
        uid = uuid.uuid4().bytes
        footer = build_footer(self.virtual_size, DISK_DYNAMIC, SECTOR, uid)
        header = build_dyn_header(self.table_offset, self.max_entries, self.block_size)
        bat = self.bat.astype(">u4").tobytes()
        bat += b"\xff" * (align(len(bat), SECTOR) - len(bat))
        try:
            pwrite_full(self.fd, footer, self.next_off)
            os.ftruncate(self.fd, self.next_off + SECTOR)
            pwrite_full(self.fd, bat, self.table_offset)
            pwrite_full(self.fd, header, SECTOR)
            pwrite_full(self.fd, footer, 0)
        except OSError as e:
            self.abort()
            raise from_oserror(e, self.path) from None
        self._sync_close()
