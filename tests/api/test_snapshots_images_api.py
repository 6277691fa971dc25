"""Snapshots and managed images on the REST API, driven by the real azure-mgmt-compute client
(``ComputeManagementClient.snapshots`` / ``.images``, their long-running-operation pollers)
against a real ``imagestore serve``; the data made through the CLI's store is the same."""

from __future__ import annotations

import os
import subprocess

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as m

from imagestore.api.client import sdk_kwargs
from tests.conftest import Cli

from .conftest import SUB, start_server

pytestmark = pytest.mark.one_pass

MiB = 1 << 20
RG = f"{SUB}/resourceGroups/default/providers/Microsoft.Compute"


def cli(store: str, *args: str) -> dict:
    return Cli(store).json(*args)  # in this process, beside the server's


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = start_server(str(tmp_path_factory.mktemp("api-src") / "store"))
    yield s
    s.stop()
    if s.proc.poll() is None:
        s.proc.kill()


@pytest.fixture(scope="module")
def world(server, tmp_path_factory):
    """Through the CLI: a version of a Linux V1 definition, and disk 'os1' made from it."""
    src = tmp_path_factory.mktemp("api-src-data") / "os.raw"
    with open(src, "wb") as f:
        f.truncate(8 * MiB)
        f.write(os.urandom(MiB))
    s = server.store
    cli(s, "sig", "create", "-r", "g")
    cli(s, "sig", "image-definition", "create", "-r", "g", "-i", "lin", "-p", "P", "-f", "O",
        "-s", "S", "--os-type", "Linux")
    cli(s, "sig", "image-version", "create", "-r", "g", "-i", "lin", "-e", "1.0.0",
        "--os-vhd-uri", str(src))
    d = cli(s, "disk", "create", "-n", "os1", "--gallery-image-reference", "g/lin/1.0.0")
    return {"src": str(src), "disk": d}


def test_snapshots_through_the_sdk(server, world):
    c = ComputeManagementClient(**sdk_kwargs(server.url, server.token()))
    body = m.Snapshot(location="local", tags={"k": "v"}, properties=m.SnapshotProperties(
        creation_data=m.CreationData(create_option="Copy",
                                     source_resource_id=world["disk"]["id"]),
        incremental=True))
    s = c.snapshots.begin_create_or_update("default", "s1", body).result()
    assert s.id == f"{RG}/snapshots/s1" and s.tags == {"k": "v"}
    assert s.properties.creation_data.create_option == "Copy"
    assert s.properties.creation_data.source_resource_id == world["disk"]["id"]
    assert s.properties.incremental is True and s.properties.os_type == "Linux"
    assert s.properties.disk_size_bytes == 8 * MiB
    got = c.snapshots.get("default", "s1")
    assert got.as_dict() == s.as_dict()
    assert got.as_dict() == cli(server.store, "snapshot", "show", "-n", "s1")  # same JSON
    # Azure's examples write the source id without its leading slash
    c.snapshots.begin_create_or_update("default", "s2", m.Snapshot(
        location="local", properties=m.SnapshotProperties(creation_data=m.CreationData(
            create_option="Copy", source_resource_id=s.id.lstrip("/"))))).result()
    names = [x.name for x in c.snapshots.list_by_resource_group("default")]
    assert {"s1", "s2"} <= set(names) and names == sorted(names)
    assert {"s1", "s2"} <= {x.name for x in c.snapshots.list()}
    # the CLI makes a disk from the API's snapshot: the same bytes
    d = cli(server.store, "disk", "create", "-n", "back", "--source", "s2")
    assert subprocess.run(["cmp", world["src"], d["properties"]["localStorage"]["path"]]).returncode == 0
    imp = c.snapshots.begin_create_or_update("default", "imported", m.Snapshot(
        location="local", properties=m.SnapshotProperties(
            os_type="Linux", hyper_v_generation="V2", creation_data=m.CreationData(
                create_option="Import", source_uri=f"file://{world['src']}")))).result()
    assert imp.properties.creation_data.create_option == "Import"
    assert imp.properties.hyper_v_generation == "V2"
    assert imp.properties["localStorage"]["manifestDigest"] == \
        s.properties["localStorage"]["manifestDigest"]
    c.snapshots.begin_delete("default", "s2").result()
    with pytest.raises(ResourceNotFoundError):
        c.snapshots.get("default", "s2")
    with pytest.raises(HttpResponseError) as e:
        c.snapshots.begin_create_or_update("default", "bad", m.Snapshot(
            location="local", properties=m.SnapshotProperties(creation_data=m.CreationData(
                create_option="Copy", source_resource_id=f"{RG}/disks/nosuch")))).result()
    assert e.value.status_code == 404 and e.value.error.code == "ResourceNotFound"
    assert e.value.error.target == "properties.creationData.sourceResourceId"
    with pytest.raises(HttpResponseError) as e:
        c.snapshots.begin_create_or_update("default", "bad", m.Snapshot(
            location="local", properties=m.SnapshotProperties(creation_data=m.CreationData(
                create_option="Empty")))).result()
    assert e.value.status_code == 400 and e.value.error.code == "InvalidParameter"
    with pytest.raises(HttpResponseError) as e:
        c.snapshots.begin_create_or_update("default", "s1", body).result()
    assert e.value.status_code == 409


def test_managed_images_through_the_sdk(server, world):
    c = ComputeManagementClient(**sdk_kwargs(server.url, server.token()))
    snap = c.snapshots.begin_create_or_update("default", "for-image", m.Snapshot(
        location="local", properties=m.SnapshotProperties(creation_data=m.CreationData(
            create_option="Copy", source_resource_id=world["disk"]["id"])))).result()
    body = m.Image(location="local", properties=m.ImageProperties(
        hyper_v_generation="V1", storage_profile=m.ImageStorageProfile(
            os_disk=m.ImageOSDisk(os_type="Linux", os_state="Generalized",
                                  managed_disk=m.SubResource(id=world["disk"]["id"])),
            data_disks=[m.ImageDataDisk(lun=3, snapshot=m.SubResource(id=snap.id))])))
    img = c.images.begin_create_or_update("default", "im", body).result()
    sp = img.properties.storage_profile
    assert img.id == f"{RG}/images/im" and sp.os_disk.os_state == "Generalized"
    assert sp.os_disk.managed_disk.id == world["disk"]["id"]
    assert [(d.lun, d.snapshot.id) for d in sp.data_disks] == [(3, snap.id)]
    assert c.images.get("default", "im").as_dict() == cli(server.store, "image", "show", "-n", "im")
    assert [x.name for x in c.images.list()] == ["im"]
    # the image feeds a version through the CLI
    v = cli(server.store, "sig", "image-version", "create", "-r", "g", "-i", "lin", "-e",
            "2.0.0", "--managed-image", img.id)
    assert v["properties"]["storageProfile"]["source"] == {"id": img.id}
    bad = m.Image(location="local", properties=m.ImageProperties(
        storage_profile=m.ImageStorageProfile(os_disk=m.ImageOSDisk(
            os_type="Linux", os_state="Specialized",
            managed_disk=m.SubResource(id=world["disk"]["id"])))))
    with pytest.raises(HttpResponseError) as e:
        c.images.begin_create_or_update("default", "im2", bad).result()
    assert e.value.status_code == 400 and e.value.error.target == "properties.storageProfile.osDisk.osState"
    c.images.begin_delete("default", "im").result()
    with pytest.raises(ResourceNotFoundError):
        c.images.get("default", "im")


def test_api_versions_and_raw_hostile_bodies(server, world):
    h = {"Authorization": f"Bearer {server.token()}"}
    with httpx.Client(base_url=server.url, headers=h, timeout=30) as c:
        r = c.get(f"{RG}/snapshots?api-version=2026-03-03")  # a GalleryRP version
        assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidApiVersionParameter"
        for raw, target in [
            (b'{"location": "local"}', "properties.creationData.createOption"),
            (b'{"location": "local", "properties": {"creationData": {"createOption": "Copy"}}}',
             "properties.creationData.sourceResourceId"),
            (b'{"properties": {"creationData": {"createOption": "Copy", "sourceResourceId": 5}}}',
             "properties.creationData.sourceResourceId"),
        ]:
            r = c.put(f"{RG}/snapshots/x?api-version=2025-01-02", content=raw,
                      headers={"content-type": "application/json"})
            assert r.status_code == 400 and r.json()["error"]["target"] == target, r.text
        r = c.put(f"{RG}/images/x?api-version=2024-11-01", json={
            "location": "local", "properties": {"storageProfile": {"osDisk": {
                "osType": "Linux", "blobUri": "https://a.blob.core.windows.net/c/x.vhd"}}}})
        assert r.status_code == 400 and "blobUri" in r.json()["error"]["target"]
        r = c.put(f"{RG}/images/fromfile?api-version=2024-11-01", json={
            "location": "local", "properties": {"storageProfile": {"osDisk": {
                "osType": "Linux", "blobUri": f"file://{world['src']}"}}}})
        assert r.status_code == 200, r.text
        assert r.json()["properties"]["storageProfile"]["osDisk"]["blobUri"] == f"file://{world['src']}"
        r = c.put(f"{RG}/images/x?api-version=2024-11-01", json={
            "location": "local", "properties": {"storageProfile": {"osDisk": {
                "osType": "Linux", "managedDisk": {"id": f"{RG}/snapshots/s"}}}}})
        assert r.status_code == 400, r.text
        names = [x["name"] for x in c.get(f"{RG}/images?api-version=2024-11-01").json()["value"]]
        assert "x" not in names
        r = c.get(f"{RG}/snapshots/x?api-version=2025-01-02")
        assert r.status_code == 404 and r.json()["error"]["code"] == "ResourceNotFound"
