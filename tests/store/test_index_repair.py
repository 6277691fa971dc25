"""A damaged chunk index in the local region is damage (exit 7, naming the region, copy and
file), not an internal error; `store verify --repair` and `store rebuild-index` rebuild it from
the packs' records into a new file (never in place), skipping and reporting damaged records and
torn tails; gc refuses to run on a damaged index; `gc --dry-run` says what it would remove."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from imagestore.home import Home
from imagestore.store.packs import REC
from tests.helpers import damage_index, fails, need, pack_records, store_tree_snapshot

DAMAGE = 7


def local(run) -> str:
    return os.path.join(run.store, "regions", "local")


def index_path(run) -> str:
    return os.path.join(local(run), "index.sqlite")


def packs(run) -> list[str]:
    d = os.path.join(local(run), "packs")
    return sorted(os.path.join(d, n) for n in os.listdir(d))


def materialize_cmp(run, digest: str, src: str, out) -> None:
    run.json("store", "materialize", digest, "--path", str(out))
    subprocess.run(["cmp", src, str(out)], check=True)


@pytest.fixture
def ingested(run, ext4_image) -> dict:
    return run.json("store", "ingest", ext4_image)


@pytest.mark.parametrize("how", ["header", "truncate", "delete"])
def test_damaged_local_index_verify_repair(run, ext4_image, ingested, tmp_path, how):
    digest, chunks = ingested["digest"], ingested["chunks"]
    path = index_path(run)
    damage_index(path, how)
    before = store_tree_snapshot(os.path.join(local(run), "packs"))
    r = run("store", "verify")
    fails(r, DAMAGE, "region 'local' copy 0", path, "1 damaged index", digest)
    rep = json.loads(r.stdout)
    assert not rep["clean"]
    assert [(d["region"], d["copy"], d["path"]) for d in rep["damagedIndexes"]] == [
        ("local", 0, path)]
    assert rep["affectedManifests"] == [digest]
    assert os.path.exists(path) == (how != "delete")  # verify created nothing
    # other commands say the same, with exit 7 and no traceback
    fails(run("store", "materialize", digest, "--path", str(tmp_path / "x.raw")), DAMAGE, path)
    assert not (tmp_path / "x.raw").exists()
    fails(run("store", "gc"), DAMAGE, path)  # never deletes packs on a damaged index's word
    assert store_tree_snapshot(os.path.join(local(run), "packs")) == before
    fixed = run.json("store", "verify", "--repair")
    assert fixed["clean"] and fixed["damagedIndexes"] == []
    (rb,) = fixed["repair"]["rebuiltIndexes"]
    assert rb["region"] == "local" and rb["copy"] == 0 and rb["previousIndex"] != "ok"
    assert rb["chunksIndexed"] == chunks and rb["skippedRecords"] == [] and rb["missingChunks"] == []
    assert store_tree_snapshot(os.path.join(local(run), "packs")) == before  # packs untouched
    assert not [n for n in os.listdir(local(run)) if n.startswith(".tmp-")]
    again = run.json("store", "verify")
    assert again["clean"] and again["chunksChecked"] == chunks
    materialize_cmp(run, digest, ext4_image, tmp_path / "back.raw")
    # the store works on: the same disk again is deduplicated against the rebuilt index
    assert run.json("store", "ingest", ext4_image)["newChunks"] == 0


def test_rebuild_index_command_when_gone(run, ext4_image, ingested, tmp_path):
    os.unlink(index_path(run))
    fails(run("store", "ingest", ext4_image), DAMAGE, "the chunk index is missing")
    assert not os.path.exists(index_path(run))
    (rb,) = run.json("store", "rebuild-index")
    assert rb["previousIndex"] == "the chunk index is missing"
    assert rb["chunksIndexed"] == ingested["chunks"] and rb["packsScanned"] == len(packs(run))
    assert run.json("store", "verify")["clean"]
    materialize_cmp(run, ingested["digest"], ext4_image, tmp_path / "back.raw")
    # rebuilding a sound index gives the same rows
    (again,) = run.json("store", "rebuild-index")
    assert again["previousIndex"] == "ok" and again["chunksIndexed"] == ingested["chunks"]
    fails(run("store", "rebuild-index", "--region", "nowhere"), 4, "nowhere")


def test_rebuild_skips_garbage_tail_and_damaged_header(run, ext4_image, ingested, tmp_path):
    digest, chunks = ingested["digest"], ingested["chunks"]
    home = Home.open(run.store)
    st = home.blob_store()
    rows = list(st.con.execute("SELECT c.id, p.name, c.offset, c.stored_len FROM chunks c "
                               "JOIN packs p ON p.id = c.pack ORDER BY p.name, c.offset"))
    home.close()
    victim_id, victim_pack, victim_off, _ = rows[len(rows) // 2]  # a record in the middle
    pack = os.path.join(local(run), "packs", victim_pack)
    with open(pack, "r+b") as f:
        f.seek(victim_off)
        f.write(os.urandom(REC.size))  # its header is garbage: id and length lost
    other = packs(run)[0]
    with open(other, "ab") as f:  # a torn record, then garbage
        f.write(REC.pack(b"ISC1", 0, 4096, 4096, bytes(16)) + b"half a record")
    os.unlink(index_path(run))
    r = run("store", "rebuild-index")
    assert r.exit_code == 0, r.stderr
    (rb,) = json.loads(r.stdout)
    # one record lost, every record after it in the same pack found again
    assert rb["chunksIndexed"] == chunks - 1
    assert [(s["pack"], s["offset"]) for s in rb["skippedRecords"]] == [(pack, victim_off)]
    assert [(t["pack"]) for t in rb["tornTails"]] == [other]
    assert rb["missingChunks"] == [{"chunk": bytes(victim_id).hex(), "manifest": digest}]
    assert rb["affectedManifests"] == [digest]
    # verify names what is still wrong: the chunk no record holds (no other copy here)
    r = run("store", "verify")
    fails(r, DAMAGE, "1 missing chunk", digest)
    assert json.loads(r.stdout)["damagedIndexes"] == []
    r = run("store", "verify", "--repair")
    fails(r, DAMAGE, "after repair")
    assert json.loads(r.stdout)["repair"]["unrepairable"][0]["chunk"] == bytes(victim_id).hex()
    assert pack_records(Home.open(run.store).blob_store())[bytes(victim_id)] == 0


def test_gc_dry_run_says_would(run, ext4_image, ingested, tmp_path):
    small = tmp_path / "small.raw"
    small.write_bytes(os.urandom(3 << 20))
    s = run.json("store", "ingest", str(small))
    home = Home.open(run.store)
    assert home.blob_store().remove_manifest(s["digest"])
    home.close()
    (tmp_path / "store" / "regions" / "local" / "manifests" / ".tmp-left-over").write_bytes(b"x")
    before = store_tree_snapshot(run.store)
    dry = run.json("store", "gc", "--dry-run")
    assert dry["dryRun"] is True and "removedChunks" not in dry and "freedBytes" not in dry
    assert dry["wouldRemoveChunks"] == s["newChunks"] and dry["wouldFreeBytes"] >= 3 << 20
    assert dry["wouldRemoveTempFiles"] == 1
    assert store_tree_snapshot(run.store) == before  # nothing removed, not even the temp
    done = run.json("store", "gc")
    assert done["removedChunks"] == dry["wouldRemoveChunks"]
    assert done["freedBytes"] == dry["wouldFreeBytes"] and done["removedTempFiles"] == 1
    assert run.json("store", "verify")["clean"]
    materialize_cmp(run, ingested["digest"], ext4_image, tmp_path / "back.raw")


def test_rebuild_killed_at_every_write_point(run, tmp_path):
    """SIGKILL `store rebuild-index` at each fsync/rename/unlink in turn (strace fault
    injection) until it completes untouched: after every kill the store is either as it was
    (index lost: verify exit 7, --repair fixes it) or rebuilt; never a half-written index."""
    strace = need("strace")
    src = tmp_path / "src.raw"
    src.write_bytes(os.urandom(3 << 20) + bytes(1 << 20) + os.urandom(2 << 20))
    digest = run.json("store", "ingest", str(src))["digest"]
    os.unlink(index_path(run))
    calls = "fsync,fdatasync,rename,renameat,renameat2,unlink,unlinkat"
    base = tmp_path / "base"
    shutil.copytree(run.store, base)
    kills = 0
    for n in range(1, 40):
        shutil.rmtree(run.store)
        shutil.copytree(base, run.store)
        p = subprocess.run([strace, "-f", "-qq", "-o", "/dev/null", "-e", f"trace={calls}",
                            "-e", f"inject={calls}:signal=KILL:when={n}", sys.executable, "-m",
                            "imagestore.cli.main", "--store", run.store, "store", "rebuild-index"],
                           capture_output=True, text=True)
        if p.returncode == 0:
            break
        assert p.returncode in (-9, 137), (n, p.returncode, p.stderr)
        kills += 1
        r = run("store", "verify")
        assert r.exit_code in (0, DAMAGE), (n, r.stderr)
        if r.exit_code == DAMAGE:
            assert "the chunk index is missing" in r.stderr, (n, r.stderr)
            assert run.json("store", "verify", "--repair")["clean"]
        assert run.json("store", "gc")["removedChunks"] == 0  # a leftover temp index goes
        assert not [x for x in os.listdir(local(run)) if x.startswith(".tmp-")]
        materialize_cmp(run, digest, str(src), tmp_path / f"k{n}.raw")
    else:
        pytest.fail("rebuild-index never completed under fault injection")
    print(f"rebuild-index: {kills} kill points, all recovered")
    assert kills >= 3  # temp index fsync, rename, directory fsync at least
    assert run.json("store", "verify")["clean"]
