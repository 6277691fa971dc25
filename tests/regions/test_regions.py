"""Regions end to end on real bytes: the registry and its CLI, replication of a realistic image
to regions on their own directories, copies with fail-over reads and repair, storage account
types (ZRS placement and refusal, Premium stored uncompressed)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from imagestore.errors import Conflict, IntegrityError
from imagestore.home import Home
from imagestore.regions import (
    RegionRegistry,
    materialize_from_copies,
    plan_copies,
    remove_copies,
    repair,
)
from imagestore.regions.replicas import open_slot, region_slots
from imagestore.store import index
from imagestore.store.maintenance import stats, verify
from imagestore.store.materialize import materialize
from tests.helpers import store_tree_snapshot

MiB = 1 << 20


def slots_of(store: str, name: str) -> list:
    home = Home.open(store)
    reg = RegionRegistry(home)
    out = [open_slot(p, home.config, create=False) for p in region_slots(reg.get(name))]
    home.close()
    return out


def close_all(slots) -> None:
    for s in slots:
        s.close()


def cmp(a: str, b: str) -> None:
    subprocess.run(["cmp", a, b], check=True)


@pytest.fixture
def ingested(run, ext4_image) -> str:
    return run.json("store", "ingest", ext4_image)["digest"]


def test_replicate_realistic_image_to_two_regions(run, ext4_image, ingested, tmp_path):
    west = run.json("region", "create", "westeurope", "--path", str(tmp_path / "w"))
    east = run.json("region", "create", "eastus", "--path", str(tmp_path / "e1"),
                    "--path", str(tmp_path / "e2"))
    assert west["zones"] == [str(tmp_path / "w")] and east["zoneCount"] == 2
    assert [r["name"] for r in run.json("region", "list")] == ["local", "eastus", "westeurope"]
    local = run.json("store", "stats")
    for name in ("westeurope", "eastus"):
        res = run.json("region", "replicate", ingested, "--from", "local", "--to", name)
        assert res["chunksSent"] == local["chunks"] and res["copies"][0]["chunksSkipped"] == 0
        # compressed records travel as stored: exactly the source's pack bytes
        assert res["bytesSent"] == local["storedBytes"]
    for name in ("westeurope", "eastus"):
        slots = slots_of(run.store, name)
        assert len(slots) == (2 if name == "eastus" else 1)  # every zone has its blob store
        out = str(tmp_path / f"{name}.raw")
        materialize(slots[0], ingested, out)
        cmp(ext4_image, out)
        assert all(verify(s).clean for s in slots)
        close_all(slots)
        rep = run.json("region", "verify", name)
        assert rep["clean"] and rep["slots"][0]["chunksChecked"] == local["chunks"]
    assert run("store", "verify").exit_code == 0
    # replicating again sends nothing
    again = run.json("region", "replicate", ingested, "--to", "eastus")
    assert again["bytesSent"] == 0 and again["copies"][0]["chunksSkipped"] == local["chunks"]
    shown = run.json("region", "show", "eastus")
    assert shown["slots"][0]["manifests"] == 1
    assert shown["slots"][0]["storedBytes"] == local["storedBytes"]


def test_copies_failover_and_repair(run, ext4_image, ingested, tmp_path):
    run.json("region", "create", "west", "--path", str(tmp_path / "w"))
    res = run.json("region", "replicate", ingested, "--to", "west", "--copies", "2")
    assert [c["slot"] for c in res["copies"]] == [str(tmp_path / "w"),
                                                  str(tmp_path / "w" / "copies" / "1")]
    slots = slots_of(run.store, "west")
    assert [s.root for s in slots] == [c["slot"] for c in res["copies"]]
    # flip one byte inside a record payload of copy 0
    packs = slots[0].packs_dir
    pack = max((os.path.join(packs, n) for n in os.listdir(packs)), key=os.path.getsize)
    with open(pack, "r+b") as f:
        f.seek(200_000)
        b = f.read(1)
        f.seek(200_000)
        f.write(bytes([b[0] ^ 0x5A]))
    before = os.stat(pack)
    with pytest.raises(IntegrityError, match="does not match its hash|damaged"):
        materialize(slots[0], ingested, str(tmp_path / "nope.raw"))
    out = str(tmp_path / "failover.raw")
    materialize_from_copies(slots, ingested, out)
    cmp(ext4_image, out)
    close_all(slots)
    r = run("region", "verify", "west")
    assert r.exit_code == 7 and "1 bad" in r.stderr and r.stderr.count("\n") == 1
    rep = run.json("region", "verify", "west", "--repair")
    assert rep["clean"]
    fixed = rep["repair"]["repairedChunks"]
    assert len(fixed) == 1 and fixed[0]["slot"] == str(tmp_path / "w")
    assert fixed[0]["from"] == str(tmp_path / "w" / "copies" / "1")
    assert run.json("region", "verify", "west")["clean"]
    # the damaged pack was not rewritten in place; the row points into a new pack
    after = os.stat(pack)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    slots = slots_of(run.store, "west")
    cid = bytes.fromhex(fixed[0]["chunk"])
    names = index.pack_names(slots[0].con)
    assert names[index.lookup(slots[0].con, cid)[0]] != os.path.basename(pack)
    out2 = str(tmp_path / "copy0.raw")
    materialize(slots[0], ingested, out2)  # copy 0 alone is whole again
    cmp(ext4_image, out2)
    close_all(slots)


def test_repair_missing_chunk_and_damaged_manifest(run, ext4_image, ingested, tmp_path):
    run.json("region", "create", "west", "--path", str(tmp_path / "a"), "--path", str(tmp_path / "b"))
    run.json("region", "replicate", ingested, "--to", "west", "--copies", "2",
             "--storage-account-type", "Standard_ZRS")
    slots = slots_of(run.store, "west")
    assert [s.root for s in slots] == [str(tmp_path / "a"), str(tmp_path / "b")]
    m = slots[1].load_manifest(ingested)
    lost = m.ids()[len(m.ids()) // 2]
    slots[1].con.execute("DELETE FROM chunks WHERE id=?", (lost,))
    with open(slots[0].manifest_path(ingested), "r+b") as f:
        f.write(b"garbage!")
    assert not verify(slots[0]).clean and not verify(slots[1]).clean
    out = str(tmp_path / "fo.raw")
    materialize_from_copies(slots, ingested, out)
    cmp(ext4_image, out)
    rep = repair(slots, [ingested])
    assert rep.clean
    assert [(c["slot"], c["problem"]) for c in rep.repaired_chunks] == [(slots[1].root, "missing")]
    assert [x["slot"] for x in rep.repaired_manifests] == [slots[0].root]
    assert all(verify(s).clean for s in slots)
    assert repair(slots).repaired_chunks == []  # nothing left to do
    close_all(slots)


def test_lost_pack_fails_over_and_is_repaired(run, tmp_path):
    run.json("init", "--chunk-size", "1M")
    src = tmp_path / "r.raw"
    src.write_bytes(os.urandom(3 * MiB) + bytes(MiB) + os.urandom(MiB))
    digest = run.json("store", "ingest", str(src))["digest"]
    run.json("region", "create", "west", "--path", str(tmp_path / "w"))
    run.json("region", "replicate", digest, "--to", "west", "--copies", "3")
    slots = slots_of(run.store, "west")
    assert len(slots) == 3
    for name in os.listdir(slots[1].packs_dir):  # copy 1 loses all its pack files
        os.unlink(os.path.join(slots[1].packs_dir, name))
    out = str(tmp_path / "o.raw")
    materialize_from_copies([slots[1], slots[2]], digest, out)
    cmp(str(src), out)
    close_all(slots)
    rep = run.json("region", "verify", "west", "--repair")
    assert rep["clean"] and len(rep["repair"]["repairedChunks"]) == 4
    assert {c["slot"] for c in rep["repair"]["repairedChunks"]} == {str(tmp_path / "w" / "copies" / "1")}
    slots = slots_of(run.store, "west")
    materialize(slots[1], digest, str(tmp_path / "o1.raw"))
    cmp(str(src), str(tmp_path / "o1.raw"))
    close_all(slots)


def test_remove_copies_then_gc(run, tmp_path):
    run.json("init", "--chunk-size", "1M")
    src = tmp_path / "r.raw"
    src.write_bytes(os.urandom(2 * MiB))
    digest = run.json("store", "ingest", str(src))["digest"]
    run.json("region", "create", "west", "--path", str(tmp_path / "a"), "--path", str(tmp_path / "b"))
    run.json("region", "replicate", digest, "--to", "west", "--copies", "3")
    home = Home.open(run.store)
    region = RegionRegistry(home).get("west")
    removed = remove_copies(region, digest, keep=1)
    assert removed == [str(tmp_path / "b"), str(tmp_path / "a" / "copies" / "1")]
    home.close()
    reports = run.json("region", "gc", "west")
    assert [r["removedChunks"] for r in reports] == [0, 2, 2]
    shown = run.json("region", "show", "west")["slots"]
    assert [s["chunks"] for s in shown] == [2, 0, 0] and shown[0]["manifests"] == 1
    assert run.json("region", "verify", "west")["clean"]


def test_missing_zone_reported_and_not_written(run, ingested, tmp_path):
    import shutil

    run.json("region", "create", "west", "--path", str(tmp_path / "a"), "--path", str(tmp_path / "b"))
    shutil.rmtree(tmp_path / "b")
    (tmp_path / "b").mkdir()  # an empty mount point: the disk is not there
    r = run("region", "replicate", ingested, "--to", "west", "--copies", "2")
    assert r.exit_code == 4 and r.stderr == (
        f"error: region 'west': zone {tmp_path / 'b'} has no blob store (missing or not mounted)\n")
    assert os.listdir(tmp_path / "b") == [] and not os.listdir(tmp_path / "a" / "manifests")
    r = run("region", "verify", "west")
    assert r.exit_code == 7 and f"zone(s) without a blob store: {tmp_path / 'b'}" in r.stderr
    assert run.json("region", "show", "west")["missingZones"] == [str(tmp_path / "b")]
    # one copy fits in the zone that is there
    assert run.json("region", "replicate", ingested, "--to", "west")["chunksSent"] > 0


def test_zrs_refused_with_too_few_zones(run, ingested, tmp_path):
    run.json("region", "create", "west", "--path", str(tmp_path / "a"), "--path", str(tmp_path / "b"))
    before = (store_tree_snapshot(run.store), store_tree_snapshot(str(tmp_path / "a")),
              store_tree_snapshot(str(tmp_path / "b")))
    r = run("region", "replicate", ingested, "--to", "west", "--copies", "3",
            "--storage-account-type", "Standard_ZRS")
    assert r.exit_code == 3
    assert r.stderr == ("error: region 'west': Standard_ZRS keeps each of 3 copies in a distinct "
                        "zone, but the region has 2 zone(s)\n")
    after = (store_tree_snapshot(run.store), store_tree_snapshot(str(tmp_path / "a")),
             store_tree_snapshot(str(tmp_path / "b")))
    assert after == before
    # the same three copies as Standard_LRS: zones round-robin, the third in a second slot
    res = run.json("region", "replicate", ingested, "--to", "west", "--copies", "3")
    assert [c["slot"] for c in res["copies"]] == [
        str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "a" / "copies" / "1")]
    home = Home.open(run.store)
    reg = RegionRegistry(home)
    assert plan_copies(reg.get("west"), 2, "standard_zrs") == [str(tmp_path / "a"), str(tmp_path / "b")]
    home.close()


def test_premium_stored_uncompressed(run, ext4_image, ingested, tmp_path):
    run.json("region", "create", "fast", "--path", str(tmp_path / "p"))
    run.json("region", "create", "std", "--path", str(tmp_path / "s"))
    local = run.json("store", "stats")
    assert local["storedBytes"] < local["uniqueBytes"]  # the source is compressed
    run.json("region", "replicate", ingested, "--to", "fast", "--storage-account-type", "Premium_LRS")
    # a region that already holds the version compressed is rewritten raw by Premium
    run.json("region", "replicate", ingested, "--to", "std")
    res = run.json("region", "replicate", ingested, "--to", "std", "--storage-account-type", "premium_lrs")
    home = Home.open(run.store)
    compressed = home.blob_store().con.execute("SELECT COUNT(*) FROM chunks WHERE flags != 0").fetchone()[0]
    home.close()
    assert 0 < compressed and res["chunksSent"] == compressed  # raw records were fine already
    for name in ("fast", "std"):
        slots = slots_of(run.store, name)
        st = stats(slots[0])
        assert st["chunks"] == local["chunks"]
        assert st["storedBytes"] == st["uniqueBytes"] + 32 * st["chunks"]
        assert slots[0].con.execute("SELECT COUNT(*) FROM chunks WHERE flags != 0").fetchone()[0] == 0
        out = str(tmp_path / f"{name}.raw")
        materialize(slots[0], ingested, out)
        cmp(ext4_image, out)
        assert verify(slots[0]).clean
        close_all(slots)


# -- registry and its CLI ----------------------------------------------------------------


@pytest.mark.parametrize(
    "args,code,message",
    [
        (["region", "create", "bad name", "--path", "Z"], 3,
         "NAME: 'bad name' is not a valid region name (1-64 letters, digits, '-' or '_', "
         "starting and ending with a letter or digit)"),
        (["region", "create", "x" * 65, "--path", "Z"], 3, "is not a valid region name"),
        (["region", "create", "west", "--path", "Z"], 5, "region 'west' already exists"),
        (["region", "create", "WEST", "--path", "Z"], 5, "region 'west' already exists"),
        (["region", "create", "local", "--path", "Z"], 5, "region 'local' already exists"),
        (["region", "create", "east", "--path", "FULL"], 8,
         "--path: FULL is not empty and is not an imagestore blob store (no cas.json)"),
        (["region", "create", "east", "--path", "W/sub"], 5, "--path: W/sub is inside zone W of region 'west'"),
        (["region", "create", "east", "--path", "Z", "--path", "Z/x"], 3, "overlaps"),
        (["region", "create", "east", "--path", "STORE/inner"], 3, "is inside the store"),
        (["region", "create", "east", "--path", "FILE"], 3, "--path: FILE is not a directory"),
        (["region", "delete", "local"], 5, "region 'local': the default region cannot be deleted"),
        (["region", "show", "nowhere"], 4, "NAME: region 'nowhere' not found (known regions: local, west)"),
        (["region", "replicate", "00" * 16, "--to", "west"], 4, "no such disk content in region 'local'"),
        (["region", "replicate", "zz", "--to", "west"], 3, "digest: 'zz'"),
        (["region", "replicate", "00" * 16, "--to", "mars"], 4, "--to: region 'mars' not found"),
    ],
)
def test_region_cli_refusals(run, tmp_path, args, code, message):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "precious.txt").write_text("keep")
    (tmp_path / "afile").write_text("x")
    run.json("region", "create", "west", "--path", str(tmp_path / "w"))
    subst = {"Z": str(tmp_path / "z"), "FULL": str(tmp_path / "full"), "W": str(tmp_path / "w"),
             "STORE": run.store, "FILE": str(tmp_path / "afile")}

    def fill(s: str) -> str:
        for k in sorted(subst, key=len, reverse=True):
            if s == k or s.startswith(k + "/"):
                return subst[k] + s[len(k):]
        return s

    args = [fill(a) for a in args]
    message = " ".join(fill(w) for w in message.split(" "))
    before = (store_tree_snapshot(str(tmp_path)), sorted(os.listdir(tmp_path)))
    r = run(*args)
    assert r.exit_code == code, (r.exit_code, r.stderr)
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    assert message in r.stderr, r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert (store_tree_snapshot(str(tmp_path)), sorted(os.listdir(tmp_path))) == before


def test_delete_hook_reattach_and_delete_data(run, ingested, tmp_path):
    z = tmp_path / "z"
    run.json("region", "create", "west", "--path", str(z))
    run.json("region", "replicate", ingested, "--to", "west")
    home = Home.open(run.store)
    reg = RegionRegistry(home)
    with pytest.raises(Conflict, match="holds the only completed copy of g/d/1.0.0"):
        reg.delete("west", holds_only_copy=lambda name: ["g/d/1.0.0"] if name == "west" else [])
    assert reg.find("west") is not None
    home.close()
    assert run.json("region", "delete", "west")["dataDeleted"] is False
    assert [r["name"] for r in run.json("region", "list")] == ["local"]
    assert (z / "cas.json").exists()  # data kept: re-creating the region re-attaches it
    run.json("region", "create", "west", "--path", str(z))
    assert run.json("region", "show", "west")["slots"][0]["manifests"] == 1
    assert run.json("region", "verify", "west")["clean"]
    run.json("region", "delete", "west", "--delete-data")
    assert not z.exists()
    # a store with another chunk size cannot be attached
    other = tmp_path / "other"
    r = run("--store", str(other), "init", "--chunk-size", "64K", store=False)
    assert r.exit_code == 0
    r = run("region", "create", "west", "--path", str(other / "regions" / "local"))
    assert r.exit_code == 5 and "chunk size 65536" in r.stderr


def test_zone_in_the_registry_directory(run, tmp_path):
    """A zone may be the region's own directory in the store; delete keeps its data."""
    src = tmp_path / "r.raw"
    src.write_bytes(os.urandom(MiB))
    digest = run.json("store", "ingest", str(src))["digest"]
    own = os.path.join(run.store, "regions", "inside")
    run.json("region", "create", "inside", "--path", own)
    run.json("region", "replicate", digest, "--to", "inside")
    run.json("region", "delete", "inside")
    assert not os.path.exists(os.path.join(own, "region.json"))
    assert os.path.exists(os.path.join(own, "manifests", digest + ".mf"))
    run.json("region", "create", "inside", "--path", own)
    assert run.json("region", "verify", "inside")["clean"]
    run.json("region", "delete", "inside", "--delete-data")
    assert not os.path.exists(own)


def test_region_help_has_examples(run):
    for cmd in ("create", "list", "show", "delete", "replicate", "verify", "gc"):
        r = run("region", cmd, "--help", store=False)
        assert r.exit_code == 0 and "Example:" in r.stdout, cmd


def test_region_json_and_table(run, tmp_path):
    run.json("region", "create", "west", "--path", str(tmp_path / "a"), "--path", str(tmp_path / "b"))
    shown = run.json("region", "show", "west")
    assert {"name", "zones", "chunkSize", "compression", "created", "slots"} <= set(shown)
    assert shown["chunkSize"] == 256 * 1024 and len(shown["slots"]) == 2  # the store's default
    t = run("region", "list", "-o", "table")
    assert t.exit_code == 0 and "west" in t.stdout and "ZoneCount" in t.stdout
    doc = json.loads((tmp_path / "store" / "regions" / "west" / "region.json").read_text())
    assert doc["format"] == "imagestore-region" and doc["version"] == 1
