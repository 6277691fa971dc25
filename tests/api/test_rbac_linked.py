"""Linked authorization (reference cases 10-12, sharing-rbac.md §6) through the real SDK (a
token per principal) and the CLI's ``--as``: a create needs the linked action on every
resource it is made from — VM = write, disk/snapshot = write, VHD = listKeys on the storage
account, managed image and gallery image = read for a version; read for a disk, snapshot,
image, VM or scale set made from another resource — with the same message on both paths."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as m

from imagestore.api.client import sdk_kwargs
from imagestore.identity import linked
from tests.compute.conftest import small_os_disk
from tests.conftest import Cli

from .conftest import SUB, start_server

pytestmark = pytest.mark.one_pass

C = "Microsoft.Compute"
RG = "lk"
RG_ID = f"{SUB}/resourceGroups/{RG}"
P = f"{RG_ID}/providers/{C}"
G_ID = f"{P}/galleries/G"
VM_ID = f"{P}/virtualMachines/vm1"
SNAP_ID = f"{P}/snapshots/snap"
IMG_ID = f"{P}/images/img"
SPEC_V = f"{G_ID}/images/spec/versions/1.0.0"
ACCT = f"{RG_ID}/providers/Microsoft.Storage/storageAccounts/acct"
USERS = ("frank", "ivy", "jo", "kim")


def upn(name: str) -> str:
    return f"{name}@fabrikam.example"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A gallery G (definitions spec: Specialized, gen: Generalized, each with 1.0.0), a VM
    vm1 made from spec/1.0.0 without booting, its OS disk's snapshot snap, a managed image
    img of it; users frank, ivy, jo, kim with nothing assigned."""
    tmp = tmp_path_factory.mktemp("rbac-linked")
    store = str(tmp / "store")
    cli = Cli(store)
    osd = small_os_disk(tmp / "os.raw")
    cli.json("sig", "create", "-g", RG, "-r", "G")
    for d, state in (("spec", "Specialized"), ("gen", "Generalized")):
        cli.json("sig", "image-definition", "create", "-g", RG, "-r", "G", "-i", d, "-p", "P",
                 "-f", "O", "-s", d, "--os-type", "Linux", "--os-state", state)
        cli.json("sig", "image-version", "create", "-g", RG, "-r", "G", "-i", d, "-e", "1.0.0",
                 "--os-vhd-uri", osd)
    vm = cli.json("vm", "create", "-g", RG, "-n", "vm1", "--image", SPEC_V, "--specialized")
    osdisk = vm["properties"]["storageProfile"]["osDisk"]["name"]
    cli.json("snapshot", "create", "-g", RG, "-n", "snap", "--source", osdisk)
    cli.json("image", "create", "-g", RG, "-n", "img", "--source", "snap", "--os-type", "Linux")
    t = cli.json("ad", "tenant", "create", "--display-name", "Fabrikam")["tenantId"]
    oids = {u: cli.json("ad", "user", "create", "--user-principal-name", upn(u),
                        "--display-name", u.title(), "--tenant", t)["id"] for u in USERS}
    s = start_server(store)
    yield {"cli": cli, "oids": oids, "server": s, "osdisk": osdisk, "src": osd}
    s.stop()
    if s.proc.poll() is None:
        s.proc.kill()


def client(w, who: str) -> ComputeManagementClient:
    tok = w["cli"].json("token", "create", "--assignee", upn(who))["accessToken"]
    return ComputeManagementClient(**sdk_kwargs(w["server"].url, tok, polling_interval=0))


def assign(w, who: str, role: str, scope: str) -> str:
    return w["cli"].json("role", "assignment", "create", "--assignee", upn(who), "--role", role,
                         "--scope", scope)["name"]


def unassign(w, ident: str) -> None:
    assert w["cli"]("role", "assignment", "delete", "--ids", ident).exit_code == 0


def linked_text(w, who: str, action: str, scope: str, laction: str, lscope: str) -> str:
    return linked.message(upn(who), w["oids"][who], action, scope, laction, lscope)


def sdk_linked_denied(call, text: str) -> None:
    with pytest.raises(HttpResponseError) as e:
        call()
    assert e.value.status_code == 403, e.value
    assert e.value.error.code == "LinkedAuthorizationFailed", e.value.error
    assert e.value.error.message == text


def cli_linked_denied(w, who: str, args: list[str], text: str) -> None:
    r = w["cli"]("--as", upn(who), *args)
    assert r.exit_code == 14, (r.exit_code, r.stdout, r.stderr)
    assert r.stderr == f"error: {text}\n", r.stderr  # exit 14: the CLI's AuthorizationFailed


def version(*, source: m.GalleryArtifactVersionFullSource | None = None,
            os_source: m.GalleryDiskImageSource | None = None) -> m.GalleryImageVersion:
    return m.GalleryImageVersion(location="local", storage_profile=m.GalleryImageVersionStorageProfile(
        source=source, os_disk_image=m.GalleryOSDiskImage(source=os_source) if os_source else None))


def vargs(image: str, ver: str, *more: str) -> list[str]:
    return ["sig", "image-version", "create", "-g", RG, "-r", "G", "-i", image, "-e", ver, *more]


def test_case_10_version_from_a_vm_needs_write_on_the_vm(world):
    w = world
    vid = f"{G_ID}/images/spec/versions/2.0.0"
    assign(w, "frank", "Contributor", G_ID)
    reader = assign(w, "frank", "Reader", VM_ID)
    frank = client(w, "frank")
    text = linked_text(w, "frank", f"{C}/galleries/images/versions/write", vid,
                       f"{C}/virtualMachines/write", VM_ID)
    body = version(source=m.GalleryArtifactVersionFullSource(virtual_machine_id=VM_ID))
    sdk_linked_denied(lambda: frank.gallery_image_versions.begin_create_or_update(
        RG, "G", "spec", "2.0.0", body).result(), text)
    cli_linked_denied(w, "frank", vargs("spec", "2.0.0", "--virtual-machine", "vm1"), text)
    # a VM id as source.id is the same source
    sdk_linked_denied(lambda: frank.gallery_image_versions.begin_create_or_update(
        RG, "G", "spec", "2.0.0", version(source=m.GalleryArtifactVersionFullSource(
            id=VM_ID))).result(), text)
    assert w["cli"].json("sig", "image-version", "list", "-g", RG, "-r", "G", "-i", "spec",
                         "--query", "[].name") == ["1.0.0"]
    # with Virtual Machine Contributor's equivalent (Contributor on the VM): 201, both paths
    unassign(w, reader)
    assign(w, "frank", "Contributor", VM_ID)
    v = frank.gallery_image_versions.begin_create_or_update(RG, "G", "spec", "2.0.0", body).result()
    assert v.provisioning_state == "Succeeded"
    assert v.storage_profile.source.virtual_machine_id == VM_ID
    out = w["cli"].json("--as", upn("frank"), *vargs("spec", "2.0.1", "--virtual-machine",
                                                       "vm1"))
    assert out["properties"]["storageProfile"]["source"]["virtualMachineId"] == VM_ID


def test_case_11_managed_image_needs_read_and_snapshot_write(world):
    w = world
    assign(w, "ivy", "Compute Gallery Artifacts Publisher", G_ID)
    ivy = client(w, "ivy")
    vid = f"{G_ID}/images/gen/versions/2.0.0"
    text = linked_text(w, "ivy", f"{C}/galleries/images/versions/write", vid,
                       f"{C}/images/read", IMG_ID)
    body = version(source=m.GalleryArtifactVersionFullSource(id=IMG_ID))
    sdk_linked_denied(lambda: ivy.gallery_image_versions.begin_create_or_update(
        RG, "G", "gen", "2.0.0", body).result(), text)
    cli_linked_denied(w, "ivy", vargs("gen", "2.0.0", "--managed-image", "img"), text)
    assign(w, "ivy", "Reader", IMG_ID)
    v = ivy.gallery_image_versions.begin_create_or_update(RG, "G", "gen", "2.0.0", body).result()
    assert v.provisioning_state == "Succeeded" and v.storage_profile.source.id == IMG_ID
    assert w["cli"].json("--as", upn("ivy"), *vargs("gen", "2.0.1", "--managed-image",
                                                    "img"))["name"] == "2.0.1"
    # a snapshot source: Reader is not enough (the table: disk/snapshot = write)
    assign(w, "ivy", "Reader", SNAP_ID)
    text = linked_text(w, "ivy", f"{C}/galleries/images/versions/write",
                       f"{G_ID}/images/spec/versions/3.0.0", f"{C}/snapshots/write", SNAP_ID)
    cli_linked_denied(w, "ivy", vargs("spec", "3.0.0", "--os-snapshot", "snap"), text)
    sdk_linked_denied(lambda: ivy.gallery_image_versions.begin_create_or_update(
        RG, "G", "spec", "3.0.0", version(os_source=m.GalleryDiskImageSource(id=SNAP_ID))).result(),
        text)


def test_case_12_vhd_with_a_storage_account_needs_list_keys(world):
    w = world
    assign(w, "jo", "Compute Gallery Artifacts Publisher", G_ID)
    assign(w, "jo", "Reader", ACCT)
    jo = client(w, "jo")
    vid = f"{G_ID}/images/gen/versions/4.0.0"
    text = linked_text(w, "jo", f"{C}/galleries/images/versions/write", vid,
                       "Microsoft.Storage/storageAccounts/listKeys/action", ACCT)
    uri = "https://acct.blob.core.windows.net/c/os.vhd"
    sdk_linked_denied(lambda: jo.gallery_image_versions.begin_create_or_update(
        RG, "G", "gen", "4.0.0", version(os_source=m.GalleryDiskImageSource(
            uri=uri, storage_account_id=ACCT))).result(), text)
    cli_linked_denied(w, "jo", vargs("gen", "4.0.0", "--os-vhd-uri", uri,
                                     "--os-vhd-storage-account", ACCT), text)
    # under --as the account must be named by id (its listKeys is what is checked)
    r = w["cli"]("--as", upn("jo"), *vargs("gen", "4.0.0", "--os-vhd-uri", uri,
                                           "--os-vhd-storage-account", "acct"))
    assert r.exit_code == 3 and "--os-vhd-storage-account: give the storage account's " \
                                "resource id" in r.stderr, r.stderr
    assert w["cli"].json("sig", "image-version", "list", "-g", RG, "-r", "G", "-i", "gen",
                         "--query", "[?name=='4.0.0']") == []


def test_creates_from_other_resources_need_read_on_them_under_as(world):
    """disk, snapshot, image, vm and vmss create under --as: their own write, then read of
    each source, named in the same message as REST's."""
    w = world
    cli = w["cli"]
    assign(w, "kim", "Contributor", f"{SUB}/resourceGroups/kim")
    kim = client(w, "kim")
    kp = f"{SUB}/resourceGroups/kim/providers/{C}"
    cases = [
        (["disk", "create", "-g", "kim", "-n", "d1", "--gallery-image-reference", SPEC_V],
         f"{C}/disks/write", f"{kp}/disks/d1", f"{C}/galleries/images/versions/read", SPEC_V),
        (["disk", "create", "-g", "kim", "-n", "d1", "--gallery-image-reference", f"{G_ID}/images/gen"],
         f"{C}/disks/write", f"{kp}/disks/d1", f"{C}/galleries/images/read",
         f"{G_ID}/images/gen"),
        (["disk", "create", "-g", "kim", "-n", "d2", "--source", SNAP_ID],
         f"{C}/disks/write", f"{kp}/disks/d2", f"{C}/snapshots/read", SNAP_ID),
        (["snapshot", "create", "-g", "kim", "-n", "s1", "--source", f"{P}/disks/{w['osdisk']}"],
         f"{C}/snapshots/write", f"{kp}/snapshots/s1", f"{C}/disks/read",
         f"{P}/disks/{w['osdisk']}"),
        (["image", "create", "-g", "kim", "-n", "i1", "--source", SNAP_ID, "--os-type", "Linux"],
         f"{C}/images/write", f"{kp}/images/i1", f"{C}/snapshots/read", SNAP_ID),
        (["vm", "create", "-g", "kim", "-n", "v1", "--image", SPEC_V, "--specialized"],
         f"{C}/virtualMachines/write", f"{kp}/virtualMachines/v1",
         f"{C}/galleries/images/versions/read", SPEC_V),
        (["vmss", "create", "-g", "kim", "-n", "ss", "--image", SPEC_V, "--specialized",
          "--instance-count", "1"],
         f"{C}/virtualMachineScaleSets/write", f"{kp}/virtualMachineScaleSets/ss",
         f"{C}/galleries/images/versions/read", SPEC_V),
    ]
    for args, action, scope, laction, lscope in cases:
        cli_linked_denied(w, "kim", args, linked_text(w, "kim", action, scope, laction, lscope))
    # the same rule on REST: a disk from the version
    sdk_linked_denied(lambda: kim.disks.begin_create_or_update("kim", "d1", m.Disk(
        location="local", creation_data=m.CreationData(
            create_option="FromImage", gallery_image_reference=m.ImageDiskReference(
                id=SPEC_V)))).result(),
        linked_text(w, "kim", f"{C}/disks/write", f"{kp}/disks/d1",
                    f"{C}/galleries/images/versions/read", SPEC_V))
    # a bare source name that resolves to nothing is checked as a snapshot: the refusal does
    # not tell what exists
    cli_linked_denied(w, "kim", ["disk", "create", "-g", "kim", "-n", "d3", "--source",
                                 f"{P}/disks/nothing"],
                      linked_text(w, "kim", f"{C}/disks/write", f"{kp}/disks/d3",
                                  f"{C}/disks/read", f"{P}/disks/nothing"))
    assert cli.json("disk", "list", "-g", "kim") == []
    # Reader on the source resource group: every create succeeds
    assign(w, "kim", "Reader", RG_ID)
    assert cli.json("--as", upn("kim"), "disk", "create", "-g", "kim", "-n", "d1",
                    "--gallery-image-reference", SPEC_V)["name"] == "d1"
    assert cli.json("--as", upn("kim"), "snapshot", "create", "-g", "kim", "-n", "s1",
                    "--source", SNAP_ID)["name"] == "s1"
    assert cli.json("--as", upn("kim"), "image", "create", "-g", "kim", "-n", "i1",
                    "--source", SNAP_ID, "--os-type", "Linux")["name"] == "i1"
    assert cli.json("--as", upn("kim"), "vm", "create", "-g", "kim", "-n", "v1", "--image",
                    SPEC_V, "--specialized")["name"] == "v1"
    d = kim.disks.begin_create_or_update("kim", "d4", m.Disk(
        location="local", creation_data=m.CreationData(
            create_option="FromImage", gallery_image_reference=m.ImageDiskReference(
                id=SPEC_V)))).result()
    assert d.name == "d4"
    # its own write is still checked first: another resource group is AuthorizationFailed
    r = cli("--as", upn("kim"), "disk", "create", "-g", RG, "-n", "dx",
            "--gallery-image-reference", SPEC_V)
    assert r.exit_code == 14
    assert f"authorization to perform action '{C}/disks/write' over scope '{P}/disks/dx'" \
        in r.stderr
