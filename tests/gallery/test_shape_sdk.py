"""Every resource and state the CLI prints, read by the real azure-mgmt-compute models in both
model styles (typespec 39.x installed, msrest 37.x beside it): every key known to the model
(outside ``properties.localStorage``), every value read back equal with its JSON type, every
enum string one the SDK defines. See :mod:`tests.gallery.sdk_shape` for the checker.

States are made for real: a version queued by ``--no-wait`` with the worker held off
(``IMAGESTORE_AUTOSTART_WORKER=0``), caught while replicating from the worker's own progress
callback, completed, failed in one region (a region whose ``packs`` cannot be created) and
failed in its capture (the source removed before the worker ran).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import uuid

import pytest

from imagestore import worker
from imagestore.gallery import GalleryService, arm_disk
from imagestore.home import Home
from tests.conftest import Cli

from .sdk_shape import Report, ShapeError, msrest_style, typespec_style

MiB = 1 << 20
REF = os.path.join(os.path.dirname(__file__), "fixtures", "arm")
SHOW_V = ["sig", "image-version", "show", "-r", "g", "-i", "img", "-e"]
EXPAND = ["--expand", "ReplicationStatus"]


def _src(path, size: int, fill: int) -> str:
    with open(path, "wb") as f:
        f.truncate(size)
        f.seek(4096)
        f.write(bytes([fill]) * 8192)
    return str(path)


def _build(tmp) -> list[tuple[str, str, dict]]:
    """(label, SDK model, document) for everything the CLI prints."""
    run = Cli(str(tmp / "store"))
    docs: list[tuple[str, str, dict]] = []

    def add(label: str, model: str, out) -> None:
        for i, d in enumerate(out if isinstance(out, list) else [out]):
            docs.append((f"{label}[{i}]" if isinstance(out, list) else label, model, d))

    os_src = _src(tmp / "os.raw", 2 * MiB, 0x5A)
    data_src = _src(tmp / "data.raw", MiB, 0xA5)
    add("sig create", "Gallery", run.json("sig", "create", "-r", "g", "--description", "d",
                                          "--tags", "a=b"))
    run.json("sig", "create", "-r", "g2")
    add("sig update", "Gallery", run.json("sig", "update", "-r", "g", "--description", "e"))
    add("sig show", "Gallery", run.json("sig", "show", "-r", "g"))
    add("sig list", "Gallery", run.json("sig", "list"))
    defn = ["sig", "image-definition", "create", "-r", "g"]
    add("image-definition create (all fields)", "GalleryImage", run.json(
        *defn, "-i", "img", "-p", "P", "-f", "O", "-s", "S", "--os-type", "Windows",
        "--os-state", "Specialized", "--hyper-v-generation", "V2", "--architecture", "Arm64",
        "--features", "SecurityType=TrustedLaunchSupported", "IsAcceleratedNetworkSupported=True",
        "DiskControllerTypes=SCSI,NVMe", "IsHibernateSupported=False", "--description", "x",
        "--eula", "e", "--privacy-statement-uri", "https://p", "--release-note-uri", "https://r",
        "--end-of-life-date", "2099-06-30", "--minimum-cpu-core", "1", "--maximum-cpu-core", "4",
        "--minimum-memory", "1", "--maximum-memory", "16", "--disallowed-disk-types",
        "Standard_LRS", "--plan-publisher", "pp", "--plan-name", "pn", "--plan-product", "pr",
        "--tags", "t=1"))
    add("image-definition create (trusted launch)", "GalleryImage", run.json(
        *defn, "-i", "tl", "-p", "P", "-f", "O", "-s", "TL", "--os-type", "Linux",
        "--hyper-v-generation", "V2", "--features", "SecurityType=TrustedLaunch",
        "IsHibernateSupported=True"))
    add("image-definition create (minimal)", "GalleryImage", run.json(
        *defn, "-i", "min", "-p", "P", "-f", "O", "-s", "M", "--os-type", "Linux"))
    add("image-definition update", "GalleryImage", run.json(
        "sig", "image-definition", "update", "-r", "g", "-i", "min", "--set",
        "properties.description=now described"))
    add("image-definition show", "GalleryImage",
        run.json("sig", "image-definition", "show", "-r", "g", "-i", "img"))
    add("image-definition list", "GalleryImage",
        run.json("sig", "image-definition", "list", "-r", "g"))

    run.json("region", "create", "west", "--path", str(tmp / "west"))
    bad = tmp / "bad"
    run.json("region", "create", "bad", "--path", str(bad))
    os.rmdir(bad / "packs")
    (bad / "packs").write_bytes(b"")  # no pack can be created below it: replication fails
    ver = ["sig", "image-version", "create", "-r", "g", "-i", "img", "--os-vhd-uri", os_src,
           "--data-vhds-uris", data_src, "--data-vhds-luns", "4", "-e"]
    add("image-version create (completed, 2 regions)", "GalleryImageVersion", run.json(
        *ver, "1.0.0", "--target-regions", "local", "west=2", "--end-of-life-date",
        "2099-01-01", "--block-deletion-before-end-of-life", "--tags", "v=1"))
    add("image-version show (completed)", "GalleryImageVersion", run.json(*SHOW_V, "1.0.0"))
    add("image-version show --expand (completed)", "GalleryImageVersion",
        run.json(*SHOW_V, "1.0.0", *EXPAND))
    add("image-version create (by reference)", "GalleryImageVersion", run.json(
        "sig", "image-version", "create", "-r", "g", "-i", "img", "-e", "1.0.1",
        "--image-version", "g/img/1.0.0"))
    add("image-version create (shallow)", "GalleryImageVersion", run.json(
        "sig", "image-version", "create", "-r", "g", "-i", "min", "-e", "1.0.0", "--os-vhd-uri",
        os_src, "--replication-mode", "Shallow", "--exclude-from-latest"))
    run.json("sig", "image-version", "create", "-r", "g", "-i", "tl", "-e", "1.0.0",
             "--os-vhd-uri", os_src)
    add("image-version update", "GalleryImageVersion", run.json(
        "sig", "image-version", "update", "-r", "g", "-i", "img", "-e", "1.0.0", "--set",
        "properties.publishingProfile.targetRegions[0].excludeFromLatest=true"))

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMAGESTORE_AUTOSTART_WORKER", "0")  # queued work stays queued
        r = run(*ver, "1.1.0", "--target-regions", "local", "west", "--no-wait")
        assert r.exit_code == 0, r.stderr
        add("image-version show (queued, not captured)", "GalleryImageVersion",
            run.json(*SHOW_V, "1.1.0"))
        add("image-version show --expand (queued)", "GalleryImageVersion",
            run.json(*SHOW_V, "1.1.0", *EXPAND))
        add("image-version list (with a queued one)", "GalleryImageVersion",
            run.json("sig", "image-version", "list", "-r", "g", "-i", "img"))
        # replicating: shown from the worker's own progress callback, as the region starts
        caught: list[dict] = []

        def progress(ev):
            if ev.subject == "west" and ev.state == "Replicating" and not caught:
                caught.append(run.json(*SHOW_V, "1.1.0", *EXPAND))

        home = Home.open(run.store)
        svc = GalleryService(home)
        try:
            w = worker.Worker(svc)
            assert w.lease.acquire(svc.repo)
            try:
                w.run(once=True, only_version=svc.version_pk("default", "g", "img", "1.1.0"),
                      observer=progress)
            finally:
                w.lease.release(svc.repo)
        finally:
            svc.close()
            home.close()
        assert caught, "the worker never reported west replicating"
        add("image-version show --expand (replicating)", "GalleryImageVersion", caught[0])
        # failed in one region
        r = run(*ver, "1.2.0", "--target-regions", "local", "bad")
        assert r.exit_code == 5, (r.exit_code, r.stderr)
        add("image-version show --expand (failed region)", "GalleryImageVersion",
            run.json(*SHOW_V, "1.2.0", *EXPAND))
        # failed in its capture: the source went away before the worker ran
        gone = _src(tmp / "gone.raw", MiB, 0x11)
        r = run("sig", "image-version", "create", "-r", "g", "-i", "img", "-e", "1.3.0",
                "--os-vhd-uri", gone, "--no-wait")
        assert r.exit_code == 0, r.stderr
        os.unlink(gone)
        assert run.json("worker", "--once")["ran"] == 1
        add("image-version show --expand (capture failed)", "GalleryImageVersion",
            run.json(*SHOW_V, "1.3.0", *EXPAND))
        # updating: a region added with --no-wait, its copy not started
        r = run("sig", "image-version", "update", "-r", "g", "-i", "img", "-e", "1.1.0",
                "--target-regions", "local", "west", "bad", "--no-wait")
        assert r.exit_code == 0, r.stderr
        add("image-version show --expand (updating)", "GalleryImageVersion",
            run.json(*SHOW_V, "1.1.0", *EXPAND))

    add("disk create (OS disk, plan and capabilities)", "Disk", run.json(
        "disk", "create", "-n", "os1", "--gallery-image-reference", "g/img/1.0.0",
        "--format", "vhdx", "--tags", "vm=1"))
    add("disk create (data disk)", "Disk", run.json(
        "disk", "create", "-n", "data1", "--gallery-image-reference", "g/img/1.0.0",
        "--gallery-image-reference-lun", "4", "-l", "west"))
    add("disk create (trusted launch)", "Disk", run.json(
        "disk", "create", "-n", "tl1", "-g", "rg2", "--gallery-image-reference",
        f"{_by_label(docs, 'sig show')['id']}/images/tl"))
    add("disk show", "Disk", run.json("disk", "show", "-n", "os1"))
    add("disk list", "Disk", run.json("disk", "list"))
    return docs


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("shape"))


@pytest.fixture(scope="module", params=["typespec", "msrest"])
def style(request):
    return typespec_style() if request.param == "typespec" else msrest_style()


def _by_label(docs, label: str) -> dict:
    return next(d for lab, _m, d in docs if lab == label)


def test_the_states_are_the_ones_named(docs):
    """The documents really are in the states the shape test claims to cover."""
    def st(label):
        p = _by_label(docs, label)["properties"]
        return p["provisioningState"], p.get("replicationStatus", {}).get("aggregatedState")

    assert st("image-version show --expand (queued)") == ("Creating", "InProgress")
    assert st("image-version show --expand (replicating)") == ("Creating", "InProgress")
    assert st("image-version show --expand (completed)") == ("Succeeded", "Completed")
    assert st("image-version show --expand (failed region)") == ("Failed", "Failed")
    assert st("image-version show --expand (capture failed)") == ("Failed", "Failed")
    assert st("image-version show --expand (updating)") == ("Updating", "InProgress")
    rep = _by_label(docs, "image-version show --expand (replicating)")["properties"]
    local = {r["region"]: r["state"] for r in rep["localStorage"]["replication"]}
    assert local["west"] == "Replicating"
    q = _by_label(docs, "image-version show --expand (queued)")["properties"]
    assert {r["state"] for r in q["localStorage"]["replication"]} == {"Queued"}
    failed = _by_label(docs, "image-version show --expand (failed region)")["properties"]
    assert {s["region"]: s["state"] for s in failed["replicationStatus"]["summary"]} == {
        "local": "Completed", "bad": "Failed"}


def test_every_document_reads_back_intact(docs, style):
    rep = Report()
    errors = []
    for label, model, doc in docs:
        try:
            style.check(model, doc, rep)
        except ShapeError as e:
            errors.append(f"{label} ({model}): {e}")
    assert not errors, "\n".join(errors)
    assert len(docs) >= 30
    assert rep.keys >= 1000, rep.keys
    print(f"{style.name}: {len(docs)} documents, {rep.keys} keys, {rep.enum_values} enum values "
          f"in {len(rep.enum_fields)} enum fields")
    # enum-typed fields that were checked, by JSON path (each at least once)
    must = {
        "$.properties.replicationStatus.summary[].state",
        "$.properties.replicationStatus.aggregatedState",
        "$.properties.provisioningState",
        "$.properties.publishingProfile.targetRegions[].storageAccountType",
        "$.properties.publishingProfile.storageAccountType",
        "$.properties.publishingProfile.replicationMode",
        "$.properties.storageProfile.osDiskImage.hostCaching",
        "$.properties.storageProfile.dataDiskImages[].hostCaching",
        "$.properties.osType", "$.properties.osState", "$.properties.hyperVGeneration",
        "$.properties.architecture",
        "$.properties.diskState", "$.properties.networkAccessPolicy",
        "$.properties.publicNetworkAccess", "$.properties.encryption.type",
        "$.properties.creationData.createOption", "$.properties.securityProfile.securityType",
        "$.properties.supportedCapabilities.architecture",
        "$.properties.supportedCapabilities.supportedSecurityOption", "$.sku.name",
    }
    assert must <= set(rep.enum_fields), sorted(must - set(rep.enum_fields))


def test_both_styles_check_the_same_enum_fields(docs):
    seen = {}
    for s in (typespec_style(), msrest_style()):
        rep = Report()
        for _label, model, doc in docs:
            s.check(model, doc, rep)
        seen[s.name] = set(rep.enum_fields)
    assert seen["typespec"] == seen["msrest"], seen["typespec"] ^ seen["msrest"]


def _version(docs) -> dict:
    return json.loads(json.dumps(_by_label(docs, "image-version show --expand (completed)")))


@pytest.mark.parametrize("label, mutate, needle", [
    ("unknown key", lambda v: v["properties"].update(bogus=1), "$.properties.bogus: unknown"),
    ("unknown nested key", lambda v: v["properties"]["publishingProfile"].update(x=1),
     "$.properties.publishingProfile.x: unknown"),
    ("Queued is no ReplicationState",
     lambda v: v["properties"]["replicationStatus"]["summary"][0].update(state="Queued"),
     "summary[0].state: 'Queued' is not a ReplicationState"),
    ("enum case matters", lambda v: v["properties"].update(provisioningState="succeeded"),
     "'succeeded' is not a GalleryProvisioningState"),
    ("number as string",
     lambda v: v["properties"]["replicationStatus"]["summary"][0].update(progress="100"),
     "summary[0].progress"),
    ("bool as string",
     lambda v: v["properties"]["publishingProfile"].update(excludeFromLatest="false"),
     "excludeFromLatest"),
    ("bool as number",
     lambda v: v["properties"]["safetyProfile"].update(reportedForPolicyViolation=0),
     "reportedForPolicyViolation"),
    ("bad date", lambda v: v["properties"]["publishingProfile"].update(endOfLifeDate="soon"),
     "soon"),
    ("localStorage elsewhere", lambda v: v["properties"]["storageProfile"].update(
        localStorage={}), "storageProfile.localStorage: unknown"),
])
def test_the_checker_fails_on_what_it_must(docs, style, label, mutate, needle):
    v = _version(docs)
    style.check("GalleryImageVersion", v, Report())  # intact: passes
    v["properties"]["localStorage"]["anything"] = {"goes": True}  # local extras: not checked
    style.check("GalleryImageVersion", v, Report())
    mutate(v)
    with pytest.raises(ShapeError) as e:
        style.check("GalleryImageVersion", v, Report())
    assert needle in str(e.value), (label, str(e.value))


def _ref(name: str) -> dict:
    with open(os.path.join(REF, name)) as f:
        return json.load(f)


def test_azure_reference_bodies_pass_the_checker(style):
    """The checker accepts what Azure itself returns (recorded responses, spec examples)."""
    for name, model in [("Disk_Get__2023-04-02.json", "Disk"),
                        ("GalleryImageVersion_Get_VmSource__2022-03-03.json", "GalleryImageVersion"),
                        ("GalleryImageVersion_Get_WithReplicationStatus.json", "GalleryImageVersion"),
                        ("GalleryImage_Get__2021-10-01.json", "GalleryImage"),
                        ("Gallery_Get__2021-10-01.json", "Gallery")]:
        style.check(model, _ref(name), Report())


def test_disk_carries_what_azure_carries(docs):
    """Our disk made from an image version has every property Azure's recorded disk made from
    a gallery image version has (values differ: other image, size, sku)."""
    ours = _by_label(docs, "disk create (OS disk, plan and capabilities)")
    azure = _ref("Disk_Get__2023-04-02.json")
    assert set(azure) <= set(ours)
    assert set(azure["properties"]) <= set(ours["properties"])
    assert set(azure["properties"]["creationData"]) <= set(ours["properties"]["creationData"])
    p = ours["properties"]
    vid = _by_label(docs, "image-version show (completed)")["id"]
    assert p["creationData"] == {"createOption": "FromImage", "imageReference": {"id": vid},
                                 "galleryImageReference": {"id": vid}}
    assert p["osType"] == "Windows" and p["hyperVGeneration"] == "V2"
    assert p["supportedCapabilities"] == {
        "diskControllerTypes": "SCSI, NVMe", "acceleratedNetwork": True, "architecture": "Arm64",
        "supportedSecurityOption": "TrustedLaunchSupported"}
    assert p["purchasePlan"] == {"name": "pn", "publisher": "pp", "product": "pr"}
    assert p["supportsHibernation"] is False
    assert p["encryption"] == {"type": "EncryptionAtRestWithPlatformKey"}
    assert (p["networkAccessPolicy"], p["publicNetworkAccess"]) == ("AllowAll", "Enabled")
    assert ours["sku"] == {"name": "Standard_LRS", "tier": "Standard"}
    assert (p["tier"], p["diskIOPSReadWrite"], p["diskMBpsReadWrite"]) == ("S4", 500, 60)
    assert (p["diskSizeGB"], p["diskSizeBytes"]) == (1, 2 * MiB)
    assert p["diskState"] == "Unattached" and p["provisioningState"] == "Succeeded"
    shown = _by_label(docs, "disk show")
    assert shown == ours  # uniqueId and the rest are stable across reads
    ids = [d["properties"]["uniqueId"] for lab, _m, d in docs if lab.startswith("disk list")]
    assert len(set(ids)) == len(ids) == 3
    data = _by_label(docs, "disk create (data disk)")["properties"]
    assert data["creationData"]["galleryImageReference"] == {"id": vid, "lun": 4}
    assert data["creationData"]["imageReference"] == {"id": vid, "lun": 4}
    assert not {"osType", "hyperVGeneration", "supportedCapabilities", "purchasePlan"} & set(data)
    tl = _by_label(docs, "disk create (trusted launch)")["properties"]
    assert tl["securityProfile"] == {"securityType": "TrustedLaunch"}
    assert tl["supportsHibernation"] is True
    assert tl["supportedCapabilities"] == {"architecture": "x64"}


def test_version_queued_echoes_the_request(docs):
    """While being created, Azure shows the storageProfile that was asked for."""
    v = _by_label(docs, "image-version show (queued, not captured)")["properties"]
    done = _by_label(docs, "image-version show (completed)")["properties"]
    assert v["provisioningState"] == "Creating"
    want = json.loads(json.dumps(done["storageProfile"]))
    del want["osDiskImage"]["sizeInGB"]
    del want["dataDiskImages"][0]["sizeInGB"]
    assert v["storageProfile"] == want
    st = _by_label(docs, "image-version show --expand (queued)")["properties"]["replicationStatus"]
    assert st == {"aggregatedState": "InProgress", "summary": [
        {"region": "local", "state": "Replicating", "progress": 0, "details": ""},
        {"region": "west", "state": "Replicating", "progress": 0, "details": ""}]}
    failed = _by_label(docs, "image-version show --expand (capture failed)")["properties"]
    assert failed["storageProfile"]["osDiskImage"]["source"]["uri"].endswith("/gone.raw")



def test_typed_attributes_read_what_we_meant(docs):
    """A few values read through the SDK's typed attributes (typespec models)."""
    models = typespec_style().models
    i = models.GalleryImage(_by_label(docs, "image-definition create (all fields)"))
    assert i.properties.identifier.publisher == "P"
    assert i.properties.recommended.v_cp_us.max == 4
    assert i.properties.features[0].name == "SecurityType"
    assert i.properties.purchase_plan.product == "pr"
    v = models.GalleryImageVersion(_by_label(docs, "image-version show --expand (completed)"))
    pp = v.properties.publishing_profile
    assert pp.target_regions[1].regional_replica_count == 2
    assert pp.end_of_life_date == dt.datetime(2099, 1, 1, tzinfo=dt.UTC)
    assert v.properties.safety_profile.block_deletion_before_end_of_life is True
    assert v.properties.storage_profile.data_disk_images[0].lun == 4
    assert v.properties.replication_status.aggregated_state == "Completed"
    assert v.properties.replication_status.summary[0].progress == 100
    s = models.GalleryImageVersion(_by_label(docs, "image-version create (shallow)"))
    assert s.properties.publishing_profile.replication_mode == "Shallow"
    assert s.properties.publishing_profile.exclude_from_latest is True
    c = models.GalleryImageVersion(_by_label(docs, "image-version create (by reference)"))
    assert c.properties.storage_profile.source.id == _by_label(
        docs, "image-version show (completed)")["id"]
    d = models.Disk(_by_label(docs, "disk create (data disk)"))
    assert d.properties.creation_data.gallery_image_reference.lun == 4
    assert d.properties.disk_size_bytes == MiB
    assert d.properties.encryption.type == "EncryptionAtRestWithPlatformKey"
    assert os.path.exists(d.properties["localStorage"]["path"])


def test_disk_performance_tiers():
    """Baseline tier, IOPS and MB/s by SKU and size, as Azure's size tables give them."""
    assert arm_disk.performance("Standard_LRS", 1) == ("S4", 500, 60)
    assert arm_disk.performance("Standard_LRS", 33) == ("S6", 500, 60)
    assert arm_disk.performance("Standard_LRS", 8192) == ("S60", 1300, 300)
    assert arm_disk.performance("Standard_LRS", 32767) == ("S80", 2000, 500)
    assert arm_disk.performance("Standard_LRS", 32768) is None
    assert arm_disk.performance("Premium_LRS", 30) == ("P4", 120, 25)  # the recorded disk
    assert arm_disk.performance("StandardSSD_LRS", 100) == ("E10", 500, 60)
    assert arm_disk.performance("UltraSSD_LRS", 100) is None


def _disk_row(props: dict, name: str, created: str) -> sqlite3.Row:
    con = sqlite3.connect(":memory:")
    con.row_factory = sqlite3.Row
    return con.execute("SELECT 'rg' AS rg, ? AS name, 'local' AS location, '{}' AS tags, "
                       "? AS props, ? AS created", (name, json.dumps(props), created)).fetchone()


def test_disk_recorded_before_the_new_fields(style):
    """A disk row written before uniqueId and imageReference were recorded still renders
    complete: a stable GUID of its own, both references, the common fields."""
    vid = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/i/versions/1.0.0"
    old = {"osType": "Linux", "hyperVGeneration": "V1",
           "creationData": {"createOption": "FromImage", "galleryImageReference": {"id": vid}},
           "diskSizeGB": 40, "diskSizeBytes": 40 << 30, "timeCreated": "2026-01-01T00:00:00+00:00",
           "provisioningState": "Succeeded", "diskState": "Unattached",
           "localStorage": {"path": "/x.raw"}}
    a = arm_disk.disk_json(_disk_row(old, "a", "2026-01-01T00:00:00+00:00"))
    assert a == arm_disk.disk_json(_disk_row(old, "a", "2026-01-01T00:00:00+00:00"))
    again = arm_disk.disk_json(_disk_row(old, "a", "2026-01-02T00:00:00+00:00"))  # re-created
    other = arm_disk.disk_json(_disk_row(old, "b", "2026-01-01T00:00:00+00:00"))
    ids = {d["properties"]["uniqueId"] for d in (a, again, other)}
    assert len(ids) == 3 and all(str(uuid.UUID(i)) == i for i in ids)
    p = a["properties"]
    assert p["creationData"]["imageReference"] == {"id": vid}
    assert (p["tier"], p["diskIOPSReadWrite"], p["diskMBpsReadWrite"]) == ("S6", 500, 60)
    assert list(p)[-1] == "localStorage"
    style.check("Disk", a, Report())
