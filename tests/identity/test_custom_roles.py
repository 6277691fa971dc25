"""Custom role definitions on both gallery backends: az's JSON shape, syntax checks of every
operation string, wildcard semantics identical to the built-ins', AssignableScopes enforced on
assignment, update and delete with ARM's RoleDefinitionHasAssignments."""

from __future__ import annotations

import json

import pytest

from imagestore.errors import Conflict, InvalidArgument, NotFound
from imagestore.gallery import ids
from imagestore.identity import assignments, authorize, custom_roles, roles

pytestmark = pytest.mark.one_pass

SUB = f"/subscriptions/{ids.SUBSCRIPTION}"
RG = f"{SUB}/resourceGroups/rg"
G = f"{RG}/providers/Microsoft.Compute/galleries/g"
V = f"{G}/images/d/versions/1.0.0"
C = "Microsoft.Compute"


@pytest.fixture
def dr(directory_of):
    return directory_of


def role_json(name: str = "Version Reader", actions=("*/read",), scopes=(RG,), **more) -> str:
    return json.dumps({"Name": name, "Description": "d", "Actions": list(actions),
                       "AssignableScopes": list(scopes), **more})


def test_create_list_and_match_like_builtins(dr, tmp_path):
    out = custom_roles.create(dr, role_json(NotActions=["Microsoft.Compute/galleries/delete"],
                                            DataActions=["Microsoft.Compute/disks/download/action"]))
    assert out["roleType"] == "CustomRole" and out["roleName"] == "Version Reader"
    assert out["assignableScopes"] == [RG]
    assert out["id"] == f"{SUB}/providers/Microsoft.Authorization/roleDefinitions/{out['name']}"
    assert out["permissions"] == [{"actions": ["*/read"],
                                   "notActions": ["Microsoft.Compute/galleries/delete"],
                                   "dataActions": ["Microsoft.Compute/disks/download/action"],
                                   "notDataActions": []}]
    assert {"createdOn", "createdBy", "updatedOn", "updatedBy"} <= set(out)
    # found by name in any case, by GUID and by definition id; listed after the built-ins
    r = roles.get("version READER", dr)
    assert roles.get(out["name"], dr) == r == roles.get(out["id"], dr)
    assert [x.name for x in roles.list_all(None, dr)][-1] == "Version Reader"
    assert [x.name for x in roles.list_all(None, dr, custom_only=True)] == ["Version Reader"]
    assert roles.find("Version Reader") is None  # without the directory: built-ins only
    # the same matching as the built-ins: '*/read' is Reader's pattern
    for action in (f"{C}/galleries/images/versions/read", f"{C}/galleries/write",
                   "Microsoft.Authorization/roleAssignments/read", f"{C}/galleries/delete"):
        want = roles.READER.allows(action)
        assert r.allows(action) == want, action
    # a file, @file and camelCase keys are az's forms too
    f = tmp_path / "role.json"
    f.write_text(json.dumps({"name": "From File", "actions": [f"{C}/galleries/*"],
                             "assignableScopes": [SUB]}))
    assert custom_roles.create(dr, str(f))["roleName"] == "From File"
    f.write_text(role_json("At File"))
    assert custom_roles.create(dr, f"@{f}")["roleName"] == "At File"


def test_wildcards_mean_what_they_mean_for_builtins(dr):
    custom_roles.create(dr, role_json("Writer", ["*/write"], [SUB]))
    custom_roles.create(dr, role_json("Nothing", ["*"], [SUB], NotActions=["*"]))
    custom_roles.create(dr, role_json("Mid", [f"{C}/galleries/*/read"], [SUB]))
    w, n, mid = (roles.get(x, dr) for x in ("Writer", "Nothing", "Mid"))
    # '*/write' is every write, Microsoft.Authorization's included (as Owner's '*' would be),
    # and no read
    assert w.allows("Microsoft.Authorization/roleAssignments/write")
    assert w.allows(f"{C}/galleries/images/versions/write")
    assert not w.allows(f"{C}/galleries/read") and not w.allows(f"{C}/galleries/share/action")
    assert not any(n.allows(a) for a in (f"{C}/galleries/read", "x/y/write", "*"))
    # '*' spans '/': galleries/*/read covers definitions and versions, not the gallery
    assert mid.allows(f"{C}/galleries/images/versions/read")
    assert not mid.allows(f"{C}/galleries/read") and not mid.allows(f"{C}/galleries/images/write")
    assert mid.allows(f"{C.lower()}/GALLERIES/images/READ")


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('"Reader"', "must be a JSON object"),
    (role_json(Extra=1), "unknown property 'Extra'"),
    (json.dumps({"Actions": ["*/read"], "AssignableScopes": [RG]}), "Name"),
    (json.dumps({"Name": "x", "Actions": ["*/read"]}), "please provide 'assignableScopes'"),
    (role_json(scopes=["/"]), "root scope '/' cannot be used by a custom role"),
    (role_json(scopes=[]), "AssignableScopes: required"),
    (json.dumps({"Name": "x", "Actions": ["*/read"], "AssignableScopes": SUB}),
     "AssignableScopes: required"),
    (role_json(scopes=["/nowhere"]), "not a valid scope"),
    (role_json(actions=[]), "at least one action or data action"),
    (role_json(actions=["read"]), "is not an operation (Namespace/type/…/verb, or *)"),
    (role_json(actions=["Microsoft.Compute/galleries"]), "does not end in an operation verb"),
    (role_json(actions=["Microsoft.Compute/galleries read"]), "segment 'galleries read'"),
    (role_json(actions=["Microsoft.Compute//read"]), "segment ''"),
    (role_json(actions=["Microsoft.Compute/galleries/read\n"]), "segment 'read\\n'"),
    (role_json(actions=[["*/read"]]), "is not an operation"),
    (role_json(actions=[""]), "is not an operation"),
    (role_json(actions=["a/" * 300 + "read"]), "is not an operation"),
    (role_json(actions=[f"{C}/galleries/read"] * 1025), "at most 1024"),
    (role_json(NotActions="*"), "NotActions: must be a list"),
    (role_json("x\u0007y"), "printable characters"),
    (role_json("n" * 257), "printable characters"),
])
def test_malformed_role_definitions_are_refused(dr, text, message):
    with pytest.raises(InvalidArgument) as e:
        custom_roles.create(dr, text)
    assert message in str(e.value), str(e.value)
    assert roles.list_all(None, dr, custom_only=True) == []


def test_names_unique_and_unknown_subscriptions(dr):
    with pytest.raises(Conflict) as e:
        custom_roles.create(dr, role_json("reader"))
    assert e.value.code == "RoleDefinitionWithSameNameExists"
    custom_roles.create(dr, role_json("Mine"))
    with pytest.raises(Conflict):
        custom_roles.create(dr, role_json("MINE"))
    with pytest.raises(NotFound) as e:
        custom_roles.create(dr, role_json(scopes=["/subscriptions/11111111-1111-1111-1111-111111111111"]))
    assert e.value.code == "SubscriptionNotFound"
    with pytest.raises(InvalidArgument):
        custom_roles.create(dr, "@/nonexistent/role.json")


def test_assignable_scopes_update_and_delete(dr):
    home = dr.home
    out = custom_roles.create(dr, role_json("G Reader", [f"{C}/galleries/*"], [G]))
    # assignable at G and below, not above it nor beside it
    a = assignments.create(dr, home, "u@x.example", "G Reader", V)
    with pytest.raises(InvalidArgument) as e:
        assignments.create(dr, home, "u@x.example", "G Reader", RG)
    assert e.value.code == "RoleDefinitionDoesNotExist"
    assert f"The specified role definition with ID '{out['name']}' does not exist." in str(e.value)
    with pytest.raises(InvalidArgument):
        assignments.create(dr, home, "u@x.example", "G Reader", f"{G}x")
    oid = dr.user("u@x.example")[0]
    assert authorize.allowed(dr, oid, f"{C}/galleries/images/versions/read", V)
    assert not authorize.allowed(dr, oid, f"{C}/galleries/images/versions/read", f"{G}x")
    assert a["roleDefinitionName"] == "G Reader"
    assert assignments.list_(dr, home, role="G Reader")[0]["name"] == a["name"]
    # an update changes access with the next check
    custom_roles.update(dr, json.dumps({"Name": "G Reader", "Actions": [f"{C}/galleries/read"]}))
    assert not authorize.allowed(dr, oid, f"{C}/galleries/images/versions/read", V)
    assert roles.get("G Reader", dr).assignable_scopes == (G,)  # omitted scopes stay
    # narrowing the scopes below an assignment is refused; renaming by Id works
    with pytest.raises(Conflict) as e:
        custom_roles.update(dr, json.dumps({"Id": out["id"], "Actions": ["*/read"],
                                            "AssignableScopes": [f"{G}/images/other"]}))
    assert e.value.code == "RoleDefinitionHasAssignments"
    custom_roles.update(dr, json.dumps({"Id": out["name"], "Name": "Gallery Reader 2",
                                        "Actions": ["*/read"]}))
    assert roles.find("G Reader", dr) is None and roles.get("Gallery Reader 2", dr)
    # delete: refused while assigned, then done; built-ins never
    with pytest.raises(Conflict) as e:
        custom_roles.delete(dr, "Gallery Reader 2")
    assert e.value.code == "RoleDefinitionHasAssignments"
    assignments.delete(dr, home, ids=[a["id"]])
    assert custom_roles.delete(dr, out["name"])["roleName"] == "Gallery Reader 2"
    assert roles.list_all(None, dr, custom_only=True) == []
    with pytest.raises(NotFound):
        custom_roles.delete(dr, out["name"])
    with pytest.raises(InvalidArgument) as e:
        custom_roles.delete(dr, "Owner")
    assert "built-in role" in str(e.value)
    with pytest.raises(InvalidArgument):
        custom_roles.update(dr, json.dumps({"Name": "Reader", "Actions": ["*"]}))
    with pytest.raises(NotFound) as e:
        assignments.create(dr, home, "u@x.example", "Gallery Reader 2", V)
    assert "doesn't exist" in str(e.value)
