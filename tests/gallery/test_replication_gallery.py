"""Image versions replicated to regions, through the CLI on real bytes: a realistic image to two
more regions (disk create -l REGION in each gives the same bytes, verify clean everywhere),
incremental v2 after v1 costs the changed chunks, copies with fail-over and repair, ZRS refused
at request time, Premium uncompressed, update adds/removes regions and copies, state
transitions and aggregatedState for mixed states including a failed region with details."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from imagestore.gallery.resources import aggregated_state
from imagestore.home import Home
from imagestore.regions import RegionRegistry
from imagestore.regions.replicas import open_slot, region_slots
from imagestore.store import index
from imagestore.store.maintenance import stats
from tests.helpers import dir_bytes, fails, make_v2

INVALID, NOT_FOUND, CONFLICT = 3, 4, 5
MiB = 1 << 20
SHOW = ["sig", "image-version", "show", "-r", "g", "-i", "d", "--expand", "ReplicationStatus", "-e"]


@pytest.fixture
def gal(run, tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGESTORE_AUTOSTART_WORKER", "0")
    run.tmp = tmp_path
    run.json("sig", "create", "-r", "g")
    run.json("sig", "image-definition", "create", "-r", "g", "-i", "d", "-p", "P", "-f", "O",
             "-s", "S", "--os-type", "Linux")
    return run


def create(run, v, src, *extra):
    return run("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", v,
               "--os-vhd-uri", src, *extra)


def status(run, v):
    return run.json(*SHOW, v)["properties"]["replicationStatus"]


def disk(run, name, ref, region, tmp) -> str:
    out = str(tmp / f"{name}.raw")
    run.json("disk", "create", "-n", name, "--gallery-image-reference", ref, "-l", region,
             "--path", out)
    return out


def slots(store, region):
    home = Home.open(store)
    reg = RegionRegistry(home)
    out = [open_slot(p, home.config, create=False) for p in region_slots(reg.get(region))]
    home.close()
    return out


def test_realistic_image_to_two_regions(gal, ext4_image):
    run, tmp = gal, gal.tmp
    run.json("region", "create", "west", "--path", str(tmp / "w"))
    run.json("region", "create", "east", "--path", str(tmp / "e1"), "--path", str(tmp / "e2"))
    data = str(tmp / "data.raw")
    with open(data, "wb") as f:
        f.truncate(8 * MiB)
        f.seek(3 * MiB)
        f.write(os.urandom(MiB))
    r = create(run, "1.0.0", ext4_image, "--data-vhds-uris", data, "--target-regions", "local",
               "west", "east=2")
    assert r.exit_code == 0, r.stderr
    v = json.loads(r.stdout)
    assert v["properties"]["provisioningState"] == "Succeeded"
    st = status(run, "1.0.0")
    assert st["aggregatedState"] == "Completed"
    assert [(s["region"], s["state"], s["progress"]) for s in st["summary"]] == [
        ("local", "Completed", 100), ("west", "Completed", 100), ("east", "Completed", 100)]
    local = run.json(*SHOW, "1.0.0")["properties"]["localStorage"]
    sent = {x["region"]: x["bytesSent"] for x in local["replication"]}
    stored = local["osDiskImage"]["storedBytes"] + local["dataDiskImages"][0]["storedBytes"]
    assert sent["west"] == stored and sent["east"] == 2 * stored and sent["local"] == 0
    # east keeps two copies, one per zone
    assert [s["manifests"] for s in run.json("region", "show", "east")["slots"]] == [2, 2]
    for region in ("local", "west", "east"):
        out = disk(run, f"os-{region}", "g/d", region, tmp)
        subprocess.run(["cmp", ext4_image, out], check=True)
        d = str(tmp / f"data-{region}.raw")
        run.json("disk", "create", "-n", f"data-{region}", "--gallery-image-reference",
                 "g/d/1.0.0", "--gallery-image-reference-lun", "0", "-l", region, "--path", d)
        subprocess.run(["cmp", data, d], check=True)
        rep = run.json("store", "verify", "--region", region)
        assert rep["clean"], rep
    # a region a version targets cannot be deleted (issue 10 item 7) ...
    fails(run("region", "delete", "west"), CONFLICT, "region 'west' is a target region of 1 "
          "image version(s)", "/versions/1.0.0", "remove it from their targetRegions first")
    # ... until the version no longer targets it (which its safety profile must allow)
    upd = ["sig", "image-version", "update", "-r", "g", "-i", "d", "-e", "1.0.0",
           "--target-regions", "local", "east=2"]
    fails(run(*upd), CONFLICT, "removing region(s) west is not allowed")
    run.json(*upd, "--set", "properties.safetyProfile.allowDeletionOfReplicatedLocations=true")
    gone = run.json("region", "delete", "west", "--delete-data")
    assert gone["dataDeleted"] and gone["keptPaths"] == [] and not (tmp / "w").exists()
    assert [s["region"] for s in status(run, "1.0.0")["summary"]] == ["local", "east"]


def test_region_with_only_copy_cannot_be_deleted(gal, tmp_path):
    run = gal
    run.json("region", "create", "west", "--path", str(tmp_path / "w"))
    src = tmp_path / "s.raw"
    src.write_bytes(os.urandom(2 * MiB))
    assert create(run, "1.0.0", str(src), "-l", "west", "--target-regions", "west").exit_code == 0
    fails(run("region", "delete", "west"), CONFLICT,
          "region 'west' is a target region of 1 image version(s)", "/versions/1.0.0")
    out = disk(run, "w", "g/d", "west", tmp_path)
    assert open(out, "rb").read() == src.read_bytes()
    fails(run("disk", "create", "-n", "x", "--gallery-image-reference", "g/d"), NOT_FOUND,
          "no version qualifies as latest in region 'local'", "1.0.0 (not in region local)")


def test_incremental_v2_costs_the_changed_chunks(gal, ext4_image):
    run, tmp = gal, gal.tmp
    v2 = make_v2(ext4_image, tmp)
    run.json("region", "create", "west", "--path", str(tmp / "w"))
    create(run, "1.0.0", ext4_image, "--target-regions", "local", "west")
    packs = str(tmp / "w" / "packs")
    full = dir_bytes(packs)
    r = create(run, "2.0.0", v2, "--target-regions", "local", "west")
    assert r.exit_code == 0, r.stderr
    added = dir_bytes(packs) - full
    v = json.loads(r.stdout)["properties"]["localStorage"]["osDiskImage"]
    # the target gains exactly what capture added to the source: the changed chunks
    home = Home.open(run.store)
    loc = home.blob_store()
    m1 = set(loc.load_manifest(run.json(*SHOW, "1.0.0")["properties"]["localStorage"]
                               ["osDiskImage"]["manifestDigest"]).ids())
    new = set(loc.load_manifest(v["manifestDigest"]).ids()) - m1
    loc_chunk_size = loc.cfg.chunk_size
    expected = sum(32 + x[3] for x in index.lookup_many(loc.con, new).values())
    home.close()
    assert v["storedBytes"] == expected
    repl = {x["region"]: x for x in run.json(*SHOW, "2.0.0")["properties"]["localStorage"]
            ["replication"]}
    assert repl["west"]["bytesSent"] == expected
    # the pack files grow by those records plus alignment padding of uncompressed payloads
    assert expected <= added <= expected + 64 * 1024, (added, expected)
    assert added < full / 8
    cs = loc_chunk_size
    assert 2 * MiB <= len(new) * cs <= 12 * MiB
    out = disk(run, "v2w", "g/d", "west", tmp)
    subprocess.run(["cmp", v2, out], check=True)


def test_copies_failover_repair_and_storage_types(gal, ext4_image):
    run, tmp = gal, gal.tmp
    run.json("region", "create", "west", "--path", str(tmp / "w"))
    run.json("region", "create", "prem", "--path", str(tmp / "p"))
    # ZRS with more copies than zones: refused at request time, nothing written
    before = sorted(os.listdir(tmp / "w"))
    fails(create(run, "1.0.0", ext4_image, "--target-regions", "local", "west=2=Standard_ZRS"),
          INVALID, "region 'west'", "Standard_ZRS", "2 copies", "1 zone(s)")
    fails(create(run, "1.0.0", ext4_image, "--target-regions", "local", "west",
                 "--replica-count", "2", "--storage-account-type", "Standard_ZRS"),
          INVALID, "region 'local'", "1 zone(s)")
    fails(create(run, "1.0.0", ext4_image, "--target-regions", "local=60", "west=41"),
          INVALID, "101 replicas in total", "at most 100")
    fails(create(run, "1.0.0", ext4_image, "--target-regions", "local", "west", "West"),
          INVALID, "region 'west' is listed twice")
    assert sorted(os.listdir(tmp / "w")) == before
    assert run.json("sig", "image-version", "list", "-r", "g", "-i", "d") == []
    # the common count applies where a region gives none
    v = json.loads(create(run, "1.0.0", ext4_image, "--target-regions", "local=1", "west",
                          "prem=1=Premium_LRS", "--replica-count", "2").stdout)
    assert [(t["name"], t["regionalReplicaCount"], t["storageAccountType"])
            for t in v["properties"]["publishingProfile"]["targetRegions"]] == [
        ("local", 1, "Standard_LRS"), ("west", 2, "Standard_LRS"), ("prem", 1, "Premium_LRS")]
    # Premium: stored uncompressed (stored bytes = raw bytes + 32-byte record headers)
    ps = slots(run.store, "prem")[0]
    st = stats(ps)
    assert st["storedBytes"] == st["uniqueBytes"] + 32 * st["chunks"]
    ps.close()
    # corrupt copy 0 in west: disk create still gives the right bytes (fail-over)
    w = slots(run.store, "west")
    assert [s.root for s in w] == [str(tmp / "w"), str(tmp / "w" / "copies" / "1")]
    pdir = w[0].packs_dir
    pack = max((os.path.join(pdir, n) for n in os.listdir(pdir)), key=os.path.getsize)
    for s in w:
        s.close()
    with open(pack, "r+b") as f:
        f.seek(100_000)
        b = f.read(1)
        f.seek(100_000)
        f.write(bytes([b[0] ^ 0xFF]))
    out = disk(run, "fo", "g/d", "west", tmp)
    subprocess.run(["cmp", ext4_image, out], check=True)
    r = run("store", "verify", "--region", "west")
    assert r.exit_code == 7 and "1 bad" in r.stderr
    rep = run.json("store", "verify", "--repair", "--region", "west")
    assert rep["clean"] and len(rep["repair"]["repairedChunks"]) == 1
    assert run.json("store", "verify", "--region", "west")["clean"]
    # fewer copies: copy 1 is unpublished and its space reclaimed by the region's gc job
    u = run.json("sig", "image-version", "update", "-r", "g", "-i", "d", "-e", "1.0.0",
                 "--target-regions", "local", "west=1", "prem=1=Premium_LRS")
    assert u["properties"]["provisioningState"] == "Succeeded"
    assert [s["manifests"] for s in run.json("region", "show", "west")["slots"]] == [1, 0]
    assert run.json("region", "show", "west")["slots"][1]["storedBytes"] == 0
    # removing a region needs allowDeletionOfReplicatedLocations; then its copy goes
    fails(run("sig", "image-version", "update", "-r", "g", "-i", "d", "-e", "1.0.0",
              "--target-regions", "local", "west"), CONFLICT, "removing region(s) prem")


def test_update_adds_and_removes_regions(gal, tmp_path):
    run = gal
    for n in ("a", "b"):
        run.json("region", "create", n, "--path", str(tmp_path / n))
    src = tmp_path / "s.raw"
    src.write_bytes(os.urandom(3 * MiB))
    create(run, "1.0.0", str(src), "--allow-replicated-location-deletion")
    u = run.json("sig", "image-version", "update", "-r", "g", "-i", "d", "-e", "1.0.0",
                 "--target-regions", "local", "a", "b=2")
    assert u["properties"]["provisioningState"] == "Succeeded"
    assert status(run, "1.0.0")["aggregatedState"] == "Completed"
    for n in ("a", "b"):
        out = disk(run, f"d{n}", "g/d", n, tmp_path)
        assert open(out, "rb").read() == src.read_bytes()
    assert [s["manifests"] for s in run.json("region", "show", "b")["slots"]] == [1, 1]
    run.json("sig", "image-version", "update", "-r", "g", "-i", "d", "-e", "1.0.0",
             "--target-regions", "local", "a")
    assert [s["region"] for s in status(run, "1.0.0")["summary"]] == ["local", "a"]
    shown = run.json("region", "show", "b")["slots"]
    assert [s["manifests"] for s in shown] == [0, 0] and all(s["storedBytes"] == 0 for s in shown)
    assert run.json("store", "verify", "--region", "b")["clean"]
    # deleting the version unpublishes it everywhere
    run("sig", "image-version", "delete", "-r", "g", "-i", "d", "-e", "1.0.0")
    for n in ("local", "a"):
        assert all(s["manifests"] == 0 for s in run.json("region", "show", n)["slots"])


def test_status_transitions_and_failed_region(gal, tmp_path):
    """Queued (--no-wait) -> worker -> Completed / Failed with details from a read-only zone."""
    run = gal
    run.json("region", "create", "ok", "--path", str(tmp_path / "ok"))
    run.json("region", "create", "ro", "--path", str(tmp_path / "ro"))
    src = tmp_path / "s.raw"
    src.write_bytes(os.urandom(4 * MiB))
    r = create(run, "1.0.0", str(src), "--target-regions", "local", "ok", "ro", "--no-wait")
    assert r.exit_code == 0 and r.stdout == ""
    v = run.json(*SHOW, "1.0.0")
    assert v["properties"]["provisioningState"] == "Creating"
    # capture queued too: the requested disk is echoed, its size not known yet
    assert v["properties"]["storageProfile"] == {
        "osDiskImage": {"hostCaching": "ReadWrite", "source": {"uri": src.as_uri()}}}
    st = v["properties"]["replicationStatus"]
    assert st["aggregatedState"] == "InProgress"
    assert {(s["state"], s["progress"]) for s in st["summary"]} == {("Replicating", 0)}
    assert {r["state"] for r in v["properties"]["localStorage"]["replication"]} == {"Queued"}
    ro = tmp_path / "ro" / "packs"
    lock_down(ro)
    try:
        w = run("worker", "--once")
        assert w.exit_code == 0, w.stderr
    finally:
        unlock(ro)
    v = run.json(*SHOW, "1.0.0")
    st = v["properties"]["replicationStatus"]
    states = {s["region"]: s for s in st["summary"]}
    assert states["local"]["state"] == states["ok"]["state"] == "Completed"
    assert states["ro"]["state"] == "Failed" and states["ro"]["progress"] < 100
    assert str(ro) in states["ro"]["details"] and (
        "permission denied" in states["ro"]["details"]
        or "read-only" in states["ro"]["details"]), states["ro"]["details"]
    assert st["aggregatedState"] == "Failed"
    assert v["properties"]["provisioningState"] == "Failed"
    assert v["properties"]["storageProfile"]["osDiskImage"]["sizeInGB"] == 1
    # usable where it completed, not where it failed
    out = disk(run, "ok", "g/d", "ok", tmp_path)
    assert open(out, "rb").read() == src.read_bytes()
    fails(run("disk", "create", "-n", "r", "--gallery-image-reference", "g/d/1.0.0", "-l", "ro"),
          CONFLICT, "not available in region 'ro' yet (replication Failed)")
    fails(run("sig", "image-version", "wait", "-r", "g", "-i", "d", "-e", "1.0.0", "--created"),
          CONFLICT, "provisioning failed", "region 'ro'")
    # a synchronous update retries the failed region: now it succeeds
    u = run.json("sig", "image-version", "update", "-r", "g", "-i", "d", "-e", "1.0.0",
                 "--target-regions", "local", "ok", "ro")
    assert u["properties"]["provisioningState"] == "Succeeded"
    assert status(run, "1.0.0")["aggregatedState"] == "Completed"
    # a synchronous create into a read-only region fails with the reason, version kept Failed
    lock_down(ro)
    try:
        src2 = tmp_path / "s2.raw"
        src2.write_bytes(os.urandom(2 * MiB))
        fails(create(run, "2.0.0", str(src2), "--target-regions", "local", "ro"), CONFLICT,
              "image version 'g/d/2.0.0': provisioning failed", "region 'ro'", str(ro))
    finally:
        unlock(ro)
    assert run.json(*SHOW, "2.0.0")["properties"]["provisioningState"] == "Failed"


def test_aggregated_state_rules():
    assert aggregated_state([]) == "Unknown"
    assert aggregated_state(["Completed", "Completed"]) == "Completed"
    assert aggregated_state(["Completed", "Queued"]) == "InProgress"
    assert aggregated_state(["Failed", "Replicating"]) == "InProgress"
    assert aggregated_state(["Completed", "Failed"]) == "Failed"
    assert aggregated_state(["Failed"]) == "Failed"


def lock_down(d) -> None:
    """Make a directory refuse new files, even for root: the immutable attribute (chattr +i)
    where the filesystem supports it, else a read-only mode (enough for a non-root user)."""
    if os.geteuid() == 0 and shutil.which("chattr"):
        p = subprocess.run(["chattr", "+i", str(d)], capture_output=True)
        if p.returncode == 0:
            return
        pytest.skip(f"cannot make {d} read-only as root (chattr: {p.stderr.decode().strip()})")
    os.chmod(d, 0o555)


def unlock(d) -> None:
    if os.geteuid() == 0 and shutil.which("chattr"):
        subprocess.run(["chattr", "-i", str(d)], capture_output=True)
    os.chmod(d, 0o755)


def test_latest_per_region(gal, tmp_path):
    """`latest` in a region considers only the versions completed there."""
    run = gal
    run.json("region", "create", "west", "--path", str(tmp_path / "w"))
    srcs = {}
    for v in ("1.0.0", "2.0.0", "3.0.0"):
        p = tmp_path / f"{v}.raw"
        p.write_bytes(os.urandom(MiB))
        srcs[v] = p.read_bytes()
    create(run, "1.0.0", str(tmp_path / "1.0.0.raw"), "--target-regions", "local", "west")
    create(run, "2.0.0", str(tmp_path / "2.0.0.raw"))  # local only
    r = create(run, "3.0.0", str(tmp_path / "3.0.0.raw"), "--target-regions", "local", "west",
               "--no-wait")  # queued: no worker runs (autostart off)
    assert r.exit_code == 0

    def latest(region, name):
        return open(disk(run, name, "g/d", region, tmp_path), "rb").read()

    assert latest("west", "w1") == srcs["1.0.0"]
    assert latest("local", "l1") == srcs["2.0.0"]  # 3.0.0 is not captured yet
    run.json("worker", "--once")
    assert latest("west", "w2") == srcs["3.0.0"]
    assert latest("local", "l2") == srcs["3.0.0"]


def test_region_delete_without_versions_says_what_it_kept(gal, tmp_path):
    """A region no version targets any more is deleted; the output names the zone
    directories it left (kept for re-attaching, or holding other files)."""
    run = gal
    run.json("region", "create", "west", "--path", str(tmp_path / "w1"), "--path",
             str(tmp_path / "w2"))
    src = tmp_path / "s.raw"
    src.write_bytes(os.urandom(MiB))
    assert create(run, "1.0.0", str(src), "--target-regions", "local", "west",
                  "--allow-replicated-location-deletion").exit_code == 0
    fails(run("region", "delete", "west"), CONFLICT, "target region of 1 image version(s)")
    run.json("sig", "image-version", "update", "-r", "g", "-i", "d", "-e", "1.0.0",
             "--target-regions", "local")
    (tmp_path / "w2" / "notes.txt").write_text("not ours")
    out = run.json("region", "delete", "west", "--delete-data")
    assert out["keptPaths"] == [str(tmp_path / "w2")]  # other files: the directory stays
    assert not (tmp_path / "w1").exists() and (tmp_path / "w2" / "notes.txt").exists()
    assert not (tmp_path / "w2" / "cas.json").exists()
    assert [r["name"] for r in run.json("region", "list")] == ["local"]
    run.json("region", "create", "east", "--path", str(tmp_path / "e"))
    assert run.json("region", "delete", "east")["keptPaths"] == [str(tmp_path / "e")]
