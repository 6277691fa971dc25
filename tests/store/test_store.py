"""The blob store end to end through the CLI: round trips, sparse giants, dedup, corruption,
bad input. Every check is on real bytes."""

from __future__ import annotations

import json
import os
import random
import subprocess

import pytest

from imagestore.home import Home
from imagestore.store.maintenance import verify
from tests.helpers import need, store_tree_snapshot

MiB = 1 << 20


def write_at(path: str, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def sparse_file(path: str, size: int, writes: list[tuple[int, bytes]]) -> str:
    with open(path, "wb") as f:
        f.truncate(size)
    for off, data in writes:
        write_at(path, off, data)
    return path


def roundtrip(run, src: str, tmp_path, fmt: str = "raw") -> dict:
    # a size off the 512-byte grid is a raw disk only when the user says so
    force = ["--source-format", "raw"] if os.path.getsize(src) % 512 else []
    res = run.json("store", "ingest", src, *force)
    out = str(tmp_path / f"out-{res['digest'][:8]}.{fmt}")
    run.json("store", "materialize", res["digest"], "--path", out, "--format", fmt)
    subprocess.run(["cmp", src, out], check=True)
    return res


def test_roundtrip_realistic_ext4(run, ext4_image, tmp_path):
    res = roundtrip(run, ext4_image, tmp_path)
    assert res["virtualSize"] == os.path.getsize(ext4_image)
    assert 0 < res["storedBytes"] < res["dataBytes"]  # compressed
    assert res["allocatedBytes"] <= os.stat(ext4_image).st_blocks * 512


@pytest.mark.parametrize("chunk", ["64K", "1M"])
def test_roundtrip_synthetic_patterns(run, tmp_path, chunk):
    run.json("init", "--chunk-size", chunk)
    cs = 64 * 1024 if chunk == "64K" else MiB
    rnd = random.Random(7)
    cases = {
        "boundaries": sparse_file(
            str(tmp_path / "b.raw"), 16 * cs,
            [(cs - 3, b"\xab" * 7), (5 * cs, b"\x01"), (8 * cs - 1, b"\xff" * 2), (16 * cs - 1, b"z")],
        ),
        "odd-size": sparse_file(str(tmp_path / "o.raw"), 3 * cs + 12345, [(3 * cs + 12340, b"tail!")]),
        "all-zero": sparse_file(str(tmp_path / "z.raw"), 4 * cs + 1, []),
        "zero-written": str(tmp_path / "zw.raw"),
        "all-random": str(tmp_path / "r.raw"),
    }
    with open(cases["zero-written"], "wb") as f:
        f.write(bytes(2 * cs + 100))  # allocated zeros: read, detected, never stored
    with open(cases["all-random"], "wb") as f:
        f.write(rnd.randbytes(5 * cs + 777))
    results = {name: roundtrip(run, p, tmp_path) for name, p in cases.items()}
    assert results["all-zero"]["chunks"] == 0
    assert results["zero-written"]["chunks"] == 0 and results["zero-written"]["storedBytes"] == 0
    assert results["boundaries"]["chunks"] == 6  # chunks 0 and 1 (straddle), 5, 7 and 8, 15
    # random data does not compress: stored raw (plus 32-byte record headers)
    r = results["all-random"]
    assert r["storedBytes"] == r["dataBytes"] + 32 * r["chunks"]


def test_tiny_files(run, tmp_path):
    one = tmp_path / "one.raw"
    one.write_bytes(b"\x01")
    roundtrip(run, str(one), tmp_path)


def test_fifteen_tib_sparse(run, tmp_path):
    size = 15 * 2**40
    pat = [(0, b"\x11" * MiB), (7 * 2**40 + 12345, b"\x22" * (3 * MiB)), (size - MiB, b"\x33" * MiB)]
    src = sparse_file(str(tmp_path / "huge.raw"), size, pat)
    res = run.json("store", "ingest", src)
    assert res["virtualSize"] == size
    cs = res["chunkSize"]
    assert res["chunks"] == sum((o + len(d) - 1) // cs - o // cs + 1 for o, d in pat)
    mf = os.path.join(run.store, "regions", "local", "manifests", res["digest"] + ".mf")
    assert os.path.getsize(mf) < 4096
    out = str(tmp_path / "huge-out.raw")
    run.json("store", "materialize", res["digest"], "--path", out)
    assert os.path.getsize(out) == size
    with open(out, "rb") as f:
        for off, data in pat:
            f.seek(off)
            assert f.read(len(data)) == data
        f.seek(7 * 2**40 + 12345 - 10)
        assert f.read(10) == bytes(10)
    src_alloc = os.stat(src).st_blocks * 512
    out_alloc = os.stat(out).st_blocks * 512
    assert out_alloc <= src_alloc + 2 * MiB


def test_dedup_v2_changed_in_place(run, ext4_image, tmp_path):
    need("debugfs")
    v2 = str(tmp_path / "v2.raw")
    subprocess.run(["cp", "--sparse=always", ext4_image, v2], check=True)
    payload = tmp_path / "new.bin"
    payload.write_bytes(random.Random(1).randbytes(2 * MiB))
    # change files in place: add a 2 MiB file, remove another
    listing = subprocess.run(["debugfs", "-R", "ls -p /", ext4_image], capture_output=True, text=True).stdout
    victim = next(line.split("/")[5] for line in listing.splitlines() if line.count("/") >= 6 and line.split("/")[5] not in (".", "..", "lost+found"))
    subprocess.run(["debugfs", "-w", "-R", f"write {payload} new.bin", v2], check=True, capture_output=True)
    subprocess.run(["debugfs", "-w", "-R", f"rm {victim}", v2], capture_output=True)
    r1 = run.json("store", "ingest", ext4_image)
    s1 = run.json("store", "stats")
    r2 = run.json("store", "ingest", v2)
    s2 = run.json("store", "stats")
    assert r1["digest"] != r2["digest"]
    grown = s2["uniqueBytes"] - s1["uniqueBytes"]
    # ~2 MiB of new file data plus a few metadata chunks (bitmaps, inode table, journal)
    assert 2 * MiB <= grown <= 12 * MiB, grown
    assert grown < r1["dataBytes"] / 8
    assert s2["dedupRatio"] > 1.8
    out = str(tmp_path / "v2-out.raw")
    run.json("store", "materialize", r2["digest"], "--path", out)
    subprocess.run(["cmp", v2, out], check=True)


def _packs(store: str) -> list[str]:
    d = os.path.join(store, "regions", "local", "packs")
    return [os.path.join(d, n) for n in sorted(os.listdir(d))]


def test_corruption_detected_and_named(run, tmp_path):
    src = sparse_file(str(tmp_path / "c.raw"), 8 * MiB, [(0, os.urandom(3 * MiB))])
    other = sparse_file(str(tmp_path / "d.raw"), 8 * MiB, [(4 * MiB, os.urandom(MiB))])
    a = run.json("store", "ingest", src)["digest"]
    b = run.json("store", "ingest", other)["digest"]
    assert run("store", "verify").exit_code == 0
    pack = max(_packs(run.store), key=os.path.getsize)  # a's pack (3 MiB)
    with open(pack, "r+b") as f:
        f.seek(MiB + 100)
        byte = f.read(1)
        f.seek(MiB + 100)
        f.write(bytes([byte[0] ^ 0xFF]))
    r = run("store", "verify")
    assert r.exit_code == 7
    rep = json.loads(r.stdout)
    assert not rep["clean"] and len(rep["badChunks"]) == 1
    assert rep["affectedManifests"] == [a] and b not in rep["affectedManifests"]
    assert a in r.stderr and r.stderr.count("\n") == 1
    out = tmp_path / "bad.raw"
    r = run("store", "materialize", a, "--path", str(out))
    assert r.exit_code == 7 and "does not match its hash" in r.stderr
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if "imagestore" in p]
    # the undamaged disk still comes back
    run.json("store", "materialize", b, "--path", str(tmp_path / "good.raw"))
    subprocess.run(["cmp", other, str(tmp_path / "good.raw")], check=True)


def test_gc_removes_unreferenced_and_keeps_live(run, tmp_path):
    run.json("init", "--chunk-size", "1M")
    a_src = sparse_file(str(tmp_path / "a.raw"), 8 * MiB, [(0, os.urandom(4 * MiB))])
    b_src = sparse_file(str(tmp_path / "b.raw"), 8 * MiB, [(0, os.urandom(2 * MiB))])
    a = run.json("store", "ingest", a_src)["digest"]
    b = run.json("store", "ingest", b_src)["digest"]
    home = Home.open(run.store)
    assert home.blob_store().remove_manifest(a)
    home.close()
    rep = run.json("store", "gc")
    assert rep["removedChunks"] == 4 and rep["freedBytes"] >= 4 * MiB
    st = run.json("store", "stats")
    assert st["chunks"] == 2 and st["manifests"] == 1
    assert run("store", "verify").exit_code == 0
    run.json("store", "materialize", b, "--path", str(tmp_path / "b.out"))
    subprocess.run(["cmp", b_src, str(tmp_path / "b.out")], check=True)
    assert run("store", "materialize", a, "--path", str(tmp_path / "a.out")).exit_code == 4


def test_gc_compacts_partly_dead_pack(run, tmp_path):
    run.json("init", "--chunk-size", "1M")
    shared = os.urandom(2 * MiB)
    a_src = sparse_file(str(tmp_path / "a.raw"), 8 * MiB, [(0, shared + os.urandom(2 * MiB))])
    a = run.json("store", "ingest", a_src)["digest"]
    b_src = sparse_file(str(tmp_path / "b.raw"), 8 * MiB, [(0, shared)])
    b = run.json("store", "ingest", b_src)["digest"]
    home = Home.open(run.store)
    home.blob_store().remove_manifest(a)
    home.close()
    rep = run.json("store", "gc")
    assert rep["rewrittenPacks"] == 1 and rep["removedChunks"] == 2
    assert run("store", "verify").exit_code == 0
    run.json("store", "materialize", b, "--path", str(tmp_path / "b.out"))
    subprocess.run(["cmp", b_src, str(tmp_path / "b.out")], check=True)


def test_init_options_and_header(run, tmp_path):
    r = run.json("init", "--chunk-size", "256K", "--compression", "none")
    assert r["chunkSize"] == 256 * 1024 and r["compression"] == "none" and r["version"] == 1
    assert run("init").exit_code == 5  # already a store
    src = sparse_file(str(tmp_path / "s.raw"), MiB, [(0, b"a" * MiB)])
    res = run.json("store", "ingest", src)
    assert res["chunks"] == 4 and res["newChunks"] == 1  # four equal chunks stored once
    assert res["storedBytes"] == 256 * 1024 + 32  # uncompressed: data plus record header


@pytest.mark.parametrize(
    "args,code,text",
    [
        (["init", "--chunk-size", "3000"], 3, "--chunk-size"),
        (["init", "--compression", "lz5"], 3, "--compression"),
        (["store", "materialize", "00" * 16, "--path", "OUT"], 4, "no such disk content"),
        (["store", "materialize", "xyz", "--path", "OUT"], 3, "digest"),
        (["store", "ingest", "MISSING"], 4, "no such file"),
        (["store", "ingest", "DIR"], 3, "is a directory"),
        (["store", "ingest", "EMPTY"], 6, "empty file"),
        (["store", "stats", "--query", "[["], 3, "--query"),
    ],
)
def test_bad_input_one_line_and_store_unchanged(run, tmp_path, args, code, text):
    run.json("store", "ingest", sparse_file(str(tmp_path / "seed.raw"), MiB, [(0, b"x" * 100)]))
    (tmp_path / "adir").mkdir()
    (tmp_path / "empty.raw").write_bytes(b"")
    subst = {"MISSING": str(tmp_path / "nope.raw"), "DIR": str(tmp_path / "adir"),
             "EMPTY": str(tmp_path / "empty.raw"), "OUT": str(tmp_path / "o.raw")}
    args = [subst.get(a, a) for a in args]
    before = store_tree_snapshot(run.store)
    r = run(*args)
    assert r.exit_code == code, (r.exit_code, r.stderr)
    assert text in r.stderr and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1
    assert "Traceback" not in r.stderr + r.stdout
    assert store_tree_snapshot(run.store) == before
    assert not (tmp_path / "o.raw").exists()


def test_not_a_store(run, tmp_path):
    d = tmp_path / "notastore"
    d.mkdir()
    (d / "precious.txt").write_text("keep me")
    r = run("--store", str(d), "store", "stats", store=False)
    assert r.exit_code == 8 and "not an imagestore store" in r.stderr
    assert os.listdir(d) == ["precious.txt"]
    (d / "imagestore.json").write_text('{"format": "imagestore", "version": 99}')
    r = run("--store", str(d), "store", "stats", store=False)
    assert r.exit_code == 8 and "version 99" in r.stderr


def test_unreadable_file(run, tmp_path):
    src = tmp_path / "secret.raw"
    src.write_bytes(b"x" * 4096)
    src.chmod(0)
    run.json("init")
    before = store_tree_snapshot(run.store)
    cmd = ["imagestore", "--store", run.store, "store", "ingest", str(src)]
    if os.geteuid() == 0:  # root reads anything: drop the capabilities that allow it
        drop = "-dac_override,-dac_read_search"
        cmd = ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", *cmd]
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 10, p.stderr
    assert p.stderr.strip() == f"error: {src}: permission denied"
    assert store_tree_snapshot(run.store) == before


def test_output_options_before_and_after(run, tmp_path):
    src = sparse_file(str(tmp_path / "s.raw"), MiB, [(0, b"q" * 10)])
    d = run.json("store", "ingest", src)["digest"]
    a = run("-o", "tsv", "--query", "manifests", "store", "stats")
    b = run("store", "stats", "-o", "tsv", "--query", "manifests")
    assert a.stdout == b.stdout == "1\n"
    t = run("store", "stats", "-o", "table")
    assert "DedupRatio" in t.stdout
    assert run("store", "stats", "-o", "none").stdout == ""
    assert d


def test_verify_api_on_fresh_store(store_dir):
    home = Home.open(store_dir)
    rep = verify(home.blob_store())
    assert rep.clean and rep.chunks_checked == 0
    home.close()


def test_private_wal_index_is_shared_by_the_ingest_threads(tmp_path, monkeypatch):
    """Below ``SHM_HEADROOM`` free, the index is opened with its WAL index in private memory
    (``locking_mode=EXCLUSIVE``: no -shm to SIGBUS on), which allows one connection per
    process. Ingest looks chunks up from worker threads and publishes from the main one:
    they must share that connection, not find the file locked (was exit 9, "the database
    is busy (another imagestore is writing)", on every multi-threaded capture that brought
    free space under 4 MiB)."""
    from imagestore.formats import open_disk
    from imagestore.store import maintenance, sqlitedb
    from imagestore.store.ingest import ingest

    monkeypatch.setattr(sqlitedb, "SHM_HEADROOM", 1 << 62)  # as on a nearly full disk
    store = Home.open(str(tmp_path / "s")).blob_store()
    assert store.con.private
    src = tmp_path / "v.raw"
    src.write_bytes(random.Random(8).randbytes(6 << 20))
    r = open_disk(str(src))
    try:
        res = ingest(store, r, threads=2)
    finally:
        r.close()
    assert not os.path.exists(store.index_path + "-shm")
    store.close()
    assert maintenance.verify(store).clean
    assert store.load_manifest(res.digest).digest() == res.digest
