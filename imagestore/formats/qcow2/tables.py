"""qcow2 cluster mapping ("Cluster mapping"): the L1 table, the L2 tables it points to, and
the class of every guest cluster.

An L2 entry is one of four kinds: *data* (bits 9-55: the host cluster), *compressed*
(bit 62; a byte offset and a sector count, see :mod:`.compressed`), *zero* (bit 0, version 3:
reads as zeros, the backing file is not consulted, with or without a host cluster) or
*unallocated* (0: the backing file's bytes, or zeros without one). L1 entries are L2 table
offsets (bits 9-55) or 0 (the whole range unallocated).

:class:`Mapping` reads and checks every L2 table once when the image is opened: tables and
data clusters must lie in the file, be cluster aligned, and not overlap the header, the L1
table, the refcount table, another L2 table or another data cluster. It keeps the
*runs* (guest cluster ranges of one class), from which the extents come, so holes cost no
I/O; reads fetch L2 tables again through a bounded cache.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from ...errors import BadImage
from .structs import L1E_OFFSET_MASK, L2E_OFFSET_MASK, OFLAG_COMPRESSED, OFLAG_ZERO, Header

UNALLOCATED, DATA, COMPRESSED, ZERO = 0, 1, 2, 3
SUBCLUSTERS = 32
CLASS_NAMES = ("unallocated", "data", "compressed", "zero")

#: L2 tables kept in memory for reads, in bytes
L2_CACHE_BYTES = 32 << 20


def classify(l2: np.ndarray, cluster_bits: int, zero_flag: bool = True,
             ) -> tuple[np.ndarray, np.ndarray]:
    """(class per entry, host offset per entry: the cluster for data, the byte offset for
    compressed, 0 otherwise) of the big-endian L2 entries ``l2`` (as uint64). ``zero_flag``:
    bit 0 means "reads as zeros" (it is reserved with extended L2 entries)."""
    comp = (l2 & np.uint64(OFLAG_COMPRESSED)) != 0
    off = l2 & np.uint64(L2E_OFFSET_MASK)
    zero = ~comp & ((l2 & np.uint64(OFLAG_ZERO)) != 0) & zero_flag
    cls = np.full(len(l2), UNALLOCATED, dtype=np.uint8)
    cls[~comp & ~zero & (off != 0)] = DATA
    cls[zero] = ZERO
    cls[comp] = COMPRESSED
    host = np.where(cls == DATA, off, np.uint64(0))
    if comp.any():
        shift = 62 - (cluster_bits - 8)
        host = np.where(comp, l2 & np.uint64((1 << shift) - 1), host)
    return cls, host


class Mapping:
    """The validated L1/L2 mapping of one qcow2 file (see the module docstring)."""

    def __init__(self, path: str, h: Header, file_size: int,
                 pread: Callable[[int, int], bytes]) -> None:
        self.path = path
        self.h = h
        self.file_size = file_size
        self._pread = pread
        self.cbits = h.cluster_bits
        self.csize = h.cluster_size
        #: extended L2 entries ("Extended L2 Entries"): 16 bytes, 32 subclusters per cluster
        #: with an allocation and a zero bitmap; the mapping's unit is then the subcluster
        self.ext = h.extended_l2
        self.sub = SUBCLUSTERS if self.ext else 1
        self.unit = self.csize // self.sub
        self.l2_entries = self.csize // (16 if self.ext else 8)
        self.units_per_table = self.l2_entries * self.sub
        self.nclusters = -(-h.size // self.csize)
        self.nunits = -(-h.size // self.unit)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_max = max(4, L2_CACHE_BYTES // self.csize)
        self._lock = threading.Lock()
        #: guest unit (cluster, or subcluster) runs (start, end, class), sorted, covering
        #: [0, nunits)
        self.runs: list[tuple[int, int, int]] = []
        self.l1 = np.zeros(0, dtype=np.uint64)

    def _bad(self, reason: str) -> BadImage:
        return BadImage(f"{self.path}: {reason}")

    # -- loading and validation ------------------------------------------------------------
    def load(self) -> None:
        h, cs = self.h, self.csize
        needed = -(-self.nclusters // self.l2_entries)
        if h.l1_size < needed:
            raise self._bad(f"L1 table too small: l1_size {h.l1_size}, a {h.size}-byte disk "
                            f"with {cs}-byte clusters needs {needed}")
        if h.l1_table_offset % cs:
            raise self._bad(f"L1 table offset {h.l1_table_offset} is not cluster aligned")
        if h.l1_table_offset + h.l1_size * 8 > self.file_size:
            raise self._bad(f"L1 table (offset {h.l1_table_offset}, {h.l1_size} entries) lies "
                            f"past the end of the file ({self.file_size} bytes)")
        raw = self._pread(h.l1_table_offset, needed * 8) if needed else b""
        l1 = np.frombuffer(raw, dtype=">u8").astype(np.uint64)
        l2_offs = l1 & np.uint64(L1E_OFFSET_MASK)
        # metadata clusters (header, L1 table, refcount table), then the L2 tables
        meta = [np.array([0], dtype=np.uint64)]
        meta.append(self._cluster_span(h.l1_table_offset, h.l1_size * 8))
        if h.refcount_table_clusters:
            meta.append(self._cluster_span(h.refcount_table_offset,
                                           h.refcount_table_clusters * cs))
        present = np.flatnonzero(l2_offs)
        tbl = l2_offs[present]
        bad = np.flatnonzero(tbl % np.uint64(cs))
        if len(bad):
            i = int(present[bad[0]])
            raise self._bad(f"L1 entry {i}: L2 table offset {int(tbl[bad[0]])} is not cluster "
                            f"aligned")
        bad = np.flatnonzero(tbl + np.uint64(cs) > np.uint64(self.file_size))
        if len(bad):
            i = int(present[bad[0]])
            raise self._bad(f"L1 entry {i}: L2 table at offset {int(tbl[bad[0]])} lies past "
                            f"the end of the file ({self.file_size} bytes)")
        meta_idx = np.concatenate(meta)
        tbl_idx = tbl >> np.uint64(self.cbits)
        self._no_overlap(tbl_idx, meta_idx, "an L2 table")
        if len(np.unique(tbl_idx)) != len(tbl_idx):
            raise self._bad("two L1 entries point to the same L2 table")
        meta_idx = np.concatenate([meta_idx, tbl_idx])
        self.l1 = l2_offs
        self._scan(meta_idx)

    def _cluster_span(self, offset: int, length: int) -> np.ndarray:
        first = offset >> self.cbits
        last = (offset + max(length, 1) - 1) >> self.cbits
        return np.arange(first, last + 1, dtype=np.uint64)

    def _no_overlap(self, idx: np.ndarray, meta_idx: np.ndarray, what: str) -> None:
        hit = np.isin(idx, meta_idx)
        if hit.any():
            c = int(idx[np.flatnonzero(hit)[0]])
            raise self._bad(f"{what} at offset {c << self.cbits} overlaps the image's "
                            f"metadata (header, L1, refcount or L2 tables)")

    def _scan(self, meta_idx: np.ndarray) -> None:
        """Read every L2 table once: validate its entries and build the runs."""
        cs, fs = self.csize, self.file_size
        runs: list[tuple[int, int, int]] = []
        data_idx: list[np.ndarray] = []
        comp_ranges: list[tuple[np.ndarray, np.ndarray]] = []

        def add(start: int, end: int, cls: int) -> None:
            if runs and runs[-1][2] == cls and runs[-1][1] == start:
                runs[-1] = (runs[-1][0], end, cls)
            else:
                runs.append((start, end, cls))

        for i in range(len(self.l1)):
            base = i * self.l2_entries
            n = min(self.l2_entries, self.nclusters - base)
            ubase = i * self.units_per_table
            nu = min(self.units_per_table, self.nunits - ubase)
            if not int(self.l1[i]):
                add(ubase, ubase + nu, UNALLOCATED)
                continue
            std, bm = self._split(self.table(i))
            std = std[:n]
            cls, host = classify(std, self.cbits, zero_flag=not self.ext)
            d = np.flatnonzero(cls == DATA)
            if len(d):
                offs = host[d]
                bad = np.flatnonzero(offs % np.uint64(cs))
                if len(bad):
                    raise self._bad(f"L2 entry for guest cluster {base + int(d[bad[0]])}: host "
                                    f"offset {int(offs[bad[0]])} is not cluster aligned")
                bad = np.flatnonzero(offs >= np.uint64(fs))
                if len(bad):
                    raise self._bad(f"L2 entry for guest cluster {base + int(d[bad[0]])} points "
                                    f"past the end of the file (offset {int(offs[bad[0]])}, "
                                    f"file is {fs} bytes)")
                data_idx.append(offs >> np.uint64(self.cbits))
            c = np.flatnonzero(cls == COMPRESSED)
            if len(c):
                starts = host[c]
                bad = np.flatnonzero(starts >= np.uint64(fs))
                if len(bad):
                    raise self._bad(f"L2 entry for compressed guest cluster "
                                    f"{base + int(c[bad[0]])} points past the end of the "
                                    f"file (offset {int(starts[bad[0]])})")
                shift = 62 - (self.cbits - 8)
                raw = std[c]
                sectors = ((raw >> np.uint64(shift)) & np.uint64((1 << (self.cbits - 8)) - 1)
                           ) + np.uint64(1)
                lens = sectors * np.uint64(512) - (starts & np.uint64(511))
                ends = np.minimum(starts + lens, np.uint64(fs))
                comp_ranges.append((starts, ends))
            if self.ext:
                assert bm is not None
                cls, _h, _r = self._expand(cls, host, std, bm[:n], base)
                cls = cls[:nu]
            edges = np.flatnonzero(cls[1:] != cls[:-1]) + 1
            bounds = np.concatenate([[0], edges, [nu]]).tolist()
            for a, b in zip(bounds[:-1], bounds[1:], strict=True):
                add(ubase + a, ubase + b, int(cls[a]))
        if len(self.l1) * self.l2_entries < self.nclusters:  # cannot happen: l1 checked
            raise self._bad("L1 table does not cover the disk")
        if data_idx:
            allidx = np.concatenate(data_idx)
            self._no_overlap(allidx, meta_idx, "a data cluster")
            if len(np.unique(allidx)) != len(allidx):
                raise self._bad("two guest clusters map to the same host cluster (a "
                                "hostile or damaged image)")
        if comp_ranges:
            starts = np.concatenate([s for s, _ in comp_ranges])
            ends = np.concatenate([e for _, e in comp_ranges])
            first = starts >> np.uint64(self.cbits)
            last = (np.maximum(ends, starts + np.uint64(1)) - np.uint64(1)) >> np.uint64(self.cbits)
            for col in (first, last):
                self._no_overlap(col, meta_idx, "a compressed cluster")
        self.runs = runs

    # -- lookups ---------------------------------------------------------------------------
    def table(self, i: int) -> np.ndarray:
        """L2 table ``i`` (of L1 entry ``i``, which must be non-zero) as uint64 entries."""
        with self._lock:
            t = self._cache.get(i)
            if t is not None:
                self._cache.move_to_end(i)
                return t
        raw = self._pread(int(self.l1[i]), self.csize)
        t = np.frombuffer(raw, dtype=">u8").astype(np.uint64)
        with self._lock:
            self._cache[i] = t
            while len(self._cache) > self._cache_max:
                self._cache.popitem(last=False)
        return t

    def _split(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(standard entries, subcluster bitmaps or None) of a raw L2 table."""
        return (t[0::2], t[1::2]) if self.ext else (t, None)

    def _expand(self, cls: np.ndarray, host: np.ndarray, std: np.ndarray, bm: np.ndarray,
                base: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-subcluster (class, host offset, raw standard entry) of extended L2 entries:
        bit k of the bitmap: subcluster k is allocated (in the host cluster), bit 32+k: it
        reads as zeros, neither: unallocated (the backing file). Compressed clusters ignore
        the bitmap. Both bits, or an allocated subcluster without a host cluster, is refused
        (qemu calls such an image corrupt)."""
        k = np.arange(SUBCLUSTERS, dtype=np.uint64)
        alloc = ((bm[:, None] >> k) & np.uint64(1)).astype(bool)
        zero = ((bm[:, None] >> (k + np.uint64(32))) & np.uint64(1)).astype(bool)
        comp = cls == COMPRESSED
        both = (alloc & zero)[~comp]
        if both.any():
            c = base + int(np.flatnonzero(~comp)[np.flatnonzero(both.any(axis=1))[0]])
            raise self._bad(f"L2 entry for guest cluster {c}: a subcluster is both allocated "
                            f"and zero")
        orphan = alloc[(cls != DATA) & ~comp]
        if orphan.any():
            c = base + int(np.flatnonzero((cls != DATA) & ~comp)[
                np.flatnonzero(orphan.any(axis=1))[0]])
            raise self._bad(f"L2 entry for guest cluster {c}: subclusters allocated without a "
                            f"host cluster")
        ucls = np.full(alloc.shape, UNALLOCATED, dtype=np.uint8)
        ucls[zero] = ZERO
        ucls[alloc] = DATA
        ucls[comp, :] = COMPRESSED
        uhost = np.where(ucls == DATA, host[:, None] + k * np.uint64(self.unit), np.uint64(0))
        uhost[comp, :] = host[comp, None]
        return ucls.reshape(-1), uhost.reshape(-1), np.repeat(std, SUBCLUSTERS)

    def entries(self, first: int, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(class, host offset, raw standard entry) of guest units (clusters, or subclusters
        with extended L2) ``first .. first+count-1``, which lie within one L2 table."""
        i, within = divmod(first, self.units_per_table)
        if not int(self.l1[i]):
            z = np.zeros(count, dtype=np.uint64)
            return np.zeros(count, dtype=np.uint8), z, z
        std, bm = self._split(self.table(i))
        if not self.ext:
            raw = std[within : within + count]
            cls, host = classify(raw, self.cbits)
            return cls, host, raw
        c0, c1 = within // self.sub, (within + count - 1) // self.sub + 1
        assert bm is not None
        cls, host = classify(std[c0:c1], self.cbits, zero_flag=False)
        ucls, uhost, uraw = self._expand(cls, host, std[c0:c1], bm[c0:c1],
                                         i * self.l2_entries + c0)
        a = within - c0 * self.sub
        return ucls[a : a + count], uhost[a : a + count], uraw[a : a + count]
