"""gc and verify mark the index batch by batch (``store/marking.py``, issue 17: memory that
does not grow with the store): with batches of a few rows -- many passes over the manifests,
and gc's compaction marking packs itself -- they must find exactly what one batch finds."""

from __future__ import annotations

import os

import numpy as np
import pytest

from imagestore.formats import open_disk
from imagestore.home import Home
from imagestore.store import maintenance, marking
from imagestore.store.ingest import ingest

MiB = 1 << 20


def _store(tmp_path):
    home = Home.open(str(tmp_path / "s"))
    store = home.blob_store()
    digests = []
    shared = os.urandom(MiB)
    for i in range(3):
        p = tmp_path / f"img{i}.raw"
        p.write_bytes(shared + os.urandom(MiB) + bytes(MiB) + os.urandom(MiB // 2))
        r = open_disk(str(p))
        try:
            digests.append(ingest(store, r, threads=1).digest)
        finally:
            r.close()
    return home, store, digests


@pytest.mark.parametrize("batch,keep", [(None, None), (3, None), (3, 2), (1, 0)])
def test_gc_and_verify_same_with_small_batches(tmp_path, monkeypatch, batch, keep):
    if batch:
        monkeypatch.setattr(marking, "MARK_BATCH", batch)
    if keep is not None:
        monkeypatch.setattr(maintenance, "LIVE_KEEP", keep)
    home, store, digests = _store(tmp_path)
    try:
        n = store.con.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        rep = maintenance.verify(store)
        assert rep.clean and rep.chunks_checked == n and rep.unreferenced_chunks == 0
        store.remove_manifest(digests[0])  # its pack: the shared chunks live, its own dead
        assert maintenance.verify(store).unreferenced_chunks == 6  # 1.5 MiB at 256 KiB
        g = maintenance.gc(store)
        assert g.removed_chunks == 6 and g.rewritten_packs == 1
        rep = maintenance.verify(store)
        assert rep.clean and rep.chunks_checked == n - 6 and rep.unreferenced_chunks == 0
        # a chunk the index lost: verify names it and the manifests that need it
        cid = store.load_manifest(digests[1]).ids()[0]  # the shared first chunk
        with store.con:
            store.con.execute("DELETE FROM chunks WHERE id=?", (cid,))
        rep = maintenance.verify(store)
        assert sorted(m["manifest"] for m in rep.missing_chunks) == sorted([digests[1], digests[2]])
        assert {m["chunk"] for m in rep.missing_chunks} == {cid.hex()}
        assert rep.affected_manifests == sorted([digests[1], digests[2]])
    finally:
        home.close()


def test_mark_with_shared_high_words(tmp_path):
    """Ids of a batch that share their first 8 bytes are told apart by all 16."""
    home = Home.open(str(tmp_path / "s"))
    try:
        store = home.blob_store()
        from imagestore.store import manifest

        ids = np.array([b"A" * 8 + b"\x00" * 7 + bytes([k]) for k in (1, 2, 3)], dtype="V16")
        e = np.zeros(2, dtype=manifest.ENTRY_DTYPE)
        e["index"] = [0, 1]
        e["length"] = 8
        e["id"] = np.array([ids[1].tobytes(), b"A" * 8 + b"\x00" * 7 + b"\x09"], "V16").view("S16")
        d = store.publish_manifest(manifest.Manifest(1 << 18, 2 << 18, e))
        lost = []
        ref = marking.mark(store, [d], marking.Batch(ids, []), lambda _d, x: lost.extend(x.tolist()))
        assert ref.tolist() == [False, True, False]
        assert lost == [b"A" * 8 + b"\x00" * 7 + b"\x09"]
    finally:
        home.close()
