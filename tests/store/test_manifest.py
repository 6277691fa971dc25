"""Manifests: encode/decode round trips, the digest and its check on load, and every refusal
(truncated, wrong magic/version/hash, length, unsorted or overlapping entries, entries outside
the disk or longer than a chunk)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import xxhash

from imagestore.errors import IntegrityError, InvalidArgument, NotFound
from imagestore.store import manifest
from imagestore.store.cas import BlobStore
from imagestore.store.layout import CasConfig
from imagestore.store.manifest import ENTRY_DTYPE, HEADER, MAGIC, Manifest

CS = 256 << 10
TiB = 1 << 40


def ids(n: int, seed: int = 0) -> list[bytes]:
    out = [xxhash.xxh3_128_digest(b"%d-%d" % (seed, i)) for i in range(n)]
    out[0] = out[0][:15] + b"\0"  # an id ending in a NUL byte must survive
    return out


def make(entries: list[tuple[int, int, bytes]], vsize: int, cs: int = CS) -> Manifest:
    arr = np.array(entries, dtype=ENTRY_DTYPE)
    return Manifest(cs, vsize, arr)


def blob(cs: int, vsize: int, entries: list[tuple[int, int, bytes]], *, magic=MAGIC, version=1,
         algo=1, count: int | None = None) -> bytes:
    """A manifest encoding written by hand (not by Manifest.encode)."""
    n = len(entries) if count is None else count
    out = HEADER.pack(magic, version, algo, 0, cs, vsize, n)
    for idx, length, cid in entries:
        out += struct.pack("<QI16s", idx, length, cid)
    return out


def test_round_trip_keeps_every_field_and_id_bytes():
    cids = ids(5)
    ents = [(0, CS, cids[0]), (1, CS, cids[1]), (7, CS, cids[2]), (1000, CS, cids[3]),
             (4095, 1234, cids[4])]
    vsize = 4095 * CS + 1234
    m = make(ents, vsize)
    enc = m.encode()
    assert enc == blob(CS, vsize, ents)  # the layout the docs describe, byte for byte
    assert len(enc) == 28 + 28 * 5
    back = manifest.decode(enc, "m")
    assert (back.chunk_size, back.virtual_size) == (CS, vsize)
    assert back.ids() == cids and back.ids()[0].endswith(b"\0")
    assert list(back.extents()) == [(i * CS, n, c) for i, n, c in ents]
    assert back.data_bytes == 4 * CS + 1234
    assert back.encode() == enc and back.digest() == m.digest()
    assert m.digest() == xxhash.xxh3_128_hexdigest(enc)
    assert manifest.decompress(manifest.compress(enc), "m") == enc


def test_an_empty_disk_and_a_huge_sparse_one_have_tiny_manifests():
    empty = manifest.decode(make([], 10 * TiB).encode())
    assert len(empty.entries) == 0 and empty.data_bytes == 0 and list(empty.extents()) == []
    # 15 TiB with 20 chunks of data: the manifest grows with the data, not the virtual size
    cids = ids(20, 1)
    ents = [(i * (15 * TiB // CS // 20), CS, cids[i]) for i in range(20)]
    m = make(ents, 15 * TiB)
    assert len(m.encode()) == 28 + 20 * 28
    assert manifest.decode(m.encode()).ids() == cids


def test_digest_changes_with_any_field():
    cids = ids(2)
    base = make([(0, CS, cids[0]), (3, CS, cids[1])], 8 * CS)
    variants = [
        make([(0, CS, cids[0]), (3, CS, cids[1])], 8 * CS + 512),  # virtual size
        make([(0, CS, cids[0]), (4, CS, cids[1])], 8 * CS),  # index
        make([(0, CS, cids[0]), (3, CS - 512, cids[1])], 8 * CS),  # length
        make([(0, CS, cids[1]), (3, CS, cids[0])], 8 * CS),  # ids
        make([(0, CS // 2, cids[0]), (3, CS // 2, cids[1])], 8 * CS, CS // 2),  # chunk size
    ]
    assert len({base.digest(), *(v.digest() for v in variants)}) == 6


@pytest.mark.parametrize("case, why", [
    (lambda c: blob(CS, CS, [])[:27], "manifest truncated"),
    (lambda c: b"", "manifest truncated"),
    (lambda c: blob(CS, 4 * CS, [(0, CS, c)], magic=b"ISMX"), "not a version-1 or -2 manifest"),
    (lambda c: blob(CS, 4 * CS, [(0, CS, c)], version=3), "not a version-1 or -2 manifest"),
    (lambda c: blob(CS, 4 * CS, [(0, CS, c)], algo=2), "not a version-1 or -2 manifest"),
    (lambda c: blob(CS, 4 * CS, [(0, CS, c)], count=2), "length does not match its entry count"),
    (lambda c: blob(CS, 4 * CS, [(0, CS, c)]) + b"\0", "length does not match its entry count"),
    (lambda c: blob(CS, 4 * CS, [(0, CS, c)], count=0), "length does not match its entry count"),
    (lambda c: blob(CS, 4 * CS, [(2, CS, c), (1, CS, c)]), "not sorted"),
    (lambda c: blob(CS, 4 * CS, [(1, CS, c), (1, CS, c)]), "not sorted"),  # overlap: same chunk
    (lambda c: blob(CS, 4 * CS, [(4, CS, c)]), "outside the disk"),  # past the virtual size
    (lambda c: blob(CS, 4 * CS - 1, [(3, CS, c)]), "outside the disk"),  # last one too long
    (lambda c: blob(CS, 4 * CS, [(0, 0, c)]), "outside the disk"),  # empty entry
    (lambda c: blob(CS, 4 * CS, [(0, CS + 1, c)]), "outside the disk"),  # longer than a chunk
    (lambda c: blob(CS, 4 * CS, [(0, CS, c), (1, CS + 1, c), (2, CS, c)]), "outside the disk"),
    (lambda c: blob(CS, 1 << 62, [(1 << 60, CS, c)]), "outside the disk"),  # far past the disk
])
def test_malformed_encodings_are_refused_naming_the_file(case, why):
    with pytest.raises(IntegrityError, match=why) as e:
        manifest.decode(case(ids(1)[0]), "/s/manifests/abc.mf")
    assert e.value.message.startswith("/s/manifests/abc.mf: ")


def test_a_valid_hand_written_encoding_is_accepted():
    c = ids(3)
    b = blob(CS, 3 * CS - 100, [(0, CS, c[0]), (2, CS - 100, c[2])])
    m = manifest.decode(b)
    assert m.ids() == [c[0], c[2]] and m.encode() == b


def test_decompress_refuses_what_is_not_zstd():
    with pytest.raises(IntegrityError, match="abc.mf: manifest does not decompress"):
        manifest.decompress(b"not zstd at all", "abc.mf")


# -- through the blob store: the digest names the file and is checked on load -----------

@pytest.fixture
def store(tmp_path):
    st = BlobStore.create(str(tmp_path / "cas"), CasConfig())
    yield st
    st.close()


def test_published_manifest_loads_back_and_a_swapped_one_is_refused(store):
    a = make([(0, CS, ids(1, 1)[0])], CS)
    b = make([(0, CS, ids(1, 2)[0])], CS)
    da, db = store.publish_manifest(a), store.publish_manifest(b)
    assert da == a.digest() and store.load_manifest(da).encode() == a.encode()
    assert store.load_manifest(da.upper()).digest() == da  # digests are case-insensitive
    assert store.list_manifests() == sorted([da, db])
    # b's content under a's name: decodes fine, but is not what the name promises
    with open(store.manifest_path(db), "rb") as f:
        data_b = f.read()
    with open(store.manifest_path(da), "wb") as f:
        f.write(data_b)
    with pytest.raises(IntegrityError, match="does not match its digest"):
        store.load_manifest(da)
    with open(store.manifest_path(da), "wb") as f:
        f.write(b"\x28\xb5\x2f\xfd garbage")
    with pytest.raises(IntegrityError, match="does not decompress"):
        store.load_manifest(da)


def test_manifest_names_are_checked_before_any_file_is_opened(store):
    for bad in ("", "abc", "../../etc/passwd", "g" * 32, "a" * 33):
        with pytest.raises(InvalidArgument, match="digest"):
            store.load_manifest(bad)
    with pytest.raises(NotFound, match="no such disk content"):
        store.load_manifest("0" * 32)
    assert store.remove_manifest("0" * 32) is False
