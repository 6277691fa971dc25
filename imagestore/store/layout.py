"""The blob store's versioned header (``cas.json``) and its on-disk paths.

Layout of one blob store (one region's storage), see docs/architecture.md::

    cas.json            versioned header: format, version, chunk size, hash, compression
    index.sqlite        chunk id -> (pack, offset, lengths); WAL mode
    packs/pack-*.pack   append-only pack files of chunk records
    manifests/*.mf      one zstd-compressed manifest per disk content, named by digest
    lock                flock: shared for ingest/read/verify, exclusive for gc
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

from ..errors import InvalidArgument, NotAStore
from ..fsutil import atomic_write

CAS_FORMAT = "imagestore-cas"
CAS_VERSION = 1
HASH_ALGO = "xxh3-128"
DEFAULT_CHUNK_SIZE = 256 << 10  # chosen from the chunk-size table in benchmarks/README.md
DEFAULT_COMPRESSION = "zstd:1"
MIN_CHUNK = 4096
MAX_CHUNK = 64 << 20


@dataclass(frozen=True)
class CasConfig:
    chunk_size: int = DEFAULT_CHUNK_SIZE
    compression: str = DEFAULT_COMPRESSION  # "zstd:LEVEL", "lz4" or "none"
    hash: str = HASH_ALGO
    version: int = CAS_VERSION
    #: "capture hot, store cold": what ``store gc`` re-encodes the chunks a capture wrote
    #: with ``compression`` into (None: chunks stay as captured)
    cold_compression: str | None = None

    @property
    def zstd_level(self) -> int | None:
        if self.compression in ("none", "lz4"):
            return None
        return int(self.compression.split(":")[1])

    @property
    def codec(self) -> int | str | None:
        """What :func:`packs.encode_chunk` takes: a zstd level, ``"lz4"``, or None (raw)."""
        return codec_of(self.compression)

    @property
    def cold_codec(self) -> int | str | None:
        """The codec ``store gc`` re-encodes captured chunks into (None: none)."""
        return None if self.cold_compression is None else codec_of(self.cold_compression)

    def to_json(self) -> dict:
        out = {
            "format": CAS_FORMAT,
            "version": self.version,
            "chunkSize": self.chunk_size,
            "hash": self.hash,
            "compression": self.compression,
        }
        if self.cold_compression is not None:
            out["coldCompression"] = self.cold_compression
        return out


def codec_of(compression: str) -> int | str | None:
    """``"zstd:3"`` -> 3, ``"lz4"`` -> ``"lz4"``, ``"none"`` -> None."""
    if compression == "none":
        return None
    if compression == "lz4":
        return "lz4"
    return int(compression.split(":")[1])


_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)


def parse_size(text: str, field: str) -> int:
    """Parse '1M', '256KiB', '4096' into bytes."""
    m = _SIZE_RE.match(str(text))
    if not m:
        raise InvalidArgument(f"{field}: '{text}' is not a size (e.g. 1M, 256K, 4096)")
    n = int(m.group(1))
    unit = (m.group(2) or "B").upper()[0]
    return n * {"B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[unit]


def _compression(text: str | None, field: str, default: str | None) -> str | None:
    if text is None:
        return default
    comp = text.lower()
    if comp == "zstd":
        comp = "zstd:1"
    if comp not in ("none", "lz4"):
        m = re.fullmatch(r"zstd:(-?\d+)", comp)
        if not m or not (-7 <= int(m.group(1)) <= 22) or int(m.group(1)) == 0:
            raise InvalidArgument(
                f"{field}: '{text}' must be 'none', 'lz4' or 'zstd[:LEVEL]' with "
                f"LEVEL in 1..22 (or -7..-1 for fast modes)"
            )
    return comp


def make_config(chunk_size: str | int | None, compression: str | None,
                cold_compression: str | None = None) -> CasConfig:
    cs = DEFAULT_CHUNK_SIZE if chunk_size is None else (
        chunk_size if isinstance(chunk_size, int) else parse_size(chunk_size, "--chunk-size")
    )
    if cs < MIN_CHUNK or cs > MAX_CHUNK or cs & (cs - 1):
        raise InvalidArgument(
            f"--chunk-size: {cs} must be a power of two between {MIN_CHUNK} and {MAX_CHUNK} bytes"
        )
    comp = _compression(compression, "--compression", DEFAULT_COMPRESSION)
    cold = _compression(cold_compression, "--cold-compression", None)
    if cold is not None and (cold == comp or "none" in (cold, comp)):
        raise InvalidArgument(
            f"--cold-compression: '{cold_compression}' must be a codec other than "
            f"--compression '{comp}', and neither may be 'none'"
        )
    return CasConfig(chunk_size=cs, compression=comp, cold_compression=cold)  # type: ignore[arg-type]


def read_config(root: str) -> CasConfig:
    path = os.path.join(root, "cas.json")
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except FileNotFoundError:
        raise NotAStore(f"{root}: not a blob store (no cas.json)") from None
    except (OSError, ValueError) as e:
        raise NotAStore(f"{path}: unreadable store header ({e})") from None
    if not isinstance(raw, dict) or raw.get("format") != CAS_FORMAT:
        raise NotAStore(f"{path}: not an imagestore blob store header")
    if raw.get("version") != CAS_VERSION:
        raise NotAStore(
            f"{path}: blob store format version {raw.get('version')!r} is not supported "
            f"(this imagestore reads version {CAS_VERSION})"
        )
    if raw.get("hash") != HASH_ALGO:
        raise NotAStore(f"{path}: unsupported hash {raw.get('hash')!r}")
    try:
        cold = raw.get("coldCompression")
        return make_config(int(raw["chunkSize"]), str(raw["compression"]),
                           None if cold is None else str(cold))
    except (KeyError, TypeError, ValueError, InvalidArgument) as e:
        raise NotAStore(f"{path}: bad store header ({e})") from None


def config_bytes(cfg: CasConfig) -> bytes:
    """The content of ``cas.json`` for ``cfg``."""
    return (json.dumps(cfg.to_json(), indent=2) + "\n").encode()


def write_config(root: str, cfg: CasConfig) -> None:
    atomic_write(os.path.join(root, "cas.json"), config_bytes(cfg))
