"""Dedup domains (``store/domains.py``) on real bytes: a capture in one tenant's domain does the
same work and reports the same numbers whatever another domain holds (no dedup oracle), dedup
within a domain is unchanged, and verify, gc, rebuild, replication and repair work across
domains. Both backends (native and IMAGESTORE_PUREPYTHON=1) must give the same ids."""

from __future__ import annotations

import os
import random
import struct
import subprocess

import numpy as np
import pytest
import xxhash

from imagestore.errors import IntegrityError
from imagestore.formats import open_disk
from imagestore.regions import replicate
from imagestore.regions.replicas import repair
from imagestore.store import domains, index, manifest
from imagestore.store.cas import BlobStore
from imagestore.store.ingest import ingest
from imagestore.store.layout import CasConfig
from imagestore.store.maintenance import gc, stats, verify
from imagestore.store.materialize import materialize
from imagestore.store.packs import REC, scan_pack
from imagestore.store.rebuild import rebuild_index

MiB = 1 << 20
A, B = 7, 8  # two tenants' domains; 0 is the home (local) tenant's
KEY = bytes(range(32))  # the store's dedup key (the gallery keeps it in identity/dedup.key)


def dom(tag: int, key: bytes = KEY) -> domains.Domain:
    return domains.Domain(tag, key if tag else b"")


def make_disk(path: str, seed: int = 1) -> str:
    """A 24 MiB raw disk: random (incompressible) chunks, text (compressible), holes, a
    repeated chunk and a short last chunk."""
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        f.truncate(24 * MiB + 12345)
        for i in (0, 1, 2, 5, 9):
            f.seek(i * MiB)
            f.write(rnd.randbytes(MiB))
        for i in (3, 4, 11):
            f.seek(i * MiB)
            f.write((f"line {i} of a text chunk\n" * 50000).encode()[:MiB])
        f.seek(14 * MiB)
        f.write(b"\x5a" * MiB)
        f.seek(15 * MiB)
        f.write(b"\x5a" * MiB)  # same content as chunk 14: dedupes within the disk
        f.seek(24 * MiB)
        f.write(rnd.randbytes(12345))
    return path


def new_store(path) -> BlobStore:
    return BlobStore.create(str(path), CasConfig(chunk_size=MiB))


def capture(store: BlobStore, path: str, domain: int):
    r = open_disk(path, source_format="raw")
    try:
        return ingest(store, r, domain=dom(domain))
    finally:
        r.close()


def pack_state(store: BlobStore) -> dict[str, bytes]:
    out = {}
    for name in sorted(os.listdir(store.packs_dir)):
        with open(os.path.join(store.packs_dir, name), "rb") as f:
            out[name] = f.read()
    return out


def records(store: BlobStore, names: list[str]) -> list[bytes]:
    """Every record (header + payload) in the named packs, in order (padding skipped)."""
    out = []
    for name in names:
        fd = os.open(os.path.join(store.packs_dir, name), os.O_RDONLY)
        try:
            for off, _fl, _raw, stored, _rid in scan_pack(fd, os.fstat(fd).st_size):
                out.append(os.pread(fd, REC.size + stored, off))
        finally:
            os.close(fd)
    return out


def index_rows(store: BlobStore) -> set[tuple]:
    """Index rows without the pack they are in (pack names are random)."""
    return {(bytes(r[0]), r[3], r[4], r[5], r[6]) for r in index.iter_all(store.con)}


def observe_b(world, disk: str, *, a_first: bool, a_domain: int, b_domain: int) -> dict:
    """What tenant B's capture of ``disk`` writes and shows, in a store where tenant A
    captured the same disk first (``a_first``) or never."""
    store = new_store(world)
    if a_first:
        capture(store, disk, a_domain)
    before_packs = pack_state(store)
    before_rows = index_rows(store)
    before_manifests = set(store.list_manifests())
    res = capture(store, disk, b_domain)
    after_packs = pack_state(store)
    new_names = [k for k in after_packs if k not in before_packs]
    new_packs = [after_packs[k] for k in new_names]
    assert all(after_packs[k] == v for k, v in before_packs.items())  # packs are never modified
    new_manifests = sorted(set(store.list_manifests()) - before_manifests)
    out = {
        "result": res.to_json(),
        "new_records": records(store, new_names),
        "new_pack_bytes": sum(len(p) for p in new_packs),
        "new_rows": index_rows(store) - before_rows,
        "new_manifests": {d: open(store.manifest_path(d), "rb").read() for d in new_manifests},
    }
    again = capture(store, disk, b_domain)  # B's own dedup: nothing new
    out["second"] = (again.new_chunks, again.stored_bytes, again.digest == res.digest)
    store.close()
    return out


@pytest.mark.parametrize("a_domain,b_domain", [(A, B), (domains.HOME, B), (B, domains.HOME)])
def test_tenant_b_cannot_tell_whether_a_stored_the_disk(tmp_path, a_domain, b_domain):
    disk = make_disk(str(tmp_path / "x.raw"))
    with_a = observe_b(tmp_path / "w1", disk, a_first=True, a_domain=a_domain, b_domain=b_domain)
    without = observe_b(tmp_path / "w2", disk, a_first=False, a_domain=a_domain, b_domain=b_domain)
    # identical work: the same records, rows, pack bytes and manifest bytes written ...
    assert with_a["new_records"] == without["new_records"]
    assert with_a["new_rows"] == without["new_rows"]
    assert with_a["new_pack_bytes"] == without["new_pack_bytes"]
    assert with_a["new_manifests"] == without["new_manifests"]
    # ... and identical output (the JSON the CLI and the gallery's disk records take it from)
    assert with_a["result"] == without["result"]
    assert without["result"]["newChunks"] == 10  # 11 non-zero chunks, two alike
    assert without["result"]["storedBytes"] > 0
    assert len(with_a["new_manifests"]) == 1
    # within B's domain dedup is unchanged: a second capture writes nothing
    assert with_a["second"] == without["second"] == (0, 0, True)


def test_one_shared_domain_is_an_oracle(tmp_path):
    """The counterfactual that makes the test above able to fail: with one domain for both
    tenants (global dedup, as before), B's capture shows whether A stored the disk."""
    disk = make_disk(str(tmp_path / "x.raw"))
    with_a = observe_b(tmp_path / "w1", disk, a_first=True, a_domain=A, b_domain=A)
    without = observe_b(tmp_path / "w2", disk, a_first=False, a_domain=A, b_domain=A)
    assert with_a["result"]["newChunks"] == 0 != without["result"]["newChunks"]
    assert with_a["new_records"] != without["new_records"]


def test_ids():
    h = xxhash.xxh3_128_digest(b"chunk")
    assert dom(domains.HOME).chunk_id(h) == h  # home ids: unchanged, old stores stay valid
    ids = {dom(d).chunk_id(h) for d in (0, 1, 2, A, B, domains.MAX_DOMAIN)}
    assert len(ids) == 6
    other_key = dom(A, bytes(32)).chunk_id(h)
    assert other_key != dom(A).chunk_id(h) and other_key[:10] == dom(A).chunk_id(h)[:10]
    for d in (1, A, domains.MAX_DOMAIN):
        cid = dom(d).chunk_id(h)
        assert len(cid) == 16 and domains.tag_of(cid) == d and cid[:4] != bytes(4)
        assert domains.id_matches(cid, h)  # checked without the key
        assert not domains.id_matches(cid, xxhash.xxh3_128_digest(b"chunj"))
        forged = (d ^ 1).to_bytes(4, "big") + cid[4:]  # another domain's tag on the same hash
        assert not domains.id_matches(forged, h)
        assert not domains.id_matches(bytes(4) + cid[4:], h)
    # pinned: the id scheme is part of the on-disk format (the same under both backends)
    assert dom(1).chunk_id(bytes(16)).hex() == PINNED
    for bad in (-1, domains.MAX_DOMAIN + 1, True, "1", 1.0):
        with pytest.raises(ValueError):
            domains.Domain(bad, KEY)  # type: ignore[arg-type]
    for key in (b"", KEY[:31], KEY + b"x"):
        with pytest.raises(ValueError, match="32 bytes"):
            domains.Domain(A, key)


PINNED = "00000001f998b6efca52388b6acdb33d"


def test_manifest_names_its_domain(tmp_path):
    store = new_store(tmp_path / "s")
    disk = make_disk(str(tmp_path / "x.raw"))
    home = capture(store, disk, domains.HOME)
    b = capture(store, disk, B)
    assert home.digest != b.digest
    mh, mb = store.load_manifest(home.digest), store.load_manifest(b.digest)
    assert (mh.domain, mb.domain) == (domains.HOME, B)
    assert struct.unpack_from("<H", mh.encode(), 4)[0] == 1  # home manifests stay version 1
    assert struct.unpack_from("<H", mb.encode(), 4)[0] == 2
    assert manifest.decode(mb.encode()).domain == B
    assert set(mh.ids()).isdisjoint(mb.ids())
    # an empty (all-zero) disk still gets one manifest per domain
    zero = str(tmp_path / "z.raw")
    with open(zero, "wb") as f:
        f.truncate(4 * MiB)
    assert capture(store, zero, A).digest != capture(store, zero, B).digest
    # hostile / damaged manifests
    blob = bytearray(mb.encode())
    struct.pack_into("<I", blob, 28, A)  # claims domain A, entries are B's
    with pytest.raises(IntegrityError, match="another dedup domain"):
        manifest.decode(bytes(blob))
    struct.pack_into("<I", blob, 28, 0)
    with pytest.raises(IntegrityError, match="home domain"):
        manifest.decode(bytes(blob))
    with pytest.raises(IntegrityError, match="truncated"):
        manifest.decode(bytes(blob[:30]))
    mixed = manifest.Manifest(mb.chunk_size, mb.virtual_size, mb.entries.copy(), B)
    mixed.entries["id"][0] = np.frombuffer(mh.ids()[0], dtype="S16")[0]
    with pytest.raises(IntegrityError, match="another dedup domain"):
        manifest.decode(mixed.encode())
    store.close()


def test_maintenance_across_domains(tmp_path):
    """verify, gc, rebuild-index, replication and repair with the home domain and two
    tenant domains holding the same disk."""
    store = new_store(tmp_path / "s")
    disk = make_disk(str(tmp_path / "x.raw"))
    res = {d: capture(store, disk, d) for d in (domains.HOME, A, B)}
    rep = verify(store)
    assert rep.clean and rep.unreferenced_chunks == 0, rep.to_json()
    st = stats(store)
    assert st["chunks"] == 3 * 10 and st["manifests"] == 3
    # gc: A's disk goes, the others' chunks (same content) stay and read back
    store.remove_manifest(res[A].digest)
    assert gc(store).removed_chunks == 10
    assert stats(store)["chunks"] == 2 * 10
    for d in (domains.HOME, B):
        out = str(tmp_path / f"out-{d}.raw")
        materialize(store, res[d].digest, out)
        subprocess.run(["cmp", disk, out], check=True)
        os.unlink(out)
    assert verify(store).clean
    # rebuild the index from the packs alone: every record checks with its own id
    os.unlink(store.index_path)
    store.close()
    store = BlobStore.open(str(tmp_path / "s"))
    rb = rebuild_index(store)
    assert rb.chunks_indexed == 20 and not rb.skipped_records, rb.to_json()
    assert verify(store).clean
    # replication to a second store (another region) and back through repair
    west = new_store(tmp_path / "west")
    for d in (domains.HOME, B):
        replicate(store, west, res[d].digest)
    assert verify(west).clean and stats(west)["chunks"] == 20
    mb = west.load_manifest(res[B].digest)
    cid = mb.ids()[0]
    pid, off, _raw, stored_len, _fl = index.lookup(west.con, cid)
    name = index.pack_names(west.con)[pid]
    with open(os.path.join(west.packs_dir, name), "r+b") as f:
        f.seek(off + 32 + stored_len // 2)
        byte = f.read(1)
        f.seek(off + 32 + stored_len // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    bad = verify(west)
    assert not bad.clean and [c["chunk"] for c in bad.bad_chunks] == [cid.hex()]
    repair([west], [res[B].digest], sources=[store])
    assert verify(west).clean
    out = str(tmp_path / "west-b.raw")
    materialize(west, res[B].digest, out)
    subprocess.run(["cmp", disk, out], check=True)
    store.close()
    west.close()
