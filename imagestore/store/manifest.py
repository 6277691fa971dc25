"""Manifests: the list of one disk's non-zero chunks, the seam between the store and above.

Binary layout (little-endian), version 1::

    header  28 bytes: magic b"ISMF", u16 version, u8 hash algo (1 = xxh3-128), u8 reserved,
                      u32 chunk size, u64 virtual size, u64 entry count
    entries 28 bytes each, sorted by chunk index, unique:
                      u64 chunk index, u32 length, 16-byte chunk id (xxh3-128 digest)

Version 2 (a manifest of a non-home dedup domain, ``store/domains.py``) is version 1 with a
u32 domain number after the header (32 bytes before the entries); every entry's id must name
that domain. Home-domain manifests stay version 1, so their digests do not change.

A chunk covers ``[index * chunk_size, index * chunk_size + length)``; ``length`` is less than
the chunk size only for the last chunk of a disk whose size is not a multiple of it.
Everything not covered by an entry (holes, zero runs) is zero, so the manifest grows with the
allocated data, not the virtual size. The digest is the xxh3-128 of this encoding (hex); it
identifies the disk content for a given chunk size. On disk the encoding is zstd-compressed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import xxhash
import zstandard

from ..errors import IntegrityError
from . import domains

MAGIC = b"ISMF"
VERSION = 1
#: a manifest of a non-home dedup domain
VERSION_DOMAIN = 2
HASH_XXH3_128 = 1
HEADER = struct.Struct("<4sHBBIQQ")
DOMAIN = struct.Struct("<I")
ENTRY_DTYPE = np.dtype([("index", "<u8"), ("length", "<u4"), ("id", "S16")])
assert ENTRY_DTYPE.itemsize == 28 and HEADER.size == 28


@dataclass
class Manifest:
    chunk_size: int
    virtual_size: int
    entries: np.ndarray  # ENTRY_DTYPE, sorted by index
    domain: int = domains.HOME  # the dedup domain its chunk ids are in

    @property
    def data_bytes(self) -> int:
        """Bytes covered by stored (non-zero) chunks."""
        return int(self.entries["length"].sum(dtype=np.uint64)) if len(self.entries) else 0

    def encode(self) -> bytes:
        ent = np.ascontiguousarray(self.entries, dtype=ENTRY_DTYPE)
        version = VERSION if self.domain == domains.HOME else VERSION_DOMAIN
        head = HEADER.pack(
            MAGIC, version, HASH_XXH3_128, 0, self.chunk_size, self.virtual_size, len(ent)
        )
        if version == VERSION_DOMAIN:
            head += DOMAIN.pack(domains.check_domain(self.domain))
        return head + ent.tobytes()

    def digest(self) -> str:
        return xxhash.xxh3_128_hexdigest(self.encode())

    def ids(self) -> list[bytes]:
        # Never convert "S16" elements one by one: numpy strips trailing NUL bytes from them,
        # and a chunk id may end in 0x00. Slice the fixed-width buffer instead.
        blob = np.ascontiguousarray(self.entries["id"]).tobytes()
        return [blob[i : i + 16] for i in range(0, len(blob), 16)]

    def extents(self):
        """Yield (offset, length, chunk_id) in offset order."""
        cs = self.chunk_size
        for idx, length, cid in zip(
            self.entries["index"].tolist(), self.entries["length"].tolist(), self.ids(), strict=True
        ):
            yield idx * cs, length, cid


def decode(blob: bytes, name: str = "manifest") -> Manifest:
    if len(blob) < HEADER.size:
        raise IntegrityError(f"{name}: manifest truncated")
    magic, version, algo, _r, cs, vsize, count = HEADER.unpack_from(blob)
    if magic != MAGIC or version not in (VERSION, VERSION_DOMAIN) or algo != HASH_XXH3_128:
        raise IntegrityError(f"{name}: not a version-{VERSION} or -{VERSION_DOMAIN} manifest")
    start, domain = HEADER.size, domains.HOME
    if version == VERSION_DOMAIN:
        if len(blob) < HEADER.size + DOMAIN.size:
            raise IntegrityError(f"{name}: manifest truncated")
        (domain,) = DOMAIN.unpack_from(blob, HEADER.size)
        start += DOMAIN.size
        if domain == domains.HOME:
            raise IntegrityError(f"{name}: version-{VERSION_DOMAIN} manifest names the home domain")
    if len(blob) != start + count * ENTRY_DTYPE.itemsize:
        raise IntegrityError(f"{name}: manifest length does not match its entry count")
    entries = np.frombuffer(blob, dtype=ENTRY_DTYPE, count=count, offset=start)
    if count:
        idx = entries["index"]
        if np.any(idx[1:] <= idx[:-1]):
            raise IntegrityError(f"{name}: manifest entries are not sorted")
        last_end = int(idx[-1]) * cs + int(entries["length"][-1])
        if last_end > vsize or np.any(entries["length"] == 0) or np.any(entries["length"] > cs):
            raise IntegrityError(f"{name}: manifest entry outside the disk")
        if domain != domains.HOME:
            ids = np.frombuffer(np.ascontiguousarray(entries["id"]).tobytes(), dtype=">u4")
            if np.any(ids[::4] != domain):  # the first 4 bytes of each 16-byte id
                raise IntegrityError(f"{name}: manifest names a chunk of another dedup domain")
    return Manifest(cs, vsize, entries, domain)


def compress(blob: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=3).compress(blob)


def decompress(data: bytes, name: str) -> bytes:
    try:
        return zstandard.ZstdDecompressor().decompress(data)
    except zstandard.ZstdError as e:
        raise IntegrityError(f"{name}: manifest does not decompress ({e})") from None
