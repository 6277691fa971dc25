"""qcow2 compressed clusters ("Compressed Clusters Descriptor"): where the bytes are, and
their decompression with the image's ``compression_type`` (zlib: raw deflate with a 4 KiB
window as qemu writes it; zstd: zstd frames). A cluster must decompress to exactly one
cluster: fewer bytes, a damaged stream or an unknown type is :class:`BadImage`."""

from __future__ import annotations

import io
import zlib

import zstandard

from ...errors import BadImage
from .structs import COMPRESSION_ZLIB, COMPRESSION_ZSTD

SECTOR = 512


def descriptor(entry: int, cluster_bits: int) -> tuple[int, int]:
    """(host byte offset, length in bytes) of a compressed cluster's L2 ``entry`` (flags
    included; only bits 0-61 are used). The length reaches to the end of the last 512-byte
    sector the descriptor names, as in qemu (the stream may end earlier)."""
    shift = 62 - (cluster_bits - 8)
    offset = entry & ((1 << shift) - 1)
    sectors = ((entry >> shift) & ((1 << (cluster_bits - 8)) - 1)) + 1
    return offset, sectors * SECTOR - (offset & (SECTOR - 1))


def decompress(data: bytes, cluster_size: int, compression_type: int, what: str) -> bytes:
    """One cluster from the compressed ``data``; ``what`` names the cluster in errors."""
    if compression_type == COMPRESSION_ZLIB:
        try:
            out = zlib.decompressobj(-12).decompress(data, cluster_size)
        except zlib.error as e:
            raise BadImage(f"{what}: damaged zlib (deflate) stream ({e})") from None
    elif compression_type == COMPRESSION_ZSTD:
        try:
            with zstandard.ZstdDecompressor().stream_reader(
                    io.BytesIO(data), read_across_frames=True) as r:
                out = r.read(cluster_size)
                while len(out) < cluster_size:
                    more = r.read(cluster_size - len(out))
                    if not more:
                        break
                    out += more
        except zstandard.ZstdError as e:
            raise BadImage(f"{what}: damaged zstd stream ({e})") from None
    else:
        raise BadImage(f"{what}: unknown compression type {compression_type}")
    if len(out) != cluster_size:
        raise BadImage(f"{what}: decompresses to {len(out)} bytes, a cluster is "
                       f"{cluster_size}")
    return out
