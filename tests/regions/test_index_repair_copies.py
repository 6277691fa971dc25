"""A damaged chunk index in one copy of a 2-copy region: `store verify` (every region, every
copy by default) exits 7 naming the region, the copy, the index file and the image version
(gallery/definition/version and LUN) that uses it; `--repair` rebuilds the index from that
copy's packs and fetches what they lack (a record with a damaged header) from the good copy;
that copy alone then gives the same bytes, and verify is clean."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from imagestore.gallery.usage import versions_by_digest
from imagestore.home import Home
from imagestore.regions import RegionRegistry
from imagestore.regions.replicas import open_slot, region_slots
from imagestore.store.materialize import materialize
from imagestore.store.packs import REC
from tests.helpers import damage_index, fails

DAMAGE = 7
MiB = 1 << 20


@pytest.fixture
def gal(run, tmp_path, ext4_image, monkeypatch):
    """Version g/d/1.0.0 (OS disk: the ext4 image, LUN 0: a small data disk) in local and in
    region west with 2 copies, one per zone."""
    monkeypatch.setenv("IMAGESTORE_AUTOSTART_WORKER", "0")
    run.json("sig", "create", "-g", "rg", "-r", "g")
    run.json("sig", "image-definition", "create", "-g", "rg", "-r", "g", "-i", "d",
             "-p", "P", "-f", "O", "-s", "S", "--os-type", "Linux")
    run.json("region", "create", "west", "--path", str(tmp_path / "w0"), "--path",
             str(tmp_path / "w1"))
    data = tmp_path / "data.raw"
    with open(data, "wb") as f:
        f.truncate(8 * MiB)
        f.seek(2 * MiB)
        f.write(os.urandom(MiB))
    v = run.json("sig", "image-version", "create", "-g", "rg", "-r", "g", "-i", "d",
                 "-e", "1.0.0", "--os-vhd-uri", ext4_image, "--data-vhds-uris", str(data),
                 "--target-regions", "local", "west=2")
    assert v["properties"]["provisioningState"] == "Succeeded"
    run.data = str(data)
    run.copies = [str(tmp_path / "w0"), str(tmp_path / "w1")]
    return run


def os_digest(run) -> str:
    home = Home.open(run.store)
    usage = versions_by_digest(home)
    home.close()
    (d,) = [d for d, vds in usage.items() if any(vd.lun is None for vd in vds)]
    return d


def copy_alone(run, idx: int, digest: str, src: str, out: str) -> None:
    home = Home.open(run.store)
    slots = [open_slot(p, home.config, create=False)
             for p in region_slots(RegionRegistry(home).get("west"))]
    assert slots[idx].root == run.copies[idx]
    try:
        materialize(slots[idx], digest, out)  # no fail-over: this copy alone
    finally:
        for s in slots:
            s.close()
        home.close()
    subprocess.run(["cmp", src, out], check=True)


def test_versions_by_digest(gal, ext4_image):
    home = Home.open(gal.store)
    usage = versions_by_digest(home)
    home.close()
    assert sorted((str(vd), vd.resource_group) for vds in usage.values() for vd in vds) == [
        ("g/d/1.0.0 (LUN 0)", "rg"), ("g/d/1.0.0 (OS disk)", "rg")]


@pytest.mark.parametrize("how", ["header", "truncate", "delete"])
def test_damaged_index_in_one_copy(gal, ext4_image, tmp_path, how):
    run = gal
    digest = os_digest(run)
    path = os.path.join(run.copies[1], "index.sqlite")
    damage_index(path, how)
    r = run("store", "verify")
    fails(r, DAMAGE, "region 'west' copy 1", path, "g/d/1.0.0 (OS disk) in west",
          "g/d/1.0.0 (LUN 0) in west")
    rep = json.loads(r.stdout)
    assert [(d["region"], d["copy"], d["path"]) for d in rep["damagedIndexes"]] == [("west", 1, path)]
    assert sorted((v["version"], v["disk"], v["lun"], v["region"], v["copies"])
                  for v in rep["affectedVersions"]) == [("1.0.0", "data", 0, "west", [1]),
                                                        ("1.0.0", "os", None, "west", [1])]
    assert [rr["region"] for rr in rep["regions"]] == ["local", "west"]
    assert [rr["clean"] for rr in rep["regions"]] == [True, False]
    # --region stays a filter; the region verb says the same
    assert run.json("store", "verify", "--region", "local")["clean"]
    fails(run("region", "verify", "west"), DAMAGE, "copy 1", path)
    # fail-over reads still give the disk from copy 0
    out = str(tmp_path / "fo.raw")
    run.json("disk", "create", "-g", "rg", "-n", "fo", "--gallery-image-reference", "g/d", "-l", "west",
             "--path", out)
    subprocess.run(["cmp", ext4_image, out], check=True)
    fixed = run.json("store", "verify", "--repair")
    assert fixed["clean"] and fixed["affectedVersions"] == []
    (rb,) = fixed["repair"]["rebuiltIndexes"]
    assert (rb["region"], rb["copy"], rb["slot"]) == ("west", 1, run.copies[1])
    assert rb["missingChunks"] == [] and fixed["repair"]["repairedChunks"] == []
    assert run.json("store", "verify")["clean"]
    copy_alone(run, 1, digest, ext4_image, str(tmp_path / "c1.raw"))


def test_damaged_header_and_lost_index_repaired_from_good_copy(gal, ext4_image, tmp_path):
    run = gal
    digest = os_digest(run)
    copy1 = run.copies[1]
    packs = os.path.join(copy1, "packs")
    pack = max((os.path.join(packs, n) for n in os.listdir(packs)), key=os.path.getsize)
    home = Home.open(run.store)
    s = open_slot(copy1, home.config, create=False)
    name = os.path.basename(pack)
    (off, cid) = s.con.execute(
        "SELECT c.offset, c.id FROM chunks c JOIN packs p ON p.id = c.pack WHERE p.name = ? "
        "ORDER BY c.offset LIMIT 1 OFFSET 5", (name,)).fetchone()
    s.close()
    home.close()
    with open(pack, "r+b") as f:
        f.seek(off)
        f.write(b"\xff" * REC.size)
    end = os.path.getsize(pack)
    with open(pack, "ab") as f:
        f.write(os.urandom(1000))  # and garbage at the end
    damage_index(os.path.join(copy1, "index.sqlite"), "delete")
    fails(run("store", "verify", "--region", "west"), DAMAGE, "copy 1")
    fixed = run.json("store", "verify", "--repair", "--region", "west")
    assert fixed["clean"], fixed
    (rb,) = fixed["repair"]["rebuiltIndexes"]
    assert [(x["offset"], x["error"]) for x in rb["skippedRecords"]] == [
        (off, "not a record header"), (end, "not a record header")]
    assert rb["skippedRecords"][1]["skippedBytes"] == 1000
    assert rb["missingChunks"][0]["chunk"] == bytes(cid).hex()
    (rc,) = fixed["repair"]["repairedChunks"]
    assert rc["chunk"] == bytes(cid).hex() and rc["from"] == run.copies[0]
    assert run.json("store", "verify")["clean"]
    copy_alone(run, 1, digest, ext4_image, str(tmp_path / "c1.raw"))
