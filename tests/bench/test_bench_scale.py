"""`imagestore bench scale --tiny` (issue 17): rows per checkpoint and per index size, with
the fields the benchmarks README tables use; and the synthetic chunks it adds are a real,
verifiable part of the store that gc keeps. Never a timed assertion."""

from __future__ import annotations

import json
import os

from imagestore.bench.scale import add_synthetic_chunks, checkpoints, mutate
from imagestore.home import Home
from imagestore.store import maintenance
from tests.helpers import run_imagestore


def test_checkpoints():
    assert checkpoints(1) == [1]
    assert checkpoints(12) == [1, 2, 5, 10, 12]
    assert checkpoints(1000) == [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]


def test_bench_scale_tiny_rows(tmp_path):
    wd = tmp_path / "wd"
    p = run_imagestore("bench", "scale", "--tiny", "--versions", "6", "--index-chunks", "20000",
                       "--workdir", str(wd), "-o", "json", check=False, timeout=120)
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    hist = {r["history"] for r in rows}
    assert hist == {"1 version(s)", "2 version(s)", "5 version(s)", "6 version(s)",
                    "index of 0 chunks", "index of 20,000 chunks"}
    ops = {r["op"] for r in rows if r["history"] == "6 version(s)"}
    assert ops == {"capture a version (sig image-version create)", "disk create from latest",
                   "latest resolution", "sig image-version list",
                   "store gc (nothing to collect)", "store verify (every stored chunk)",
                   "version list, first page of 100 (REST)",
                   "version list, last page of 100 (REST)"}
    for r in rows:
        assert r["seconds"] >= 0 and r["user"] >= 0 and r["sys"] >= 0
        assert r["rssMiB"] > 0 and r["peakRssMiB"] >= r["rssMiB"] * 0.5
        assert r["vsEmpty"] is None or r["vsEmpty"] >= 0
    first = [r for r in rows if r["history"] == "1 version(s)"]
    assert all(r["vsEmpty"] == 1.0 for r in first)  # the reference row of each op
    big = {r["op"]: r for r in rows if r["history"] == "index of 20,000 chunks"}
    assert big["store verify (every stored chunk)"]["chunks"] > 20000  # the synthetic ones too
    lst = [r for r in rows if r["op"] == "sig image-version list"]
    assert all(r["perVersionMs"] > 0 for r in lst)
    assert "scale: 6 versions of 32 MiB" in p.stderr
    assert os.listdir(wd) == []


def test_synthetic_chunks_are_real_and_kept(tmp_path):
    home = Home.open(str(tmp_path / "s"))
    try:
        add_synthetic_chunks(home, 3000, 256 << 10)
        store = home.blob_store()
        rep = maintenance.verify(store)
        assert rep.clean and rep.chunks_checked == 3000 and rep.unreferenced_chunks == 0
        g = maintenance.gc(store)
        assert g.removed_chunks == 0 and g.removed_packs == 0
        assert maintenance.verify(store).chunks_checked == 3000
    finally:
        home.close()


def test_mutate_changes_about_the_budget(tmp_path):
    f = tmp_path / "img"
    f.write_bytes(bytes(1 << 20))
    n = mutate(str(f), 64 << 10, seed=3)
    assert n >= 64 << 10
    data = f.read_bytes()
    assert len(data) == 1 << 20 and data.count(0) < len(data)


def test_synthetic_versions_are_real_and_materialize(tmp_path):
    """A synthetic version (bench scale, between checkpoints) is stored as a capture stores
    it: verify finds every chunk, and its disk is the previous one with the changed chunks."""
    import numpy as np

    from imagestore.bench.scale import synthetic_version
    from imagestore.bench.stores import ingest_path, materialize_file

    img = tmp_path / "img"
    img.write_bytes(os.urandom(2 << 20))
    home = Home.open(str(tmp_path / "s"))
    try:
        store = home.blob_store()
        first = store.load_manifest(ingest_path(store, str(img), 1).digest)
        nxt = synthetic_version(store, first, 512 << 10, np.random.default_rng(1))
        assert (nxt.entries["id"] != first.entries["id"]).sum() == 2  # 512 KiB of 256 KiB chunks
        rep = maintenance.verify(store)
        assert rep.clean and rep.chunks_checked == len(first.entries) + 2
        out = tmp_path / "disk.raw"
        materialize_file(str(tmp_path / "s"), nxt.digest(), str(out), "raw", 1)
        a, b = img.read_bytes(), out.read_bytes()
        assert len(a) == len(b) and sum(a[i:i + (256 << 10)] != b[i:i + (256 << 10)]
                                        for i in range(0, len(a), 256 << 10)) == 2
    finally:
        home.close()
