"""VHDX writer (MS-VHDX v1.0).

Dynamic (32 MiB blocks, allocated on first write, file grown with ftruncate so that unwritten
parts of a block are sparse zeros) or fixed (all blocks present and contiguous, the file sparse
where never written). Layout follows qemu's: header section, a 1 MiB log region (empty), the
metadata region, the BAT region, then payload blocks.
"""

from __future__ import annotations

import os
import struct
import threading
import uuid

import numpy as np

from ...errors import IOFailure, TooLarge, from_oserror
from ...fsutil import start_writeback
from ..base import pwrite_full
from . import structs as S
from .crc32c import with_checksum

#: 32 MiB, the default of qemu and Hyper-V: the BAT of a 64 TiB disk stays 16 MiB (2 Mi
#: entries), and sparseness is kept by the file's holes (unwritten parts of a block are
#: ftruncate-extended zeros), so smaller blocks would only shrink the apparent file size.
WRITER_BLOCK_SIZE = 32 * S.MiB
WRITER_LOGICAL_SECTOR = 512
WRITER_PHYSICAL_SECTOR = 4096
_LOG_OFFSET = 1 * S.MiB
_LOG_LENGTH = 1 * S.MiB
_METADATA_OFFSET = 2 * S.MiB
_METADATA_LENGTH = 1 * S.MiB
_BAT_OFFSET = 3 * S.MiB


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


class VhdxWriter:
    """A VHDX being written; use :func:`create_vhdx_writer`."""

    def __init__(
        self,
        path: str,
        virtual_size: int,
        *,
        fixed: bool,
        block_size: int = WRITER_BLOCK_SIZE,
        logical_sector_size: int = WRITER_LOGICAL_SECTOR,
        parent: tuple[str, uuid.UUID] | None = None,
    ) -> None:
        self.path = path
        self.virtual_size = _round_up(virtual_size, logical_sector_size)
        self.fixed = fixed
        self.block_size = block_size
        self.lss = logical_sector_size
        self.parent = parent  # (relative path, parent's DataWriteGuid): differencing
        if parent is not None and fixed:
            raise ValueError("a differencing disk cannot be fixed")
        self.chunk_ratio = S.chunk_ratio(self.lss, block_size)
        self.nblocks = -(-self.virtual_size // block_size)
        self.n_entries = S.bat_entry_count(
            self.virtual_size, block_size, self.chunk_ratio, parent is not None
        )
        self.bat_length = max(_round_up(self.n_entries * 8, S.MiB), S.MiB)
        self.payload_start = _BAT_OFFSET + self.bat_length
        self.block_offsets = np.zeros(self.nblocks, dtype=np.uint64)  # 0: not allocated
        self.bitmaps: dict[int, np.ndarray] = {}  # differencing only: chunk -> sector bits
        self.next_offset = self.payload_start
        # write() may run in several threads at once for distinct ranges (block allocation is
        # locked); a differencing disk's sector bitmaps are not, so it is written in order
        self.concurrent = parent is None
        self._alloc_lock = threading.Lock()
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise from_oserror(e, path) from None
        try:
            if fixed:
                self.block_offsets[:] = (
                    np.uint64(self.payload_start)
                    + np.arange(self.nblocks, dtype=np.uint64) * np.uint64(block_size)
                )
                self.next_offset = self.payload_start + self.nblocks * block_size
            os.ftruncate(self.fd, self.next_offset)
        except OSError as e:
            os.close(self.fd)
            self.fd = -1
            try:  # we created it: leave no half-made file (a fixed disk the filesystem refuses)
                os.unlink(path)
            except OSError:
                pass
            raise from_oserror(e, path) from None

    def _alloc(self, blk: int) -> int:
        off = int(self.block_offsets[blk])
        if off:
            return off
        with self._alloc_lock:
            off = int(self.block_offsets[blk])
            if off:
                return off
            off = self.next_offset
            self.next_offset += self.block_size
            os.ftruncate(self.fd, self.next_offset)  # sparse zeros for the unwritten parts
            self.block_offsets[blk] = off
        return off

    def written(self, offset: int, length: int) -> None:
        """Start writeback of the file ranges behind a finished virtual range (asynchronous),
        so that the fsync in :meth:`finish` has little left to do."""
        bs = self.block_size
        end = min(offset + length, self.virtual_size)
        while offset < end:
            blk, within = divmod(offset, bs)
            n = min(end - offset, bs - within)
            foff = int(self.block_offsets[blk])
            if foff:
                start_writeback(self.fd, foff + within, n)
            offset += n

    def write(self, offset: int, data: bytes | memoryview) -> None:
        mv = memoryview(data).cast("B")
        if offset < 0 or offset + len(mv) > self.virtual_size:
            raise IOFailure(
                f"{self.path}: write of {len(mv)} bytes at {offset} beyond the virtual size"
            )
        bs = self.block_size
        pos = 0
        try:
            while pos < len(mv):
                cur = offset + pos
                blk, within = divmod(cur, bs)
                n = min(len(mv) - pos, bs - within)
                foff = self._alloc(blk)
                pwrite_full(self.fd, mv[pos : pos + n], foff + within)
                if self.parent is not None:
                    self._mark_sectors(cur, n)
                pos += n
        except OSError as e:
            raise from_oserror(e, self.path) from None

    def _mark_sectors(self, offset: int, n: int) -> None:
        lss = self.lss
        first, last = offset // lss, (offset + n - 1) // lss
        sectors_per_chunk = S.SECTORS_PER_BITMAP
        s = first
        while s <= last:
            chunk, within = divmod(s, sectors_per_chunk)
            e = min(last, (chunk + 1) * sectors_per_chunk - 1)
            bm = self.bitmaps.get(chunk)
            if bm is None:
                bm = self.bitmaps[chunk] = np.zeros(sectors_per_chunk, dtype=np.uint8)
            bm[within : within + (e - s) + 1] = 1
            s = e + 1

    def _bat(self) -> np.ndarray:
        bat = np.zeros(self.n_entries, dtype="<u8")
        cr = self.chunk_ratio
        idx = np.arange(self.nblocks, dtype=np.int64)
        idx = idx + idx // cr
        present = self.block_offsets != 0
        state = (
            S.PAYLOAD_BLOCK_PARTIALLY_PRESENT if self.parent is not None
            else S.PAYLOAD_BLOCK_FULLY_PRESENT
        )
        bat[idx[present]] = self.block_offsets[present] | np.uint64(state)
        if self.parent is not None:
            for chunk, bm in sorted(self.bitmaps.items()):
                off = self.next_offset
                self.next_offset += S.SECTOR_BITMAP_BLOCK_SIZE
                os.ftruncate(self.fd, self.next_offset)
                pwrite_full(self.fd, np.packbits(bm, bitorder="little").tobytes(), off)
                bat[chunk * (cr + 1) + cr] = np.uint64(off | S.SB_BLOCK_PRESENT)
        return bat

    def _metadata(self) -> bytes:
        items: list[tuple[uuid.UUID, bytes, int]] = []
        vd = S.MD_IS_VIRTUAL_DISK | S.MD_IS_REQUIRED
        fp_flags = S.FP_HAS_PARENT if self.parent is not None else 0
        if self.fixed:
            fp_flags |= S.FP_LEAVE_BLOCKS_ALLOCATED
        items.append((S.FILE_PARAMETERS_GUID, S.FILE_PARAMETERS_FMT.pack(self.block_size, fp_flags), S.MD_IS_REQUIRED))
        items.append((S.VIRTUAL_DISK_SIZE_GUID, struct.pack("<Q", self.virtual_size), vd))
        items.append((S.PAGE83_GUID, uuid.uuid4().bytes_le, vd))
        items.append((S.LOGICAL_SECTOR_SIZE_GUID, struct.pack("<I", self.lss), vd))
        items.append((S.PHYSICAL_SECTOR_SIZE_GUID, struct.pack("<I", WRITER_PHYSICAL_SECTOR), vd))
        if self.parent is not None:
            rel, dwg = self.parent
            kv = [("parent_linkage", "{" + str(dwg) + "}"), ("relative_path", rel)]
            items.append((S.PARENT_LOCATOR_GUID, pack_locator(kv), S.MD_IS_REQUIRED))
        table = bytearray(S.METADATA_TABLE_SIZE)
        S.METADATA_HEADER_FMT.pack_into(table, 0, S.METADATA_SIGNATURE, 0, len(items), bytes(20))
        body = bytearray()
        pos = S.METADATA_TABLE_SIZE
        for i, (g, data, flags) in enumerate(items):
            S.METADATA_ENTRY_FMT.pack_into(
                table, S.METADATA_HEADER_FMT.size + i * S.METADATA_ENTRY_FMT.size,
                g.bytes_le, pos + len(body), len(data), flags, 0,
            )
            body += data
            body += bytes(_round_up(len(body), 8) - len(body))
        return bytes(table) + bytes(body)

    def finish(self) -> None:
        try:
            bat = self._bat()
            pwrite_full(self.fd, bat.tobytes(), _BAT_OFFSET)
            pwrite_full(self.fd, self._metadata(), _METADATA_OFFSET)
            pwrite_full(self.fd, _file_identifier(), 0)
            rt = _region_table(self.bat_length)
            pwrite_full(self.fd, rt, S.REGION_TABLE1_OFFSET)
            pwrite_full(self.fd, rt, S.REGION_TABLE2_OFFSET)
            dwg = uuid.uuid4()
            for seq, off in ((0, S.HEADER1_OFFSET), (1, S.HEADER2_OFFSET)):
                h = S.Header(
                    S.HEADER_SIGNATURE, 0, seq, uuid.uuid4(), dwg, S.ZERO_GUID,
                    0, 1, _LOG_LENGTH, _LOG_OFFSET,
                )
                pwrite_full(self.fd, with_checksum(h.pack()), off)
            self.data_write_guid = dwg
            os.fsync(self.fd)
        except OSError as e:
            self.abort()
            raise from_oserror(e, self.path) from None
        os.close(self.fd)
        self.fd = -1

    def abort(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def pack_locator(kv: list[tuple[str, str]]) -> bytes:
    """A parent locator metadata item (2.6.2.6) holding the key/value pairs ``kv``."""
    hsz, esz = S.PARENT_LOCATOR_HEADER_FMT.size, S.PARENT_LOCATOR_ENTRY_FMT.size
    head = S.PARENT_LOCATOR_HEADER_FMT.pack(S.VHDX_PARENT_LOCATOR_TYPE.bytes_le, 0, len(kv))
    entries = bytearray()
    blob = bytearray()
    pos = hsz + esz * len(kv)
    for k, v in kv:
        kb, vb = k.encode("utf-16-le"), v.encode("utf-16-le")
        entries += S.PARENT_LOCATOR_ENTRY_FMT.pack(pos + len(blob), pos + len(blob) + len(kb), len(kb), len(vb))
        blob += kb + vb
    return head + bytes(entries) + bytes(blob)


def _file_identifier() -> bytes:
    creator = "imagestore".encode("utf-16-le")
    buf = S.FILE_ID_SIGNATURE + creator
    return buf + bytes(S.HEADER1_OFFSET - len(buf))


def _region_table(bat_length: int) -> bytes:
    buf = bytearray(S.REGION_TABLE_SIZE)
    S.REGION_TABLE_HEADER_FMT.pack_into(buf, 0, S.REGION_SIGNATURE, 0, 2, 0)
    base = S.REGION_TABLE_HEADER_FMT.size
    S.REGION_ENTRY_FMT.pack_into(buf, base, S.BAT_GUID.bytes_le, _BAT_OFFSET, bat_length, 1)
    S.REGION_ENTRY_FMT.pack_into(
        buf, base + S.REGION_ENTRY_FMT.size, S.METADATA_GUID.bytes_le,
        _METADATA_OFFSET, _METADATA_LENGTH, 1,
    )
    return with_checksum(bytes(buf))


def create_vhdx_writer(
    path: str,
    virtual_size: int,
    *,
    fixed: bool,
    block_size: int = WRITER_BLOCK_SIZE,
    logical_sector_size: int = WRITER_LOGICAL_SECTOR,
    parent: tuple[str, uuid.UUID] | None = None,
) -> VhdxWriter:
    """Create a VHDX writer after checking the 64 TiB limit (before creating any file).

    ``block_size``, ``logical_sector_size`` and ``parent`` (relative path and DataWriteGuid of
    a parent: makes a differencing disk, sectors written are marked present) exist for tests.
    """
    if virtual_size < 0:
        raise TooLarge(f"{path}: negative virtual size {virtual_size}")
    if _round_up(virtual_size, logical_sector_size) > S.MAX_VIRTUAL_SIZE:
        raise TooLarge(
            f"{path}: a VHDX disk holds at most 64 TiB; {virtual_size} bytes "
            f"({virtual_size / S.TiB:.2f} TiB) do not fit"
        )
    return VhdxWriter(
        path, virtual_size, fixed=fixed, block_size=block_size,
        logical_sector_size=logical_sector_size, parent=parent,
    )
