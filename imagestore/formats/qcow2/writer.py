"""qcow2 writer: version 3 (compat=1.1), 64 KiB clusters, 16-bit refcounts.

Layout: cluster 0 the header (with the backing-format extension and the backing file name
when the image is an overlay), then the L1 table, then L2 tables and data clusters in the
order the writes allocate them (writes come in increasing offset order, so each L2 table is
complete when the next one starts and only one is kept in memory), then at :meth:`finish` the
refcount blocks and the refcount table: every cluster of the file is used exactly once, so
every refcount is 1 and `qemu-img check` finds no leak. Unwritten parts of a data cluster are
sparse zeros (the file is grown with ftruncate), holes have no cluster at all.

An overlay (``backing``) that is never written is the O(1) linked clone: header, L1 table
and refcounts only (256 KiB for any disk up to 2 TiB).
"""

from __future__ import annotations

import os
import struct

import numpy as np

from ...errors import IOFailure, TooLarge, from_oserror
from ..base import pwrite_full
from . import structs as S

CLUSTER_BITS = 16
CLUSTER = 1 << CLUSTER_BITS
L2_ENTRIES = CLUSTER // 8
REFCOUNT_ORDER = 4  # 16-bit refcounts
REFS_PER_BLOCK = CLUSTER * 8 // (1 << REFCOUNT_ORDER)
HEADER_LENGTH = 112
#: the largest disk the writer makes: qemu's 32 MiB L1 limit with 64 KiB clusters
MAX_VIRTUAL_SIZE = (S.MAX_L1_BYTES // 8) * L2_ENTRIES * CLUSTER


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


class Qcow2Writer:
    """A qcow2 being written; use :func:`create_qcow2_writer`."""

    def __init__(self, path: str, virtual_size: int, *,
                 backing: tuple[str, str] | None = None) -> None:
        self.path = path
        self.virtual_size = _round_up(virtual_size, 512)
        self.backing = backing  # (file name as written in the header, its format)
        self.nclusters = -(-self.virtual_size // CLUSTER)
        self.l1_size = max(1, -(-self.nclusters // L2_ENTRIES))
        self.l1_offset = CLUSTER
        self.l1 = np.zeros(self.l1_size, dtype=np.uint64)
        self.next_cluster = 1 + -(-self.l1_size * 8 // CLUSTER)
        self._l2_index = -1
        self._l2 = np.zeros(L2_ENTRIES, dtype=np.uint64)
        self.data_write_guid = None
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise from_oserror(e, path) from None
        try:
            os.ftruncate(self.fd, self.next_cluster * CLUSTER)
        except OSError as e:
            self.abort()
            raise from_oserror(e, path) from None

    def _alloc(self) -> int:
        off = self.next_cluster * CLUSTER
        self.next_cluster += 1
        os.ftruncate(self.fd, self.next_cluster * CLUSTER)
        return off

    def _flush_l2(self) -> None:
        if self._l2_index >= 0:
            off = int(self.l1[self._l2_index]) & S.L1E_OFFSET_MASK
            pwrite_full(self.fd, self._l2.astype(">u8").tobytes(), off)

    def _l2_for(self, index: int) -> np.ndarray:
        if index != self._l2_index:
            if index < self._l2_index:
                raise IOFailure(f"{self.path}: qcow2 writes must come in increasing order")
            self._flush_l2()
            self._l2_index = index
            self._l2 = np.zeros(L2_ENTRIES, dtype=np.uint64)
            self.l1[index] = np.uint64(self._alloc() | S.OFLAG_COPIED)
        return self._l2

    def write(self, offset: int, data: bytes | memoryview) -> None:
        mv = memoryview(data).cast("B")
        if offset < 0 or offset + len(mv) > self.virtual_size:
            raise IOFailure(f"{self.path}: write of {len(mv)} bytes at {offset} beyond the "
                            f"virtual size")
        pos = 0
        try:
            while pos < len(mv):
                cur = offset + pos
                cl, within = divmod(cur, CLUSTER)
                n = min(len(mv) - pos, CLUSTER - within)
                l2 = self._l2_for(cl // L2_ENTRIES)
                e = int(l2[cl % L2_ENTRIES])
                if not e:
                    e = self._alloc() | S.OFLAG_COPIED
                    l2[cl % L2_ENTRIES] = np.uint64(e)
                pwrite_full(self.fd, mv[pos : pos + n], (e & S.L2E_OFFSET_MASK) + within)
                pos += n
        except OSError as e:
            raise from_oserror(e, self.path) from None

    def _refcounts(self) -> tuple[int, int]:
        """Append refcount blocks and the table covering every cluster (themselves
        included); returns (table offset, table clusters)."""
        used = self.next_cluster
        blocks = table = 0
        while True:  # blocks and table must cover the clusters they add
            total = used + blocks + table
            nb = -(-total // REFS_PER_BLOCK)
            nt = -(-nb * 8 // CLUSTER)
            if (nb, nt) == (blocks, table):
                break
            blocks, table = nb, nt
        total = used + blocks + table
        block_offs = []
        first_block = used
        for b in range(blocks):
            refs = np.zeros(REFS_PER_BLOCK, dtype=">u2")
            lo = b * REFS_PER_BLOCK
            refs[: max(0, min(REFS_PER_BLOCK, total - lo))] = 1
            off = (first_block + b) * CLUSTER
            block_offs.append(off)
            pwrite_full(self.fd, refs.tobytes(), off)
        table_off = (first_block + blocks) * CLUSTER
        tbl = np.zeros(table * CLUSTER // 8, dtype=">u8")
        tbl[:blocks] = block_offs
        pwrite_full(self.fd, tbl.tobytes(), table_off)
        self.next_cluster = total
        os.ftruncate(self.fd, total * CLUSTER)
        return table_off, table

    def _header(self, rt_off: int, rt_clusters: int) -> bytes:
        bname = b""
        ext = b""
        if self.backing is not None:
            bname = self.backing[0].encode("utf-8")
            fmt = self.backing[1].encode("ascii")
            ext = struct.pack(">II", S.EXT_BACKING_FORMAT, len(fmt)) + fmt
            ext += bytes(_round_up(len(ext), 8) - len(ext))
        ext += struct.pack(">II", S.EXT_END, 0)
        bfo = HEADER_LENGTH + len(ext) if bname else 0
        head = S.V2_HEADER.pack(
            S.MAGIC, 3, bfo, len(bname), CLUSTER_BITS, self.virtual_size, 0, self.l1_size,
            self.l1_offset, rt_off, rt_clusters, 0, 0)
        head += S.V3_EXTRA.pack(0, 0, 0, REFCOUNT_ORDER, HEADER_LENGTH)
        head += bytes(HEADER_LENGTH - len(head))  # compression_type 0 (zlib) and padding
        return head + ext + bname

    def finish(self) -> None:
        try:
            self._flush_l2()
            pwrite_full(self.fd, self.l1.astype(">u8").tobytes(), self.l1_offset)
            rt_off, rt_clusters = self._refcounts()
            pwrite_full(self.fd, self._header(rt_off, rt_clusters), 0)
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


def create_qcow2_writer(path: str, virtual_size: int, *,
                        backing: tuple[str, str] | None = None) -> Qcow2Writer:
    """Create a qcow2 writer after checking the size limit (before creating any file).
    ``backing``: (backing file name as the header records it, its format, "raw" or
    "qcow2") makes an overlay whose unwritten clusters read from the backing file."""
    if virtual_size < 0:
        raise TooLarge(f"{path}: negative virtual size {virtual_size}")
    if _round_up(virtual_size, 512) > MAX_VIRTUAL_SIZE:
        raise TooLarge(f"{path}: the qcow2 writer makes disks of at most "
                       f"{MAX_VIRTUAL_SIZE >> 40} TiB; {virtual_size} bytes do not fit")
    if backing is not None and len(backing[0].encode("utf-8")) > S.MAX_BACKING_NAME:
        raise TooLarge(f"{path}: backing file name longer than {S.MAX_BACKING_NAME} bytes")
    return Qcow2Writer(path, virtual_size, backing=backing)
