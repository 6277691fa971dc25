"""Snapshots, managed images, disks copied from them and versions made from them, read by the
real azure-mgmt-compute models in both styles (typespec installed, msrest 37 beside it):
every key known to the model (outside ``properties.localStorage``), every value read back
equal with its JSON type, every enum string one the SDK defines (see :mod:`.sdk_shape`)."""

from __future__ import annotations

import os

import pytest

from tests.conftest import Cli

from .sdk_shape import Report, ShapeError, msrest_style, typespec_style

MiB = 1 << 20


def _build(tmp) -> list[tuple[str, str, dict]]:
    run = Cli(str(tmp / "store"))
    docs: list[tuple[str, str, dict]] = []

    def add(label: str, model: str, out) -> None:
        for i, d in enumerate(out if isinstance(out, list) else [out]):
            docs.append((f"{label}[{i}]" if isinstance(out, list) else label, model, d))

    src, data = tmp / "os.raw", tmp / "data.raw"
    for p in (src, data):
        with open(p, "wb") as f:
            f.truncate(4 * MiB)
            f.write(os.urandom(MiB))
    run.json("sig", "create", "-r", "g")
    run.json("sig", "image-definition", "create", "-r", "g", "-i", "tl", "-p", "P", "-f", "O",
             "-s", "S", "--os-type", "Linux", "--hyper-v-generation", "V2", "--features",
             "SecurityType=TrustedLaunch", "IsHibernateSupported=True",
             "IsAcceleratedNetworkSupported=True", "--plan-publisher", "pp", "--plan-name",
             "pn", "--plan-product", "pr")
    run.json("sig", "image-version", "create", "-r", "g", "-i", "tl", "-e", "1.0.0",
             "--os-vhd-uri", str(src), "--data-vhds-uris", str(data), "--data-vhds-luns", "2")
    run.json("disk", "create", "-n", "os1", "--gallery-image-reference", "g/tl/1.0.0")
    run.json("disk", "create", "-n", "data1", "--gallery-image-reference", "g/tl/1.0.0",
             "--gallery-image-reference-lun", "2")
    add("snapshot create (OS disk, full)", "Snapshot", run.json(
        "snapshot", "create", "-n", "s1", "--source", "os1", "--tags", "a=b"))
    add("snapshot create (incremental, Premium)", "Snapshot", run.json(
        "snapshot", "create", "-n", "s2", "--source", "os1", "--incremental", "--sku",
        "Premium_LRS"))
    add("snapshot create (data disk)", "Snapshot", run.json(
        "snapshot", "create", "-n", "sd", "--source", "data1"))
    add("snapshot create (of a snapshot)", "Snapshot", run.json(
        "snapshot", "create", "-n", "s3", "--source", "s2", "--incremental"))
    add("snapshot show", "Snapshot", run.json("snapshot", "show", "-n", "s1"))
    add("snapshot list", "Snapshot", run.json("snapshot", "list"))
    add("image create (disk + snapshot)", "Image", run.json(
        "image", "create", "-n", "im", "--source", "os1", "--data-disk-sources", "sd", "data1",
        "--os-type", "Linux", "--hyper-v-generation", "V2", "--zone-resilient",
        "--storage-sku", "StandardSSD_LRS", "--os-disk-caching", "ReadOnly"))
    add("image create (snapshot only)", "Image", run.json(
        "image", "create", "-n", "im1", "--source", "s1", "--os-type", "Windows"))
    add("image create (image file, blobUri)", "Image", run.json(
        "image", "create", "-n", "im2", "--source", f"file://{data}", "--os-type", "Linux"))
    add("snapshot create (imported file)", "Snapshot", run.json(
        "snapshot", "create", "-n", "simp", "--source", f"file://{data}", "--os-type", "Linux"))
    add("image show", "Image", run.json("image", "show", "-n", "im"))
    add("image list", "Image", run.json("image", "list"))
    add("disk create --source snapshot", "Disk", run.json(
        "disk", "create", "-n", "c1", "--source", "s1", "--format", "vhdx", "--tags", "x=y"))
    add("disk create --source disk", "Disk", run.json(
        "disk", "create", "-n", "c2", "--source", "data1"))
    add("disk show (copy)", "Disk", run.json("disk", "show", "-n", "c1"))
    add("version from snapshots", "GalleryImageVersion", run.json(
        "sig", "image-version", "create", "-r", "g", "-i", "tl", "-e", "2.0.0",
        "--os-snapshot", "s1", "--data-snapshots", "sd", "--data-snapshot-luns", "3"))
    add("version from a managed image", "GalleryImageVersion", run.json(
        "sig", "image-version", "create", "-r", "g", "-i", "tl", "-e", "3.0.0",
        "--managed-image", "im"))
    add("version show --expand (from snapshots)", "GalleryImageVersion", run.json(
        "sig", "image-version", "show", "-r", "g", "-i", "tl", "-e", "2.0.0", "--expand",
        "ReplicationStatus"))
    add("version from a file and a snapshot", "GalleryImageVersion", run.json(
        "sig", "image-version", "create", "-r", "g", "-i", "tl", "-e", "4.0.0",
        "--os-vhd-uri", str(src), "--data-snapshots", "sd"))
    return docs


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("shape-sources"))


@pytest.fixture(scope="module", params=["typespec", "msrest"])
def style(request):
    return typespec_style() if request.param == "typespec" else msrest_style()


def _by(docs, label: str) -> dict:
    return next(d for lab, _m, d in docs if lab == label)


def test_every_document_reads_back_intact(docs, style):
    rep = Report()
    errors = []
    for label, model, doc in docs:
        try:
            style.check(model, doc, rep)
        except ShapeError as e:
            errors.append(f"{label} ({model}): {e}")
    assert not errors, "\n".join(errors)
    must = {
        "$.properties.osType", "$.properties.hyperVGeneration", "$.properties.diskState",
        "$.properties.creationData.createOption", "$.properties.networkAccessPolicy",
        "$.properties.publicNetworkAccess", "$.properties.encryption.type", "$.sku.name",
        "$.properties.securityProfile.securityType",
        "$.properties.storageProfile.osDisk.osType", "$.properties.storageProfile.osDisk.osState",
        "$.properties.storageProfile.osDisk.caching",
        "$.properties.storageProfile.osDisk.storageAccountType",
        "$.properties.storageProfile.dataDisks[].caching",
        "$.properties.storageProfile.dataDisks[].storageAccountType",
    }
    assert must <= set(rep.enum_fields), sorted(must - set(rep.enum_fields))
    assert rep.keys >= 500, rep.keys


def test_typed_attributes_read_what_we_meant(docs):
    m = typespec_style().models
    s = m.Snapshot(_by(docs, "snapshot create (incremental, Premium)"))
    assert s.properties.incremental is True and s.sku.name == "Premium_LRS"
    assert s.properties.creation_data.create_option == "Copy"
    assert s.properties.creation_data.source_resource_id.endswith("/disks/os1")
    assert s.properties.incremental_snapshot_family_id
    assert s.properties.supports_hibernation is True  # carried over from the disk
    assert s.properties.purchase_plan.product == "pr"
    fam = m.Snapshot(_by(docs, "snapshot create (of a snapshot)"))
    assert fam.properties.incremental_snapshot_family_id == \
        s.properties.incremental_snapshot_family_id
    i = m.Image(_by(docs, "image create (disk + snapshot)"))
    sp = i.properties.storage_profile
    assert sp.os_disk.os_state == "Generalized" and sp.os_disk.managed_disk.id.endswith("/os1")
    assert [d.lun for d in sp.data_disks] == [0, 1]
    assert sp.data_disks[0].snapshot.id.endswith("/snapshots/sd")
    assert sp.zone_resilient is True and i.properties.hyper_v_generation == "V2"
    d = m.Disk(_by(docs, "disk create --source snapshot"))
    assert d.properties.creation_data.source_resource_id.endswith("/snapshots/s1")
    assert d.properties.creation_data.source_unique_id == _by(
        docs, "snapshot show")["properties"]["uniqueId"]
    assert d.properties.security_profile.security_type == "TrustedLaunch"
    v = m.GalleryImageVersion(_by(docs, "version from snapshots"))
    assert v.properties.storage_profile.os_disk_image.source.id.endswith("/snapshots/s1")
    assert v.properties.storage_profile.data_disk_images[0].lun == 3
    mixed = m.GalleryImageVersion(_by(docs, "version from a file and a snapshot"))
    msp = mixed.properties.storage_profile
    assert msp.os_disk_image.source.uri.endswith("/os.raw")
    assert msp.data_disk_images[0].source.id.endswith("/snapshots/sd")
    mi = m.GalleryImageVersion(_by(docs, "version from a managed image"))
    assert mi.properties.storage_profile.source.id.endswith("/images/im")
