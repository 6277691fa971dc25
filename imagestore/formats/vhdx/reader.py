"""VHDX reader (MS-VHDX v1.0).

Both headers and both region tables are checked with CRC-32C; the metadata items and the BAT
are validated against the file size before anything is read or allocated, so that a hostile
file yields one ``BadImage`` line and never another exception. The BAT is read once into a
numpy array; extents are found with numpy, never by looping over every entry. A dirty log is
replayed in memory first (:mod:`.log`).
"""

from __future__ import annotations

import bisect
import struct
import uuid
from collections.abc import Iterator

import numpy as np

from ...errors import BadImage, ImagestoreError, from_oserror
from ..base import DiskReader, Guarded, coalesce, pause_for_tests, pread_full
from ..source import close_any
from . import structs as S
from .crc32c import checksum_ok
from .log import replay


class VhdxReader(Guarded):
    """A parsed, validated VHDX file. Use :func:`open_vhdx`."""

    def __init__(self, path: str, fd: int, size: int) -> None:
        self.path = path
        self.fd = fd
        self.file_size = size  # may grow: a log can extend the file (LastFileOffset)
        self.real_size = size  # the file's size when opened; beyond it, reads are zeros
        self.parent: DiskReader | None = None
        self._bitmap_cache: dict[int, np.ndarray] = {}
        self.format = "vhdx-dynamic"
        self.virtual_size = 0
        self.logical_sector_size = 512
        self.physical_sector_size = 512
        self.block_size = 0
        self.chunk_ratio = 1
        self.has_parent = False
        self.leave_blocks_allocated = False
        self.page83: uuid.UUID | None = None
        self.parent_locator: dict[str, str] = {}
        self.header: S.Header | None = None
        self._overlay: dict[int, bytes] = {}  # in-memory log replay: file offset -> 4 KiB
        self._overlay_keys: list[int] = []
        self.log_replayed = 0  # number of log entries replayed in memory

    # -- helpers ---------------------------------------------------------------------------
    def _bad(self, reason: str) -> BadImage:
        return BadImage(f"{self.path}: {reason}")

    def _pread(self, length: int, offset: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.file_size:
            raise self._bad(
                f"structure at offset {offset} (length {length}) lies outside the file "
                f"({self.file_size} bytes)"
            )
        return self._file_read(offset, length)

    # -- parsing ---------------------------------------------------------------------------
    def parse(self) -> None:
        if self.file_size < S.HEADER_SECTION_SIZE:
            raise self._bad(
                f"file too small for a VHDX header section ({self.file_size} bytes, need "
                f"at least {S.HEADER_SECTION_SIZE}); truncated?"
            )
        self._parse_headers()
        self._check_log()  # 2.3: before anything else is read, the log may update it
        self._parse_regions()
        self._parse_metadata()
        self._read_bat()

    def _parse_headers(self) -> None:
        # 2.2.2: both headers are checked; the valid one with the higher sequence number wins.
        best: S.Header | None = None
        for off in (S.HEADER1_OFFSET, S.HEADER2_OFFSET):
            buf = self._pread(S.HEADER_SIZE, off)
            if buf[:4] != S.HEADER_SIGNATURE or not checksum_ok(buf):
                continue
            h = S.Header.unpack(buf)
            if best is None or h.sequence_number > best.sequence_number:
                best = h
        if best is None:
            raise self._bad("neither VHDX header is valid (bad signature or CRC-32C checksum)")
        if best.version != 1:
            raise self._bad(f"unsupported VHDX header version {best.version} (expected 1)")
        if best.log_version != 0:
            raise self._bad(f"unsupported VHDX log version {best.log_version} (expected 0)")
        self.header = best

    def _parse_regions(self) -> None:
        table: bytes | None = None
        for off in (S.REGION_TABLE1_OFFSET, S.REGION_TABLE2_OFFSET):
            buf = self._pread(S.REGION_TABLE_SIZE, off)
            if buf[:4] == S.REGION_SIGNATURE and checksum_ok(buf):
                table = buf
                break
        if table is None:
            raise self._bad(
                "neither region table is valid (bad signature or CRC-32C checksum)"
            )
        _sig, _crc, count, _res = S.REGION_TABLE_HEADER_FMT.unpack_from(table, 0)
        if count > S.REGION_MAX_ENTRIES:
            raise self._bad(f"region table has {count} entries (at most 2047 allowed)")
        regions: dict[uuid.UUID, S.RegionEntry] = {}
        for i in range(count):
            g, foff, length, flags = S.REGION_ENTRY_FMT.unpack_from(
                table, S.REGION_TABLE_HEADER_FMT.size + i * S.REGION_ENTRY_FMT.size
            )
            entry = S.RegionEntry(S.guid_from_le(g), foff, length, bool(flags & S.REGION_REQUIRED))
            if entry.guid in regions:
                raise self._bad(f"region {entry.guid} listed twice in the region table")
            if entry.guid not in (S.BAT_GUID, S.METADATA_GUID):
                if entry.required:
                    raise self._bad(
                        f"unknown required region {entry.guid}: this VHDX needs a feature "
                        f"that is not supported"
                    )
                continue
            name = "BAT" if entry.guid == S.BAT_GUID else "metadata"
            # 2.2.3.2: offsets and lengths are multiples of 1 MiB, past the header section.
            if foff % S.MiB or length % S.MiB or foff < S.HEADER_SECTION_SIZE or length == 0:
                raise self._bad(
                    f"{name} region at offset {foff} length {length} is not 1 MiB aligned "
                    f"or overlaps the header section"
                )
            if foff + length > self.file_size:
                raise self._bad(
                    f"{name} region (offset {foff}, length {length}) lies outside the file "
                    f"({self.file_size} bytes)"
                )
            regions[entry.guid] = entry
        if S.BAT_GUID not in regions:
            raise self._bad("region table has no BAT region")
        if S.METADATA_GUID not in regions:
            raise self._bad("region table has no metadata region")
        self.bat_region = regions[S.BAT_GUID]
        self.meta_region = regions[S.METADATA_GUID]
        b, m = self.bat_region, self.meta_region
        if b.file_offset < m.file_offset + m.length and m.file_offset < b.file_offset + b.length:
            raise self._bad("BAT region and metadata region overlap")
        h = self.header
        assert h is not None
        for r, name in ((b, "BAT"), (m, "metadata")):
            if h.log_length and r.file_offset < h.log_offset + h.log_length and (
                h.log_offset < r.file_offset + r.length
            ):
                raise self._bad(f"{name} region overlaps the log")

    def _check_log(self) -> None:
        """2.3: replay the log's active sequence *in memory* (an overlay of 4 KiB sectors
        consulted by every later read); the user's file is never written."""
        h = self.header
        assert h is not None
        if h.log_guid == S.ZERO_GUID or h.log_length == 0:
            return  # 2.2.2: a zero LogGuid means the log is empty; nothing to replay.
        if h.log_offset % S.MiB or h.log_length % S.MiB or h.log_offset < S.HEADER_SECTION_SIZE:
            raise self._bad("log region is not 1 MiB aligned or overlaps the header section")
        if h.log_offset + h.log_length > self.file_size:
            raise self._bad(
                f"log region (offset {h.log_offset}, length {h.log_length}) lies outside the "
                f"file ({self.file_size} bytes)"
            )
        done = replay(
            self._pread(h.log_length, h.log_offset), h.log_guid, self.file_size, self._bad
        )
        if not done.entries:
            return
        self.file_size = done.file_size
        self._overlay = done.overlay
        self._overlay_keys = sorted(done.overlay)
        self.log_replayed = done.entries

    def _parse_metadata(self) -> None:
        m = self.meta_region
        if m.length < S.METADATA_TABLE_SIZE:
            raise self._bad("metadata region smaller than its 64 KiB table")
        table = self._pread(S.METADATA_TABLE_SIZE, m.file_offset)
        sig, _r, count, _r2 = S.METADATA_HEADER_FMT.unpack_from(table, 0)
        if sig != S.METADATA_SIGNATURE:
            raise self._bad("metadata table signature is not 'metadata'")
        if count > S.METADATA_MAX_ENTRIES:
            raise self._bad(f"metadata table has {count} entries (at most 2047 allowed)")
        items: dict[uuid.UUID, bytes] = {}
        for i in range(count):
            g, off, length, flags, _res = S.METADATA_ENTRY_FMT.unpack_from(
                table, S.METADATA_HEADER_FMT.size + i * S.METADATA_ENTRY_FMT.size
            )
            e = S.MetadataEntry(S.guid_from_le(g), off, length, flags)
            if e.item_id in items:
                raise self._bad(f"metadata item {e.item_id} listed twice")
            known = e.item_id in (
                S.FILE_PARAMETERS_GUID, S.VIRTUAL_DISK_SIZE_GUID, S.PAGE83_GUID,
                S.LOGICAL_SECTOR_SIZE_GUID, S.PHYSICAL_SECTOR_SIZE_GUID, S.PARENT_LOCATOR_GUID,
            )
            if not known:
                if e.required:
                    raise self._bad(
                        f"unknown required metadata item {e.item_id}: not supported"
                    )
                continue
            # 2.6.1.2: items lie inside the region, after the 64 KiB table (length 0: empty).
            if length == 0:
                items[e.item_id] = b""
                continue
            if off < S.METADATA_TABLE_SIZE or off + length > m.length:
                raise self._bad(
                    f"metadata item {e.item_id} (offset {off}, length {length}) lies outside "
                    f"the metadata region ({m.length} bytes)"
                )
            items[e.item_id] = self._pread(length, m.file_offset + off)

        def need(g: uuid.UUID, name: str, size: int) -> bytes:
            v = items.get(g)
            if v is None:
                raise self._bad(f"metadata item '{name}' is missing")
            if len(v) < size:
                raise self._bad(f"metadata item '{name}' is too short ({len(v)} bytes)")
            return v

        bs, flags = S.FILE_PARAMETERS_FMT.unpack_from(
            need(S.FILE_PARAMETERS_GUID, "file parameters", 8), 0
        )
        # 2.6.2.1: BlockSize is a power of two between 1 MiB and 256 MiB.
        if bs < S.MIN_BLOCK_SIZE or bs > S.MAX_BLOCK_SIZE or bs & (bs - 1):
            raise self._bad(
                f"block size {bs} is not a power of two between 1 MiB and 256 MiB"
            )
        self.block_size = bs
        self.leave_blocks_allocated = bool(flags & S.FP_LEAVE_BLOCKS_ALLOCATED)
        self.has_parent = bool(flags & S.FP_HAS_PARENT)
        (vsize,) = struct.unpack_from("<Q", need(S.VIRTUAL_DISK_SIZE_GUID, "virtual disk size", 8))
        (lss,) = struct.unpack_from(
            "<I", need(S.LOGICAL_SECTOR_SIZE_GUID, "logical sector size", 4)
        )
        if lss not in S.LOGICAL_SECTOR_SIZES:
            raise self._bad(f"logical sector size {lss} is not 512 or 4096")
        if vsize > S.MAX_VIRTUAL_SIZE:
            raise self._bad(f"virtual disk size {vsize} exceeds the VHDX maximum of 64 TiB")
        if vsize % lss:
            raise self._bad(
                f"virtual disk size {vsize} is not a multiple of the logical sector size {lss}"
            )
        self.virtual_size = vsize
        self.logical_sector_size = lss
        pss_raw = items.get(S.PHYSICAL_SECTOR_SIZE_GUID)
        if pss_raw is not None and len(pss_raw) >= 4:
            (pss,) = struct.unpack_from("<I", pss_raw)
            if pss not in S.PHYSICAL_SECTOR_SIZES:
                raise self._bad(f"physical sector size {pss} is not 512 or 4096")
            self.physical_sector_size = pss
        p83 = items.get(S.PAGE83_GUID)
        if p83 is not None and len(p83) >= 16:
            self.page83 = S.guid_from_le(p83[:16])
        self.chunk_ratio = S.chunk_ratio(lss, bs)
        if self.has_parent:
            raw = items.get(S.PARENT_LOCATOR_GUID)
            if raw is None:
                raise self._bad("differencing disk without a parent locator metadata item")
            self.parent_locator = self._parse_locator(raw)

    def _parse_locator(self, raw: bytes) -> dict[str, str]:
        # 2.6.2.6: header, then key/value entries whose offsets are relative to the item.
        hsz = S.PARENT_LOCATOR_HEADER_FMT.size
        esz = S.PARENT_LOCATOR_ENTRY_FMT.size
        if len(raw) < hsz:
            raise self._bad("parent locator too short")
        ltype, _res, n = S.PARENT_LOCATOR_HEADER_FMT.unpack_from(raw, 0)
        if S.guid_from_le(ltype) != S.VHDX_PARENT_LOCATOR_TYPE:
            raise self._bad(f"unsupported parent locator type {S.guid_from_le(ltype)}")
        if hsz + n * esz > len(raw):
            raise self._bad(f"parent locator lists {n} entries but is only {len(raw)} bytes")
        out: dict[str, str] = {}
        for i in range(n):
            ko, vo, kl, vl = S.PARENT_LOCATOR_ENTRY_FMT.unpack_from(raw, hsz + i * esz)
            if ko + kl > len(raw) or vo + vl > len(raw) or kl == 0:
                raise self._bad("parent locator entry lies outside the locator item")
            try:
                k = raw[ko : ko + kl].decode("utf-16-le")
                v = raw[vo : vo + vl].decode("utf-16-le")
            except UnicodeDecodeError:
                raise self._bad("parent locator entry is not valid UTF-16") from None
            if "\0" in k or "\0" in v:
                raise self._bad("parent locator entry contains a NUL character")
            out[k] = v
        return out

    def _read_bat(self) -> None:
        b = self.bat_region
        n = S.bat_entry_count(self.virtual_size, self.block_size, self.chunk_ratio, self.has_parent)
        if n * 8 > b.length:
            raise self._bad(
                f"BAT region ({b.length} bytes) too small for {n} entries"
            )
        raw = self._pread(n * 8, b.file_offset)  # region is inside the file (checked)
        bat = np.frombuffer(raw, dtype="<u8")
        cr = self.chunk_ratio
        nblocks = -(-self.virtual_size // self.block_size)
        # payload entries: every (cr+1)-th entry is a sector bitmap entry (2.5).
        pad = (-n) % (cr + 1)
        full = np.concatenate([bat, np.zeros(pad, dtype="<u8")]) if pad else bat
        grid = full.reshape(-1, cr + 1)
        self.payload = np.ascontiguousarray(grid[:, :cr]).reshape(-1)[:nblocks]
        self.bitmaps = grid[:, cr] if self.has_parent else np.zeros(0, dtype="<u8")
        self.states = (self.payload & S.BAT_STATE_MASK).astype(np.uint8)
        self.offsets = (self.payload >> S.BAT_OFFSET_SHIFT) << S.BAT_OFFSET_SHIFT
        bad_state = ~np.isin(self.states, (0, 1, 2, 3, 6, 7))
        if bad_state.any():
            i = int(np.flatnonzero(bad_state)[0])
            raise self._bad(f"BAT entry for block {i} has invalid state {int(self.states[i])}")
        if not self.has_parent and (self.states == S.PAYLOAD_BLOCK_PARTIALLY_PRESENT).any():
            i = int(np.flatnonzero(self.states == S.PAYLOAD_BLOCK_PARTIALLY_PRESENT)[0])
            raise self._bad(f"block {i} is partially present in a disk without a parent")
        present = np.flatnonzero(self.states >= S.PAYLOAD_BLOCK_FULLY_PRESENT)
        offs = self.offsets[present]
        lens = np.full(len(present), self.block_size, dtype=np.uint64)
        sb_idx = np.zeros(0, dtype=np.int64)
        if self.has_parent:
            sb_states = self.bitmaps & S.BAT_STATE_MASK
            if ((sb_states != S.SB_BLOCK_NOT_PRESENT) & (sb_states != S.SB_BLOCK_PRESENT)).any():
                raise self._bad("sector bitmap BAT entry has an invalid state")
            sb_idx = np.flatnonzero(sb_states == S.SB_BLOCK_PRESENT)
            sb_offs = (self.bitmaps[sb_idx] >> S.BAT_OFFSET_SHIFT) << S.BAT_OFFSET_SHIFT
            offs = np.concatenate([offs, sb_offs])
            lens = np.concatenate(
                [lens, np.full(len(sb_idx), S.SECTOR_BITMAP_BLOCK_SIZE, dtype=np.uint64)]
            )
        # first in-file (so that offset + length cannot wrap), then overlaps; the last block
        # may be partial: only the bytes the disk uses must be in the file
        self._check_in_file(present, sb_idx)
        self._validate_blocks(present, offs, lens)

    def _check_in_file(self, present: np.ndarray, sb_idx: np.ndarray) -> None:
        if len(present):
            bs = self.block_size
            used = np.minimum(
                np.uint64(bs),
                np.uint64(self.virtual_size) - present.astype(np.uint64) * np.uint64(bs),
            )
            end = self.offsets[present] + used
            out = (self.offsets[present] >= np.uint64(self.file_size)) | (
                end > np.uint64(self.file_size)
            )
            if out.any():
                i = int(present[np.flatnonzero(out)[0]])
                raise self._bad(
                    f"BAT entry for block {i} points outside the file (offset "
                    f"{int(self.offsets[i])}, file is {self.file_size} bytes)"
                )
        if len(sb_idx):
            sb_offs = (self.bitmaps[sb_idx] >> S.BAT_OFFSET_SHIFT) << S.BAT_OFFSET_SHIFT
            fs = np.uint64(self.file_size)
            if ((sb_offs >= fs) | (sb_offs + np.uint64(S.SECTOR_BITMAP_BLOCK_SIZE) > fs)).any():
                raise self._bad("sector bitmap BAT entry points outside the file")

    def _validate_blocks(self, present: np.ndarray, offs: np.ndarray, lens: np.ndarray) -> None:
        if not len(offs):
            return
        h = self.header
        assert h is not None
        reserved = [
            (0, S.HEADER_SECTION_SIZE, "the header section"),
            (self.meta_region.file_offset, self.meta_region.length, "the metadata region"),
            (self.bat_region.file_offset, self.bat_region.length, "the BAT region"),
        ]
        if h.log_length:
            reserved.append((h.log_offset, h.log_length, "the log"))
        ends = offs + lens
        for start, length, name in reserved:
            hit = (offs < np.uint64(start + length)) & (ends > np.uint64(start))
            if hit.any():
                j = int(np.flatnonzero(hit)[0])
                what = (
                    f"BAT entry for block {int(present[j])}"
                    if j < len(present) else "sector bitmap BAT entry"
                )
                raise self._bad(f"{what} points into {name} (offset {int(offs[j])})")
        order = np.argsort(offs, kind="stable")
        so, se = offs[order], ends[order]
        clash = so[1:] < se[:-1]
        if clash.any():
            j = int(np.flatnonzero(clash)[0])
            raise self._bad(
                f"two BAT entries overlap (blocks at file offsets {int(so[j])} and "
                f"{int(so[j + 1])})"
            )

    # -- differencing ----------------------------------------------------------------------
    def open_parent(self, allow_parent_dir: str | None, depth: int, seen: frozenset[str]) -> None:
        from .. import open_parent

        loc = self.parent_locator
        cands = [loc.get(k, "") for k in ("relative_path", "absolute_win32_path", "volume_path")]
        # 2.6.2.6.3: volume_path is "\\?\Volume{GUID}\dir\file.vhdx", meaningless here: try
        # its file name next to the child (open_parent does the same for drive-letter paths)
        if cands[2].startswith(("\\\\?\\", "//?/")):
            cands[2] = cands[2].replace("\\", "/").rsplit("/", 1)[-1]
        if not any(cands):
            raise self._bad("parent locator has no relative_path, absolute_win32_path or volume_path")
        parent = open_parent(
            self.path, cands, allow_parent_dir=allow_parent_dir, depth=depth, seen=seen
        )
        self.parent = parent
        if parent.virtual_size != self.virtual_size:
            raise self._bad(
                f"parent {parent.path} has virtual size {parent.virtual_size}, child has "
                f"{self.virtual_size}"
            )
        link = loc.get("parent_linkage")
        if isinstance(parent, VhdxReader) and parent.header is not None:
            dwg = parent.header.data_write_guid
            links = [x for x in (link, loc.get("parent_linkage2")) if x]
            ok = False
            for x in links:
                try:
                    ok = ok or uuid.UUID(x.strip().strip("{}")) == dwg
                except ValueError:
                    pass
            if not ok:
                raise self._bad(
                    f"parent_linkage {link!r} does not match the DataWriteGuid {{{dwg}}} of "
                    f"parent {parent.path} (the parent was modified after the child was made)"
                )

    def _bitmap(self, chunk: int) -> np.ndarray:
        """The sector bitmap of ``chunk`` as a numpy bool array (one entry per sector)."""
        got = self._bitmap_cache.get(chunk)
        if got is not None:
            return got
        e = int(self.bitmaps[chunk]) if chunk < len(self.bitmaps) else 0
        if e & S.BAT_STATE_MASK != S.SB_BLOCK_PRESENT:
            raise self._bad(
                f"chunk {chunk} has partially present blocks but no sector bitmap block"
            )
        off = (e >> S.BAT_OFFSET_SHIFT) << S.BAT_OFFSET_SHIFT
        raw = np.frombuffer(self._pread(S.SECTOR_BITMAP_BLOCK_SIZE, off), dtype=np.uint8)
        # 2.5.1.2 / libvhdi: bit i (LSB first within each byte) describes sector i of the chunk
        bits = np.unpackbits(raw, bitorder="little").astype(bool)
        if len(self._bitmap_cache) >= 4:
            self._bitmap_cache.pop(next(iter(self._bitmap_cache)))
        self._bitmap_cache[chunk] = bits
        return bits

    def _block_sector_runs(self, block: int) -> list[tuple[int, int, bool]]:
        """(start, end, present) byte ranges within a partially present block."""
        lss = self.logical_sector_size
        spb = self.block_size // lss
        chunk, within = divmod(block, self.chunk_ratio)
        bits = self._bitmap(chunk)[within * spb : (within + 1) * spb]
        edges = np.flatnonzero(np.diff(bits.astype(np.int8))) + 1
        starts = np.concatenate([[0], edges])
        ends = np.concatenate([edges, [spb]])
        return [(int(s) * lss, int(e) * lss, bool(bits[s])) for s, e in zip(starts, ends, strict=True)]

    # -- DiskReader ------------------------------------------------------------------------
    def _own_extents(self) -> list[tuple[int, int]]:
        bs = self.block_size
        st = self.states
        full = np.flatnonzero(st == S.PAYLOAD_BLOCK_FULLY_PRESENT)
        out: list[tuple[int, int]] = []
        if len(full):
            # merge runs of consecutive blocks with numpy
            brk = np.flatnonzero(np.diff(full) != 1) + 1
            starts = np.concatenate([full[:1], full[brk]])
            ends = np.concatenate([full[brk - 1], full[-1:]]) + 1
            for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
                a, b = s * bs, min(e * bs, self.virtual_size)
                if b > a:
                    out.append((a, b - a))
        if self.has_parent:
            for blk in np.flatnonzero(st == S.PAYLOAD_BLOCK_PARTIALLY_PRESENT).tolist():
                base = blk * bs
                for s, e, p in self._block_sector_runs(blk):
                    if p:
                        a, b = base + s, min(base + e, self.virtual_size)
                        if b > a:
                            out.append((a, b - a))
        return out

    def extents(self) -> Iterator[tuple[int, int]]:
        own = self._own_extents()
        if self.parent is not None:
            own = own + list(self.parent.extents())
        yield from coalesce(own)

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.virtual_size:
            raise self._bad(
                f"read of {length} bytes at {offset} beyond the virtual size {self.virtual_size}"
            )
        bs = self.block_size
        parts: list[bytes] = []
        pos, end = offset, offset + length
        while pos < end:
            blk = pos // bs
            bstart = blk * bs
            n = min(end, bstart + bs) - pos
            state = int(self.states[blk])
            foff = int(self.offsets[blk])
            if state == S.PAYLOAD_BLOCK_FULLY_PRESENT:
                parts.append(self._file_read(foff + pos - bstart, n))
            elif state == S.PAYLOAD_BLOCK_PARTIALLY_PRESENT:
                for s, e, present in self._block_sector_runs(blk):
                    a, b = max(bstart + s, pos), min(bstart + e, pos + n)
                    if a >= b:
                        continue
                    if present:
                        parts.append(self._file_read(foff + a - bstart, b - a))
                    else:
                        parts.append(self._parent_read(a, b - a))
            elif state == S.PAYLOAD_BLOCK_NOT_PRESENT and self.has_parent:
                parts.append(self._parent_read(pos, n))
            else:  # NOT_PRESENT (no parent), UNDEFINED, ZERO, UNMAPPED: zeros (2.5.1.1)
                parts.append(bytes(n))
            pos += n
        pause_for_tests()
        return b"".join(parts)

    def _file_read(self, off: int, n: int) -> bytes:
        have = max(0, min(n, self.real_size - off))
        try:
            data = pread_full(self.fd, have, off, self.path) if have else b""
            if have < n:  # the part of a log-extended file that does not exist yet
                data += bytes(n - have)
        except OSError as e:
            raise from_oserror(e, self.path) from None
        if not self._overlay_keys:
            return data
        # apply the in-memory log replay (4 KiB sectors) to the bytes read
        keys = self._overlay_keys
        i = bisect.bisect_right(keys, off - 4096)
        if i >= len(keys) or keys[i] >= off + n:
            return data
        buf = bytearray(data)
        while i < len(keys) and keys[i] < off + n:
            k = keys[i]
            sec = self._overlay[k]
            a, b = max(k, off), min(k + 4096, off + n)
            buf[a - off : b - off] = sec[a - k : b - k]
            i += 1
        return bytes(buf)

    def _parent_read(self, off: int, n: int) -> bytes:
        if self.parent is None:
            return bytes(n)
        return self.parent.read(off, n)

    def close(self) -> None:
        if self.parent is not None:
            self.parent.close()
            self.parent = None
        self.fd = close_any(self.fd)


def open_vhdx(
    path: str,
    fd: int,
    size: int,
    *,
    allow_parent_dir: str | None = None,
    depth: int = 0,
    seen: frozenset[str] = frozenset(),
) -> VhdxReader:
    """Parse and validate a VHDX file (already identified by its "vhdxfile" signature)."""
    r = VhdxReader(path, fd, size)
    try:
        try:
            r.parse()
        except ImagestoreError:
            raise
        except (struct.error, IndexError, ValueError, OverflowError, MemoryError) as e:
            raise BadImage(f"{path}: malformed VHDX ({type(e).__name__})") from None
        if r.has_parent:
            r.format = "vhdx-differencing"
            r.open_parent(allow_parent_dir, depth, seen)
        elif r.leave_blocks_allocated:  # 2.6.2.1: set by fixed disks (qemu, Hyper-V)
            r.format = "vhdx-fixed"
        else:
            r.format = "vhdx-dynamic"
    except BaseException:
        # open_disk closes fd on error; close only the parent here
        if r.parent is not None:
            r.parent.close()
        raise
    return r
