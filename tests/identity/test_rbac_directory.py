"""The directory, role matching, assignments and the authorization decision on both gallery
backends (SQLite, and PostgreSQL through the seam), and the REST route → action mapping."""

from __future__ import annotations

import pytest

from imagestore.api.authz import action_and_scope
from imagestore.errors import AuthorizationFailed, Conflict
from imagestore.gallery import ids
from imagestore.identity import assignments, authorize, directory, roles

pytestmark = pytest.mark.one_pass

SUB = f"/subscriptions/{ids.SUBSCRIPTION}"
RG = f"{SUB}/resourceGroups/rg"
G = f"{RG}/providers/Microsoft.Compute/galleries/g"
D = f"{G}/images/d"
V = f"{D}/versions/1.0.0"
C = "Microsoft.Compute"


@pytest.fixture
def dr(directory_of):
    return directory_of


def test_builtin_roles_verbatim_and_matching():
    assert [r.name for r in roles.BUILT_IN] == [
        "Owner", "Contributor", "Reader", "Compute Gallery Sharing Admin",
        "Compute Gallery Artifacts Publisher", "Compute Gallery Image Reader"]
    assert roles.get("reader").guid == "acdd72a7-3385-48ef-bd42-f606fba81ae7"
    assert roles.get("/subscriptions/x/providers/Microsoft.Authorization/roleDefinitions/"
                     "b24988ac-6180-42a0-ab88-20f7382dd24c") is roles.CONTRIBUTOR
    assert roles.READER.allows("microsoft.compute/GALLERIES/images/versions/read")
    assert not roles.READER.allows(f"{C}/galleries/write")
    assert roles.CONTRIBUTOR.allows(f"{C}/galleries/images/versions/delete")
    assert not roles.CONTRIBUTOR.allows(f"{C}/galleries/share/action")  # notActions
    assert not roles.CONTRIBUTOR.allows("Microsoft.Authorization/roleAssignments/write")
    assert roles.CONTRIBUTOR.allows("Microsoft.Authorization/roleAssignments/read")
    assert roles.OWNER.allows(f"{C}/galleries/share/action")
    assert roles.SHARING_ADMIN.allows(f"{C}/galleries/share/action")
    assert not roles.SHARING_ADMIN.allows(f"{C}/galleries/read")
    assert roles.ARTIFACTS_PUBLISHER.allows(f"{C}/galleries/images/versions/write")
    assert not roles.ARTIFACTS_PUBLISHER.allows(f"{C}/galleries/share/action")
    assert not roles.IMAGE_READER.allows(f"{C}/galleries/read")
    j = roles.IMAGE_READER.to_json(ids.SUBSCRIPTION)
    assert j["permissions"][0]["actions"] == [f"{C}/galleries/images/read",
                                              f"{C}/galleries/images/versions/read"]
    assert j["roleType"] == "BuiltInRole" and j["name"] == "cf7c76d2-98a3-4358-a134-615aa78bf44d"


def test_inheritance_groups_and_revocation(dr):
    t = directory.create_tenant(dr, "Contoso")["tenantId"]
    u = directory.create_user(dr, "u@contoso.example", "U", t)["id"]
    directory.create_group(dr, "inner", tenant_ident=t)
    directory.create_group(dr, "outer", tenant_ident=t)
    directory.add_member(dr, dr.home, "inner", "u@contoso.example")
    directory.add_member(dr, dr.home, "outer", "inner")
    with pytest.raises(Conflict):
        directory.add_member(dr, dr.home, "inner", "outer")  # a cycle
    assert directory.is_member(dr, dr.home, "outer", u)

    read_v = f"{C}/galleries/images/versions/read"
    for scope in (SUB, RG, G, D, V):  # an assignment at each level covers the version
        a = assignments.create(dr, dr.home, "outer", "Reader", scope)
        assert authorize.allowed(dr, u, read_v, V)
        assert authorize.allowed(dr, u, f"{C}/galleries/read", G) == (scope in (SUB, RG, G))
        assignments.delete(dr, dr.home, ids=[a["id"]])
        assert not authorize.allowed(dr, u, read_v, V)
    # scopes compare case-insensitively; a sibling is not covered
    assignments.create(dr, dr.home, u, "Reader", D.upper().replace("/SUBSCRIPTIONS/", "/subscriptions/"))
    assert authorize.allowed(dr, u, read_v, V)
    assert not authorize.allowed(dr, u, read_v, f"{G}/images/d2/versions/1.0.0")
    assert not authorize.allowed(dr, u, read_v, f"{G}/images/dd/versions/1.0.0")  # prefix only
    with pytest.raises(AuthorizationFailed) as e:
        authorize.check(dr, u, f"{C}/galleries/images/versions/write", V, client="u@contoso.example")
    assert e.value.code == "AuthorizationFailed" and e.value.exit_code == 14
    assert e.value.message == (
        f"The client 'u@contoso.example' with object id '{u}' does not have authorization to "
        f"perform action '{C}/galleries/images/versions/write' over scope '{V}' or the scope "
        f"is invalid. If access was recently granted, please refresh your credentials.")
    # notActions subtract within a role only: Contributor cannot share, Sharing Admin can
    assignments.create(dr, dr.home, "inner", "Contributor", RG)
    assert not authorize.allowed(dr, u, f"{C}/galleries/share/action", G)
    assignments.create(dr, dr.home, "inner", "Compute Gallery Sharing Admin", G)
    assert authorize.allowed(dr, u, f"{C}/galleries/share/action", G)
    directory.remove_member(dr, dr.home, "inner", u)
    assert not authorize.allowed(dr, u, f"{C}/galleries/share/action", G)
    listed = assignments.list_(dr, dr.home, scope=V, include_inherited=True)
    assert {a["roleDefinitionName"] for a in listed} == {"Reader", "Contributor",
                                                         "Compute Gallery Sharing Admin"}


def test_route_actions_and_scopes():
    P = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute"
    cases = [
        ("GET", P + "/galleries/{galleryName}", G, (f"{C}/galleries/read", G)),
        ("PUT", P + "/galleries/{g}/images/{i}/versions/{v}", V,
         (f"{C}/galleries/images/versions/write", V)),
        ("PATCH", P + "/galleries/{g}", G, (f"{C}/galleries/write", G)),
        ("DELETE", P + "/galleries/{g}/images/{i}", D, (f"{C}/galleries/images/delete", D)),
        ("GET", P + "/galleries", f"{RG}/providers/{C}/galleries",
         (f"{C}/galleries/read", f"{RG}/providers/{C}/galleries")),
        ("POST", P + "/disks/{d}/beginGetAccess", f"{RG}/providers/{C}/disks/d/beginGetAccess",
         (f"{C}/disks/beginGetAccess/action", f"{RG}/providers/{C}/disks/d")),
        ("PUT", "/subscriptions/{s}/resourceGroups/{rg}", RG,
         ("Microsoft.Resources/subscriptions/resourceGroups/write", RG)),
        ("GET", "/subscriptions/{s}/providers/Microsoft.Compute/locations/{l}/operations/{o}",
         f"{SUB}/providers/{C}/locations/local/operations/x", None),
        ("GET", "/subscriptions", "/subscriptions", None),
    ]
    for method, template, path, want in cases:
        assert action_and_scope(method, template, path) == want, (method, template)


def test_linked_actions_follow_the_source_table():
    from imagestore.api.authz import linked

    ver = "/subscriptions/{s}/resourceGroups/{r}/providers/Microsoft.Compute/galleries/{g}/images/{i}/versions/{galleryImageVersionName}"
    rg = f"{SUB}/resourceGroups/src/providers"
    vm, disk, snap = f"{rg}/{C}/virtualMachines/vm", f"{rg}/{C}/disks/d", f"{rg}/{C}/snapshots/s"
    img, acct = f"{rg}/{C}/images/mi", f"{rg}/Microsoft.Storage/storageAccounts/a"
    sp = {"source": {"virtualMachineId": vm}, "osDiskImage": {"source": {"id": snap}},
          "dataDiskImages": [{"lun": 0, "source": {"id": disk}},
                             {"lun": 1, "source": {"uri": "https://a/c/x.vhd", "storageAccountId": acct}}]}
    assert linked(ver, {"properties": {"storageProfile": sp}}) == [
        (f"{C}/virtualMachines/write", vm), (f"{C}/snapshots/write", snap),
        (f"{C}/disks/write", disk), ("Microsoft.Storage/storageAccounts/listKeys/action", acct)]
    assert linked(ver, {"properties": {"storageProfile": {"source": {"id": img}}}}) == [
        (f"{C}/images/read", img)]
    # a disk from a gallery version needs read of it; the body's own top-level id is ignored
    disk_t = "/subscriptions/{s}/resourceGroups/{r}/providers/Microsoft.Compute/disks/{diskName}"
    assert linked(disk_t, {"id": disk, "properties": {"creationData": {
        "galleryImageReference": {"id": V}}}}) == [(f"{C}/galleries/images/versions/read", V)]
    assert linked(disk_t, {"properties": {"creationData": {"sourceUri": "file:///x"}}}) == []
