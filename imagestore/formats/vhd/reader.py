"""Reading VHDs: fixed, dynamic and differencing (a chain of parents found through the
parent locators). Every problem found in a file is one :class:`BadImage` line naming it."""

from __future__ import annotations

import heapq
import os
import struct
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from urllib.parse import unquote, urlparse

import numpy as np

from ...errors import BadImage, InvalidArgument, from_oserror
from ..base import DiskReader, Guarded, pause_for_tests, pread_full
from ..source import allocated_extents, close_any
from .structs import (
    BITMAP_CACHE_SECTORS,
    DISK_DIFFERENCING,
    DISK_DYNAMIC,
    DISK_FIXED,
    DISK_TYPE_NAMES,
    DYN_CHECKSUM_OFFSET,
    DYN_COOKIE,
    DYN_HEADER,
    DYN_HEADER_SIZE,
    FOOTER_COOKIE,
    LOCATOR,
    LOCATOR_COUNT,
    LOCATOR_TABLE_OFFSET,
    MAX_BLOCK_SIZE,
    MAX_LOCATOR_BYTES,
    MAX_PARENT_PATH,
    MIN_BLOCK_SIZE,
    SECTOR,
    UNALLOCATED,
    Footer,
    bitmap_bytes,
    check_size,
    parse_footer,
    vhd_checksum,
)


def open_vhd(
    path: str, fd: int, size: int, *, allow_parent_dir: str | None, depth: int,
    seen: frozenset[str],
) -> DiskReader:
    """Open a VHD of any type. The footer's disk type decides (a fixed disk whose data starts
    with "conectix" is detected as "vhd" but its trailing footer says fixed)."""
    try:
        return _open_vhd(path, fd, size, allow_parent_dir=allow_parent_dir, depth=depth,
                         seen=seen)
    except OSError as e:
        raise from_oserror(e, path) from None


def _open_vhd(path, fd, size, *, allow_parent_dir, depth, seen) -> DiskReader:
    if size < 511:
        raise BadImage(f"{path}: file of {size} bytes is too short for a VHD footer")
    footer, reason = (None, "file shorter than a footer")
    footer_len = 512
    if size >= 512:
        footer, reason = parse_footer(path, pread_full(fd, 512, size - 512, path))
    if footer is None:
        tail = pread_full(fd, 511, size - 511, path)
        if tail[:8] == FOOTER_COOKIE:  # an old 511-byte footer
            f511, r511 = parse_footer(path, tail)
            if f511 is not None:
                footer, footer_len = f511, 511
            else:
                reason = r511
    limit = size - footer_len  # where the trailing footer starts
    if footer is None or footer.disk_type not in (DISK_DYNAMIC, DISK_DIFFERENCING, DISK_FIXED):
        # spec "Dynamic Disk Header Format": the footer copy at offset 0 exists so that a
        # damaged trailing footer can be recovered; it is only present on dynamic disks.
        head, _ = parse_footer(path, pread_full(fd, 512, 0, path))
        if footer is None and head is None:
            raise BadImage(f"{path}: {reason} (and no valid footer copy at offset 0)")
        if footer is None:
            if head.disk_type not in (DISK_DYNAMIC, DISK_DIFFERENCING):
                raise BadImage(f"{path}: {reason}; the copy at offset 0 has disk type "
                               f"{head.disk_type}, not dynamic or differencing")
            footer, limit = head, size
    if footer.disk_type not in DISK_TYPE_NAMES:
        raise BadImage(f"{path}: unknown VHD disk type {footer.disk_type}")
    check_size(path, footer.current_size)
    if footer.disk_type == DISK_FIXED:
        return VhdFixedReader(path, fd, footer, limit)
    return _open_sparse(path, fd, size, footer, limit, allow_parent_dir=allow_parent_dir,
                        depth=depth, seen=seen)


class VhdFixedReader(Guarded):
    """Fixed VHD: the disk's bytes followed by the footer."""

    format = "vhd-fixed"

    def __init__(self, path: str, fd: int, footer: Footer, data_end: int) -> None:
        if footer.current_size > data_end:
            raise BadImage(f"{path}: fixed VHD of virtual size {footer.current_size} but only "
                           f"{data_end} data bytes before the footer (truncated?)")
        self.path = path
        self.fd = fd
        self.virtual_size = footer.current_size
        self.unique_id = footer.unique_id

    def extents(self) -> Iterator[tuple[int, int]]:
        # the whole disk is allocated; a sparse file's holes are skipped where they show
        return allocated_extents(self.fd, self.virtual_size, self.path)

    def read(self, offset: int, length: int) -> bytes:
        _check_range(self, offset, length)
        try:
            data = pread_full(self.fd, length, offset, self.path)
        except OSError as e:
            raise from_oserror(e, self.path) from None
        pause_for_tests()
        return data

    def close(self) -> None:
        self.fd = close_any(self.fd)


def _check_range(r, offset: int, length: int) -> None:
    if offset < 0 or length < 0 or offset + length > r.virtual_size:
        raise InvalidArgument(
            f"{r.path}: read of {length} bytes at {offset} outside the virtual size "
            f"{r.virtual_size}")


def _overlaps(a0: int, a1: int, b0: int, b1: int) -> bool:
    return a0 < b1 and b0 < a1


def _decode_locator(code: bytes, data: bytes) -> str | None:
    try:
        if code in (b"W2ku", b"W2ru"):  # spec "Parent Locator Entry": UTF-16LE paths
            return data.decode("utf-16-le").split("\0", 1)[0] or None
        if code in (b"MacX", b"Mac "):  # UTF-8 file URL (MacX); 'Mac ' aliases we cannot use
            s = data.decode("utf-8").split("\0", 1)[0]
            if s.startswith("file://"):
                return unquote(urlparse(s).path) or None
            return s if code == b"MacX" and s else None
    except UnicodeDecodeError:
        return None
    return None


def _usable_path(p: str) -> bool:
    """A locator path that the OS can be asked about (no NUL, not absurdly long)."""
    if "\0" in p or len(p) > MAX_PARENT_PATH:
        return False
    try:
        os.fsencode(p)
    except UnicodeError:
        return False
    return True


def _open_sparse(path, fd, size, footer: Footer, limit: int, *, allow_parent_dir, depth, seen):
    doff = footer.data_offset
    if doff < SECTOR or doff > limit or limit - doff < DYN_HEADER_SIZE:
        raise BadImage(f"{path}: dynamic disk header at offset {doff} lies outside the file "
                       f"(truncated file?)")
    raw = pread_full(fd, DYN_HEADER_SIZE, doff, path)
    if raw[:8] != DYN_COOKIE:
        raise BadImage(f"{path}: no dynamic disk header cookie 'cxsparse' at offset {doff}")
    if vhd_checksum(raw, DYN_CHECKSUM_OFFSET) != struct.unpack_from(">I", raw, DYN_CHECKSUM_OFFSET)[0]:
        raise BadImage(f"{path}: dynamic disk header checksum mismatch")
    (_, _, toff, _, max_entries, block_size, _, parent_uuid, _, _, pname) = DYN_HEADER.unpack_from(
        raw)
    if block_size < MIN_BLOCK_SIZE or block_size > MAX_BLOCK_SIZE or block_size & (
            block_size - 1):
        raise BadImage(f"{path}: block size {block_size} beyond the spec (a power of two from "
                       f"{MIN_BLOCK_SIZE} to {MAX_BLOCK_SIZE} bytes)")
    vsize = footer.current_size
    nblocks = -(-vsize // block_size)
    if max_entries < nblocks:
        raise BadImage(f"{path}: BAT has {max_entries} entries, fewer than the {nblocks} "
                       f"blocks of the {vsize}-byte disk")
    bat_bytes = max_entries * 4
    if toff < SECTOR or toff > limit or limit - toff < bat_bytes:
        raise BadImage(f"{path}: BAT at offset {toff} ({max_entries} entries) lies outside "
                       f"the file")
    # metadata regions that no block may overlap
    regions: list[tuple[int, int, str]] = [
        (0, SECTOR, "the footer copy"), (doff, doff + DYN_HEADER_SIZE, "the dynamic header"),
    ]
    for r0, r1, what in regions:
        if _overlaps(toff, toff + bat_bytes, r0, r1):
            raise BadImage(f"{path}: BAT at offset {toff} overlaps {what}")
    regions.append((toff, toff + max(bat_bytes, 1), "the BAT"))

    candidates: list[str] = []
    if footer.disk_type == DISK_DIFFERENCING:
        by_code: dict[bytes, list[str]] = {}
        for k in range(LOCATOR_COUNT):
            code, _space, length, _res, loff = LOCATOR.unpack_from(
                raw, LOCATOR_TABLE_OFFSET + k * LOCATOR.size)
            if code == b"\0\0\0\0" or length == 0:
                continue
            if length > MAX_LOCATOR_BYTES:
                raise BadImage(f"{path}: parent locator {k} is {length} bytes long, more "
                               f"than {MAX_LOCATOR_BYTES}")
            if loff > size or size - loff < length:
                raise BadImage(f"{path}: parent locator {k} data at offset {loff} lies "
                               f"outside the file")
            regions.append((loff, loff + length, f"parent locator {k}"))
            name = _decode_locator(code, pread_full(fd, length, loff, path))
            if name:
                by_code.setdefault(code, []).append(name)
        for code in (b"W2ru", b"W2ku", b"MacX", b"Mac "):
            candidates += by_code.get(code, [])
        try:
            uname = pname.decode("utf-16-be").split("\0", 1)[0]
        except UnicodeDecodeError:
            uname = ""
        if uname:
            candidates.append(uname)
        candidates = [c for c in dict.fromkeys(candidates) if _usable_path(c)]

    bat = _load_bat(path, fd, toff, nblocks, block_size, vsize, limit, regions)
    reader = VhdSparseReader(path, fd, footer, block_size, bat)
    if footer.disk_type == DISK_DIFFERENCING:
        from .. import open_parent

        if not candidates:
            raise BadImage(f"{path}: differencing VHD without any usable parent locator or name")
        parent = open_parent(path, candidates, allow_parent_dir=allow_parent_dir, depth=depth,
                             seen=seen)
        try:
            if not parent.format.startswith("vhd-"):
                raise BadImage(f"{path}: parent {parent.path} is a {parent.format} image, "
                               f"not a VHD")
            if parent.virtual_size != vsize:
                raise BadImage(f"{path}: parent {parent.path} has virtual size "
                               f"{parent.virtual_size}, the child {vsize}")
            if getattr(parent, "unique_id", parent_uuid) != parent_uuid:
                raise BadImage(
                    f"{path}: parent UUID mismatch: the header names "
                    f"{uuid.UUID(bytes=parent_uuid)}, {parent.path} is "
                    f"{uuid.UUID(bytes=parent.unique_id)}")
        except BaseException:
            parent.close()
            raise
        reader.parent = parent
    return reader


def _load_bat(path, fd, toff, nblocks, block_size, vsize, limit, regions) -> np.ndarray:
    """Read and check the BAT; return byte offsets of each block's bitmap (-1: unallocated)."""
    raw = pread_full(fd, nblocks * 4, toff, path)
    bat = np.frombuffer(raw, dtype=">u4").astype(np.int64)
    alloc = np.flatnonzero(bat != UNALLOCATED)
    if alloc.size:
        bm = bitmap_bytes(block_size)
        offs = bat[alloc] * SECTOR
        ends = offs + bm + np.minimum(block_size, vsize - alloc * block_size)
        bad = np.flatnonzero(ends > limit)
        if bad.size:
            i = int(alloc[bad[0]])
            raise BadImage(f"{path}: BAT entry {i} points outside the file (offset "
                           f"{int(offs[bad[0]])})")
        for r0, r1, what in regions:
            bad = np.flatnonzero((offs < r1) & (ends > r0))
            if bad.size:
                i = int(alloc[bad[0]])
                raise BadImage(f"{path}: BAT entry {i} points into {what} (offset "
                               f"{int(offs[bad[0]])})")
        order = np.argsort(offs, kind="stable")
        so, se = offs[order], ends[order]
        bad = np.flatnonzero(so[1:] < se[:-1])
        if bad.size:
            a, b = sorted((int(alloc[order[bad[0]]]), int(alloc[order[bad[0] + 1]])))
            raise BadImage(f"{path}: BAT entries {a} and {b} point at overlapping blocks")
    out = np.full(nblocks, -1, dtype=np.int64)
    out[alloc] = bat[alloc] * SECTOR
    return out


class VhdSparseReader(Guarded):
    """Dynamic or differencing VHD."""

    def __init__(self, path: str, fd: int, footer: Footer, block_size: int,
                 bat: np.ndarray) -> None:
        self.path = path
        self.fd = fd
        self.format = DISK_TYPE_NAMES[footer.disk_type]
        self.virtual_size = footer.current_size
        self.unique_id = footer.unique_id
        self.block_size = block_size
        self.bitmap_size = bitmap_bytes(block_size)
        self.bat = bat  # byte offset of each block's bitmap, -1 when unallocated
        self.parent: DiskReader | None = None
        self._bitmaps: OrderedDict[int, np.ndarray] = OrderedDict()

    # ---- helpers
    def _bitmap(self, blk: int) -> np.ndarray:
        """Per-sector allocation (bool array) of an allocated block of a differencing disk."""
        bm = self._bitmaps.get(blk)
        if bm is not None:
            self._bitmaps.move_to_end(blk)
            return bm
        nsec = self.block_size // SECTOR
        raw = pread_full(self.fd, self.bitmap_size, int(self.bat[blk]), self.path)
        bm = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="big")[:nsec].astype(
            bool)
        self._bitmaps[blk] = bm
        if len(self._bitmaps) > max(4, BITMAP_CACHE_SECTORS // nsec):
            self._bitmaps.popitem(last=False)
        return bm

    @staticmethod
    def _runs(bits: np.ndarray) -> Iterator[tuple[int, int, bool]]:
        """(start, end, value) runs of a bool array."""
        if bits.size == 0:
            return
        change = np.flatnonzero(bits[1:] != bits[:-1]) + 1
        starts = np.concatenate(([0], change))
        ends = np.concatenate((change, [bits.size]))
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            yield s, e, bool(bits[s])

    # ---- DiskReader
    def extents(self) -> Iterator[tuple[int, int]]:
        try:
            if self.parent is None:
                yield from self._own_extents()
                return
            merged = heapq.merge(self._own_extents(), self.parent.extents())
            cur: list[int] | None = None
            for off, n in merged:
                if cur is not None and off <= cur[1]:
                    cur[1] = max(cur[1], off + n)
                    continue
                if cur is not None:
                    yield (cur[0], cur[1] - cur[0])
                cur = [off, off + n]
            if cur is not None:
                yield (cur[0], cur[1] - cur[0])
        except OSError as e:
            raise from_oserror(e, self.path) from None

    def _own_extents(self) -> Iterator[tuple[int, int]]:
        bs, vsize = self.block_size, self.virtual_size
        alloc = np.flatnonzero(self.bat >= 0)
        if self.parent is None:  # runs of consecutive allocated blocks, whole blocks
            if alloc.size == 0:
                return
            brk = np.flatnonzero(np.diff(alloc) != 1) + 1
            starts = alloc[np.concatenate(([0], brk))].tolist()
            lasts = alloc[np.concatenate((brk - 1, [alloc.size - 1]))].tolist()
            for a, b in zip(starts, lasts, strict=True):
                yield (a * bs, min((b + 1) * bs, vsize) - a * bs)
            return
        cur: list[int] | None = None
        for blk in alloc.tolist():
            base = blk * bs
            pieces = [(base + s * SECTOR, min(base + e * SECTOR, vsize))
                      for s, e, v in self._runs(self._bitmap(blk)) if v]
            for s, e in pieces:
                if s >= e:
                    continue
                if cur is not None and s <= cur[1]:
                    cur[1] = max(cur[1], e)
                else:
                    if cur is not None:
                        yield (cur[0], cur[1] - cur[0])
                    cur = [s, e]
        if cur is not None:
            yield (cur[0], cur[1] - cur[0])

    def read(self, offset: int, length: int) -> bytes:
        _check_range(self, offset, length)
        try:
            data = self._read(offset, length)
        except OSError as e:
            raise from_oserror(e, self.path) from None
        pause_for_tests()
        return data

    def _read(self, offset: int, length: int) -> bytes:
        bs = self.block_size
        out = bytearray(length)
        pos, end = offset, offset + length
        while pos < end:
            blk, bo = divmod(pos, bs)
            n = min(bs - bo, end - pos)
            dst = pos - offset
            boff = int(self.bat[blk])
            if boff < 0:
                if self.parent is not None:
                    out[dst : dst + n] = self.parent.read(pos, n)
            elif self.parent is None:
                if n == length:
                    return pread_full(self.fd, n, boff + self.bitmap_size + bo, self.path)
                out[dst : dst + n] = pread_full(self.fd, n, boff + self.bitmap_size + bo, self.path)
            else:
                s0, s1 = bo // SECTOR, -(-(bo + n) // SECTOR)
                bits = self._bitmap(blk)[s0:s1]
                if bits.all():
                    out[dst : dst + n] = pread_full(self.fd, n, boff + self.bitmap_size + bo, self.path)
                elif not bits.any():
                    out[dst : dst + n] = self.parent.read(pos, n)
                else:
                    out[dst : dst + n] = pread_full(self.fd, n, boff + self.bitmap_size + bo, self.path)
                    for s, e, v in self._runs(bits):
                        if v:
                            continue
                        a = max((s0 + s) * SECTOR, bo)
                        b = min((s0 + e) * SECTOR, bo + n)
                        out[dst + a - bo : dst + b - bo] = self.parent.read(blk * bs + a, b - a)
            pos += n
        return bytes(out)

    def close(self) -> None:
        if self.parent is not None:
            self.parent.close()
            self.parent = None
        self.fd = close_any(self.fd)


