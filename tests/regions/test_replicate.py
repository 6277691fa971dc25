"""The copy engine on real bytes: incremental (dedup-aware) replication, resume after SIGKILL
at random moments without duplicate chunks, progress, and refusal of damaged sources."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

from imagestore.errors import IntegrityError
from imagestore.home import Home
from imagestore.regions import RegionRegistry, replicate
from imagestore.regions.replicas import open_slot, region_slots
from imagestore.store import index
from imagestore.store.layout import CasConfig
from imagestore.store.maintenance import stats, verify
from imagestore.store.materialize import materialize
from tests.helpers import kill_when_grown, make_random, make_v2, pack_records, run_imagestore

MiB = 1 << 20


def test_incremental_sends_about_the_changed_chunks(run, ext4_image, tmp_path):
    v2 = make_v2(ext4_image, tmp_path)
    d1 = run.json("store", "ingest", ext4_image)["digest"]
    d2 = run.json("store", "ingest", v2)["digest"]
    run.json("region", "create", "west", "--path", str(tmp_path / "w"))
    full = run.json("region", "replicate", d1, "--to", "west")
    before = run.json("region", "show", "west")["slots"][0]
    inc = run.json("region", "replicate", d2, "--to", "west")
    after = run.json("region", "show", "west")["slots"][0]
    added = after["storedBytes"] - before["storedBytes"]
    grown = after["uniqueBytes"] - before["uniqueBytes"]
    # exactly the chunks v2 has and v1 lacks, as stored in the source
    home = Home.open(run.store)
    local = home.blob_store()
    ids1 = set(local.load_manifest(d1).ids())
    new = set(local.load_manifest(d2).ids()) - ids1
    locs = index.lookup_many(local.con, new)
    expected = sum(32 + loc[3] for loc in locs.values())
    home.close()
    assert inc["chunksSent"] == len(new) and added == inc["bytesSent"] == expected
    # ~2 MiB of new file data plus a few metadata chunks, far less than the full copy
    assert 2 * MiB <= grown <= 12 * MiB, grown
    assert added < full["bytesSent"] / 8
    assert inc["copies"][0]["chunksSkipped"] == inc["copies"][0]["chunks"] - len(new)
    slots = [open_slot(str(tmp_path / "w"), run_cfg(run), create=False)]
    for d, src in ((d1, ext4_image), (d2, v2)):
        out = str(tmp_path / f"{d}.raw")
        materialize(slots[0], d, out)
        subprocess.run(["cmp", src, out], check=True)
    assert verify(slots[0]).clean
    slots[0].close()


def run_cfg(run):
    home = Home.open(run.store)
    cfg = home.config
    home.close()
    return cfg


def test_library_replicate_progress_and_idempotence(tmp_path):
    home = Home.open(str(tmp_path / "s"), cfg=CasConfig(chunk_size=MiB))
    src = home.blob_store()
    from imagestore.formats import open_disk
    from imagestore.store.ingest import ingest

    raw = tmp_path / "d.raw"
    rnd = random.Random(5)
    raw.write_bytes(rnd.randbytes(3 * MiB) + bytes(2 * MiB) + rnd.randbytes(64) * (MiB // 64))
    reader = open_disk(str(raw))
    digest = ingest(src, reader).digest
    reader.close()
    dst = open_slot(str(tmp_path / "dst"), home.config)
    seen: list[tuple[int, int]] = []
    res = replicate(src, dst, digest, progress=lambda d, t: seen.append((d, t)))
    assert res.chunks_total == 4 and res.chunks_sent == 4 and res.manifest_published
    assert seen[-1] == (4 * MiB, 4 * MiB) and all(seen[i][0] <= seen[i + 1][0] for i in range(len(seen) - 1))
    again = replicate(src, dst, digest)
    assert again.chunks_sent == 0 and again.chunks_skipped == 4 and not again.manifest_published
    assert replicate(src, src, digest).bytes_sent == 0  # same store: nothing to do
    # a damaged source chunk stops the replication before the manifest is published
    other = open_slot(str(tmp_path / "dst2"), home.config)
    pack = os.path.join(src.packs_dir, os.listdir(src.packs_dir)[0])
    with open(pack, "r+b") as f:
        f.seek(4096 + 100)  # inside the first payload (raw payloads start 4 KiB-aligned)
        f.write(b"\xff\xff\xff\xff")
    with pytest.raises(IntegrityError, match="does not match its hash|damaged"):
        replicate(src, other, digest)
    assert not other.has_manifest(digest)
    assert verify(other).clean  # what arrived before the bad chunk is valid, indexed data
    for s in (dst, other):
        s.close()
    home.close()


def test_sigkill_replication_resumes_without_duplicates(tmp_path):
    store = str(tmp_path / "store")
    src = make_random(str(tmp_path / "src.raw"), 384, 7)
    run_imagestore("--store", store, "init", "--chunk-size", "256K")
    digest = json.loads(run_imagestore("--store", store, "store", "ingest", src).stdout)["digest"]
    zone = str(tmp_path / "zone")
    run_imagestore("--store", store, "region", "create", "west", "--path", zone)
    rnd = random.Random(2024)
    kills = 0
    argv = [sys.executable, "-m", "imagestore.cli.main", "--store", store, "region", "replicate",
            digest, "--to", "west", "--threads", "1"]
    for _attempt in range(4):
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # kill once a random share of what is still missing has arrived in the zone
        kills += kill_when_grown(proc, zone, int(rnd.uniform(0.05, 0.3) * 384 * MiB))
        if proc.returncode == 0:
            break
    assert kills >= 3
    res = json.loads(run_imagestore(*argv[3:]).stdout)
    home = Home.open(store)
    reg = RegionRegistry(home)
    slots = [open_slot(p, home.config, create=False) for p in region_slots(reg.get("west"))]
    dst = slots[0]
    m = home.blob_store().load_manifest(digest)
    ids = set(m.ids())
    rows = dst.con.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    assert rows == len(ids) == 384 * 4  # one index row per chunk, nothing else
    recs = pack_records(dst)
    assert set(recs) == ids
    dups = sum(n - 1 for n in recs.values())
    assert dups <= kills, (dups, kills)  # at most the record in flight when a kill hit
    assert res["copies"][0]["chunksSkipped"] + res["chunksSent"] + res["chunksAdopted"] == len(ids)
    rep = verify(dst)
    assert rep.clean and rep.unreferenced_chunks == 0
    st = stats(dst)
    assert st["uniqueBytes"] == 384 * MiB
    out = str(tmp_path / "out.raw")
    materialize(dst, digest, out)
    subprocess.run(["cmp", src, out], check=True)
    for s in slots:
        s.close()
    home.close()


def test_two_replications_at_once(tmp_path):
    """Two processes replicating the same disk to the same region: both succeed, the target
    indexes every chunk once and verifies clean (the loser's duplicates are dead space)."""
    store = str(tmp_path / "store")
    src = make_random(str(tmp_path / "src.raw"), 96, 11)
    run_imagestore("--store", store, "init", "--chunk-size", "1M")
    digest = json.loads(run_imagestore("--store", store, "store", "ingest", src).stdout)["digest"]
    run_imagestore("--store", store, "region", "create", "west", "--path", str(tmp_path / "z"))
    argv = [sys.executable, "-m", "imagestore.cli.main", "--store", store, "region", "replicate",
            digest, "--to", "west", "--copies", "2"]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate() for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    rep = json.loads(run_imagestore("--store", store, "region", "verify", "west").stdout)
    assert rep["clean"] and [s["chunksChecked"] for s in rep["slots"]] == [96, 96]
    assert all(s["unreferencedChunks"] == 0 for s in rep["slots"])


def _payload_sums_match(store) -> int:
    """Check every index row's psum against the payload in its pack; returns rows checked."""
    from imagestore.store.packs import REC, read_record

    n = 0
    for cid, pack, off, _rl, sl, _fl, psum in store.con.execute(
            "SELECT id, pack, offset, raw_len, stored_len, flags, psum FROM chunks"):
        fd, _ = store.pack_fd(pack)
        rec = read_record(fd, off, sl)
        assert rec[16:32] == bytes(cid)
        assert psum == index.payload_sum(rec[REC.size:]), cid.hex()
        n += 1
    return n


def test_payload_checksum_checked_on_arrival(tmp_path):
    """Replication checks each record against the payload checksum (psum) its source row
    recorded; rows without one (older stores) or with a wrong one get the full
    decompress-and-hash check, and a damaged compressed payload is refused either way."""
    from imagestore.formats import open_disk
    from imagestore.store.ingest import ingest

    home = Home.open(str(tmp_path / "s"), cfg=CasConfig(chunk_size=256 << 10))
    src = home.blob_store()
    raw = tmp_path / "d.raw"
    rnd = random.Random(9)
    # compressible text chunks and incompressible random ones, so both record kinds occur
    text = b"".join(b"line %d of a log file\n" % i for i in range(400_000))[: 6 * MiB]
    assert len(text) == 6 * MiB
    raw.write_bytes(text + rnd.randbytes(2 * MiB))
    reader = open_disk(str(raw), source_format="raw")  # text: raw only when forced
    digest = ingest(src, reader).digest
    reader.close()
    flags = {f for (f,) in src.con.execute("SELECT flags FROM chunks")}
    assert flags == {0, 1}
    assert _payload_sums_match(src) == 32  # every row written by ingest carries its psum

    # 1. an older store: no psums -> the full check, and the target gets correct psums
    src.con.execute("UPDATE chunks SET psum = NULL")
    a = open_slot(str(tmp_path / "a"), home.config)
    assert replicate(src, a, digest).chunks_sent == 32
    assert _payload_sums_match(a) == 32 and verify(a).clean

    # 2. a wrong psum in the source index, data intact: falls back to the full check, accepted
    rows = src.con.execute("SELECT id FROM chunks").fetchall()
    src.con.execute("UPDATE chunks SET psum = 12345")
    b = open_slot(str(tmp_path / "b"), home.config)
    assert replicate(src, b, digest).chunks_sent == len(rows)
    assert _payload_sums_match(b) == 32 and verify(b).clean
    out = str(tmp_path / "out.raw")
    materialize(b, digest, out)
    assert open(out, "rb").read() == raw.read_bytes()

    # 3. psums back, then one compressed payload damaged: refused, nothing published
    src.con.execute("UPDATE chunks SET psum = NULL")
    for cid, pack, off, _rl, sl, _fl, _ps in index.iter_all(src.con):
        fd, _ = src.pack_fd(pack)
        from imagestore.store.packs import REC, read_record
        src.con.execute("UPDATE chunks SET psum=? WHERE id=?",
                        (index.payload_sum(read_record(fd, off, sl)[REC.size:]), cid))
    cid, pack, off, _rl, sl, _fl, _ps = next(r for r in index.iter_all(src.con) if r[5] == 1)
    path = os.path.join(src.packs_dir, index.pack_names(src.con)[pack])
    with open(path, "r+b") as f:
        f.seek(off + 32 + sl // 2)
        byte = f.read(1)
        f.seek(off + 32 + sl // 2)
        f.write(bytes([byte[0] ^ 0x55]))
    c = open_slot(str(tmp_path / "c"), home.config)
    with pytest.raises(IntegrityError, match=cid.hex()):
        replicate(src, c, digest)
    assert not c.has_manifest(digest) and verify(c).clean
    for s in (a, b, c):
        s.close()
    home.close()


def test_index_without_psum_column_is_migrated(tmp_path):
    """An index written before the psum column existed is upgraded when the store opens."""
    import sqlite3

    home = Home.open(str(tmp_path / "s"), cfg=CasConfig(chunk_size=MiB))
    st = home.blob_store()
    path = st.index_path
    home.close()
    con = sqlite3.connect(path)
    con.executescript(
        "DROP TABLE chunks; CREATE TABLE chunks (id BLOB PRIMARY KEY, pack INTEGER NOT NULL "
        "REFERENCES packs(id), offset INTEGER NOT NULL, raw_len INTEGER NOT NULL, "
        "stored_len INTEGER NOT NULL, flags INTEGER NOT NULL) WITHOUT ROWID;")
    con.close()
    home = Home.open(str(tmp_path / "s"))
    st = home.blob_store()
    cols = [r[1] for r in st.con.execute("PRAGMA table_info(chunks)")]
    assert cols[-1] == "psum"
    raw = tmp_path / "d.raw"
    raw.write_bytes(random.Random(3).randbytes(2 * MiB))
    from imagestore.formats import open_disk
    from imagestore.store.ingest import ingest

    reader = open_disk(str(raw))
    ingest(st, reader)
    reader.close()
    assert _payload_sums_match(st) == 2
    home.close()


def test_verify_reports_a_wrong_payload_checksum_and_repair_fixes_it(run, ext4_image, tmp_path):
    """A psum that does not match its record is index damage: verify names the chunk, and
    the region's repair rewrites the record from the other copy with a correct psum."""
    d = run.json("store", "ingest", ext4_image)["digest"]
    run.json("region", "create", "west", "--path", str(tmp_path / "w1"), "--path", str(tmp_path / "w2"))
    run.json("region", "replicate", d, "--to", "west", "--copies", "2")
    home = Home.open(run.store)
    reg = RegionRegistry(home)
    slot = open_slot(region_slots(reg.get("west"))[0], home.config, create=False)
    cid = slot.con.execute("SELECT id FROM chunks LIMIT 1").fetchone()[0]
    slot.con.execute("UPDATE chunks SET psum = (psum + 1) % 9223372036854775807 WHERE id=?", (cid,))
    rep = verify(slot)
    assert not rep.clean and [b["chunk"] for b in rep.bad_chunks] == [bytes(cid).hex()]
    assert "payload checksum" in rep.bad_chunks[0]["error"]
    slot.close()
    home.close()
    fixed = run.json("region", "verify", "west", "--repair")
    assert fixed["clean"], fixed
    home = Home.open(run.store)
    slot = open_slot(region_slots(RegionRegistry(home).get("west"))[0], home.config, create=False)
    assert verify(slot).clean
    slot.close()
    home.close()


def test_index_row_disagreeing_with_its_record_is_copied_as_the_record_says(tmp_path):
    """A damaged index row (wrong flags) with an intact record: the full check passes on the
    record's own header, and the target gets the record as it is, readable and verified."""
    from imagestore.formats import open_disk
    from imagestore.store.ingest import ingest

    home = Home.open(str(tmp_path / "s"), cfg=CasConfig(chunk_size=256 << 10))
    src = home.blob_store()
    raw = tmp_path / "d.raw"
    raw.write_bytes(b"".join(b"row %d\n" % i for i in range(200_000))[: MiB])
    reader = open_disk(str(raw), source_format="raw")  # text: raw only when forced
    digest = ingest(src, reader).digest
    reader.close()
    assert {f for (f,) in src.con.execute("SELECT flags FROM chunks")} == {1}
    src.con.execute("UPDATE chunks SET flags = 0")  # the index now claims raw payloads
    dst = open_slot(str(tmp_path / "d"), home.config)
    replicate(src, dst, digest)
    assert {f for (f,) in dst.con.execute("SELECT flags FROM chunks")} == {1}
    assert verify(dst).clean
    out = str(tmp_path / "out.raw")
    materialize(dst, digest, out)
    assert open(out, "rb").read() == raw.read_bytes()
    dst.close()
    home.close()
