"""Chunk codecs (issue 17): lz4 and zstd levels as a per-store setting in cas.json, recorded
in each pack record's flags, so a store reads whatever its packs hold whatever the current
setting says."""

from __future__ import annotations

import json
import os
import struct
import subprocess

import pytest

from imagestore.errors import IntegrityError
from imagestore.store.layout import make_config
from imagestore.store.packs import FLAG_LZ4, FLAG_ZSTD, REC, decode_record, encode_chunk, scan_pack
from tests.helpers import make_ext4

MiB = 1 << 20


@pytest.fixture(scope="module")
def small_ext4(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("codec")
    return make_ext4(str(d / "v1.raw"), "24M", "/usr/share/zoneinfo")


def _flags(store: str) -> set[int]:
    d = os.path.join(store, "regions", "local", "packs")
    seen = set()
    for n in os.listdir(d):
        fd = os.open(os.path.join(d, n), os.O_RDONLY)
        try:
            seen |= {fl for _o, fl, _r, _s, _i in scan_pack(fd, os.fstat(fd).st_size)}
        finally:
            os.close(fd)
    return seen


@pytest.mark.parametrize("codec,flag", [("lz4", FLAG_LZ4), ("zstd:-3", FLAG_ZSTD), ("zstd:3", FLAG_ZSTD)])
def test_store_codec_roundtrip_and_flags(run, small_ext4, tmp_path, codec, flag):
    run.json("init", "--compression", codec)
    with open(os.path.join(run.store, "regions", "local", "cas.json")) as f:
        assert json.load(f)["compression"] == codec
    res = run.json("store", "ingest", small_ext4)
    assert 0 < res["storedBytes"] < res["dataBytes"]
    assert _flags(run.store) <= {flag, 0} and flag in _flags(run.store)
    out = str(tmp_path / "out.raw")
    run.json("store", "materialize", res["digest"], "--path", out)
    subprocess.run(["cmp", small_ext4, out], check=True)
    assert run.json("store", "verify")["clean"]


def test_store_reads_records_of_every_codec(run, small_ext4, tmp_path):
    """A store whose setting changed (cas.json edited, as an old zstd store read by a new
    default would be) still reads its old records: the codec is in each record's flags."""
    run.json("init", "--compression", "zstd:1")
    a = run.json("store", "ingest", small_ext4)["digest"]
    cas = os.path.join(run.store, "regions", "local", "cas.json")
    with open(cas) as f:
        hdr = json.load(f)
    hdr["compression"] = "lz4"
    with open(cas, "w") as f:
        json.dump(hdr, f)
    other = str(tmp_path / "other.raw")
    with open(other, "wb") as f:
        f.write(b"lz4 after zstd " * (MiB // 8))
        f.truncate(4 * MiB)
    b = run.json("store", "ingest", other)["digest"]
    assert _flags(run.store) >= {FLAG_ZSTD, FLAG_LZ4}
    for digest, src in ((a, small_ext4), (b, other)):
        out = str(tmp_path / f"{digest}.raw")
        run.json("store", "materialize", digest, "--path", out)
        subprocess.run(["cmp", src, out], check=True)
    assert run.json("store", "verify")["clean"]


def _record(payload: bytes, flags: int, raw_len: int, cid: bytes) -> bytes:
    return REC.pack(b"ISC1", flags, raw_len, len(payload), cid) + payload


@pytest.mark.parametrize("codec", ["lz4", 1, -5])
def test_damaged_or_mislabelled_payload_is_an_integrity_error(codec):
    import xxhash

    data = (b"imagestore " * 30000)[: 256 << 10]
    cid = xxhash.xxh3_128_digest(data)
    payload, flags = encode_chunk(data, codec)
    assert flags in (FLAG_LZ4, FLAG_ZSTD) and len(payload) < len(data)
    assert decode_record(_record(payload, flags, len(data), cid), cid, "t") == data
    bad = bytearray(payload)
    bad[len(bad) // 2] ^= 0x55
    with pytest.raises(IntegrityError, match="damaged|does not match"):
        decode_record(_record(bytes(bad), flags, len(data), cid), cid, "t")
    other = FLAG_ZSTD if flags == FLAG_LZ4 else FLAG_LZ4
    with pytest.raises(IntegrityError, match="damaged|does not match"):
        decode_record(_record(payload, other, len(data), cid), cid, "t")
    for unknown in (FLAG_LZ4 | FLAG_ZSTD, 8, 0x80, FLAG_LZ4 | FLAG_ZSTD | 4):
        with pytest.raises(IntegrityError, match="unknown codec flags"):
            decode_record(_record(payload, unknown, len(data), cid), cid, "t")
    # the raw length in the header bounds the output: a lie is caught, not trusted
    with pytest.raises(IntegrityError):
        decode_record(_record(payload, flags, len(data) - 1, cid), cid, "t")


def test_incompressible_chunk_is_stored_raw():
    data = os.urandom(256 << 10)
    for codec in ("lz4", 1):
        payload, flags = encode_chunk(data, codec)
        assert flags == 0 and payload == data


def test_config_accepts_lz4_and_refuses_unknown():
    assert make_config(None, "lz4").codec == "lz4"
    assert make_config(None, "LZ4").compression == "lz4"
    assert make_config(None, "zstd:-3").codec == -3
    assert make_config(None, "none").codec is None
    from imagestore.errors import InvalidArgument

    for bad in ("lz4:3", "snappy", "zstd:0", "zstd:23"):
        with pytest.raises(InvalidArgument, match="'none', 'lz4' or 'zstd"):
            make_config(None, bad)
    assert struct.calcsize("<4sB3xII16s") == REC.size


def test_gc_and_verify_many_manifests_missing_and_dead(tmp_path):
    """gc's and verify's set logic (sorted id arrays, not a temp table and per-manifest
    lookups): shared, dead and missing chunks across many manifests come out exactly."""
    import random

    from imagestore.formats import open_disk
    from imagestore.home import Home
    from imagestore.store import maintenance
    from imagestore.store.ingest import ingest

    home = Home.open(str(tmp_path / "s"), cfg=make_config("64K", None))
    store = home.blob_store()
    rnd = random.Random(5)
    base = bytearray(rnd.randbytes(1 << 20))
    digests = []
    for v in range(12):
        base[v * 65536 + 7] ^= 0xFF  # chunk v changes in version v, and stays so
        p = tmp_path / f"v{v}.raw"
        p.write_bytes(bytes(base))
        r = open_disk(str(p))
        try:
            digests.append(ingest(store, r, threads=2).digest)
        finally:
            r.close()
    rep = maintenance.verify(store)
    assert rep.clean and rep.unreferenced_chunks == 0
    total = rep.chunks_checked
    # drop 4 versions: their own chunks die, the shared ones stay
    for d in digests[:4]:
        store.remove_manifest(d)
    rep = maintenance.verify(store)
    dead = rep.unreferenced_chunks
    assert 0 < dead < total
    g = maintenance.gc(store)
    assert g.removed_chunks == dead
    rep = maintenance.verify(store)
    assert rep.clean and rep.chunks_checked == total - dead and rep.unreferenced_chunks == 0
    # a chunk goes missing from the index: exactly the manifests that use it are named
    from imagestore.store import index as idx

    m = store.load_manifest(digests[-1])
    cid = m.ids()[6]  # written by version 6, shared by 7..11
    users = [d for d in digests[4:] if cid in store.load_manifest(d).ids()]
    assert len(users) == 6
    store.con.execute("DELETE FROM chunks WHERE id=?", (cid,))
    assert idx.lookup(store.con, cid) is None
    rep = maintenance.verify(store)
    assert not rep.clean
    assert rep.affected_manifests == sorted(users)
    assert rep.missing_chunks == [{"chunk": cid.hex(), "manifest": d} for d in store.list_manifests() if d in users]
    home.close()


def test_capture_hot_store_cold(run, small_ext4, tmp_path):
    """--compression lz4 --cold-compression zstd:3: captures write lz4 records flagged hot;
    store gc re-encodes them with zstd (smaller), once; the disk comes back identical."""
    from imagestore.store.packs import FLAG_HOT

    run.json("init", "--compression", "lz4", "--cold-compression", "zstd:3")
    with open(os.path.join(run.store, "regions", "local", "cas.json")) as f:
        hdr = json.load(f)
    assert hdr["compression"] == "lz4" and hdr["coldCompression"] == "zstd:3"
    res = run.json("store", "ingest", small_ext4)
    assert _flags(run.store) <= {FLAG_LZ4 | FLAG_HOT, 0}
    before = run.json("store", "stats")["storedBytes"]
    dry = run.json("store", "gc", "--dry-run")
    assert dry["wouldRecompressChunks"] > 0
    assert _flags(run.store) <= {FLAG_LZ4 | FLAG_HOT, 0}  # a dry run changes nothing
    g = run.json("store", "gc")
    assert g["recompressedChunks"] == dry["wouldRecompressChunks"]
    assert _flags(run.store) <= {FLAG_ZSTD, 0} and FLAG_ZSTD in _flags(run.store)
    after = run.json("store", "stats")["storedBytes"]
    assert after < before and g["freedBytes"] >= before - after
    assert run.json("store", "gc")["recompressedChunks"] == 0  # done once
    out = str(tmp_path / "cold.raw")
    run.json("store", "materialize", res["digest"], "--path", out)
    subprocess.run(["cmp", small_ext4, out], check=True)
    assert run.json("store", "verify")["clean"]


def test_cold_compression_refusals():
    from imagestore.errors import InvalidArgument

    assert make_config(None, "lz4", "zstd:3").cold_codec == 3
    assert make_config(None, None).cold_codec is None
    for comp, cold in (("lz4", "lz4"), ("none", "zstd:3"), ("lz4", "none"), ("lz4", "zstd:99")):
        with pytest.raises(InvalidArgument, match="--cold-compression"):
            make_config(None, comp, cold)
    hot = FLAG_LZ4 | 4
    data = b"x" * 4096
    import xxhash

    cid = xxhash.xxh3_128_digest(data)
    payload, flags = encode_chunk(data, "lz4")
    assert decode_record(_record(payload, flags | 4, len(data), cid), cid, "t") == data
    assert hot & FLAG_LZ4


def test_connections_of_finished_worker_threads_are_closed(tmp_path):
    """A long-running process (worker, `serve`) capturing again and again keeps a bounded
    number of index connections: each ingest's worker threads open their own, and those of
    threads that ended are closed when the next is opened (found by `bench scale`: RSS grew
    by ~1.5 MiB per captured version)."""
    from imagestore.formats import open_disk
    from imagestore.home import Home
    from imagestore.store.ingest import ingest

    def index_fds(store) -> int:
        n = 0
        for fd in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{fd}") == store.index_path:
                    n += 1
            except OSError:
                pass
        return n

    home = Home.open(str(tmp_path / "s"))
    store = home.blob_store()
    src = tmp_path / "d.raw"
    counts = []
    for _ in range(8):
        src.write_bytes(os.urandom(1 << 20) + bytes(1 << 20))
        r = open_disk(str(src))
        try:
            ingest(store, r, threads=2)
        finally:
            r.close()
        counts.append(index_fds(store))
    assert max(counts) <= 4, counts  # main thread + the last run's 2 workers (+1 racing)
    home.close()
    assert index_fds(store) == 0
