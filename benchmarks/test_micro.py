"""Micro benchmarks of the byte loops under ingest and materialize (pytest-benchmark).

Run: ``python -m pytest benchmarks/test_micro.py --benchmark-only``. Each benchmark records
the bytes it touches in ``extra_info["bytes"]``; throughput = bytes / mean time. See
benchmarks/README.md for the numbers of a recorded run.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import xxhash
import zstandard

from imagestore.accel import BACKEND, is_zero, nonzero_runs
from imagestore.store import manifest
from imagestore.store.packs import decode_record, encode_chunk

MiB = 1 << 20
CHUNK = MiB


def _realistic(n: int) -> bytes:
    """``n`` bytes of real file content (sorted files under /usr/share), else seeded random
    data with zero runs, so that compression ratios look like a disk's."""
    parts, got = [], 0
    for top in ("/usr/share/doc", "/usr/share/common-licenses", "/usr/share/perl5"):
        for d, dirs, names in os.walk(top):
            dirs.sort()
            for name in sorted(names):
                p = os.path.join(d, name)
                if not os.path.isfile(p) or os.path.islink(p):
                    continue
                try:
                    with open(p, "rb") as f:
                        b = f.read(n - got)
                except OSError:
                    continue
                parts.append(b)
                got += len(b)
                if got >= n:
                    return b"".join(parts)
    rng = np.random.default_rng(1)
    rest = rng.integers(0, 256, n - got, dtype=np.uint8)
    rest[: (n - got) // 2] = 0
    return b"".join(parts) + rest.tobytes()


@pytest.fixture(scope="module")
def data_chunk() -> bytes:
    return _realistic(CHUNK)


@pytest.fixture(scope="module")
def zero_chunk() -> bytes:
    return bytes(CHUNK)


@pytest.fixture(scope="module")
def striped_chunk() -> bytes:
    """Every other 4 KiB block zero: the most runs nonzero_runs can return."""
    a = np.frombuffer(os.urandom(CHUNK), dtype=np.uint8).copy().reshape(-1, 4096)
    a[::2] = 0
    return a.tobytes()


def _bytes(benchmark, n: int) -> None:
    benchmark.extra_info["bytes"] = n
    benchmark.extra_info["backend"] = BACKEND


# -- zero scan ----------------------------------------------------------------------------


@pytest.mark.benchmark(group="zero-scan")
def test_is_zero_all_zero(benchmark, zero_chunk):
    _bytes(benchmark, CHUNK)
    assert benchmark(is_zero, zero_chunk) is True


@pytest.mark.benchmark(group="zero-scan")
def test_is_zero_data(benchmark, data_chunk):
    _bytes(benchmark, CHUNK)
    assert benchmark(is_zero, data_chunk) is False


@pytest.mark.benchmark(group="zero-scan")
def test_nonzero_runs_all_zero(benchmark, zero_chunk):
    _bytes(benchmark, CHUNK)
    assert benchmark(nonzero_runs, zero_chunk) == []


@pytest.mark.benchmark(group="zero-scan")
def test_nonzero_runs_data(benchmark, data_chunk):
    _bytes(benchmark, CHUNK)
    assert benchmark(nonzero_runs, data_chunk)


@pytest.mark.benchmark(group="zero-scan")
def test_nonzero_runs_striped(benchmark, striped_chunk):
    _bytes(benchmark, CHUNK)
    assert len(benchmark(nonzero_runs, striped_chunk)) == CHUNK // 8192


# -- hashing ------------------------------------------------------------------------------


@pytest.mark.benchmark(group="hash")
def test_xxh3_128(benchmark, data_chunk):
    _bytes(benchmark, CHUNK)
    assert len(benchmark(xxhash.xxh3_128_digest, data_chunk)) == 16


# -- compression ----------------------------------------------------------------------------


@pytest.mark.benchmark(group="zstd")
def test_zstd1_compress(benchmark, data_chunk):
    _bytes(benchmark, CHUNK)
    out = benchmark(zstandard.ZstdCompressor(level=1).compress, data_chunk)
    benchmark.extra_info["ratio"] = round(CHUNK / len(out), 2)


@pytest.mark.benchmark(group="zstd")
def test_encode_chunk_zstd1(benchmark, data_chunk):
    """What ingest calls per new chunk (a new compressor each call)."""
    _bytes(benchmark, CHUNK)
    payload, flags = benchmark(encode_chunk, data_chunk, 1)
    assert flags == 1


@pytest.mark.benchmark(group="zstd")
def test_zstd_decompress(benchmark, data_chunk):
    _bytes(benchmark, CHUNK)
    comp = zstandard.ZstdCompressor(level=1).compress(data_chunk)
    assert benchmark(zstandard.ZstdDecompressor().decompress, comp) == data_chunk


@pytest.mark.benchmark(group="zstd")
def test_decode_record(benchmark, data_chunk):
    """What materialize calls per chunk: header check, decompress, hash check."""
    from imagestore.store.packs import REC, REC_MAGIC

    _bytes(benchmark, CHUNK)
    cid = xxhash.xxh3_128_digest(data_chunk)
    payload, flags = encode_chunk(data_chunk, 1)
    rec = REC.pack(REC_MAGIC, flags, CHUNK, len(payload), cid) + payload
    assert benchmark(decode_record, rec, cid, "bench") == data_chunk


# -- manifests ------------------------------------------------------------------------------

N_ENTRIES = 16384  # a 16 GiB disk at 1 MiB chunks


@pytest.fixture(scope="module")
def big_manifest() -> manifest.Manifest:
    rng = np.random.default_rng(2)
    e = np.zeros(N_ENTRIES, dtype=manifest.ENTRY_DTYPE)
    e["index"] = np.arange(N_ENTRIES, dtype=np.uint64) * 2
    e["length"] = MiB
    e["id"] = [rng.bytes(16) for _ in range(N_ENTRIES)]
    return manifest.Manifest(MiB, 2 * N_ENTRIES * MiB, e)


@pytest.mark.benchmark(group="manifest")
def test_manifest_encode(benchmark, big_manifest):
    benchmark.extra_info["entries"] = N_ENTRIES
    blob = benchmark(big_manifest.encode)
    assert len(blob) == 28 + 28 * N_ENTRIES


@pytest.mark.benchmark(group="manifest")
def test_manifest_decode(benchmark, big_manifest):
    benchmark.extra_info["entries"] = N_ENTRIES
    blob = big_manifest.encode()
    m = benchmark(manifest.decode, blob)
    assert len(m.entries) == N_ENTRIES


@pytest.mark.benchmark(group="manifest")
def test_manifest_encode_compress_digest(benchmark, big_manifest):
    """What publishing a manifest costs: encode, digest, zstd."""
    benchmark.extra_info["entries"] = N_ENTRIES

    def publish_cost():
        blob = big_manifest.encode()
        return xxhash.xxh3_128_hexdigest(blob), manifest.compress(blob)

    benchmark(publish_cost)


@pytest.mark.benchmark(group="manifest")
def test_manifest_decompress_decode_ids(benchmark, big_manifest):
    """What loading a manifest for materialize costs: zstd, decode, chunk id list."""
    benchmark.extra_info["entries"] = N_ENTRIES
    comp = manifest.compress(big_manifest.encode())

    def load_cost():
        return manifest.decode(manifest.decompress(comp, "bench"), "bench").ids()

    assert len(benchmark(load_cost)) == N_ENTRIES
