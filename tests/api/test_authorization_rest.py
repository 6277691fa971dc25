"""RBAC over REST (``Microsoft.Authorization``) with the real azure-mgmt-authorization
client, one token per principal: Owner assigns, Contributor is refused, list and filters,
delete ends access at once, custom roles, and hostile bodies."""

from __future__ import annotations

import uuid

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.authorization.v2022_04_01 import models as am
from azure.mgmt.compute import ComputeManagementClient

from imagestore.api.client import sdk_kwargs
from tests.conftest import Cli

from .conftest import SUB

pytestmark = pytest.mark.one_pass

C = "Microsoft.Compute"
RG_ID = f"{SUB}/resourceGroups/authz"
G_ID = f"{RG_ID}/providers/{C}/galleries/G"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
READER_ID = f"{SUB}/providers/Microsoft.Authorization/roleDefinitions/{READER}"
API = "api-version=2022-04-01"


def upn(n: str) -> str:
    return f"{n}@authz.example"


@pytest.fixture(scope="module")
def w(mod_server):
    cli = Cli(mod_server.store)
    t = cli.json("ad", "tenant", "create", "--display-name", "Authz")["tenantId"]
    oids = {u: cli.json("ad", "user", "create", "--user-principal-name", upn(u),
                        "--display-name", u, "--tenant", t)["id"]
            for u in ("olivia", "conor", "bob")}
    cli.json("group", "create", "-n", "authz", "-l", "local")
    cli.json("sig", "create", "-g", "authz", "-r", "G")
    cli.json("role", "assignment", "create", "--assignee", upn("olivia"), "--role", "Owner",
             "--scope", RG_ID)
    cli.json("role", "assignment", "create", "--assignee", upn("conor"), "--role",
             "Contributor", "--scope", RG_ID)
    toks = {u: cli.json("token", "create", "--assignee", upn(u))["accessToken"] for u in oids}
    toks["owner"] = cli.json("token", "create")["accessToken"]  # the store owner: no RBAC
    return {"cli": cli, "oids": oids, "toks": toks, "url": mod_server.url}


def auth(w, who: str) -> AuthorizationManagementClient:
    return AuthorizationManagementClient(**sdk_kwargs(w["url"], w["toks"][who]))


def compute(w, who: str) -> ComputeManagementClient:
    return ComputeManagementClient(**sdk_kwargs(w["url"], w["toks"][who]))


def params(w, who: str, role: str = READER_ID) -> am.RoleAssignmentCreateParameters:
    return am.RoleAssignmentCreateParameters(role_definition_id=role,
                                             principal_id=w["oids"][who], principal_type="User")


def test_owner_assigns_bob_then_deletes_and_contributor_is_refused(w):
    bob = compute(w, "bob")
    with pytest.raises(HttpResponseError) as e:
        bob.galleries.get("authz", "G")
    assert e.value.status_code == 403
    # Contributor: notActions Microsoft.Authorization/*/Write
    name = str(uuid.uuid4())
    with pytest.raises(HttpResponseError) as e:
        auth(w, "conor").role_assignments.create(G_ID, name, params(w, "bob"))
    assert e.value.status_code == 403 and e.value.error.code == "AuthorizationFailed"
    assert "'Microsoft.Authorization/roleAssignments/write'" in e.value.error.message
    assert f"over scope '{G_ID}/providers/Microsoft.Authorization/roleAssignments/{name}'" \
        in e.value.error.message
    assert w["cli"].json("role", "assignment", "list", "--assignee", upn("bob")) == []
    # Owner on the resource group
    ra = auth(w, "olivia").role_assignments.create(G_ID, name, params(w, "bob"))
    assert ra.name == name and ra.scope == G_ID and ra.principal_id == w["oids"]["bob"]
    assert ra.id == f"{G_ID}/providers/Microsoft.Authorization/roleAssignments/{name}"
    assert ra.role_definition_id.endswith(READER) and ra.principal_type == "User"
    assert ra.created_by == w["oids"]["olivia"]
    assert bob.galleries.get("authz", "G").name == "G"
    # the same PUT again is a no-op; the same triple under another name is a conflict
    assert auth(w, "olivia").role_assignments.create(G_ID, name, params(w, "bob")).name == name
    with pytest.raises(ResourceExistsError) as e:
        auth(w, "olivia").role_assignments.create(G_ID, str(uuid.uuid4()), params(w, "bob"))
    assert e.value.error.code == "RoleAssignmentExists"
    with pytest.raises(ResourceExistsError) as e:  # the same name at another scope
        auth(w, "olivia").role_assignments.create(RG_ID, name, params(w, "olivia"))
    assert e.value.error.code == "RoleAssignmentExists" and "another scope" in str(e.value)
    # the CLI sees it
    cli_rows = w["cli"].json("role", "assignment", "list", "--assignee", upn("bob"))
    assert [r["name"] for r in cli_rows] == [name]
    # get, get_by_id, list, filters
    a = auth(w, "olivia")
    assert a.role_assignments.get(G_ID, name).principal_id == w["oids"]["bob"]
    assert a.role_assignments.get_by_id(ra.id).name == name
    at_g = [x.name for x in a.role_assignments.list_for_scope(G_ID)]
    assert name in at_g and len(at_g) == 3  # and olivia's, conor's above it
    at_rg = [x.name for x in a.role_assignments.list_for_scope(RG_ID, filter="atScope()")]
    assert name not in at_rg and len(at_rg) == 2
    mine = list(a.role_assignments.list_for_scope(
        RG_ID, filter=f"principalId eq '{w['oids']['bob']}'"))
    assert [x.name for x in mine] == [name]  # below the scope too
    assert name in [x.name for x in a.role_assignments.list_for_resource_group("authz")]
    # bob (Reader) may read assignments, not delete them
    assert name in [x.name for x in auth(w, "bob").role_assignments.list_for_scope(G_ID)]
    with pytest.raises(HttpResponseError) as e:
        auth(w, "bob").role_assignments.delete(G_ID, name)
    assert e.value.status_code == 403
    assert "'Microsoft.Authorization/roleAssignments/delete'" in e.value.error.message
    # delete: bob is refused at once
    gone = a.role_assignments.delete(G_ID, name)
    assert gone.name == name
    with pytest.raises(HttpResponseError) as e:
        bob.galleries.get("authz", "G")
    assert e.value.status_code == 403
    assert a.role_assignments.delete(G_ID, name) is None  # 204: nothing there
    with pytest.raises(HttpResponseError) as e:
        a.role_assignments.get(G_ID, name)
    assert e.value.status_code == 404 and e.value.error.code == "RoleAssignmentNotFound"


def test_role_definitions_built_in_and_custom(w):
    a = auth(w, "olivia")
    # reads are checked like the CLI's (roleDefinitions/read): olivia is Owner of RG_ID only
    with pytest.raises(HttpResponseError) as e:
        list(a.role_definitions.list(SUB))
    assert e.value.status_code == 403
    every = list(a.role_definitions.list(RG_ID))
    by_name = {r.role_name: r for r in every}
    assert by_name["Reader"].role_type == "BuiltInRole"
    assert by_name["Reader"].permissions[0].actions == ["*/read"]
    assert by_name["Contributor"].permissions[0].not_actions[1] == \
        "Microsoft.Authorization/*/Write"
    only = list(a.role_definitions.list(RG_ID, filter="roleName eq 'Owner'"))
    assert [r.name for r in only] == ["8e3af657-a8ff-443c-a75c-2fe8c4bcb635"]
    assert a.role_definitions.get(RG_ID, READER).role_name == "Reader"
    by_id = a.role_definitions.get_by_id(f"{RG_ID}/providers/Microsoft.Authorization/"
                                         f"roleDefinitions/{READER}")
    assert by_id.role_name == "Reader" and by_id.id.startswith(SUB + "/providers/")
    rid = str(uuid.uuid4())
    body = am.RoleDefinition(role_name="Gallery Peeker", description="reads galleries",
                             role_type="CustomRole",
                             permissions=[am.Permission(actions=[f"{C}/galleries/read"])],
                             assignable_scopes=[RG_ID])
    # Contributor may not write role definitions
    with pytest.raises(HttpResponseError) as e:
        auth(w, "conor").role_definitions.create_or_update(RG_ID, rid, body)
    assert e.value.status_code == 403
    assert "'Microsoft.Authorization/roleDefinitions/write'" in e.value.error.message
    made = a.role_definitions.create_or_update(RG_ID, rid, body)
    assert made.name == rid and made.role_type == "CustomRole"
    assert made.assignable_scopes == [RG_ID]
    customs = list(a.role_definitions.list(RG_ID, filter="type eq 'CustomRole'"))
    assert [r.role_name for r in customs] == ["Gallery Peeker"]
    assert "Gallery Peeker" in w["cli"].json("role", "definition", "list", "--custom-role-only",
                                             "--query", "[].roleName")
    # assign it to bob over REST: bob may read the gallery
    name = str(uuid.uuid4())
    a.role_assignments.create(G_ID, name, params(w, "bob", made.id))
    assert compute(w, "bob").galleries.get("authz", "G").name == "G"
    # outside its assignable scopes: RoleDefinitionDoesNotExist (the CLI's rule)
    with pytest.raises(HttpResponseError) as e:
        auth(w, "owner").role_assignments.create(SUB, str(uuid.uuid4()),
                                                 params(w, "bob", made.id))
    assert e.value.status_code == 400 and e.value.error.code == "RoleDefinitionDoesNotExist"
    assert "assignable only at or under" in e.value.error.message
    # in use: not deletable; then unassigned and deleted
    with pytest.raises(HttpResponseError) as e:
        a.role_definitions.delete(RG_ID, rid)
    assert e.value.status_code == 409 and e.value.error.code == "RoleDefinitionHasAssignments"
    a.role_assignments.delete(G_ID, name)
    assert a.role_definitions.delete(RG_ID, rid).name == rid
    assert list(a.role_definitions.list(RG_ID, filter="type eq 'CustomRole'")) == []
    # built-ins cannot be changed
    with pytest.raises(HttpResponseError) as e:
        a.role_definitions.delete(RG_ID, READER)
    assert e.value.status_code == 400 and e.value.error.code == "BuiltInRoleNotModifiable"


def test_hostile_requests(w):
    tok = w["toks"]["olivia"]
    h = {"Authorization": f"Bearer {tok}"}
    base = w["url"] + G_ID + "/providers/Microsoft.Authorization"
    good = {"properties": {"roleDefinitionId": READER_ID, "principalId": w["oids"]["bob"]}}
    cases = [
        (f"/roleAssignments/not-a-guid?{API}", good, 400, "InvalidRoleAssignmentId"),
        (f"/roleAssignments/{uuid.uuid4()}?{API}", {"properties": "x"}, 400, None),
        (f"/roleAssignments/{uuid.uuid4()}?{API}", [1, 2], 400, None),
        (f"/roleAssignments/{uuid.uuid4()}?{API}",
         {"properties": {"roleDefinitionId": READER_ID, "principalId": 7}}, 400, None),
        (f"/roleAssignments/{uuid.uuid4()}?{API}",
         {"properties": {"roleDefinitionId": f"{SUB}/providers/Microsoft.Authorization/"
                         f"roleDefinitions/{uuid.uuid4()}", "principalId": w["oids"]["bob"]}},
         400, "RoleDefinitionDoesNotExist"),
        (f"/roleAssignments/{uuid.uuid4()}?{API}",
         {"properties": {"roleDefinitionId": READER_ID, "principalId": str(uuid.uuid4())}},
         404, "PrincipalNotFound"),
        (f"/roleAssignments/{uuid.uuid4()}", good, 400, "MissingApiVersionParameter"),
        (f"/roleAssignments/{uuid.uuid4()}?api-version=1999-01-01", good, 400,
         "InvalidApiVersionParameter"),
        (f"/roleDefinitions/{uuid.uuid4()}?{API}",
         {"properties": {"roleName": "x", "permissions": [{"actions": ["bad action!"]}],
                         "assignableScopes": [RG_ID]}}, 400, None),
        (f"/roleDefinitions/{uuid.uuid4()}?{API}",
         {"properties": {"roleName": "x", "permissions": [{"actions": ["*"]}],
                         "assignableScopes": ["/"]}}, 400, None),
        (f"/roleDefinitions/{uuid.uuid4()}?{API}",
         {"properties": {"roleName": "Reader", "permissions": [{"actions": ["*/read"]}],
                         "assignableScopes": [RG_ID]}}, 409, "RoleDefinitionWithSameNameExists"),
        (f"/roleDefinitions/{uuid.uuid4()}?{API}",
         {"properties": {"roleName": "y", "permissions": [{"actions": ["*"], "evil": 1}],
                         "assignableScopes": [RG_ID]}}, 400, None),
    ]
    for path, body, status, code in cases:
        r = httpx.put(base + path, json=body, headers=h, timeout=30)
        assert r.status_code == status, (path, body, r.text)
        err = r.json()["error"]
        assert code is None or err["code"] == code, (path, err)
        assert "Traceback" not in r.text
    r = httpx.get(base + f"/roleAssignments?{API}&$filter=evil eq 'x'", headers=h)
    assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidFilter"
    r = httpx.get(w["url"] + "/subscriptions/nope/providers/Microsoft.Authorization/"
                  f"roleAssignments?{API}", headers=h)
    assert r.status_code in (403, 404)
    r = httpx.get(base + f"/roleAssignments?{API}")
    assert r.status_code == 401
    # the root: built-in definitions by id need only a token; a principal's write is refused
    root = w["url"] + "/providers/Microsoft.Authorization/roleDefinitions/"
    r = httpx.get(root + f"{READER}?{API}", headers=h)
    assert r.status_code == 200 and r.json()["properties"]["roleName"] == "Reader", r.text
    r = httpx.put(root + f"{uuid.uuid4()}?{API}", headers=h, json={"properties": {
        "roleName": "z", "permissions": [{"actions": ["*"]}], "assignableScopes": [RG_ID]}})
    assert r.status_code == 403 and "over scope '/'" in r.json()["error"]["message"], r.text
    # nothing was created by any of it
    assert w["cli"].json("role", "assignment", "list", "--assignee", upn("bob")) == []
    assert w["cli"].json("role", "definition", "list", "--custom-role-only") == []
