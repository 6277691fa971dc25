"""Pack files: append-only files of chunk records.

Record layout (little-endian)::

    32-byte header: magic b"ISC1", u8 flags (bit 0: zstd, bit 1: lz4 block, bit 2: hot --
                    gc re-encodes it with the store's cold codec), 3 bytes zero,
                    u32 raw length,
                    u32 stored length, 16-byte chunk id
    stored-length bytes of data (zstd frame, or the raw bytes)

The header repeats the chunk id so that a pack can be checked and the index rebuilt without
the index. A pack is written by one process only (its name is random and created with
O_EXCL), is fsynced before any index row points into it, and is never modified afterwards;
gc replaces whole packs.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import struct
import threading

import lz4.block
import xxhash
import zstandard

from ..errors import IntegrityError, from_oserror
from ..fsutil import pwrite_all, start_writeback
from .domains import id_matches

REC = struct.Struct("<4sB3xII16s")
REC_MAGIC = b"ISC1"
#: a padding record: header only meaningful field is the stored length of the gap it covers
PAD_MAGIC = b"ISPD"
#: uncompressed payloads at least this large start on a 4 KiB boundary of the pack file, so a
#: disk file can share (reflink) their blocks instead of copying them
ALIGN_MIN = 64 * 1024
ALIGN = 4096
FLAG_ZSTD = 1
#: an lz4 block (no frame, no size prefix: the header's raw length is the decoded size)
FLAG_LZ4 = 2
#: the payload is compressed by one of the codecs (so it cannot be shared block by block)
FLAG_COMPRESSED = FLAG_ZSTD | FLAG_LZ4
#: written by a capture into a store with a cold codec ("capture hot, store cold"):
#: ``store gc`` re-encodes the record with it (and clears the bit)
FLAG_HOT = 4
PACK_MAX = 1 << 30  # roll over to a new pack after 1 GiB
#: a PackWriter starts the writeback of what it wrote every this many bytes, so the fsync
#: before its rows are published has little left to wait for
WRITEBACK_EVERY = 8 << 20


def new_pack_name() -> str:
    return f"pack-{secrets.token_hex(10)}.pack"


class PackWriter:
    """Appends records to a fresh pack file. Not thread-safe: one writer thread."""

    def __init__(self, packs_dir: str) -> None:
        self.dir = packs_dir
        self.name = new_pack_name()
        self.path = os.path.join(packs_dir, self.name)
        try:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise from_oserror(e, self.path) from None
        self.size = 0
        self.flushed_to = 0  # bytes whose writeback has been started

    def append(self, cid: bytes, raw_len: int, payload: bytes, flags: int) -> int:
        """Append one record; returns its offset.

        An uncompressed payload of ALIGN_MIN bytes or more is placed on a 4 KiB boundary; the
        gap before it is a padding record (``ISPD`` header, then a hole), so a pack stays a
        sequence of self-describing records.
        """
        off = self.size
        if not flags & FLAG_COMPRESSED and len(payload) >= ALIGN_MIN:
            gap = (-(off + REC.size)) % ALIGN
            if gap:
                if gap < REC.size:
                    gap += ALIGN
                pad = REC.pack(PAD_MAGIC, 0, 0, gap - REC.size, bytes(16))
                try:
                    pwrite_all(self.fd, [pad], off)
                except OSError as e:
                    raise from_oserror(e, self.path) from None
                off += gap
        hdr = REC.pack(REC_MAGIC, flags, raw_len, len(payload), cid)
        try:
            # a short write (the disk filled up part-way) is finished or raises ENOSPC: a
            # record the index will point at is never torn
            pwrite_all(self.fd, [hdr, payload] if len(payload) else [hdr], off)
        except OSError as e:
            raise from_oserror(e, self.path) from None
        self.size = off + REC.size + len(payload)
        if self.size - self.flushed_to >= WRITEBACK_EVERY:
            start_writeback(self.fd, self.flushed_to, self.size - self.flushed_to)
            self.flushed_to = self.size
        return off

    def sync(self) -> None:
        try:
            os.fsync(self.fd)
        except OSError as e:
            raise from_oserror(e, self.path) from None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class LockedPackWriter(PackWriter):
    """A PackWriter whose file carries an exclusive flock while it is written, so that a
    concurrent replication does not adopt a pack that is still growing."""

    def __init__(self, packs_dir: str) -> None:
        super().__init__(packs_dir)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def discard(self) -> None:
        """Remove the pack (nothing points into it)."""
        self.close()
        discard_unpublished(self.path, 0)


def discard_unpublished(path: str, published: int) -> None:
    """Give back what a failed writer wrote and did not publish: remove the pack when no
    index row points into it, else cut it back to the ``published`` bytes rows point into
    (nothing references the tail, so no reader can see it go). Errors are ignored: gc removes
    whatever is left."""
    try:
        if published == 0:
            os.unlink(path)
        else:
            os.truncate(path, published)
    except OSError:
        pass


_tls = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    """One compressor per thread and level: creating a zstd context per chunk costs more
    than compressing a 1 MiB chunk at level 1."""
    cache = getattr(_tls, "cctx", None)
    if cache is None:
        cache = _tls.cctx = {}
    c = cache.get(level)
    if c is None:
        c = cache[level] = zstandard.ZstdCompressor(level=level)
    return c


def _decompressor() -> zstandard.ZstdDecompressor:
    d = getattr(_tls, "dctx", None)
    if d is None:
        d = _tls.dctx = zstandard.ZstdDecompressor()
    return d


def encode_chunk(data: bytes | memoryview, level: int | str | None) -> tuple[bytes, int]:
    """Compress when it pays; returns (payload, flags). ``level``: a zstd level, ``"lz4"``,
    or None (store raw) -- what :attr:`CasConfig.codec` gives."""
    if level is None:
        return bytes(data), 0
    if level == "lz4":
        comp = lz4.block.compress(data, store_size=False)
        flag = FLAG_LZ4
    else:
        comp = _compressor(level).compress(data)  # type: ignore[arg-type]
        flag = FLAG_ZSTD
    if len(comp) < len(data) - len(data) // 64:  # at least ~1.5% smaller, else keep raw
        return comp, flag
    return bytes(data), 0


def decode_record(buf: bytes, cid: bytes, where: str) -> bytes:
    """Check a record read from a pack and return the chunk's verified bytes."""
    if len(buf) < REC.size:
        raise IntegrityError(f"chunk {cid.hex()} in {where}: record truncated")
    magic, flags, raw_len, stored_len, rid = REC.unpack_from(buf)
    if magic != REC_MAGIC or rid != cid or len(buf) != REC.size + stored_len:
        raise IntegrityError(f"chunk {cid.hex()} in {where}: record header damaged")
    payload = memoryview(buf)[REC.size:]
    if flags & ~(FLAG_COMPRESSED | FLAG_HOT) or flags & FLAG_COMPRESSED == FLAG_COMPRESSED:
        raise IntegrityError(f"chunk {cid.hex()} in {where}: unknown codec flags {flags:#x}")
    if flags & FLAG_ZSTD:
        try:
            data = _decompressor().decompress(payload, max_output_size=raw_len)
        except zstandard.ZstdError:
            raise IntegrityError(f"chunk {cid.hex()} in {where}: compressed data damaged") from None
    elif flags & FLAG_LZ4:
        try:
            data = lz4.block.decompress(payload, uncompressed_size=raw_len)
        except lz4.block.LZ4BlockError:
            raise IntegrityError(f"chunk {cid.hex()} in {where}: compressed data damaged") from None
    else:
        data = bytes(payload)
    if len(data) != raw_len or not id_matches(cid, xxhash.xxh3_128_digest(data)):
        raise IntegrityError(f"chunk {cid.hex()} in {where}: content does not match its hash")
    return data


def payload_aligned(offset: int, flags: int) -> bool:
    """True when the record at ``offset`` holds raw bytes starting on a 4 KiB boundary."""
    return not flags & FLAG_COMPRESSED and (offset + REC.size) % ALIGN == 0


def read_record(fd: int, offset: int, stored_len: int) -> bytes:
    return read_span(fd, offset, REC.size + stored_len)


def read_span(fd: int, offset: int, n: int) -> bytes:
    """``n`` bytes at ``offset``, fewer only at the end of the file (a torn pack)."""
    buf = os.pread(fd, n, offset)
    while len(buf) < n:
        more = os.pread(fd, n - len(buf), offset + len(buf))
        if not more:
            break
        buf += more
    return buf


def scan_pack(fd: int, size: int):
    """Yield (offset, flags, raw_len, stored_len, id) of each well-formed record until the
    first damaged or torn one (a crash can leave a torn tail)."""
    off = 0
    while off + REC.size <= size:
        hdr = os.pread(fd, REC.size, off)
        magic, flags, raw_len, stored_len, rid = REC.unpack(hdr)
        if magic == PAD_MAGIC:
            off += REC.size + stored_len
            continue
        if magic != REC_MAGIC or off + REC.size + stored_len > size:
            return
        yield off, flags, raw_len, stored_len, rid
        off += REC.size + stored_len
