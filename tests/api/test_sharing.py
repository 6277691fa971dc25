"""Direct shared and community galleries through the REST API (the real azure-mgmt-compute
SDK, one token per principal) and the CLI's ``--as``: the reference's cases 7-9 and 13-22
(sharing-rbac.md §6), the consumer views' exact fields, and a removed share stopping access
with the next request."""

from __future__ import annotations

import uuid

import httpx
import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as m

from imagestore.api.client import sdk_kwargs
from imagestore.gallery import ids, sharing
from imagestore.identity import authorize
from tests.conftest import Cli

from .conftest import GV, SUB, make_source

pytestmark = pytest.mark.one_pass

RG = "pub"
C = "Microsoft.Compute"
S = ids.SUBSCRIPTION
G_ID = f"{SUB}/resourceGroups/{RG}/providers/{C}/galleries"
USERS = ("alice", "colin", "sam", "pete")  # Contoso: the publisher's people
SHARED_KEYS = {"name", "location", "identifier", "properties"}
COMMUNITY_KEYS = SHARED_KEYS | {"type"}


def upn(name: str) -> str:
    return f"{name}@contoso.example"


@pytest.fixture(scope="module")
def world(mod_server, tmp_path_factory):
    """Tenant Contoso (alice Owner, colin Contributor at the subscription; sam, pete get
    gallery-scope roles), tenant Fabrikam (tina, Reader at the subscription) and tenant
    Tailspin (tom, Reader at the subscription; ned, no assignment at all)."""
    cli = Cli(mod_server.store)
    tenants = {t: cli.json("ad", "tenant", "create", "--display-name", t)["tenantId"]
               for t in ("Contoso", "Fabrikam", "Tailspin")}
    oids, upns = {}, {}
    for name, tenant in [*((u, "Contoso") for u in USERS), ("tina", "Fabrikam"),
                         ("tom", "Tailspin"), ("ned", "Tailspin")]:
        upns[name] = f"{name}@{tenant.lower()}.example"
        oids[name] = cli.json("ad", "user", "create", "--user-principal-name", upns[name],
                              "--display-name", name.title(), "--tenant",
                              tenants[tenant])["id"]
    for who, role in (("alice", "Owner"), ("colin", "Contributor"), ("tina", "Reader"),
                      ("tom", "Reader")):
        cli.json("role", "assignment", "create", "--assignee", upns[who], "--role", role,
                 "--scope", SUB)
    src = make_source(tmp_path_factory.mktemp("share"), "os", "vpc", 9)
    w = {"cli": cli, "tenants": tenants, "oids": oids, "upns": upns, "src": src,
         "server": mod_server}
    alice = client(w, "alice")
    alice.galleries.begin_create_or_update(RG, "H", m.Gallery(
        location="local", sharing_profile=m.SharingProfile(permissions="Groups"))).result()
    alice.gallery_images.begin_create_or_update(RG, "H", "D", definition("s1")).result()
    alice.gallery_image_versions.begin_create_or_update(RG, "H", "D", "1.0.0",
                                                        version_body(w)).result()
    return w


def client(w, who: str) -> ComputeManagementClient:
    tok = w["cli"].json("token", "create", "--assignee", w["upns"][who])
    assert tok["objectId"] == w["oids"][who]
    return ComputeManagementClient(**sdk_kwargs(w["server"].url, tok["accessToken"],
                                                polling_interval=0))


def raw(w, who: str) -> httpx.Client:
    tok = w["cli"].json("token", "create", "--assignee", w["upns"][who])["accessToken"]
    return w["server"].client(tok)


def definition(sku: str, security: str | None = None) -> m.GalleryImage:
    feats = [m.GalleryImageFeature(name="SecurityType", value=security)] if security else None
    return m.GalleryImage(location="local", os_type="Linux", os_state="Generalized",
                          hyper_v_generation="V2" if security else None, features=feats,
                          identifier=m.GalleryImageIdentifier(publisher="P", offer="O", sku=sku))


def version_body(w, **kw) -> m.GalleryImageVersion:
    return m.GalleryImageVersion(location="local", **kw, storage_profile=m.GalleryImageVersionStorageProfile(
        os_disk_image=m.GalleryOSDiskImage(source=m.GalleryDiskImageSource(uri="file://" + w["src"]))))


def vm_body(ref: m.ImageReference) -> m.VirtualMachine:
    from tests.compute.conftest import KEY

    return m.VirtualMachine(location="local", properties=m.VirtualMachineProperties(
        hardware_profile=m.HardwareProfile(vm_size="Standard_B1s"),
        storage_profile=m.StorageProfile(image_reference=ref),
        os_profile=m.OSProfile(computer_name="consumer", admin_username="azureuser",
                               linux_configuration=m.LinuxConfiguration(
                                   disable_password_authentication=True,
                                   ssh=m.SshConfiguration(public_keys=[m.SshPublicKey(
                                       path="/home/azureuser/.ssh/authorized_keys",
                                       key_data=KEY)])))))


def share(c: ComputeManagementClient, gallery: str, op: str, subs=(), tenants=()) -> dict:
    groups = []
    if subs:
        groups.append(m.SharingProfileGroup(type="Subscriptions", ids=list(subs)))
    if tenants:
        groups.append(m.SharingProfileGroup(type="AADTenants", ids=list(tenants)))
    return c.gallery_sharing_profile.begin_update(
        RG, gallery, m.SharingUpdate(operation_type=op, groups=groups or None)).result()


def fails(call, status: int, code: str) -> HttpResponseError:
    with pytest.raises(HttpResponseError) as e:
        call()
    assert e.value.status_code == status, e.value
    assert e.value.error.code == code, e.value.error
    return e.value


def denied(w, call, who: str, action: str, scope: str) -> None:
    err = fails(call, 403, "AuthorizationFailed")
    assert authorize.message(w["upns"][who], w["oids"][who], action, scope) == err.error.message


def cli_denied(w, who: str, args: list[str], action: str, scope: str) -> None:
    r = w["cli"]("--as", w["upns"][who], *args)
    assert r.exit_code == 14, (r.exit_code, r.stdout, r.stderr)
    assert authorize.message(w["upns"][who], w["oids"][who], action, scope) in r.stderr


def groups_of(c: ComputeManagementClient, gallery: str) -> dict:
    sp = c.galleries.get(RG, gallery, select="Permissions").sharing_profile
    return {g.type: list(g.ids) for g in sp.groups or ()}


def test_private_gallery_refuses_a_share_case_13(world):
    w = world
    alice = client(w, "alice")
    g = alice.galleries.begin_create_or_update(RG, "G", m.Gallery(location="local")).result()
    assert g.sharing_profile is None
    err = fails(lambda: share(alice, "G", "Add", subs=[S]), 409, "OperationNotAllowed")
    assert "permissions Private" in err.error.message
    r = w["cli"]("--as", w["upns"]["alice"], "sig", "share", "add", "-g", RG, "-r", "G",
                 "--subscription-ids", S)
    assert r.exit_code == 5 and "permissions Private" in r.stderr, r.stderr
    # az's own check: at least one id
    r = w["cli"]("sig", "share", "add", "-g", RG, "-r", "H")
    assert r.exit_code == 3
    assert r.stderr.strip() == "error: At least one of subscription ids or tenant ids must be provided."
    # the permissions are set at create only
    err = fails(lambda: alice.galleries.begin_create_or_update(RG, "G", m.Gallery(
        location="local", sharing_profile=m.SharingProfile(permissions="Groups"))).result(),
        409, "PropertyChangeNotAllowed")
    assert "properties.sharingProfile" in err.error.message
    r = w["cli"]("sig", "update", "-g", RG, "-r", "H", "--set",
                 "properties.sharingProfile.permissions=Private")
    assert r.exit_code == 5 and "sharingProfile.permissions" in r.stderr, r.stderr
    assert alice.galleries.get(RG, "H").sharing_profile.permissions == "Groups"


def test_who_may_share_cases_7_8_9(world):
    w, o = world, world["oids"]
    h_id = f"{G_ID}/H"
    share_action = f"{C}/galleries/share/action"
    # 7. Contributor creates and deletes, but may not share (notActions)
    colin = client(w, "colin")
    colin.gallery_images.begin_create_or_update(RG, "H", "Tmp", definition("tmp")).result()
    colin.gallery_images.begin_delete(RG, "H", "Tmp").result()
    denied(w, lambda: share(colin, "H", "Add", subs=[S]), "colin", share_action, h_id)
    cli_denied(w, "colin", ["sig", "share", "add", "-g", RG, "-r", "H", "--subscription-ids", S],
               share_action, h_id)
    assert groups_of(client(w, "alice"), "H") == {}
    # 8. Compute Gallery Sharing Admin at H: may share, may not even read H
    w["cli"].json("role", "assignment", "create", "--assignee", w["upns"]["sam"], "--role",
                  "Compute Gallery Sharing Admin", "--scope", h_id)
    sam = client(w, "sam")
    out = share(sam, "H", "Add", tenants=[w["tenants"]["Fabrikam"]])
    assert out.operation_type == "Add" and out.groups[0].ids == [w["tenants"]["Fabrikam"]]
    denied(w, lambda: sam.galleries.get(RG, "H"), "sam", f"{C}/galleries/read", h_id)
    assert w["cli"].json("--as", w["upns"]["sam"], "sig", "share", "remove", "-g", RG, "-r", "H",
                         "--tenant-ids", w["tenants"]["Fabrikam"])["operationType"] == "Remove"
    assert groups_of(client(w, "alice"), "H") == {}
    # 9. Artifacts Publisher at H: publishes versions, may not reset the sharing
    w["cli"].json("role", "assignment", "create", "--assignee", w["upns"]["pete"], "--role",
                  "Compute Gallery Artifacts Publisher", "--scope", h_id)
    pete = client(w, "pete")
    v = pete.gallery_image_versions.begin_create_or_update(RG, "H", "D", "1.0.1",
                                                           version_body(w)).result()
    assert v.provisioning_state == "Succeeded"
    denied(w, lambda: share(pete, "H", "Reset"), "pete", share_action, h_id)
    cli_denied(w, "pete", ["sig", "share", "reset", "-g", RG, "-r", "H"], share_action, h_id)
    assert o["pete"]


def test_consumers_see_the_share_cases_14_15_17(world):
    w = world
    alice = client(w, "alice")
    fab, tail = w["tenants"]["Fabrikam"], w["tenants"]["Tailspin"]
    unique = f"{S}-H"
    share(alice, "H", "Add", subs=[S], tenants=[fab])
    assert groups_of(alice, "H") == {"Subscriptions": [S], "AADTenants": [fab]}
    shown = w["cli"].json("sig", "show", "-g", RG, "-r", "H", "--sharing-groups")
    assert shown["properties"]["sharingProfile"]["groups"] == [
        {"type": "Subscriptions", "ids": [S]}, {"type": "AADTenants", "ids": [fab]}]
    assert shown["properties"]["sharingStatus"] == {
        "aggregatedState": "Succeeded", "summary": [{"region": "local", "state": "Succeeded"}]}
    assert "groups" not in w["cli"].json("sig", "show", "-g", RG, "-r", "H")["properties"]["sharingProfile"]

    # 14. through the subscription: tom (Tailspin) is Reader of S, which H is shared with
    tom = client(w, "tom")
    gals = list(tom.shared_galleries.list("local"))
    assert [g.name for g in gals] == [unique]
    assert gals[0].identifier.unique_id == f"/SharedGalleries/{unique}"
    img = tom.shared_gallery_images.get("local", unique, "D")
    assert img.properties.identifier.publisher == "P" and img.properties.os_type == "Linux"
    vers = list(tom.shared_gallery_image_versions.list("local", unique, "D"))
    assert [v.name for v in vers] == ["1.0.0", "1.0.1"]
    ver = tom.shared_gallery_image_versions.get("local", unique, "D", "1.0.0")
    assert ver.identifier.unique_id == f"/SharedGalleries/{unique}/Images/D/Versions/1.0.0"
    assert ver.properties.storage_profile.os_disk_image.disk_size_gb == 1
    assert ver.properties.published_date is not None
    # the JSON has exactly the SDK model's fields: nothing of the private resource
    http = raw(w, "tom")
    base = f"{SUB}/providers/{C}/locations/local/sharedGalleries/{unique}"
    for path, props in (("", {"artifactTags"}),
                        ("/images/D", {"osType", "osState", "identifier", "hyperVGeneration",
                                       "architecture", "artifactTags"}),
                        ("/images/D/versions/1.0.0", {"publishedDate", "excludeFromLatest",
                                                      "storageProfile", "artifactTags"})):
        body = http.get(base + path, params={"api-version": GV}).json()
        assert set(body) == SHARED_KEYS, body
        assert set(body["properties"]) == props, body
    body = http.get(base + "/images/D/versions/1.0.0", params={"api-version": GV}).json()
    assert body["properties"]["storageProfile"] == {"osDiskImage": {"diskSizeGB": 1,
                                                                    "hostCaching": "ReadWrite"}}
    text = str(body)
    for hidden in ("source", "targetRegions", "replicationStatus", "tags", "provisioningState",
                   "/resourceGroups/", "localStorage"):
        assert hidden not in text, hidden
    # the CLI as tom: the same views
    assert [g["name"] for g in w["cli"].json("--as", w["upns"]["tom"], "sig", "list-shared",
                                             "-l", "local")] == [unique]
    v = w["cli"].json("--as", w["upns"]["tom"], "sig", "image-version", "show-shared", "-l",
                      "local", "--gallery-unique-name", unique, "-i", "D", "-e", "1.0.0")
    assert v == body
    assert [d["name"] for d in w["cli"].json("--as", w["upns"]["tom"], "sig", "image-definition",
                                             "list-shared", "-l", "local",
                                             "--gallery-unique-name", unique)] == ["D"]

    # 15. through the tenant: tina (Fabrikam) sees it with sharedTo=tenant; tom (Tailspin)
    #     does not
    tina = client(w, "tina")
    assert [g.name for g in tina.shared_galleries.list("local", shared_to="tenant")] == [unique]
    assert [g.name for g in tom.shared_galleries.list("local", shared_to="tenant")] == []
    assert w["cli"].json("--as", w["upns"]["tom"], "sig", "list-shared", "-l", "local",
                         "--shared-to", "tenant") == []
    # a principal with no role on the subscription: 403, never data
    ned = client(w, "ned")
    denied(w, lambda: list(ned.shared_galleries.list("local")), "ned",
           f"{C}/locations/sharedGalleries/read",
           f"{SUB}/providers/{C}/locations/local/sharedGalleries")
    cli_denied(w, "ned", ["sig", "list-shared", "-l", "local"],
               f"{C}/locations/sharedGalleries/read", SUB)
    # wrong region, unknown name, hostile names: 404, the same message as "not shared"
    fails(lambda: tom.shared_galleries.get("elsewhere", unique), 404, "ResourceNotFound")
    fails(lambda: tom.shared_galleries.get("local", f"{S}-NOPE"), 404, "ResourceNotFound")
    fails(lambda: tom.shared_gallery_images.get("local", unique, "nope"), 404, "ResourceNotFound")
    fails(lambda: tom.shared_gallery_image_versions.get("local", unique, "D", "9.9.9"), 404,
          "ResourceNotFound")
    r = http.get(base + "/images/..%2F..", params={"api-version": GV})
    assert r.status_code == 404
    r = http.get(f"{SUB}/providers/{C}/locations/local/sharedGalleries",
                 params={"api-version": GV, "sharedTo": "everyone"})
    assert r.status_code == 400 and r.json()["error"]["target"] == "sharedTo"

    # 17. the subscription removed: tom's next request is 404; tina (tenant) still sees it
    share(alice, "H", "Remove", subs=[S])
    err = fails(lambda: tom.shared_galleries.get("local", unique), 404, "ResourceNotFound")
    assert "not shared with subscription" in err.error.message
    fails(lambda: tom.shared_gallery_image_versions.get("local", unique, "D", "1.0.0"), 404,
          "ResourceNotFound")
    assert list(tom.shared_galleries.list("local")) == []
    assert tina.shared_gallery_image_versions.get("local", unique, "D", "latest").name == "1.0.1"
    r = w["cli"]("--as", w["upns"]["tom"], "sig", "show-shared", "-l", "local",
                 "--gallery-unique-name", unique)
    assert r.exit_code == 4 and "not shared" in r.stderr
    share(alice, "H", "Remove", tenants=[fab])
    fails(lambda: tina.shared_galleries.get("local", unique), 404, "ResourceNotFound")
    assert tail


def test_share_limits_case_16(world):
    w = world
    alice = client(w, "alice")
    subs = [str(uuid.UUID(int=i + 1)) for i in range(sharing.MAX_SUBSCRIPTIONS)]
    share(alice, "H", "Add", subs=subs)
    err = fails(lambda: share(alice, "H", "Add", subs=[str(uuid.uuid4())]), 400,
                "InvalidParameter")
    assert "at most 30 subscriptions" in err.error.message
    tenants = [str(uuid.uuid4()) for _ in range(sharing.MAX_TENANTS + 1)]
    err = fails(lambda: share(alice, "H", "Add", tenants=tenants), 400, "InvalidParameter")
    assert "at most 5 tenants" in err.error.message
    assert groups_of(alice, "H") == {"Subscriptions": subs}  # nothing changed
    r = w["cli"]("sig", "share", "add", "-g", RG, "-r", "H", "--tenant-ids", *tenants)
    assert r.exit_code == 3 and "at most 5 tenants" in r.stderr
    share(alice, "H", "Remove", subs=subs)
    assert groups_of(alice, "H") == {}
    # hostile bodies: one line, 400, nothing changed
    http = w["server"].client()
    url = f"{G_ID}/H/share"
    for body, target in (({"operationType": "Add", "groups": [{"type": "Subscriptions",
                                                              "ids": ["not-a-guid"]}]},
                          "groups[0].ids[0]"),
                         ({"operationType": "Explode"}, "operationType"),
                         ({"operationType": "Add", "groups": [{"type": "Planets", "ids": [S]}]},
                          "groups[0].type"),
                         ({"operationType": "Add", "groups": "all"}, "groups"),
                         ({"operationType": "Add"}, "groups"),
                         ([1, 2], "operationType")):
        r = http.post(url, params={"api-version": GV}, json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["target"] == target, r.text
    assert groups_of(alice, "H") == {}


def test_gallery_type_rules_cases_18_21(world):
    w = world
    alice = client(w, "alice")
    # 18. no encrypted versions in a shared gallery
    enc = m.EncryptionImages(os_disk_image=m.OSDiskImageEncryption(
        disk_encryption_set_id=f"{SUB}/resourceGroups/{RG}/providers/{C}/diskEncryptionSets/des"))
    body = version_body(w, publishing_profile=m.GalleryImageVersionPublishingProfile(
        target_regions=[m.TargetRegion(name="local", encryption=enc)]))
    err = fails(lambda: alice.gallery_image_versions.begin_create_or_update(
        RG, "H", "D", "2.0.0", body).result(), 400, "InvalidParameter")
    assert "encrypted image version can't be created" in err.error.message
    assert err.error.target == "properties.publishingProfile.targetRegions[0].encryption"
    # (in a private gallery imagestore does not do customer-key encryption at all)
    alice.gallery_images.begin_create_or_update(RG, "G", "D", definition("g1")).result()
    err = fails(lambda: alice.gallery_image_versions.begin_create_or_update(
        RG, "G", "D", "2.0.0", body).result(), 400, "InvalidParameter")
    assert "not supported by imagestore" in err.error.message
    assert [v.name for v in alice.gallery_image_versions.list_by_gallery_image(RG, "H", "D")] == [
        "1.0.0", "1.0.1"]
    # 21. TrustedLaunch / ConfidentialVM only in private galleries; ...Supported anywhere
    for sec in ("TrustedLaunch", "ConfidentialVM"):
        err = fails(lambda sec=sec: alice.gallery_images.begin_create_or_update(
            RG, "H", "TL", definition("tl", sec)).result(), 400, "InvalidParameter")
        assert f"SecurityType {sec} is supported in Private galleries only" in err.error.message
        assert err.error.target == "properties.features"
    r = w["cli"]("sig", "image-definition", "create", "-g", RG, "-r", "H", "-i", "TL", "-p", "P",
                 "-f", "O", "-s", "tl", "--os-type", "Linux", "--hyper-v-generation", "V2",
                 "--features", "SecurityType=TrustedLaunch")
    assert r.exit_code == 3 and "Private galleries only" in r.stderr, r.stderr
    for i, sec in enumerate(("TrustedLaunchSupported", "ConfidentialVMSupported",
                             "TrustedLaunchAndConfidentialVmSupported")):
        alice.gallery_images.begin_create_or_update(RG, "H", f"S{i}", definition(f"sup{i}", sec)).result()
    assert alice.gallery_images.begin_create_or_update(
        RG, "G", "TL", definition("tl", "TrustedLaunch")).result().name == "TL"
    for name in ("S0", "S1", "S2"):
        alice.gallery_images.begin_delete(RG, "H", name).result()


def test_community_gallery_cases_19_20_22(world):
    w = world
    alice = client(w, "alice")
    # 19. all four community flags, or az's message (exit 3); nothing created
    r = w["cli"]("sig", "create", "-g", RG, "-r", "Comm", "--permissions", "Community",
                 "--publisher-uri", "https://contoso.example", "--publisher-email",
                 "images@contoso.example", "--public-name-prefix", "Contoso")
    assert r.exit_code == 3
    assert r.stderr.strip() == "error: " + sharing.COMMUNITY_MISSING
    assert w["cli"]("sig", "show", "-g", RG, "-r", "Comm").exit_code == 4
    fails(lambda: alice.galleries.begin_create_or_update(RG, "Comm", m.Gallery(
        location="local", sharing_profile=m.SharingProfile(permissions="Community"))).result(),
        400, "InvalidParameter")
    r = w["cli"]("sig", "create", "-g", RG, "-r", "Comm", "--permissions", "Community",
                 "--publisher-uri", "https://contoso.example", "--publisher-email", "nope",
                 "--eula", "https://contoso.example/eula", "--public-name-prefix", "Contoso")
    assert r.exit_code == 3 and "--publisher-email" in r.stderr or "publisherContact" in r.stderr
    g = w["cli"].json("--as", w["upns"]["alice"], "sig", "create", "-g", RG, "-r", "Comm",
                      "--permissions", "Community", "--publisher-uri", "https://contoso.example",
                      "--publisher-email", "images@contoso.example", "--eula",
                      "https://contoso.example/eula", "--public-name-prefix", "Contoso")
    info = g["properties"]["sharingProfile"]["communityGalleryInfo"]
    assert info["communityGalleryEnabled"] is False and info["publicNames"] == []
    alice.gallery_images.begin_create_or_update(RG, "Comm", "D", definition("c1")).result()
    alice.gallery_image_versions.begin_create_or_update(RG, "Comm", "D", "1.0.0",
                                                        version_body(w)).result()
    # 20. EnableCommunity: not by a Contributor; by the Owner, public name PREFIX-GUID
    comm_id = f"{G_ID}/Comm"
    denied(w, lambda: share(client(w, "colin"), "Comm", "EnableCommunity"), "colin",
           f"{C}/galleries/share/action", comm_id)
    err = fails(lambda: share(alice, "H", "EnableCommunity"), 409, "OperationNotAllowed")
    assert "permissions Groups" in err.error.message
    share(alice, "Comm", "EnableCommunity")
    info = alice.galleries.get(RG, "Comm").sharing_profile.community_gallery_info
    assert info.community_gallery_enabled is True
    [public] = info.public_names
    prefix, _, guid = public.partition("-")
    assert prefix == "Contoso" and str(uuid.UUID(guid)) == guid
    # ned (Tailspin, no role anywhere) reads it through the SDK and the CLI
    ned = client(w, "ned")
    cg = ned.community_galleries.get("local", public)
    assert cg.identifier.unique_id == f"/CommunityGalleries/{public}"
    assert cg.properties.community_metadata.public_names == [public]
    assert cg.properties.community_metadata.publisher_contact == "images@contoso.example"
    cimg = ned.community_gallery_images.get("local", public, "D")
    assert cimg.type == "Microsoft.Compute/Locations/CommunityGalleryImage"
    cv = ned.community_gallery_image_versions.get("local", public, "D", "1.0.0")
    assert cv.identifier.unique_id == f"/CommunityGalleries/{public}/Images/D/Versions/1.0.0"
    assert [v.name for v in ned.community_gallery_image_versions.list("local", public, "D")] == ["1.0.0"]
    http = raw(w, "ned")
    base = f"{SUB}/providers/{C}/locations/local/communityGalleries/{public}"
    body = http.get(base, params={"api-version": GV}).json()
    assert set(body) == COMMUNITY_KEYS and set(body["properties"]) == {"artifactTags",
                                                                       "communityMetadata"}
    vb = http.get(base + "/images/D/versions/1.0.0", params={"api-version": GV}).json()
    assert set(vb) == COMMUNITY_KEYS
    assert set(vb["properties"]) == {"publishedDate", "excludeFromLatest", "storageProfile",
                                     "artifactTags"}
    cli_v = w["cli"].json("--as", w["upns"]["ned"], "sig", "image-version", "show-community",
                          "-l", "local", "--public-gallery-name", public, "-i", "D", "-e", "1.0.0")
    assert cli_v == vb
    assert w["cli"].json("--as", w["upns"]["ned"], "sig", "show-community", "-l", "local",
                         "--public-gallery-name", public) == body
    assert w["cli"].json("--as", w["upns"]["ned"], "sig", "list-community", "-l", "local") == [body]
    # the gallery's own resources stay private: 403 for ned
    denied(w, lambda: ned.galleries.get(RG, "Comm"), "ned", f"{C}/galleries/read", comm_id)
    # not a direct share: the shared views do not show it
    assert list(client(w, "tom").shared_galleries.list("local")) == []
    # 22. delete refused while the community is enabled; after reset and emptied, deleted
    err = fails(lambda: alice.galleries.begin_delete(RG, "Comm").result(), 409,
                "OperationNotAllowed")
    assert "reset its sharing first" in err.error.message
    r = w["cli"]("sig", "delete", "-g", RG, "-r", "Comm")
    assert r.exit_code == 5 and "reset its sharing first" in r.stderr
    share(alice, "Comm", "Reset")
    assert alice.galleries.get(RG, "Comm").sharing_profile.permissions == "Private"
    fails(lambda: ned.community_galleries.get("local", public), 404, "ResourceNotFound")
    fails(lambda: ned.community_gallery_image_versions.get("local", public, "D", "1.0.0"), 404,
          "ResourceNotFound")
    # reset for good: it can't be shared again
    fails(lambda: share(alice, "Comm", "EnableCommunity"), 409, "OperationNotAllowed")
    alice.gallery_image_versions.begin_delete(RG, "Comm", "D", "1.0.0").result()
    alice.gallery_images.begin_delete(RG, "Comm", "D").result()
    alice.galleries.begin_delete(RG, "Comm").result()
    fails(lambda: alice.galleries.get(RG, "Comm"), 404, "ResourceNotFound")


def test_consumers_create_disks_from_shared_and_community_images(world):
    """The share, not RBAC on the publisher's gallery, authorizes the image; the disk needs
    disks/write where it is made."""
    w = world
    alice = client(w, "alice")
    for who, rg in (("tom", "cons"), ("ned", "ncons")):
        w["cli"].json("role", "assignment", "create", "--assignee", w["upns"][who], "--role",
                      "Contributor", "--scope", f"{SUB}/resourceGroups/{rg}")
    unique = f"{S}-H"
    sid = f"/SharedGalleries/{unique}/Images/D/Versions/latest"
    newest = sorted(v.name for v in alice.gallery_image_versions.list_by_gallery_image(
        RG, "H", "D"))[-1]

    def body(**ref) -> m.Disk:
        return m.Disk(location="local", creation_data=m.CreationData(
            create_option="FromImage", gallery_image_reference=m.ImageDiskReference(**ref)))

    tom = client(w, "tom")
    # not shared (any more): 404, whatever tom's roles
    fails(lambda: tom.disks.begin_create_or_update("cons", "t0", body(
        shared_gallery_image_id=sid)).result(), 404, "ResourceNotFound")
    share(alice, "H", "Add", subs=[S])
    d = tom.disks.begin_create_or_update("cons", "t1", body(shared_gallery_image_id=sid)).result()
    gir = d.creation_data.gallery_image_reference
    assert gir.shared_gallery_image_id == f"/SharedGalleries/{unique}/Images/D/Versions/{newest}"
    assert gir.id is None
    got = raw(w, "tom").get(f"{SUB}/resourceGroups/cons/providers/{C}/disks/t1",
                            params={"api-version": "2026-03-02"}).json()
    assert "/galleries/" not in str(got)
    # the CLI as tom
    dj = w["cli"].json("--as", w["upns"]["tom"], "disk", "create", "-g", "cons", "-n", "t2",
                       "--gallery-image-reference",
                       f"/SharedGalleries/{unique}/Images/D/Versions/1.0.0")
    assert dj["properties"]["creationData"]["galleryImageReference"] == {
        "sharedGalleryImageId": f"/SharedGalleries/{unique}/Images/D/Versions/1.0.0"}
    # where tom may not write disks: 403 disks/write, before the share is looked at
    denied(w, lambda: tom.disks.begin_create_or_update("pub", "t3", body(
        shared_gallery_image_id=sid)).result(), "tom", f"{C}/disks/write",
        f"{SUB}/resourceGroups/pub/providers/{C}/disks/t3")
    # ids that are not a consumer's: 400
    r = raw(w, "tom").put(f"{SUB}/resourceGroups/cons/providers/{C}/disks/t4",
                          params={"api-version": "2026-03-02"},
                          json={"location": "local", "properties": {"creationData": {
                              "createOption": "FromImage", "galleryImageReference": {
                                  "sharedGalleryImageId": f"{G_ID}/H/images/D/versions/1.0.0"}}}})
    assert r.status_code == 400 and "is not /SharedGalleries/" in r.text, r.text
    # a VM from the shared image: its disks through the same view, its imageReference the
    # consumer's id
    vm = tom.virtual_machines.begin_create_or_update("cons", "vm1", vm_body(
        m.ImageReference(shared_gallery_image_id=sid))).result()
    assert vm.storage_profile.image_reference.shared_gallery_image_id == sid
    assert vm.storage_profile.image_reference.exact_version == newest
    assert vm.storage_profile.image_reference.id is None
    got = raw(w, "tom").get(f"{SUB}/resourceGroups/cons/providers/{C}/virtualMachines/vm1",
                            params={"api-version": "2026-04-01"}).json()
    assert "/galleries/" not in str(got)
    os_disk = tom.disks.get("cons", vm.storage_profile.os_disk.name)
    assert os_disk.creation_data.gallery_image_reference.shared_gallery_image_id == (
        f"/SharedGalleries/{unique}/Images/D/Versions/{newest}")
    share(alice, "H", "Remove", subs=[S])
    fails(lambda: tom.virtual_machines.begin_create_or_update("cons", "vm2", vm_body(
        m.ImageReference(shared_gallery_image_id=sid))).result(), 404, "ResourceNotFound")
    fails(lambda: tom.disks.begin_create_or_update("cons", "t5", body(
        shared_gallery_image_id=sid)).result(), 404, "ResourceNotFound")

    # community: ned (Tailspin), Contributor of his own resource group only
    w["cli"].json("sig", "create", "-g", RG, "-r", "Pub", "--permissions", "Community",
                  "--publisher-uri", "https://contoso.example", "--publisher-email",
                  "images@contoso.example", "--eula", "https://contoso.example/eula",
                  "--public-name-prefix", "ContosoPub")
    alice.gallery_images.begin_create_or_update(RG, "Pub", "D", definition("pub")).result()
    alice.gallery_image_versions.begin_create_or_update(RG, "Pub", "D", "1.0.0",
                                                        version_body(w)).result()
    share(alice, "Pub", "EnableCommunity")
    [public] = alice.galleries.get(RG, "Pub").sharing_profile.community_gallery_info.public_names
    cid = f"/CommunityGalleries/{public}/Images/D/Versions/1.0.0"
    ned = client(w, "ned")
    d = ned.disks.begin_create_or_update("ncons", "n1", body(community_gallery_image_id=cid)).result()
    assert d.creation_data.gallery_image_reference.community_gallery_image_id == cid
    assert d.disk_size_gb == 1
    share(alice, "Pub", "Reset")
    fails(lambda: ned.disks.begin_create_or_update("ncons", "n2", body(
        community_gallery_image_id=cid)).result(), 404, "ResourceNotFound")
    r = w["cli"]("--as", w["upns"]["ned"], "disk", "create", "-g", "ncons", "-n", "n3",
                 "--gallery-image-reference", cid)
    assert r.exit_code == 4, r.stderr


def test_consumer_in_another_subscription_case_14(world):
    """The reference's case 14 as written: a user of subscription S2 (tenant Fabrikam),
    Reader there and Contributor of an S2 resource group, no role in S1."""
    w = world
    cli, alice = w["cli"], client(w, "alice")
    fab = w["tenants"]["Fabrikam"]
    s2 = cli.json("account", "create", "--tenant", fab, "--display-name", "consumer")["subscriptionId"]
    cli.json("group", "create", "-n", "cons2", "-l", "local", "--subscription", s2)
    upn_ = "uma@fabrikam.example"
    oid = cli.json("ad", "user", "create", "--user-principal-name", upn_, "--display-name", "Uma",
                   "--tenant", fab)["id"]
    w["upns"]["uma"], w["oids"]["uma"] = upn_, oid
    cli.json("role", "assignment", "create", "--assignee", upn_, "--role", "Reader", "--scope",
             f"/subscriptions/{s2}")
    cli.json("role", "assignment", "create", "--assignee", upn_, "--role", "Contributor",
             "--scope", f"/subscriptions/{s2}/resourceGroups/cons2")
    tok = cli.json("token", "create", "--assignee", upn_)["accessToken"]
    uma = ComputeManagementClient(**sdk_kwargs(w["server"].url, tok, subscription_id=s2,
                                               polling_interval=0))
    uma_s1 = ComputeManagementClient(**sdk_kwargs(w["server"].url, tok, polling_interval=0))
    unique = f"{S}-H"
    assert list(uma.shared_galleries.list("local")) == []
    share(alice, "H", "Add", subs=[s2])
    assert [g.name for g in uma.shared_galleries.list("local")] == [unique]
    v = uma.shared_gallery_image_versions.get("local", unique, "D", "1.0.0")
    assert v.identifier.unique_id == f"/SharedGalleries/{unique}/Images/D/Versions/1.0.0"
    # the private gallery stays private: 403 on H's ARM id; and nothing through S1
    denied(w, lambda: uma_s1.galleries.get(RG, "H"), "uma", f"{C}/galleries/read", f"{G_ID}/H")
    denied(w, lambda: list(uma_s1.shared_galleries.list("local")), "uma",
           f"{C}/locations/sharedGalleries/read",
           f"{SUB}/providers/{C}/locations/local/sharedGalleries")
    # the CLI as uma, looking through S2
    assert [g["name"] for g in cli.json("--as", upn_, "sig", "list-shared", "-l", "local",
                                        "--subscription", s2)] == [unique]
    cli_denied(w, "uma", ["sig", "list-shared", "-l", "local"],
               f"{C}/locations/sharedGalleries/read", SUB)
    r = cli("--as", upn_, "sig", "list-shared", "-l", "local", "--subscription", str(uuid.uuid4()))
    assert r.exit_code in (4, 14), r.stderr
    # a disk in S2 from the shared image (SDK and CLI)
    sid = f"/SharedGalleries/{unique}/Images/D/Versions/1.0.0"
    d = uma.disks.begin_create_or_update("cons2", "u1", m.Disk(
        location="local", creation_data=m.CreationData(
            create_option="FromImage",
            gallery_image_reference=m.ImageDiskReference(shared_gallery_image_id=sid)))).result()
    assert d.id == f"/subscriptions/{s2}/resourceGroups/cons2/providers/{C}/disks/u1"
    assert d.creation_data.gallery_image_reference.shared_gallery_image_id == sid
    dj = cli.json("--as", upn_, "disk", "create", "-g", "cons2", "-n", "u2",
                  "--gallery-image-reference", sid)
    assert dj["id"].startswith(f"/subscriptions/{s2}/")
    # removed: at once, for the SDK and the CLI
    share(alice, "H", "Remove", subs=[s2])
    fails(lambda: uma.shared_galleries.get("local", unique), 404, "ResourceNotFound")
    r = cli("--as", upn_, "disk", "create", "-g", "cons2", "-n", "u3",
            "--gallery-image-reference", sid)
    assert r.exit_code == 4 and "not shared" in r.stderr, r.stderr
    # 15. a tenant share reaches every subscription of the tenant: tom (Tailspin), Reader of
    #     S2 (Fabrikam's), sees through S2 what is shared with Fabrikam; through S1 not
    cli.json("role", "assignment", "create", "--assignee", w["upns"]["tom"], "--role", "Reader",
             "--scope", f"/subscriptions/{s2}")
    tom_tok = cli.json("token", "create", "--assignee", w["upns"]["tom"])["accessToken"]
    tom_s2 = ComputeManagementClient(**sdk_kwargs(w["server"].url, tom_tok, subscription_id=s2,
                                                  polling_interval=0))
    share(alice, "H", "Add", tenants=[fab])
    assert [g.name for g in tom_s2.shared_galleries.list("local", shared_to="tenant")] == [unique]
    assert tom_s2.shared_gallery_images.get("local", unique, "D").name == "D"
    assert list(client(w, "tom").shared_galleries.list("local", shared_to="tenant")) == []
    assert [g["name"] for g in cli.json("--as", w["upns"]["tom"], "sig", "list-shared", "-l",
                                        "local", "--shared-to", "tenant", "--subscription",
                                        s2)] == [unique]
    share(alice, "H", "Remove", tenants=[fab])
    assert list(tom_s2.shared_galleries.list("local", shared_to="tenant")) == []
    assert oid
