"""Custom roles end to end: `role definition create|update|list|delete` through the CLI, a
custom role assigned and enforced on the REST API (the real SDK, a token per principal) and
under --as, writing roles under --as needing roleDefinitions/write on every assignable scope,
and the CLI's one-line refusals of hostile input with nothing changed."""

from __future__ import annotations

import json

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient

from imagestore.api.client import sdk_kwargs
from imagestore.identity import authorize
from tests.compute.conftest import small_os_disk
from tests.conftest import Cli

from .conftest import SUB, start_server

pytestmark = pytest.mark.one_pass

C = "Microsoft.Compute"
RG_ID = f"{SUB}/resourceGroups/cr"
G_ID = f"{RG_ID}/providers/{C}/galleries/G"
V_ID = f"{G_ID}/images/d/versions/1.0.0"
UPN = "lena@contoso.example"
ADMIN = "max@contoso.example"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rbac-custom")
    cli = Cli(str(tmp / "store"))
    cli.json("sig", "create", "-g", "cr", "-r", "G")
    cli.json("sig", "image-definition", "create", "-g", "cr", "-r", "G", "-i", "d", "-p", "P",
             "-f", "O", "-s", "S", "--os-type", "Linux")
    cli.json("sig", "image-version", "create", "-g", "cr", "-r", "G", "-i", "d", "-e", "1.0.0",
             "--os-vhd-uri", small_os_disk(tmp / "os.raw"))
    oids = {u: cli.json("ad", "user", "create", "--user-principal-name", u, "--display-name",
                        u.split("@")[0])["id"] for u in (UPN, ADMIN)}
    s = start_server(cli.store)
    yield {"cli": cli, "server": s, "oids": oids, "tmp": tmp}
    s.stop()
    if s.proc.poll() is None:
        s.proc.kill()


def role(name: str, actions: list[str], scopes: list[str], **more) -> str:
    return json.dumps({"Name": name, "Description": "test", "Actions": actions,
                       "AssignableScopes": scopes, **more})


def test_custom_role_through_the_cli_sdk_and_as(world):
    cli, w = world["cli"], world
    r = cli.json("role", "definition", "create", "--role-definition",
                 role("Version Reader", [f"{C}/galleries/images/versions/read"], [G_ID],
                      DataActions=[f"{C}/disks/download/action"]))
    assert r["roleType"] == "CustomRole" and r["assignableScopes"] == [G_ID]
    assert cli.json("role", "definition", "list", "--custom-role-only",
                    "--query", "[].roleName") == ["Version Reader"]
    assert len(cli.json("role", "definition", "list")) == 7
    assert cli.json("role", "definition", "list", "-n", r["name"])[0]["permissions"][0][
        "dataActions"] == [f"{C}/disks/download/action"]
    a = cli.json("role", "assignment", "create", "--assignee", UPN, "--role", "Version Reader",
                 "--scope", V_ID)
    assert a["roleDefinitionName"] == "Version Reader"
    assert a["roleDefinitionId"].endswith(r["name"])
    tok = cli.json("token", "create", "--assignee", UPN)["accessToken"]
    c = ComputeManagementClient(**sdk_kwargs(w["server"].url, tok, polling_interval=0))
    assert c.gallery_image_versions.get("cr", "G", "d", "1.0.0").name == "1.0.0"
    with pytest.raises(HttpResponseError) as e:
        c.gallery_images.get("cr", "G", "d")
    assert e.value.status_code == 403 and e.value.error.code == "AuthorizationFailed"
    assert f"action '{C}/galleries/images/read'" in e.value.error.message
    assert cli.json("--as", UPN, "sig", "image-version", "show", "-g", "cr", "-r", "G", "-i",
                    "d", "-e", "1.0.0")["name"] == "1.0.0"
    # outside its AssignableScopes: refused, nothing assigned
    x = cli("role", "assignment", "create", "--assignee", UPN, "--role", "Version Reader",
            "--scope", RG_ID)
    assert x.exit_code == 3, x.stderr
    assert x.stderr.startswith(f"error: The specified role definition with ID '{r['name']}' "
                               f"does not exist.") and x.stderr.count("\n") == 1
    assert len(cli.json("role", "assignment", "list", "--assignee", UPN)) == 1
    # an update takes effect with the next request: versions/read dropped, refused at once
    cli.json("role", "definition", "update", "--role-definition", json.dumps({
        "Name": "Version Reader", "Actions": [f"{C}/galleries/images/read"]}))
    with pytest.raises(HttpResponseError) as e:
        c.gallery_image_versions.get("cr", "G", "d", "1.0.0")
    assert e.value.status_code == 403
    cli.json("role", "definition", "update", "--role-definition", json.dumps({
        "Name": "Version Reader", "Actions": [f"{C}/galleries/images/*/read"]}))
    assert c.gallery_image_versions.get("cr", "G", "d", "1.0.0").name == "1.0.0"
    # deleting a role in use: 409 RoleDefinitionHasAssignments (exit 5); then deleted
    d = cli("role", "definition", "delete", "--name", "Version Reader")
    assert d.exit_code == 5 and "RoleDefinitionHasAssignments" in d.stderr, d.stderr
    assert cli("role", "assignment", "delete", "--ids", a["id"]).exit_code == 0
    assert cli("role", "definition", "delete", "--name", "version reader").exit_code == 0
    assert cli.json("role", "definition", "list", "--custom-role-only") == []
    with pytest.raises(HttpResponseError) as e:
        c.gallery_image_versions.get("cr", "G", "d", "1.0.0")
    assert e.value.status_code == 403


def test_writing_roles_under_as_needs_the_action_on_every_assignable_scope(world):
    cli, o = world["cli"], world["oids"]
    body = role("Gallery Ops", [f"{C}/galleries/*"], [G_ID, f"{SUB}/resourceGroups/other"])
    cli.json("role", "assignment", "create", "--assignee", ADMIN, "--role", "Owner",
             "--scope", G_ID)
    r = cli("--as", ADMIN, "role", "definition", "create", "--role-definition", body)
    assert r.exit_code == 14, r.stderr
    assert authorize.message(ADMIN, o[ADMIN], "Microsoft.Authorization/roleDefinitions/write",
                             f"{SUB}/resourceGroups/other") in r.stderr
    assert cli.json("role", "definition", "list", "--custom-role-only") == []
    # Contributor cannot write roles (notActions Microsoft.Authorization/*/Write)
    cli.json("role", "assignment", "create", "--assignee", ADMIN, "--role", "Contributor",
             "--scope", f"{SUB}/resourceGroups/other")
    r = cli("--as", ADMIN, "role", "definition", "create", "--role-definition", body)
    assert r.exit_code == 14 and "roleDefinitions/write" in r.stderr
    cli.json("role", "assignment", "create", "--assignee", ADMIN, "--role", "Owner",
             "--scope", f"{SUB}/resourceGroups/other")
    made = cli.json("--as", ADMIN, "role", "definition", "create", "--role-definition", body)
    assert made["createdBy"] and made["roleName"] == "Gallery Ops"
    # a role given as a file path, as az takes it
    f = world["tmp"] / "role.json"
    f.write_text(role("Gallery Ops", [f"{C}/galleries/read"], [G_ID]))
    assert cli.json("--as", ADMIN, "role", "definition", "update", "--role-definition",
                    str(f))["permissions"][0]["actions"] == [f"{C}/galleries/read"]
    assert cli("--as", ADMIN, "role", "definition", "delete", "-n", "Gallery Ops").exit_code == 0


@pytest.mark.parametrize("args, code, text", [
    (["create", "--role-definition", "{oops"], 3, "roleDefinition: not valid JSON"),
    (["create", "--role-definition", "@/no/such/file.json"], 3, "no such file"),
    (["create", "--role-definition", json.dumps({"Name": "x", "Actions": ["*/read"],
                                                 "AssignableScopes": ["/"]})],
     3, "root scope '/' cannot be used"),
    (["create", "--role-definition", role("y", ["Microsoft.Compute galleries read"], [G_ID])],
     3, "is not an operation"),
    (["create", "--role-definition", role("Owner", ["*"], [G_ID])], 5,
     "A custom role with the same name already exists"),
    (["update", "--role-definition", json.dumps({"Name": "Nope", "Actions": ["*"]})], 4,
     "Role 'Nope' doesn't exist."),
    (["update", "--role-definition", json.dumps({"Name": "Reader", "Actions": ["*"]})], 3,
     "is a built-in role"),
    (["delete", "--name", "Owner"], 3, "is a built-in role"),
    (["delete", "--name", "ghost"], 4, "Role 'ghost' doesn't exist."),
])
def test_hostile_role_input_is_one_line_and_changes_nothing(world, args, code, text):
    cli = world["cli"]
    before = cli.json("role", "definition", "list")
    r = cli("role", "definition", *args)
    assert r.exit_code == code, (r.exit_code, r.stderr)
    assert text in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert cli.json("role", "definition", "list") == before
    r = cli("role", "assignment", "create", "--assignee", UPN, "--role", "Chief",
            "--scope", G_ID)
    assert r.exit_code == 4 and "Role 'Chief' doesn't exist." in r.stderr
