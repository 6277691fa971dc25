"""qcow2 reader (versions 2 and 3; qemu's ``docs/interop/qcow2.txt``).

The header and its extensions are checked first, against the file's size, before any table
is read (:mod:`.structs`); then the L1 and every L2 table are read once and checked
(:mod:`.tables`; extended L2 entries are read per subcluster). What is refused, with one
:class:`BadImage` line each: encryption (AES or LUKS), external data files, images flagged
*corrupt* by qemu, unknown incompatible features, cluster sizes outside 512 B - 2 MiB (16 KiB
- 2 MiB with extended L2), L1 tables above qemu's 32 MiB limit, refcount tables above its 8 MiB limit, tables or clusters outside the
file or overlapping other metadata. Refcounts are never read (reading needs only the L1/L2
mapping), so the *dirty* bit (refcounts possibly stale after a crash) is harmless and
accepted. Internal snapshots are ignored: the active state is the disk.

A backing file is opened with the same parent sandbox as VHD/VHDX differencing disks
(:func:`imagestore.formats.open_parent`); its format is the backing-format extension's when
it names one ("raw" is then read as raw, never probed), else detected. A backing file
smaller than the overlay reads as zeros past its end; a larger one is cut at the overlay's
size.
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Iterator

import numpy as np

from ...errors import BadImage, ImagestoreError, from_oserror
from ..base import DiskReader, Guarded, coalesce, pause_for_tests, pread_full
from . import structs as S
from .compressed import decompress, descriptor
from .tables import COMPRESSED, DATA, UNALLOCATED, ZERO, Mapping


class Qcow2Reader(Guarded):
    """A parsed, validated qcow2 file; use :func:`open_qcow2`."""

    def __init__(self, path: str, fd: int, size: int) -> None:
        self.path = path
        self.fd = fd
        self.file_size = size
        self.parent: DiskReader | None = None
        self.format = "qcow2"
        self.virtual_size = 0
        self.header: S.Header | None = None
        self.backing_file = ""
        self.backing_format = ""
        self.mapping: Mapping | None = None
        self._last_comp: tuple[int, bytes] | None = None
        self._comp_lock = threading.Lock()

    def _bad(self, reason: str) -> BadImage:
        return BadImage(f"{self.path}: {reason}")

    def _pread(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.file_size:
            raise self._bad(f"structure at offset {offset} (length {length}) lies outside the "
                            f"file ({self.file_size} bytes)")
        try:
            return pread_full(self.fd, length, offset, self.path)
        except OSError as e:
            raise from_oserror(e, self.path) from None

    # -- parsing ---------------------------------------------------------------------------
    def parse(self) -> None:
        head = self._pread(0, min(self.file_size, 1 << S.MAX_CLUSTER_BITS))
        try:
            h = S.parse_header(head)
        except ValueError as e:
            raise self._bad(str(e)) from None
        if h.version not in (2, 3):
            raise self._bad(f"unsupported qcow2 version {h.version} (2 and 3 are supported)")
        if not S.MIN_CLUSTER_BITS <= h.cluster_bits <= S.MAX_CLUSTER_BITS:
            raise self._bad(f"cluster_bits {h.cluster_bits} out of range (9 to 21: 512 bytes "
                            f"to 2 MiB clusters)")
        cs = h.cluster_size
        if h.crypt_method:
            what = {1: "AES", 2: "LUKS"}.get(h.crypt_method, f"method {h.crypt_method}")
            raise self._bad(f"encrypted qcow2 ({what}) is not supported; decrypt it first "
                            f"(qemu-img convert with --object secret,... --image-opts)")
        self._check_features(h)
        if h.size > S.MAX_VIRTUAL_SIZE:
            raise self._bad(f"virtual size {h.size} is too large")
        if h.l1_size * 8 > S.MAX_L1_BYTES:
            raise self._bad(f"l1_size {h.l1_size} is too large (an L1 table holds at most "
                            f"{S.MAX_L1_BYTES // 8} entries)")
        if h.refcount_table_clusters * cs > S.MAX_REFTABLE_BYTES:
            raise self._bad(f"refcount table of {h.refcount_table_clusters} clusters is too "
                            f"large (at most {S.MAX_REFTABLE_BYTES >> 20} MiB)")
        if h.refcount_table_offset % cs or (
                h.refcount_table_offset + h.refcount_table_clusters * cs > self.file_size):
            raise self._bad(f"refcount table (offset {h.refcount_table_offset}, "
                            f"{h.refcount_table_clusters} clusters) is not cluster aligned or "
                            f"lies past the end of the file")
        if h.nb_snapshots > 65536:
            raise self._bad(f"{h.nb_snapshots} internal snapshots (at most 65536)")
        # header extensions run from the header's end to the backing file name (or the end
        # of the first cluster)
        ext_end = min(cs, len(head))
        if h.backing_file_offset:
            ext_end = min(ext_end, h.backing_file_offset)
        try:
            h.extensions = S.parse_extensions(head, h.header_length, ext_end)
        except ValueError as e:
            raise self._bad(str(e)) from None
        if S.EXT_CRYPTO in h.extensions:
            raise self._bad("encrypted qcow2 (a full disk encryption header) is not supported")
        if h.backing_file_offset:
            if h.backing_file_size == 0 or h.backing_file_size > S.MAX_BACKING_NAME:
                raise self._bad(f"backing file name length {h.backing_file_size} is out of "
                                f"range (1 to {S.MAX_BACKING_NAME})")
            end = h.backing_file_offset + h.backing_file_size
            if end > cs or end > self.file_size or h.backing_file_offset < h.header_length:
                raise self._bad(f"backing file name (offset {h.backing_file_offset}, "
                                f"{h.backing_file_size} bytes) lies outside the header cluster")
            raw = head[h.backing_file_offset : end]
            try:
                self.backing_file = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise self._bad("backing file name is not valid UTF-8") from None
            if "\0" in self.backing_file:
                raise self._bad("backing file name contains a NUL character")
            fmt = h.extensions.get(S.EXT_BACKING_FORMAT, b"").split(b"\0", 1)[0]
            self.backing_format = fmt.decode("ascii", "replace")
        self.header = h
        self.virtual_size = h.size
        self.mapping = Mapping(self.path, h, self.file_size, self._pread)
        self.mapping.load()

    def _check_features(self, h: S.Header) -> None:
        unknown = h.incompatible & ~S.INCOMPAT_KNOWN
        if unknown:
            bits = ", ".join(str(b) for b in range(64) if unknown >> b & 1)
            raise self._bad(f"unknown incompatible qcow2 feature bit(s) {bits}: not supported")
        if h.incompatible & S.INCOMPAT_CORRUPT:
            raise self._bad("qemu flagged this image as corrupt (incompatible feature bit 1); "
                            "check and repair it with `qemu-img check -r all` first")
        if h.incompatible & S.INCOMPAT_DATA_FILE:
            raise self._bad("qcow2 with an external data file is not supported; convert it "
                            "first (`qemu-img convert -O qcow2`)")
        if h.incompatible & S.INCOMPAT_EXTL2 and h.cluster_bits < 14:
            raise self._bad(f"extended L2 entries need clusters of at least 16 KiB (cluster_bits "
                            f"{h.cluster_bits})")
        if h.version == 3 and h.refcount_order > 6:
            raise self._bad(f"refcount_order {h.refcount_order} out of range (0 to 6)")
        if h.compression_type not in S.COMPRESSION_NAMES:
            raise self._bad(f"unknown compression type {h.compression_type}")
        if h.compression_type != S.COMPRESSION_ZLIB and not (
                h.incompatible & S.INCOMPAT_COMPRESSION):
            raise self._bad("compression type is set but its incompatible feature bit is not")

    # -- backing ---------------------------------------------------------------------------
    def open_backing(self, allow_parent_dir: str | None, depth: int,
                     seen: frozenset[str]) -> None:
        from .. import open_parent

        fmt = self.backing_format
        if fmt and fmt not in ("raw", "qcow2", "vpc", "vhdx"):
            raise self._bad(f"backing file format '{fmt}' is not supported (raw, qcow2, vpc "
                            f"or vhdx)")
        parent = open_parent(self.path, [self.backing_file], allow_parent_dir=allow_parent_dir,
                             depth=depth, seen=seen,
                             source_format="raw" if fmt == "raw" else "auto")
        self.parent = parent
        want = {"qcow2": "qcow2", "vpc": "vhd", "vhdx": "vhdx"}.get(fmt)
        if want and not parent.format.startswith(want):
            raise self._bad(f"backing file {parent.path} is a {parent.format} image, the "
                            f"header says {fmt}")

    # -- DiskReader ------------------------------------------------------------------------
    def extents(self) -> Iterator[tuple[int, int]]:
        m = self.mapping
        assert m is not None
        cs, vs = m.unit, self.virtual_size
        own: list[tuple[int, int]] = []
        holes: list[tuple[int, int]] = []
        for a, b, cls in m.runs:
            lo, hi = a * cs, min(b * cs, vs)
            if hi <= lo:
                continue
            if cls in (DATA, COMPRESSED):
                own.append((lo, hi - lo))
            elif cls == UNALLOCATED:
                holes.append((lo, hi))
        if self.parent is not None and holes:
            pvs = self.parent.virtual_size
            pe = [(o, min(o + n, pvs, vs)) for o, n in self.parent.extents() if o < min(pvs, vs)]
            j = 0
            for lo, hi in holes:  # both sorted: intersect
                while j < len(pe) and pe[j][1] <= lo:
                    j += 1
                k = j
                while k < len(pe) and pe[k][0] < hi:
                    a, b = max(lo, pe[k][0]), min(hi, pe[k][1])
                    if b > a:
                        own.append((a, b - a))
                    k += 1
        yield from coalesce(own)

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.virtual_size:
            raise self._bad(f"read of {length} bytes at {offset} beyond the virtual size "
                            f"{self.virtual_size}")
        m = self.mapping
        assert m is not None
        cs, per, sub = m.unit, m.units_per_table, m.sub
        parts: list[bytes] = []
        pos, end = offset, offset + length
        while pos < end:
            first = pos // cs
            last = (end - 1) // cs
            count = min(last - first + 1, per - first % per)
            cls, host, raw = m.entries(first, count)
            # runs of one class (data: contiguous in the file)
            brk = cls[1:] != cls[:-1]
            if count > 1:
                d = (cls[1:] == DATA) & (host[1:] != host[:-1] + np.uint64(cs))
                cl = np.arange(first, first + count) // sub  # a compressed run: one cluster
                brk = brk | d | ((cls[1:] == COMPRESSED) & (cl[1:] != cl[:-1]))
            edges = [0, *(np.flatnonzero(brk) + 1).tolist(), count]
            for a, b in zip(edges[:-1], edges[1:], strict=True):
                c = int(cls[a])
                lo = max(pos, (first + a) * cs)
                hi = min(end, (first + b) * cs)
                if c == DATA:
                    hoff = int(host[a]) + lo - (first + a) * cs
                    parts.append(self._data(hoff, hi - lo))
                elif c == COMPRESSED:
                    cluster = (first + a) // sub
                    data = self._compressed(int(raw[a]), cluster)
                    base = cluster * m.csize
                    parts.append(data[lo - base : hi - base])
                elif c == UNALLOCATED and self.parent is not None:
                    parts.append(self._parent_read(lo, hi - lo))
                else:  # ZERO, or unallocated without a backing file
                    parts.append(bytes(hi - lo))
            pos = min(end, (first + count) * cs)
        pause_for_tests()
        return b"".join(parts)

    def _data(self, hoff: int, n: int) -> bytes:
        # a data cluster starts inside the file (checked); its tail may lie past the end
        # (a file qemu did not extend to the full cluster): zeros there, as qemu reads it
        have = max(0, min(n, self.file_size - hoff))
        try:
            data = pread_full(self.fd, have, hoff, self.path) if have else b""
        except OSError as e:
            raise from_oserror(e, self.path) from None
        return data if have == n else data + bytes(n - have)

    def _compressed(self, entry: int, cluster: int) -> bytes:
        with self._comp_lock:
            last = self._last_comp
        if last is not None and last[0] == cluster:
            return last[1]
        h = self.header
        assert h is not None
        off, n = descriptor(entry, h.cluster_bits)
        n = min(n, self.file_size - off)
        data = pread_full(self.fd, n, off, self.path)
        out = decompress(data, h.cluster_size, h.compression_type,
                         f"{self.path}: compressed guest cluster {cluster}")
        with self._comp_lock:
            self._last_comp = (cluster, out)
        return out

    def _parent_read(self, off: int, n: int) -> bytes:
        assert self.parent is not None
        pvs = self.parent.virtual_size
        if off >= pvs:
            return bytes(n)
        have = min(n, pvs - off)
        data = self.parent.read(off, have)
        return data if have == n else data + bytes(n - have)

    def close(self) -> None:
        if self.parent is not None:
            self.parent.close()
            self.parent = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def open_qcow2(
    path: str,
    fd: int,
    size: int,
    *,
    allow_parent_dir: str | None = None,
    depth: int = 0,
    seen: frozenset[str] = frozenset(),
) -> Qcow2Reader:
    """Parse and validate a qcow2 file (identified by its magic) and open its backing
    chain."""
    r = Qcow2Reader(path, fd, size)
    try:
        try:
            r.parse()
        except ImagestoreError:
            raise
        except (struct.error, IndexError, ValueError, OverflowError, MemoryError) as e:
            raise BadImage(f"{path}: malformed qcow2 ({type(e).__name__})") from None
        if r.backing_file:
            r.format = "qcow2-differencing"
            r.open_backing(allow_parent_dir, depth, seen)
    except BaseException:
        if r.parent is not None:
            r.parent.close()
        raise
    return r


__all__ = ["COMPRESSED", "DATA", "UNALLOCATED", "ZERO", "Qcow2Reader", "open_qcow2"]
