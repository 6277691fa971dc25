"""Image versions through the CLI: capture, copy by reference, validation, update, latest,
deletion (freeing data for gc), wait/--no-wait; each asserting the message and exit code."""

from __future__ import annotations

import json
import os

import pytest

from imagestore.gallery.ids import SUBSCRIPTION
from tests.helpers import fails, gallery_db, store_tree_snapshot

INVALID, NOT_FOUND, CONFLICT, BAD_IMAGE = 3, 4, 5, 6
MiB = 1 << 20
VID = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/default/providers/Microsoft.Compute/galleries/g/images/d/versions"


def make_raw(path, size=3 * MiB, fill=0xAB, at=(0, 2 * MiB + 4096), n=70000) -> str:
    with open(path, "wb") as f:
        f.truncate(size)
        for off in at:
            f.seek(off)
            f.write(bytes([fill]) * n)
    return str(path)


@pytest.fixture
def env(run, tmp_path):
    run.json("sig", "create", "-r", "g")
    run.json("sig", "image-definition", "create", "-r", "g", "-i", "d", "-p", "P", "-f", "O",
             "-s", "S", "--os-type", "Linux")
    run.tmp = tmp_path
    run.src = {c: make_raw(tmp_path / f"{c}.raw", fill=c) for c in (1, 2, 3, 4)}
    return run


def ver(run, v, *extra, src=1):
    return run("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", v,
               "--os-vhd-uri", run.src[src], *extra)


def db(run):
    return gallery_db(run.store)


def manifests(run):
    return sorted(os.listdir(os.path.join(run.store, "regions", "local", "manifests")))


def test_create_show_list(env):
    run = env
    r = run("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "1.0.0",
            "--os-vhd-uri", "file://" + run.src[1], "--data-vhds-uris", run.src[2], run.src[3],
            "--data-vhds-luns", "3", "1", "--end-of-life-date", "2099-01-01",
            "--tags", "a=b", "--replication-mode", "full", "--storage-account-type",
            "premium_lrs", "--replica-count", "2")
    assert r.exit_code == 0, r.stderr
    v = json.loads(r.stdout)
    assert v["id"] == f"{VID}/1.0.0" and v["name"] == "1.0.0"
    assert v["type"] == "Microsoft.Compute/galleries/images/versions"
    assert v["location"] == "local" and v["tags"] == {"a": "b"}
    p = v["properties"]
    assert p["provisioningState"] == "Succeeded"
    pp = p["publishingProfile"]
    assert pp["targetRegions"] == [
        {"name": "local", "regionalReplicaCount": 2, "storageAccountType": "Premium_LRS"}]
    assert pp["replicaCount"] == 2 and pp["excludeFromLatest"] is False
    assert pp["storageAccountType"] == "Premium_LRS" and pp["replicationMode"] == "Full"
    assert pp["endOfLifeDate"] == "2099-01-01T00:00:00+00:00"
    assert pp["publishedDate"].endswith("+00:00")
    sp = p["storageProfile"]
    assert sp["osDiskImage"] == {"sizeInGB": 1, "hostCaching": "ReadWrite",
                                 "source": {"uri": "file://" + run.src[1]}}
    assert [(d["lun"], d["source"]["uri"]) for d in sp["dataDiskImages"]] == [
        (1, "file://" + run.src[3]), (3, "file://" + run.src[2])]
    assert p["safetyProfile"] == {"allowDeletionOfReplicatedLocations": False,
                                  "blockDeletionBeforeEndOfLife": False,
                                  "reportedForPolicyViolation": False}
    assert "replicationStatus" not in p
    local = p["localStorage"]
    assert local["osDiskImage"]["virtualSize"] == 3 * MiB
    assert len(local["osDiskImage"]["manifestDigest"]) == 32
    assert local["osDiskImage"]["storedBytes"] > 0
    assert [d["lun"] for d in local["dataDiskImages"]] == [1, 3]
    assert set(manifests(run)) == {
        f"{x['manifestDigest']}.mf" for x in [local["osDiskImage"], *local["dataDiskImages"]]}
    s = run.json("sig", "image-version", "show", "-r", "g", "-i", "d", "-e", "1.0.0")
    assert s == v
    e = run.json("sig", "image-version", "show", "-r", "g", "-i", "d", "-e", "1.0.0",
                 "--expand", "replicationstatus")
    assert e["properties"]["replicationStatus"] == {
        "aggregatedState": "Completed",
        "summary": [{"region": "local", "state": "Completed", "progress": 100, "details": ""}]}
    fails(run("sig", "image-version", "show", "-r", "g", "-i", "d", "-e", "1.0.0", "--expand",
              "Everything"), INVALID, "--expand")
    ver(run, "1.10.0", src=2)
    ver(run, "1.9.0", src=3)
    names = [x["name"] for x in run.json("sig", "image-version", "list", "-r", "g", "-i", "d")]
    assert names == ["1.0.0", "1.9.0", "1.10.0"]
    fails(run("sig", "image-version", "show", "-r", "g", "-i", "d", "-e", "9.9.9"), NOT_FOUND,
          "image version 'g/d/9.9.9' not found")
    fails(run("sig", "image-version", "list", "-r", "g", "-i", "x"), NOT_FOUND,
          "image definition 'g/x' not found")


@pytest.mark.parametrize("name", ["1.0", "1.0.0.0", "a.b.c", "1.-1.0", "1.0.2147483648", "v1.0.0"])
def test_version_names(env, name):
    fails(ver(env, name), INVALID, "--gallery-image-version", f"'{name}'")
    assert env.json("sig", "image-version", "list", "-r", "g", "-i", "d") == []
    assert manifests(env) == []


def test_version_name_int32_max_ok(env):
    assert ver(env, "2147483647.0.2147483647").exit_code == 0


def test_duplicate_version(env):
    assert ver(env, "1.0.0").exit_code == 0
    fails(ver(env, "1.0.0", src=2), CONFLICT, "image version 'g/d/1.0.0' already exists")
    fails(ver(env, "01.0.0", src=2), CONFLICT, "already exists")


@pytest.mark.parametrize(
    ("extra", "code", "needle"),
    [
        (["--data-vhds-uris", "S2", "S3", "--data-vhds-luns", "1", "1"], INVALID,
         "--data-vhds-luns: LUN 1 is used twice"),
        (["--data-vhds-uris", "S2", "S3", "--data-vhds-luns", "1"], INVALID,
         "--data-vhds-luns: 1 LUN(s) given for 2 data disk source(s)"),
        (["--data-vhds-uris", "S2", "--data-vhds-luns", "64"], INVALID, "--data-vhds-luns: '64'"),
        (["--data-vhds-uris", "S2", "--data-vhds-luns", "x"], INVALID, "--data-vhds-luns: 'x'"),
        (["--data-vhds-uris", "S1"], INVALID, "--data-vhds-uris: source"),
        (["--data-vhds-uris", "S2", "S2"], INVALID, "used twice"),
        (["--data-vhds-uris", "/nonexistent/x.vhd"], NOT_FOUND, "--data-vhds-uris: /nonexistent/x.vhd"),
        (["--target-regions", "atlantis"], NOT_FOUND, "--target-regions: region 'atlantis' not found"),
        (["-l", "atlantis"], NOT_FOUND, "--location: region 'atlantis' not found"),
        (["--target-regions", "local", "local=2"], INVALID, "region 'local' is listed twice"),
        (["--target-regions", "local=0"], INVALID, "--target-regions"),
        (["--target-regions", "local=1=Cheap_LRS"], INVALID, "Cheap_LRS"),
        (["--target-regions", "local=1=Standard_LRS=x"], INVALID, "REGION[=COUNT]"),
        (["--replica-count", "0"], INVALID, "--replica-count"),
        (["--replica-count", "101"], INVALID, "--replica-count"),
        (["--storage-account-type", "Floppy"], INVALID, "--storage-account-type"),
        (["--replication-mode", "Deep"], INVALID, "--replication-mode: 'Deep'"),
        (["--end-of-life-date", "2020-01-01"], INVALID, "--end-of-life-date: 2020-01-01T00:00:00+00:00 is not in the future"),
        (["--end-of-life-date", "tomorrow"], INVALID, "--end-of-life-date"),
        (["--block-deletion-before-end-of-life"], INVALID, "--block-deletion-before-end-of-life: needs properties.publishingProfile.endOfLifeDate"),
        (["--image-version", "g/d/1.0.0"], INVALID, "cannot be combined"),
    ],
)
def test_create_validation(env, extra, code, needle):
    run = env
    extra = [run.src[int(a[1])] if a in ("S1", "S2", "S3") else a for a in extra]
    before = manifests(run)
    fails(ver(run, "1.0.0", *extra), code, needle)
    assert run.json("sig", "image-version", "list", "-r", "g", "-i", "d") == []
    assert manifests(run) == before


def test_create_needs_a_source(env):
    fails(env("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "1.0.0"), INVALID,
          "--os-vhd-uri: required")
    fails(env("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "1.0.0",
              "--os-vhd-uri", "/nonexistent.vhdx"), NOT_FOUND, "--os-vhd-uri: /nonexistent.vhdx")
    fails(env("sig", "image-version", "create", "-r", "g", "-i", "nope", "-e", "1.0.0",
              "--os-vhd-uri", env.src[1]), NOT_FOUND, "image definition 'g/nope' not found")


def test_target_regions_must_include_source(env, monkeypatch):
    run = env
    monkeypatch.setenv("IMAGESTORE_AUTOSTART_WORKER", "0")  # queued work stays queued
    run.json("region", "create", "west", "--path", str(run.tmp / "west"))
    fails(ver(run, "1.0.0", "--target-regions", "west"), INVALID,
          "--target-regions: must include the source region 'local'")
    r = ver(run, "1.0.0", "--target-regions", "local=2", "west=1=Standard_ZRS", "--no-wait")
    assert r.exit_code == 0 and r.stdout == ""
    v = run.json("sig", "image-version", "show", "-r", "g", "-i", "d", "-e", "1.0.0")
    assert v["properties"]["publishingProfile"]["targetRegions"] == [
        {"name": "local", "regionalReplicaCount": 2, "storageAccountType": "Standard_LRS"},
        {"name": "west", "regionalReplicaCount": 1, "storageAccountType": "Standard_ZRS"}]
    assert v["properties"]["provisioningState"] == "Creating"
    show = ["sig", "image-version", "show", "-r", "g", "-i", "d", "--expand", "ReplicationStatus",
            "--query", "properties.replicationStatus", "-e"]
    assert run.json(*show, "1.0.0") == {
        "aggregatedState": "InProgress",
        "summary": [
            # a region not started yet shows as Azure shows it: Replicating, progress 0
            {"region": "local", "state": "Replicating", "progress": 0, "details": ""},
            {"region": "west", "state": "Replicating", "progress": 0, "details": ""}]}
    local = run.json(*show[:-3], "--query", "properties.localStorage.replication", "-e", "1.0.0")
    assert [(r["region"], r["state"]) for r in local] == [("local", "Queued"), ("west", "Queued")]
    # not usable in a region before replication completes there
    fails(run("disk", "create", "-n", "w", "--gallery-image-reference", "g/d/1.0.0", "-l", "west"),
          CONFLICT, "not available in region 'west' yet (replication Queued)")
    fails(run("disk", "create", "-n", "w", "--gallery-image-reference", "g/d", "-l", "west"),
          NOT_FOUND, "no version qualifies as latest in region 'west'", "(replication Queued in west)")
    run.json("worker", "--once")
    assert run.json(*show, "1.0.0")["aggregatedState"] == "Completed"
    # removing a replicated region needs safetyProfile.allowDeletionOfReplicatedLocations
    upd = ["sig", "image-version", "update", "-r", "g", "-i", "d", "--target-regions", "local", "-e"]
    fails(run(*upd, "1.0.0"), CONFLICT, "--target-regions: removing region(s) west is not allowed",
          "allowDeletionOfReplicatedLocations")
    ver(run, "1.0.1", "--target-regions", "local", "west", "--allow-replicated-location-deletion", src=2)
    assert run.json(*upd, "1.0.1")["properties"]["publishingProfile"]["targetRegions"] == [
        {"name": "local", "regionalReplicaCount": 1, "storageAccountType": "Standard_LRS"}]
    assert run.json(*show, "1.0.1")["aggregatedState"] == "Completed"


def test_bad_image_leaves_nothing(env, store_dir):

    run = env
    bad = run.tmp / "bad.vhdx"
    bad.write_bytes(b"vhdxfile" + b"\0" * (1 << 20))
    assert ver(run, "0.0.1").exit_code == 0
    snap = store_tree_snapshot(store_dir)
    fails(ver(run, "1.0.0", "--data-vhds-uris", str(bad), src=2), BAD_IMAGE, str(bad))
    assert store_tree_snapshot(store_dir) == snap
    assert [x["name"] for x in run.json("sig", "image-version", "list", "-r", "g", "-i", "d")] == ["0.0.1"]


def test_failure_during_capture_rolls_back(env, monkeypatch):
    """A capture failing after the first disk was ingested leaves no version and no manifest."""
    from imagestore.gallery import capture

    run = env
    real = capture.ingest
    calls = []

    def flaky(store, reader, **kw):
        calls.append(reader.path)
        if len(calls) == 2:
            raise OSError(5, "Input/output error", reader.path)
        return real(store, reader, **kw)

    monkeypatch.setattr(capture, "ingest", flaky)
    r = ver(run, "1.0.0", "--data-vhds-uris", run.src[2])
    assert r.exit_code == 10, r.stderr
    assert len(calls) == 2
    assert manifests(run) == []
    assert run.json("sig", "image-version", "list", "-r", "g", "-i", "d") == []
    with db(run) as con:
        assert con.execute("SELECT count(*) FROM version_disks").fetchone()[0] == 0


def test_copy_by_reference(env):
    run = env
    src = run.json("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "1.0.0",
                   "--os-vhd-uri", run.src[1], "--data-vhds-uris", run.src[2], "--data-vhds-luns", "5")
    run.json("sig", "create", "-r", "g2")
    run.json("sig", "image-definition", "create", "-r", "g2", "-i", "d2", "-p", "P", "-f", "O",
             "-s", "S", "--os-type", "Linux")
    before = manifests(run)
    c = run.json("sig", "image-version", "create", "-r", "g2", "-i", "d2", "-e", "3.0.0",
                 "--image-version", src["id"])
    assert manifests(run) == before  # no data written
    sp = c["properties"]["storageProfile"]
    assert sp["source"] == {"id": src["id"]}
    assert "source" not in sp["osDiskImage"] and sp["dataDiskImages"][0]["lun"] == 5
    cl, sl = c["properties"]["localStorage"], src["properties"]["localStorage"]
    assert cl["osDiskImage"]["manifestDigest"] == sl["osDiskImage"]["manifestDigest"]
    assert cl["osDiskImage"]["storedBytes"] == 0
    assert cl["dataDiskImages"][0]["manifestDigest"] == sl["dataDiskImages"][0]["manifestDigest"]
    # short form, same gallery
    c2 = run.json("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "1.0.1",
                  "--image-version", "g/d/1.0.0")
    assert c2["properties"]["storageProfile"]["source"]["id"] == src["id"]
    # deleting the source keeps the shared data
    assert run("sig", "image-version", "delete", "-r", "g", "-i", "d", "-e", "1.0.0").exit_code == 0
    assert manifests(run) == before
    fails(run("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "4.0.0",
              "--image-version", "g/d/1.0.0"), NOT_FOUND, "image version 'g/d/1.0.0' not found")
    run.json("sig", "image-definition", "create", "-r", "g", "-i", "win", "-p", "W", "-f", "O",
             "-s", "S", "--os-type", "Windows")
    fails(run("sig", "image-version", "create", "-r", "g", "-i", "win", "-e", "1.0.0",
              "--image-version", "g2/d2/3.0.0"), INVALID, "--image-version", "osType 'Linux'")
    fails(run("sig", "image-version", "create", "-r", "g", "-i", "win", "-e", "1.0.0",
              "--image-version", "/subscriptions/x/resourceGroups/default"), INVALID, "--image-version")


def test_update_allowed(env):
    run = env
    ver(run, "1.0.0")
    r = run("sig", "image-version", "update", "-r", "g", "-i", "d", "-e", "1.0.0",
            "--replica-count", "3", "--exclude-from-latest", "true",
            "--end-of-life-date", "2098-05-01T12:00:00Z", "--tags", "x=y", "--no-wait")
    assert r.exit_code == 0 and r.stdout == ""  # as az: --no-wait prints nothing
    u = run.json("sig", "image-version", "show", "-r", "g", "-i", "d", "-e", "1.0.0")
    pp = u["properties"]["publishingProfile"]
    assert pp["replicaCount"] == 3 and pp["excludeFromLatest"] is True
    assert pp["endOfLifeDate"] == "2098-05-01T12:00:00+00:00"
    assert u["tags"] == {"x": "y"}
    u = run.json("sig", "image-version", "update", "-r", "g", "-i", "d", "-e", "1.0.0",
                 "--target-regions", "local=4=Premium_LRS")
    assert u["properties"]["publishingProfile"]["targetRegions"] == [
        {"name": "local", "regionalReplicaCount": 4, "storageAccountType": "Premium_LRS"}]
    u = run.json("sig", "image-version", "update", "-r", "g", "-i", "d", "-e", "1.0.0", "--set",
                 "properties.publishingProfile.targetRegions[0].regionalReplicaCount=5",
                 "properties.publishingProfile.targetRegions[0].excludeFromLatest=false",
                 "properties.publishingProfile.excludeFromLatest=false")
    tr = u["properties"]["publishingProfile"]["targetRegions"][0]
    assert tr["regionalReplicaCount"] == 5 and tr["excludeFromLatest"] is False
    # publishedDate, storage profile and local facts are unchanged by updates
    s = run.json("sig", "image-version", "show", "-r", "g", "-i", "d", "-e", "1.0.0")
    assert s["properties"]["storageProfile"] == u["properties"]["storageProfile"]


@pytest.mark.parametrize(
    ("expr", "name"),
    [
        ("properties.storageProfile.osDiskImage.hostCaching=None",
         "properties.storageProfile.osDiskImage.hostCaching"),
        ("properties.publishingProfile.replicationMode=Shallow",
         "properties.publishingProfile.replicationMode"),
        ("properties.publishingProfile.storageAccountType=Premium_LRS",
         "properties.publishingProfile.storageAccountType"),
        ("properties.publishingProfile.publishedDate=2020-01-01",
         "properties.publishingProfile.publishedDate"),
        ("properties.safetyProfile.reportedForPolicyViolation=true",
         "properties.safetyProfile.reportedForPolicyViolation"),
        ("properties.provisioningState=Failed", "properties.provisioningState"),
        ("properties.localStorage.osDiskImage.manifestDigest=00",
         "properties.localStorage.osDiskImage.manifestDigest"),
        ("location=west", "location"),
        ("name=2.0.0", "name"),
    ],
)
def test_update_refused(env, expr, name):
    run = env
    ver(run, "1.0.0")
    before = run.json("sig", "image-version", "show", "-r", "g", "-i", "d", "-e", "1.0.0")
    fails(run("sig", "image-version", "update", "-r", "g", "-i", "d", "-e", "1.0.0", "--set", expr),
          CONFLICT, f"Changing property '{name}' is not allowed")
    assert run.json("sig", "image-version", "show", "-r", "g", "-i", "d", "-e", "1.0.0") == before


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--exclude-from-latest", "maybe"], INVALID, "--exclude-from-latest: 'maybe'"),
        (["--replica-count", "0"], INVALID, "--replica-count: '0' must be an integer from 1 to 100"),
        (["--end-of-life-date", "2001-01-01"], INVALID, "--end-of-life-date: 2001-01-01T00:00:00+00:00 is not in the future"),
        (["--target-regions", "mars"], NOT_FOUND, "--target-regions: region 'mars' not found"),
        (["--set", "properties.publishingProfile.targetRegions[5].name=x"], INVALID, "index [5]"),
        (["--set", "properties.publishingProfile.targetRegions[0].regionalReplicaCount=-1"],
         INVALID, "targetRegions[0].regionalReplicaCount"),
        (["--set", "properties.publishingProfile.targetRegions=[]"], INVALID, "at least one region"),
    ],
)
def test_update_validation(env, args, code, needle):
    run = env
    ver(run, "1.0.0")
    fails(run("sig", "image-version", "update", "-r", "g", "-i", "d", "-e", "1.0.0", *args),
          code, needle)


def latest_digest(run, ref="g/d"):
    r = run("disk", "create", "-n", f"probe{len(os.listdir(run.tmp))}", "--gallery-image-reference",
            ref, "--path", str(run.tmp / f"probe{len(os.listdir(run.tmp))}.raw"))
    if r.exit_code:
        return r
    return json.loads(r.stdout)["properties"]["localStorage"]["manifestDigest"]


def test_latest(env):
    run = env
    dig = {}
    for v, s, extra in (("1.0.0", 1, ()), ("1.9.0", 2, ()), ("1.10.0", 3, ()),
                        ("2.0.0", 4, ("--exclude-from-latest",))):
        out = json.loads(ver(run, v, *extra, src=s).stdout)
        dig[v] = out["properties"]["localStorage"]["osDiskImage"]["manifestDigest"]
    assert latest_digest(run) == dig["1.10.0"]  # numeric, not lexical; 2.0.0 is excluded
    # the per-region flag overrides the global one, both ways
    upd = ["sig", "image-version", "update", "-r", "g", "-i", "d", "-e"]
    run.json(*upd, "2.0.0", "--set", "properties.publishingProfile.targetRegions[0].excludeFromLatest=false")
    assert latest_digest(run, f"{VID[:-len('/versions')]}") == dig["2.0.0"]
    run.json(*upd, "2.0.0", "--set", "properties.publishingProfile.targetRegions[0].excludeFromLatest=true",
             "properties.publishingProfile.excludeFromLatest=false")
    assert latest_digest(run) == dig["1.10.0"]
    # a version not completed in the region is skipped
    with db(run) as con:
        con.execute("UPDATE version_regions SET state='Replicating' WHERE version_id = "
                    "(SELECT id FROM versions WHERE name='1.10.0')")
    assert latest_digest(run) == dig["1.9.0"]
    for v in ("1.0.0", "1.9.0"):
        run.json(*upd, v, "--exclude-from-latest", "true")
    r = latest_digest(run)
    fails(r, NOT_FOUND, "image definition 'g/d': no version qualifies as latest in region 'local'",
          "2.0.0 (excluded from latest)", "1.10.0 (replication Replicating in local)")
    run.json("sig", "image-definition", "create", "-r", "g", "-i", "empty", "-p", "E", "-f", "O",
             "-s", "S", "--os-type", "Linux")
    fails(latest_digest(run, "g/empty"), NOT_FOUND, "no version qualifies as latest", "(0 version(s))")


def test_delete_frees_data_and_disks_survive(env):
    run = env
    v = json.loads(ver(run, "1.0.0").stdout)
    digest = v["properties"]["localStorage"]["osDiskImage"]["manifestDigest"]
    disk = run.tmp / "keep.raw"
    assert run("disk", "create", "-n", "keep", "--gallery-image-reference", "g/d/1.0.0",
               "--path", str(disk)).exit_code == 0
    fails(run("sig", "image-definition", "delete", "-r", "g", "-i", "d"), CONFLICT,
          "image definition 'g/d' still has 1 image version(s): 1.0.0")
    r = run("sig", "image-version", "delete", "-r", "g", "-i", "d", "-e", "1.0.0", "--no-wait")
    assert r.exit_code == 0 and r.stdout == ""
    assert f"{digest}.mf" not in manifests(run)
    gc = run.json("store", "gc")
    assert json.dumps(gc) and any(isinstance(x, int) and x > 0 for x in gc.values())
    assert run.json("store", "verify")
    with open(disk, "rb") as a, open(run.src[1], "rb") as b:
        assert a.read() == b.read()
    fails(run("sig", "image-version", "delete", "-r", "g", "-i", "d", "-e", "1.0.0"), NOT_FOUND)
    assert run("sig", "image-definition", "delete", "-r", "g", "-i", "d").exit_code == 0


def test_block_deletion_before_end_of_life(env):
    run = env
    ver(run, "1.0.0", "--end-of-life-date", "2099-01-01", "--block-deletion-before-end-of-life")
    fails(run("sig", "image-version", "delete", "-r", "g", "-i", "d", "-e", "1.0.0"), CONFLICT,
          "deletion is blocked until its end of life date 2099-01-01T00:00:00+00:00",
          "blockDeletionBeforeEndOfLife")
    fails(run("sig", "image-version", "update", "-r", "g", "-i", "d", "-e", "1.0.0", "--set",
              "properties.publishingProfile.endOfLifeDate=null"), INVALID, "cannot be removed")
    # once the end of life has passed, deletion is allowed
    with db(run) as con:
        props = json.loads(con.execute("SELECT props FROM versions").fetchone()[0])
        props["publishingProfile"]["endOfLifeDate"] = "2001-01-01T00:00:00+00:00"
        con.execute("UPDATE versions SET props = ?", (json.dumps(props),))
    assert run("sig", "image-version", "delete", "-r", "g", "-i", "d", "-e", "1.0.0").exit_code == 0


def test_wait(env):
    run = env
    w = ["sig", "image-version", "wait", "-r", "g", "-i", "d", "-e", "1.0.0"]
    fails(run(*w, "--created", "--timeout", "0"), 12, "not created after 0 s")  # TimedOut
    assert ver(run, "1.0.0", "--no-wait").exit_code == 0
    assert run(*w, "--created").exit_code == 0
    assert run(*w, "--exists").exit_code == 0
    assert run(*w, "--updated").exit_code == 0
    run("sig", "image-version", "delete", "-r", "g", "-i", "d", "-e", "1.0.0")
    assert run(*w, "--deleted").exit_code == 0


def test_three_state_flags(env):
    run = env
    v = json.loads(ver(run, "1.0.0", "--exclude-from-latest", "--end-of-life-date", "2099-01-01",
                       "--block-deletion-before-end-of-life", "true",
                       "--allow-replicated-location-deletion", "false").stdout)
    p = v["properties"]
    assert p["publishingProfile"]["excludeFromLatest"] is True
    assert p["safetyProfile"]["blockDeletionBeforeEndOfLife"] is True
    assert p["safetyProfile"]["allowDeletionOfReplicatedLocations"] is False
    v = json.loads(ver(run, "1.0.1", "--exclude-from-latest", "false", src=2).stdout)
    assert v["properties"]["publishingProfile"]["excludeFromLatest"] is False
    fails(ver(run, "1.0.2", "--exclude-from-latest", "perhaps", src=3), INVALID,
          "--exclude-from-latest: 'perhaps' is not true or false")
    u = run.json("sig", "image-version", "update", "-r", "g", "-i", "d", "-e", "1.0.1",
                 "--exclude-from-latest")
    assert u["properties"]["publishingProfile"]["excludeFromLatest"] is True


def test_remote_uris_and_tags_refused(env):
    fails(env("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "1.0.0", "--os-vhd-uri",
              "s3://bucket/os.vhd"), INVALID,
          "--os-vhd-uri: 's3://bucket/os.vhd': only local paths, file:// URIs and http(s)://")
    # blob URLs are read from blob storage (tests/formats/test_blob_source.py); one whose
    # account cannot be reached is an I/O failure naming it
    fails(env("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "1.0.0", "--os-vhd-uri",
              "http://127.0.0.1:1/acct/vhds/os.vhd"), 10,
          "http://127.0.0.1:1/acct/vhds/os.vhd: cannot reach the storage service")
    fails(ver(env, "1.0.0", "--tags", "=x"), INVALID, "--tags: '=x' has no tag name")
    fails(env("sig", "update", "-r", "g", "--set", 'tags={"a": [1]}'), INVALID, "tags.a")


def test_concurrent_delete_guard(env, monkeypatch):
    """A manifest removed between capture and commit (a concurrent version deletion) makes
    the create fail cleanly instead of committing a version without data."""
    from imagestore.gallery import capture

    run = env
    real = capture.ingest

    def ingest_then_lose(store, reader, **kw):
        res = real(store, reader, **kw)
        store.remove_manifest(res.digest)
        return res

    monkeypatch.setattr(capture, "ingest", ingest_then_lose)
    fails(ver(run, "1.0.0"), 7, "is missing from region 'local'", "run the command again")
    assert run.json("sig", "image-version", "list", "-r", "g", "-i", "d") == []


def test_each_source_captured_once_with_progress(env):
    """The library emits progress events per source (the CLI renders them on a terminal)."""
    from imagestore.gallery import GalleryService, TaskKind
    from imagestore.home import Home

    home = Home.open(env.store)
    svc = GalleryService(home)
    seen: dict[str, list] = {}

    def observer(ev):
        assert ev.kind == TaskKind.CAPTURE
        seen.setdefault(ev.subject, []).append("final" if ev.final else (ev.done, ev.total))

    try:
        svc.create_version("default", "g", "d", "1.0.0", os_vhd_uri=env.src[1],
                           data_vhds_uris=[env.src[2]], data_vhds_luns=[7], observer=observer)
    finally:
        svc.close()
        home.close()
    assert sorted(seen) == ["data disk lun 7", "os disk"]
    for calls in seen.values():
        assert calls[-1] == "final" and calls.count("final") == 1
        done, total = calls[-2]
        assert done == total > 0


def test_region_hooks(env):
    """holds_only_copy for the region registry, and a pluggable region lookup."""
    from imagestore.gallery import GalleryService
    from imagestore.home import Home

    run = env
    run.json("region", "create", "west", "--path", str(run.tmp / "west"))
    ver(run, "1.0.0")
    ver(run, "2.0.0", "--target-regions", "local", "west", src=2)
    with db(run) as con:
        con.execute("UPDATE version_regions SET state='Replicating' WHERE region='west'")
    home = Home.open(run.store)
    svc = GalleryService(home)
    try:
        assert [x.rsplit("/", 1)[1] for x in svc.holds_only_copy("local")] == ["1.0.0", "2.0.0"]
        assert svc.holds_only_copy("west") == []  # west is still Replicating
        with db(run) as con:
            con.execute("UPDATE version_regions SET state='Completed' WHERE region='west'")
        assert [x.rsplit("/", 1)[1] for x in svc.holds_only_copy("LOCAL")] == ["1.0.0"]
    finally:
        svc.close()
    svc = GalleryService(home, region_lookup=lambda n: "East" if n.lower() == "east" else None)
    try:
        assert svc.require_region("EAST") == "East" and not svc.region_exists("local")
        with pytest.raises(Exception, match="location: region 'local' not found"):
            svc.require_region("local")
    finally:
        svc.close()
        home.close()
