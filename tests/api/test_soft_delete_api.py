"""Soft delete through the REST API with the real azure-mgmt-compute SDK (one token per
principal) and the CLI's ``--as``: the reference's cases 23 and 24 (sharing-rbac.md §6),
enabling soft delete needing ``galleries/share/action``, the softDeletedArtifactTypes list
read by the SDK's ``GallerySoftDeletedResource``, restore by PUT, purge by DELETE on that
path, and the purge after retention with the clock moved (IMAGESTORE_NOW)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as m

from imagestore.api.client import sdk_kwargs
from imagestore.identity import authorize
from tests.conftest import Cli

from .conftest import GV, SUB, make_source

pytestmark = pytest.mark.one_pass

RG = "sd"
C = "Microsoft.Compute"
RG_ID = f"{SUB}/resourceGroups/{RG}"
G_ID = f"{RG_ID}/providers/{C}/galleries/G"
D_ID = f"{G_ID}/images/D"
SD_PATH = f"{G_ID}/softDeletedArtifactTypes/Images/artifacts/D/versions"
SHARE = f"{C}/galleries/share/action"


def upn(name: str) -> str:
    return f"{name}@sd.example"


@pytest.fixture(scope="module")
def world(mod_server, tmp_path_factory):
    """alice Owner at the subscription; colin Contributor at the resource group; sam
    Contributor and Compute Gallery Sharing Admin at G; rita Reader at the subscription."""
    cli = Cli(mod_server.store)
    t = cli.json("ad", "tenant", "create", "--display-name", "SoftDel")["tenantId"]
    oids = {u: cli.json("ad", "user", "create", "--user-principal-name", upn(u),
                        "--display-name", u.title(), "--tenant", t)["id"]
            for u in ("alice", "colin", "sam", "rita")}
    for who, role, scope in (("alice", "Owner", SUB), ("colin", "Contributor", RG_ID),
                             ("sam", "Contributor", G_ID),
                             ("sam", "Compute Gallery Sharing Admin", G_ID),
                             ("rita", "Reader", SUB)):
        cli.json("role", "assignment", "create", "--assignee", upn(who), "--role", role,
                 "--scope", scope)
    srcs = {b: make_source(tmp_path_factory.mktemp("sd"), f"os{b}", "vpc", b) for b in (3, 4)}
    return {"cli": cli, "oids": oids, "srcs": srcs, "server": mod_server}


def token(w, who: str) -> str:
    return w["cli"].json("token", "create", "--assignee", upn(who))["accessToken"]


def client(w, who: str) -> ComputeManagementClient:
    return ComputeManagementClient(**sdk_kwargs(w["server"].url, token(w, who),
                                                polling_interval=0))


def version_body(w, byte: int, location: str = "local") -> m.GalleryImageVersion:
    return m.GalleryImageVersion(location=location, storage_profile=m.GalleryImageVersionStorageProfile(
        os_disk_image=m.GalleryOSDiskImage(source=m.GalleryDiskImageSource(
            uri="file://" + w["srcs"][byte]))))


def restore_body(location: str) -> m.GalleryImageVersion:
    return m.GalleryImageVersion(location=location, restore=True,
                                 storage_profile=m.GalleryImageVersionStorageProfile())


def fails(call, status: int, code: str, *needles: str) -> HttpResponseError:
    with pytest.raises(HttpResponseError) as e:
        call()
    assert e.value.status_code == status, e.value
    assert e.value.error.code == code, e.value.error
    for n in needles:
        assert n in e.value.error.message, (n, e.value.error.message)
    return e.value


def denied(w, call, who: str, action: str, scope: str) -> None:
    err = fails(call, 403, "AuthorizationFailed")
    assert authorize.message(upn(who), w["oids"][who], action, scope) in err.error.message


def cli_denied(w, who: str, args: list[str], action: str, scope: str) -> None:
    r = w["cli"]("--as", upn(who), *args)
    assert r.exit_code == 14, (r.exit_code, r.stdout, r.stderr)
    assert authorize.message(upn(who), w["oids"][who], action, scope) in r.stderr


def names(c: ComputeManagementClient) -> list[str]:
    return [v.name for v in c.gallery_image_versions.list_by_gallery_image(RG, "G", "D")]


def soft_deleted(c: ComputeManagementClient) -> list[m.GallerySoftDeletedResource]:
    return list(c.soft_deleted_resource.list_by_artifact_name(RG, "G", "Images", "D"))


def disk_source(c: ComputeManagementClient, name: str, ref: str) -> str:
    d = c.disks.begin_create_or_update(RG, name, m.Disk(
        location="local", creation_data=m.CreationData(
            create_option="FromImage", gallery_image_reference=m.ImageDiskReference(id=ref)))
    ).result()
    return d.creation_data.gallery_image_reference.id.rsplit("/", 1)[1]


def enable(c: ComputeManagementClient, on: bool):
    return c.galleries.begin_update(RG, "G", m.GalleryUpdate(
        soft_delete_policy=m.SoftDeletePolicy(is_soft_delete_enabled=on))).result()


def test_cases_23_and_24(world, monkeypatch):
    w = world
    alice, colin, sam, rita = (client(w, u) for u in ("alice", "colin", "sam", "rita"))
    alice.galleries.begin_create_or_update(RG, "G", m.Gallery(location="local")).result()
    alice.gallery_images.begin_create_or_update(RG, "G", "D", m.GalleryImage(
        location="local", os_type="Linux", os_state="Generalized",
        identifier=m.GalleryImageIdentifier(publisher="P", offer="O", sku="S"))).result()
    for v, b in (("1.0.0", 3), ("1.0.1", 4)):
        got = alice.gallery_image_versions.begin_create_or_update(RG, "G", "D", v,
                                                                  version_body(w, b)).result()
        assert got.provisioning_state == "Succeeded"

    # enabling soft delete needs galleries/share/action besides write: a Contributor is
    # refused (REST and --as), Contributor + Compute Gallery Sharing Admin may
    denied(w, lambda: enable(colin, True), "colin", SHARE, G_ID)
    cli_denied(w, "colin", ["sig", "update", "-g", RG, "-r", "G", "--soft-delete", "true"],
               SHARE, G_ID)
    cli_denied(w, "colin", ["sig", "create", "-g", RG, "-r", "G2", "--soft-delete", "true"],
               SHARE, f"{RG_ID}/providers/{C}/galleries/G2")
    assert colin.galleries.get(RG, "G").soft_delete_policy is None  # nothing changed
    colin.galleries.begin_update(RG, "G", m.GalleryUpdate(tags={"k": "v"})).result()
    g = enable(sam, True)
    assert g.soft_delete_policy.is_soft_delete_enabled is True
    assert g.soft_delete_policy.retention_period_in_days == 7
    assert g.soft_delete_policy.grace_period_in_days == 7
    # the Contributor may write the gallery back as read (the flag unchanged), not flip it
    g = colin.galleries.get(RG, "G")
    g.description = "team"
    assert colin.galleries.begin_create_or_update(RG, "G", g).result().description == "team"
    denied(w, lambda: enable(colin, False), "colin", SHARE, G_ID)
    fails(lambda: alice.galleries.begin_update(RG, "G", m.GalleryUpdate(
        soft_delete_policy=m.SoftDeletePolicy(is_soft_delete_enabled=True,
                                              retention_period_in_days=30))).result(),
          400, "InvalidParameter", "retentionPeriodInDays: is 7 days and cannot be changed")
    r = w["server"].client(token(w, "alice")).patch(
        f"{G_ID}?api-version={GV}",
        json={"properties": {"softDeletePolicy": {"isSoftDeleteEnabled": "sometimes"}}})
    assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidParameter", r.text
    assert "isSoftDeleteEnabled" in r.json()["error"]["message"]

    # 23. delete 1.0.1: listed under softDeletedArtifactTypes, not in the list, not latest
    alice.gallery_image_versions.begin_delete(RG, "G", "D", "1.0.1").result()
    assert names(alice) == ["1.0.0"]
    [sd] = soft_deleted(rita)  # a Reader may list them (*/read)
    assert sd.name == "1.0.1" and sd.location == "local"
    assert sd.type == "Microsoft.Compute/galleries/softDeletedArtifactTypes/artifacts/versions"
    assert sd.id == f"{SD_PATH}/1.0.1"
    assert sd.properties.resource_arm_id == f"{D_ID}/versions/1.0.1"
    assert sd.properties.soft_deleted_artifact_type == "Images"
    t0 = datetime.fromisoformat(sd.properties.soft_deleted_time)
    assert sd.properties.consumption_end_time == t0 + timedelta(days=7)
    assert sd.properties.hard_deletion_target_time == t0 + timedelta(days=14)
    assert disk_source(alice, "latest1", D_ID) == "1.0.0"
    # explicit 1.0.1 still usable; GET by name answers
    assert disk_source(alice, "explicit", f"{D_ID}/versions/1.0.1") == "1.0.1"
    assert alice.gallery_image_versions.get(RG, "G", "D", "1.0.1").name == "1.0.1"
    # restore: another location 400, the home region Succeeded, latest again
    fails(lambda: alice.gallery_image_versions.begin_create_or_update(
        RG, "G", "D", "1.0.1", restore_body("westus")).result(), 400, "InvalidParameter",
        "'westus' is not the home region 'local'")
    fails(lambda: alice.gallery_image_versions.begin_create_or_update(
        RG, "G", "D", "1.0.0", restore_body("local")).result(), 409, "OperationNotAllowed",
        "image version 'G/D/1.0.0' is not soft-deleted")
    fails(lambda: alice.gallery_image_versions.begin_create_or_update(
        RG, "G", "D", "7.0.0", restore_body("local")).result(), 404, "ResourceNotFound")
    back = alice.gallery_image_versions.begin_create_or_update(
        RG, "G", "D", "1.0.1", restore_body("local")).result()
    assert back.provisioning_state == "Succeeded" and back.name == "1.0.1"
    assert names(alice) == ["1.0.0", "1.0.1"] and soft_deleted(alice) == []
    assert disk_source(alice, "latest2", D_ID) == "1.0.1"
    # restore under --as: a version write (the Reader may not)
    alice.gallery_image_versions.begin_delete(RG, "G", "D", "1.0.1").result()
    cli_denied(w, "rita", ["sig", "image-version", "undelete", "-g", RG, "-r", "G", "-i", "D",
                           "-e", "1.0.1"], f"{C}/galleries/images/versions/write",
               f"{D_ID}/versions/1.0.1")
    v = w["cli"].json("--as", upn("colin"), "sig", "image-version", "undelete", "-g", RG,
                      "-r", "G", "-i", "D", "-e", "1.0.1")
    assert v["name"] == "1.0.1" and names(alice) == ["1.0.0", "1.0.1"]

    # 24. a definition holding soft-deleted versions cannot be deleted, nor its gallery
    for v in ("1.0.0", "1.0.1"):
        alice.gallery_image_versions.begin_delete(RG, "G", "D", v).result()
    assert names(alice) == [] and [x.name for x in soft_deleted(alice)] == ["1.0.0", "1.0.1"]
    fails(lambda: alice.gallery_images.begin_delete(RG, "G", "D").result(), 409,
          "OperationNotAllowed", "holds 2 soft-deleted image version(s): 1.0.0, 1.0.1")
    r = w["cli"]("--as", upn("alice"), "sig", "image-definition", "delete", "-g", RG, "-r", "G",
                 "-i", "D")
    assert r.exit_code == 5 and "holds 2 soft-deleted image version(s)" in r.stderr
    fails(lambda: alice.galleries.begin_delete(RG, "G").result(), 409, "Conflict")
    # hard delete: DELETE on the softDeletedArtifactTypes path (the SDK has no method yet)
    http = w["server"].client(token(w, "alice"))
    bad = http.get(f"{G_ID}/softDeletedArtifactTypes/Vms/artifacts/D/versions?api-version={GV}")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "InvalidParameter"
    r = w["server"].client(token(w, "rita")).delete(f"{SD_PATH}/1.0.1?api-version={GV}")
    assert r.status_code == 403 and r.json()["error"]["code"] == "AuthorizationFailed"
    assert f"{C}/galleries/softDeletedArtifactTypes/artifacts/versions/delete" in r.text
    listed = w["cli"].json("--as", upn("rita"), "sig", "image-version", "list-soft-deleted",
                           "-g", RG, "-r", "G", "-i", "D")
    assert [x["name"] for x in listed] == ["1.0.0", "1.0.1"]
    cli_denied(w, "rita", ["sig", "image-version", "purge", "-g", RG, "-r", "G", "-i", "D",
                           "-e", "1.0.1"],
               f"{C}/galleries/softDeletedArtifactTypes/artifacts/versions/delete",
               f"{SD_PATH}/1.0.1")
    r = http.delete(f"{SD_PATH}/1.0.1?api-version={GV}")
    assert r.status_code == 202, r.text
    assert [x.name for x in soft_deleted(alice)] == ["1.0.0"]
    r = http.delete(f"{SD_PATH}/1.0.1?api-version={GV}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "ResourceNotFound"

    # after retention + grace (the clock moved for `store gc`): purged, the definition goes
    monkeypatch.setenv("IMAGESTORE_NOW", (datetime.now(UTC) + timedelta(days=15)).isoformat())
    gc = w["cli"].json("store", "gc")
    assert gc["softDeletedVersionsPurged"] == [f"{D_ID}/versions/1.0.0"]
    monkeypatch.delenv("IMAGESTORE_NOW")
    assert soft_deleted(alice) == []
    fails(lambda: alice.gallery_image_versions.get(RG, "G", "D", "1.0.0"), 404,
          "ResourceNotFound")
    alice.gallery_images.begin_delete(RG, "G", "D").result()
    alice.galleries.begin_delete(RG, "G").result()
    r = w["cli"]("store", "verify")
    assert r.exit_code == 0, r.stdout
