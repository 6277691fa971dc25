"""store.footprint: the records and pack files of one disk's distinct chunks."""

from __future__ import annotations

import os
import random

import pytest

from imagestore.errors import NotFound
from imagestore.formats import open_disk
from imagestore.home import Home
from imagestore.store.footprint import manifest_footprint
from imagestore.store.ingest import ingest
from imagestore.store.layout import make_config
from imagestore.store.packs import REC, scan_pack

CS = 64 << 10


def _capture(home: Home, path: str) -> str:
    r = open_disk(path)
    try:
        return ingest(home.blob_store(), r, threads=1).digest
    finally:
        r.close()


def test_footprint_counts_distinct_chunks_once_with_their_headers(tmp_path):
    rnd = random.Random(4)
    a, b = rnd.randbytes(CS), rnd.randbytes(CS)
    img1, img2 = tmp_path / "1.raw", tmp_path / "2.raw"
    img1.write_bytes(a + b + a + bytes(CS) + a)  # a three times, one zero chunk
    img2.write_bytes(b + rnd.randbytes(CS))
    home = Home.open(str(tmp_path / "store"), cfg=make_config(CS, "none"))
    try:
        d1 = _capture(home, str(img1))
        d2 = _capture(home, str(img2))  # a second pack: b deduplicated, one new chunk
        st = home.blob_store()
        fp1, fp2 = manifest_footprint(st, d1), manifest_footprint(st, d2)
        records = {}
        for name in os.listdir(st.packs_dir):
            path = os.path.join(st.packs_dir, name)
            fd = os.open(path, os.O_RDONLY)
            try:
                for _off, _fl, _raw, stored, rid in scan_pack(fd, os.fstat(fd).st_size):
                    records[rid] = (path, REC.size + stored)
            finally:
                os.close(fd)
        ids1 = set(st.load_manifest(d1).ids())
        ids2 = set(st.load_manifest(d2).ids())
        assert fp1.chunks == len(ids1) == 2 and fp2.chunks == len(ids2) == 2
        assert fp1.stored_bytes == sum(records[c][1] for c in ids1) == 2 * (REC.size + CS)
        assert fp1.pack_paths == tuple(sorted({records[c][0] for c in ids1}))
        assert len(fp2.pack_paths) == 2 and fp1.pack_paths[0] in fp2.pack_paths
        assert fp1.digest == d1
        with pytest.raises(NotFound):
            manifest_footprint(st, "0" * 32)
    finally:
        home.close()
