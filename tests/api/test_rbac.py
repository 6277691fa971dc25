"""RBAC through the REST API (the real azure-mgmt-compute SDK, one token per principal) and
the CLI's ``--as``: the reference's RBAC cases (sharing-rbac.md §6, cases 1-7 without the
sharing parts), inheritance at every scope, notActions, transitive groups, and an assignment
or membership removed taking effect on the next request."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as m

from imagestore.api.client import sdk_kwargs
from imagestore.gallery import ids
from imagestore.identity import authorize
from tests.conftest import Cli

from .conftest import SUB, make_source

pytestmark = pytest.mark.one_pass

RG = "rbac"
C = "Microsoft.Compute"
RG_ID = f"{SUB}/resourceGroups/{RG}"
G_ID = f"{RG_ID}/providers/{C}/galleries/G"
D_ID = f"{G_ID}/images/D"
D2_ID = f"{G_ID}/images/D2"
V_ID = f"{D_ID}/versions/1.0.0"
USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "gina")


def upn(name: str) -> str:
    return f"{name}@contoso.example"


@pytest.fixture(scope="module")
def world(mod_server, tmp_path_factory):
    """The directory: tenant Contoso, seven users, group grp (erin) inside group outer."""
    cli = Cli(mod_server.store)
    t = cli.json("ad", "tenant", "create", "--display-name", "Contoso")["tenantId"]
    oids = {u: cli.json("ad", "user", "create", "--user-principal-name", upn(u),
                        "--display-name", u.title(), "--tenant", t)["id"] for u in USERS}
    cli.json("ad", "group", "create", "--display-name", "grp", "--tenant", t)
    cli.json("ad", "group", "create", "--display-name", "outer", "--tenant", t)
    assert cli("ad", "group", "member", "add", "-g", "outer", "--member-id", "grp").exit_code == 0
    assert cli("ad", "group", "member", "add", "-g", "grp", "--member-id",
               upn("erin")).exit_code == 0
    src = make_source(tmp_path_factory.mktemp("rbac"), "os", "vpc", 7)
    return {"cli": cli, "tenant": t, "oids": oids, "src": src, "server": mod_server}


def client(w, who: str) -> ComputeManagementClient:
    tok = w["cli"].json("token", "create", "--assignee", upn(who))
    assert tok["objectId"] == w["oids"][who] and tok["tenant"] == w["tenant"]
    return ComputeManagementClient(**sdk_kwargs(w["server"].url, tok["accessToken"],
                                                polling_interval=0))


def assign(w, who: str, role: str, scope: str) -> str:
    return w["cli"].json("role", "assignment", "create", "--assignee", who, "--role", role,
                         "--scope", scope)["name"]


def denied(call, oid: str, action: str, scope: str) -> None:
    """The SDK call fails 403 AuthorizationFailed naming the principal, action and scope."""
    with pytest.raises(HttpResponseError) as e:
        call()
    assert e.value.status_code == 403, e.value
    assert e.value.error.code == "AuthorizationFailed"
    msg = e.value.error.message
    assert f"with object id '{oid}'" in msg and f"action '{action}'" in msg, msg
    assert f"over scope '{scope}'" in msg, msg
    assert msg.endswith("If access was recently granted, please refresh your credentials.")


def cli_denied(w, who: str, args: list[str], action: str, scope: str) -> None:
    r = w["cli"]("--as", upn(who), *args)
    assert r.exit_code == 14, (r.exit_code, r.stdout, r.stderr)
    assert authorize.message(upn(who), w["oids"][who], action, scope) in r.stderr


def version_body(w) -> m.GalleryImageVersion:
    return m.GalleryImageVersion(location="local", storage_profile=m.GalleryImageVersionStorageProfile(
        os_disk_image=m.GalleryOSDiskImage(source=m.GalleryDiskImageSource(uri="file://" + w["src"]))))


def definition(name: str, sku: str) -> m.GalleryImage:
    return m.GalleryImage(location="local", os_type="Linux", os_state="Generalized",
                          identifier=m.GalleryImageIdentifier(publisher="P", offer="O", sku=sku))


def test_reference_cases_through_the_sdk_and_the_cli(world):
    w, o = world, world["oids"]
    # 1. alice Owner at the subscription creates G, D, D2 and 1.0.0
    assign(w, upn("alice"), "Owner", SUB)
    alice = client(w, "alice")
    assert alice.galleries.begin_create_or_update(RG, "G", m.Gallery(location="local")).result().name == "G"
    alice.gallery_images.begin_create_or_update(RG, "G", "D", definition("D", "s1")).result()
    alice.gallery_images.begin_create_or_update(RG, "G", "D2", definition("D2", "s2")).result()
    v = alice.gallery_image_versions.begin_create_or_update(RG, "G", "D", "1.0.0",
                                                            version_body(w)).result()
    assert v.provisioning_state == "Succeeded"
    # ... and through the CLI as alice: a second gallery, created and deleted
    assert w["cli"].json("--as", upn("alice"), "sig", "create", "-g", RG, "-r", "GA")["name"] == "GA"
    assert w["cli"]("--as", upn("alice"), "sig", "delete", "-g", RG, "-r", "GA").exit_code == 0

    # 2. bob, no assignment: 403 galleries/read over G (and the CLI --as alike)
    bob = client(w, "bob")
    denied(lambda: bob.galleries.get(RG, "G"), o["bob"], f"{C}/galleries/read", G_ID)
    cli_denied(w, "bob", ["sig", "show", "-g", RG, "-r", "G"], f"{C}/galleries/read", G_ID)
    # authorization comes before existence: a missing gallery is 403 too, never 404
    denied(lambda: bob.galleries.get(RG, "nope"), o["bob"], f"{C}/galleries/read",
           f"{RG_ID}/providers/{C}/galleries/nope")

    # 3. bob Reader at G: G, D, 1.0.0 readable; a version write refused
    assign(w, upn("bob"), "Reader", G_ID)
    assert bob.galleries.get(RG, "G").name == "G"
    assert bob.gallery_images.get(RG, "G", "D").name == "D"
    assert bob.gallery_image_versions.get(RG, "G", "D", "1.0.0").name == "1.0.0"
    assert [d.name for d in bob.gallery_images.list_by_gallery(RG, "G")] == ["D", "D2"]
    denied(lambda: bob.gallery_image_versions.begin_create_or_update(
        RG, "G", "D", "1.0.1", version_body(w)).result(), o["bob"],
        f"{C}/galleries/images/versions/write", f"{D_ID}/versions/1.0.1")
    assert w["cli"].json("--as", upn("bob"), "sig", "image-version", "show", "-g", RG, "-r", "G",
                         "-i", "D", "-e", "1.0.0")["name"] == "1.0.0"
    cli_denied(w, "bob", ["sig", "image-version", "delete", "-g", RG, "-r", "G", "-i", "D",
                          "-e", "1.0.0"], f"{C}/galleries/images/versions/delete", V_ID)
    # but not the resource group's other resources, nor the subscription-wide list
    denied(lambda: list(bob.galleries.list_by_resource_group(RG)), o["bob"],
           f"{C}/galleries/read", f"{RG_ID}/providers/{C}/galleries")

    # 4. carol Reader at D: its version readable; G and the sibling D2 refused
    assign(w, upn("carol"), "Reader", D_ID)
    carol = client(w, "carol")
    assert carol.gallery_image_versions.get(RG, "G", "D", "1.0.0").name == "1.0.0"
    denied(lambda: carol.galleries.get(RG, "G"), o["carol"], f"{C}/galleries/read", G_ID)
    denied(lambda: carol.gallery_images.get(RG, "G", "D2"), o["carol"],
           f"{C}/galleries/images/read", D2_ID)
    cli_denied(w, "carol", ["sig", "image-definition", "show", "-g", RG, "-r", "G", "-i", "D2"],
               f"{C}/galleries/images/read", D2_ID)

    # 5. dave Compute Gallery Image Reader at G: D and 1.0.0, not G itself (no galleries/read)
    assign(w, upn("dave"), "Compute Gallery Image Reader", G_ID)
    dave = client(w, "dave")
    assert dave.gallery_images.get(RG, "G", "D").name == "D"
    assert dave.gallery_image_versions.get(RG, "G", "D", "1.0.0").name == "1.0.0"
    denied(lambda: dave.galleries.get(RG, "G"), o["dave"], f"{C}/galleries/read", G_ID)
    cli_denied(w, "dave", ["sig", "show", "-g", RG, "-r", "G"], f"{C}/galleries/read", G_ID)
    assert w["cli"].json("--as", upn("dave"), "sig", "image-definition", "show", "-g", RG, "-r",
                         "G", "-i", "D")["name"] == "D"

    # 7. frank Contributor at the resource group: create and delete; no role assignments
    #    (notActions Microsoft.Authorization/*/Write)
    assign(w, upn("frank"), "Contributor", RG_ID)
    frank = client(w, "frank")
    frank.gallery_images.begin_create_or_update(RG, "G", "D3", definition("D3", "s3")).result()
    frank.gallery_images.begin_delete(RG, "G", "D3").result()
    r = w["cli"]("--as", upn("frank"), "role", "assignment", "create", "--assignee", upn("bob"),
                 "--role", "Owner", "--scope", G_ID)
    assert r.exit_code == 14 and "Microsoft.Authorization/roleAssignments/write" in r.stderr
    assert len(w["cli"].json("role", "assignment", "list", "--assignee", upn("bob"))) == 1

    # version scope: gina Reader at 1.0.0 reads it and nothing above
    assign(w, upn("gina"), "Reader", V_ID)
    gina = client(w, "gina")
    assert gina.gallery_image_versions.get(RG, "G", "D", "1.0.0").name == "1.0.0"
    denied(lambda: gina.gallery_images.get(RG, "G", "D"), o["gina"],
           f"{C}/galleries/images/read", D_ID)


def test_group_membership_is_transitive_and_removal_is_immediate(world):
    w, o = world, world["oids"]
    # 6. outer Reader at the subscription; erin is in grp, grp in outer
    if not w["cli"].json("role", "assignment", "list", "--assignee", upn("alice")):
        pytest.skip("needs the gallery of the reference-case test")
    rid = assign(w, "outer", "Reader", SUB)
    erin = client(w, "erin")
    assert erin.galleries.get(RG, "G").name == "G"
    assert w["cli"].json("--as", upn("erin"), "sig", "show", "-g", RG, "-r", "G")["name"] == "G"
    assert w["cli"].json("ad", "group", "member", "check", "-g", "outer", "--member-id",
                         upn("erin"))["value"] is True
    # the membership removed: the same token is refused at once
    assert w["cli"]("ad", "group", "member", "remove", "-g", "grp", "--member-id",
                    upn("erin")).exit_code == 0
    denied(lambda: erin.galleries.get(RG, "G"), o["erin"], f"{C}/galleries/read", G_ID)
    assert w["cli"]("ad", "group", "member", "add", "-g", "grp", "--member-id",
                    upn("erin")).exit_code == 0
    assert erin.galleries.get(RG, "G").name == "G"
    # the assignment deleted: refused with the next request
    assert w["cli"]("role", "assignment", "delete", "--ids", rid).exit_code == 0
    denied(lambda: erin.galleries.get(RG, "G"), o["erin"], f"{C}/galleries/read", G_ID)
    cli_denied(w, "erin", ["sig", "show", "-g", RG, "-r", "G"], f"{C}/galleries/read", G_ID)


def test_owner_tokens_and_service_principals(world):
    w = world
    # the store owner's token (no assignee) has full access; nothing is assigned to it
    owner = w["cli"].json("token", "create")["accessToken"]
    c = ComputeManagementClient(**sdk_kwargs(w["server"].url, owner, polling_interval=0))
    c.galleries.begin_create_or_update(RG, "OwnerG", m.Gallery(location="local")).result()
    # a service principal: Contributor on the subscription by default (create-for-rbac);
    # its assignment deleted, it is refused
    sp = w["cli"].json("ad", "sp", "create-for-rbac", "--name", "rbac-bot")
    tok = w["cli"].json("token", "create", "--assignee", "rbac-bot")
    spc = ComputeManagementClient(**sdk_kwargs(w["server"].url, tok["accessToken"],
                                               polling_interval=0))
    assert spc.galleries.get(RG, "OwnerG").name == "OwnerG"
    w["cli"].json("role", "assignment", "list", "--assignee", sp["appId"])
    assert w["cli"]("role", "assignment", "delete", "--assignee", sp["appId"]).exit_code == 0
    with pytest.raises(HttpResponseError) as e:
        spc.galleries.get(RG, "OwnerG")
    assert e.value.status_code == 403 and e.value.error.code == "AuthorizationFailed"
    assert f"The client '{sp['appId']}' with object id '{tok['objectId']}'" in e.value.error.message
    # a group cannot get a token or be acted as
    r = w["cli"]("token", "create", "--assignee", "grp")
    assert r.exit_code == 3 and "is a group" in r.stderr
    r = w["cli"]("--as", "nobody@contoso.example", "sig", "list")
    assert r.exit_code == 4 and "Cannot find user or service principal" in r.stderr
    r = w["cli"]("--as", upn("alice"), "store", "stats")
    assert r.exit_code == 3 and "cannot run --as a principal" in r.stderr


def test_assignment_commands_refuse_bad_input(world):
    w = world
    for args, code, text in [
        (["--assignee", upn("bob"), "--role", "Chief", "--scope", SUB], 4, "Role 'Chief' doesn't exist."),
        (["--assignee", "ghost", "--role", "Reader", "--scope", SUB], 4, "Cannot find user"),
        (["--assignee", upn("bob"), "--role", "Reader", "--scope", "/nowhere"], 3, "not a valid scope"),
        (["--assignee", upn("bob"), "--role", "Reader", "--scope",
          "/subscriptions/11111111-1111-1111-1111-111111111111"], 4, "not found in the directory"),
    ]:
        r = w["cli"]("role", "assignment", "create", *args)
        assert r.exit_code == code and text in r.stderr, (args, r.exit_code, r.stderr)
    scope = f"/subscriptions/{ids.SUBSCRIPTION}/resourceGroups/other"
    assign(w, upn("bob"), "reader", scope)  # role names in any case, as ARM
    r = w["cli"]("role", "assignment", "create", "--assignee", upn("bob"), "--role", "Reader",
                 "--scope", scope.upper().replace("SUBSCRIPTIONS", "subscriptions"))
    assert r.exit_code == 5 and "already exists" in r.stderr
    r = w["cli"]("ad", "group", "member", "add", "-g", "grp", "--member-id", "outer")
    assert r.exit_code == 5 and "contain itself" in r.stderr


def test_linked_authorization_of_a_version_source(world):
    """The spec's source table: a snapshot source needs Write on the snapshot (Reader is not
    enough), a VHD with its storage account needs listKeys; both 403
    LinkedAuthorizationFailed naming the linked action and scope."""
    w, o = world, world["oids"]
    cli = w["cli"]
    if not cli.json("role", "assignment", "list", "--assignee", upn("alice")):
        pytest.skip("needs the gallery of the reference-case test")
    owner = ComputeManagementClient(**sdk_kwargs(
        w["server"].url, cli.json("token", "create")["accessToken"], polling_interval=0))
    owner.snapshots.begin_create_or_update("rbacsrc", "snap", m.Snapshot(
        location="local", creation_data=m.CreationData(create_option="Import",
                                                       source_uri="file://" + w["src"]))).result()
    snap_id = f"{SUB}/resourceGroups/rbacsrc/providers/{C}/snapshots/snap"
    cli.json("ad", "user", "create", "--user-principal-name", upn("hank"), "--display-name", "H",
             "--tenant", w["tenant"])
    w["oids"]["hank"] = cli.json("ad", "user", "show", "--id", upn("hank"))["id"]
    assign(w, upn("hank"), "Compute Gallery Artifacts Publisher", G_ID)
    assign(w, upn("hank"), "Reader", snap_id)
    hank = client(w, "hank")
    body = m.GalleryImageVersion(location="local", storage_profile=m.GalleryImageVersionStorageProfile(
        os_disk_image=m.GalleryOSDiskImage(source=m.GalleryDiskImageSource(id=snap_id))))
    target = f"{D_ID}/versions/2.0.0"
    with pytest.raises(HttpResponseError) as e:
        hank.gallery_image_versions.begin_create_or_update(RG, "G", "D", "2.0.0", body).result()
    assert e.value.status_code == 403 and e.value.error.code == "LinkedAuthorizationFailed"
    assert e.value.error.message == (
        f"The client '{upn('hank')}' with object id '{o['hank']}' has permission to perform "
        f"action '{C}/galleries/images/versions/write' on scope '{target}'; however, it does "
        f"not have permission to perform action '{C}/snapshots/write' on the linked scope(s) "
        f"'{snap_id}' or the linked scope(s) are invalid.")
    # a VHD in a storage account: listKeys on the account
    acct = f"{SUB}/resourceGroups/rbacsrc/providers/Microsoft.Storage/storageAccounts/acct"
    vhd = m.GalleryImageVersion(location="local", storage_profile=m.GalleryImageVersionStorageProfile(
        os_disk_image=m.GalleryOSDiskImage(source=m.GalleryDiskImageSource(
            uri="https://acct.blob.core.windows.net/c/os.vhd", storage_account_id=acct))))
    with pytest.raises(HttpResponseError) as e:
        hank.gallery_image_versions.begin_create_or_update(RG, "G", "D", "2.0.1", vhd).result()
    assert e.value.status_code == 403 and e.value.error.code == "LinkedAuthorizationFailed"
    assert "'Microsoft.Storage/storageAccounts/listKeys/action' on the linked scope(s) " \
           f"'{acct}'" in e.value.error.message
    # another gallery's version as the source: Read on it is needed, and enough
    owner.galleries.begin_create_or_update("rbacsrc", "G2", m.Gallery(location="local")).result()
    owner.gallery_images.begin_create_or_update("rbacsrc", "G2", "D", definition("D", "x")).result()
    owner.gallery_image_versions.begin_create_or_update("rbacsrc", "G2", "D", "1.0.0",
                                                        version_body(w)).result()
    src = f"{SUB}/resourceGroups/rbacsrc/providers/{C}/galleries/G2/images/D/versions/1.0.0"
    copy = m.GalleryImageVersion(location="local", storage_profile=m.GalleryImageVersionStorageProfile(
        source=m.GalleryArtifactVersionFullSource(id=src)))
    with pytest.raises(HttpResponseError) as e:
        hank.gallery_image_versions.begin_create_or_update(RG, "G", "D", "2.0.0", copy).result()
    assert e.value.status_code == 403 and e.value.error.code == "LinkedAuthorizationFailed"
    assert f"'{C}/galleries/images/versions/read' on the linked scope(s) '{src}'" in e.value.error.message
    assign(w, upn("hank"), "Reader", src)
    v = hank.gallery_image_versions.begin_create_or_update(RG, "G", "D", "2.0.0", copy).result()
    assert v.provisioning_state == "Succeeded" and v.storage_profile.source.id == src


def test_create_for_rbac_role_and_scopes_and_more_commands_under_as(world):
    w = world
    cli = w["cli"]
    r = cli("ad", "sp", "create-for-rbac", "--name", "bad-bot", "--role", "Nope")
    assert r.exit_code == 4 and "Role 'Nope' doesn't exist." in r.stderr
    assert cli.json("ad", "sp", "list", "--query", "[?displayName=='bad-bot']") == []
    scope_a = f"{SUB}/resourceGroups/vm-a"
    sp = cli.json("ad", "sp", "create-for-rbac", "--name", "vm-reader", "--role", "Reader",
                  "--scopes", scope_a)
    got = cli.json("role", "assignment", "list", "--assignee", sp["appId"])
    assert [(a["roleDefinitionName"], a["scope"]) for a in got] == [("Reader", scope_a)]
    assert cli.json("--as", sp["appId"], "vm", "list", "-g", "vm-a") == []
    oid = got[0]["principalId"]
    for args, action, scope in [
        (["vm", "list", "-g", "vm-b"], f"{C}/virtualMachines/read", f"{SUB}/resourceGroups/vm-b"),
        (["vm", "start", "-g", "vm-a", "-n", "x"], f"{C}/virtualMachines/start/action",
         f"{scope_a}/providers/{C}/virtualMachines/x"),
        (["snapshot", "delete", "-g", "vm-a", "-n", "s"], f"{C}/snapshots/delete",
         f"{scope_a}/providers/{C}/snapshots/s"),
    ]:
        r = cli("--as", "vm-reader", *args)
        assert r.exit_code == 14, (args, r.stderr)
        assert authorize.message(sp["appId"], oid, action, scope) in r.stderr
