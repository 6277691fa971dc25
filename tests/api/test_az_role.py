"""The real `az role assignment create|list|delete` and `az role definition list` against
`imagestore serve` (the REST `Microsoft.Authorization` routes), logged in as in test_az:
an Owner service principal assigns Reader to a user at a gallery, the user then reads it
through the SDK, a Contributor service principal is refused naming
`Microsoft.Authorization/roleAssignments/write`."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient

from imagestore.api.client import sdk_kwargs
from imagestore.api.tls import ensure_self_signed
from imagestore.home import Home
from imagestore.identity import TENANT

from .conftest import SUB, start_server
from .test_az import _az_or_skip, imagestore

pytestmark = pytest.mark.one_pass

G_ID = f"{SUB}/resourceGroups/rg/providers/Microsoft.Compute/galleries/g"


def test_az_role_assignment_create_list_delete(tmp_path, monkeypatch):
    az_bin = _az_or_skip()
    store = str(tmp_path / "store")
    Home.open(store).close()
    ca = ensure_self_signed(store, ["127.0.0.1"]).ca_cert
    monkeypatch.setenv("SSL_CERT_FILE", ca)
    server = start_server(store, "--tls-self-signed")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "ARM_"))}
    env.update({"AZURE_CONFIG_DIR": str(tmp_path / "azcfg"), "REQUESTS_CA_BUNDLE": ca,
                "AZURE_CORE_INSTANCE_DISCOVERY": "false",
                "AZURE_CORE_COLLECT_TELEMETRY": "false", "AZURE_CORE_ONLY_SHOW_ERRORS": "true",
                "AZURE_CORE_NO_COLOR": "true"})

    def az(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run([az_bin, *args], capture_output=True, text=True, env=env,
                           timeout=120)
        if ok:
            assert p.returncode == 0, (args, p.stdout, p.stderr)
        return p

    def login(sp: dict) -> None:
        az("login", "--service-principal", "-u", sp["appId"], "-p", sp["password"],
           "--tenant", TENANT, "-o", "none")

    try:
        owner = imagestore(store, "ad", "sp", "create-for-rbac", "--name", "az-owner",
                           "--role", "Owner", "--scopes", SUB)
        contrib = imagestore(store, "ad", "sp", "create-for-rbac", "--name", "az-contrib")
        bob = imagestore(store, "ad", "user", "create", "--user-principal-name",
                         "bob@contoso.example", "--display-name", "Bob")
        imagestore(store, "group", "create", "-n", "rg", "-l", "local")
        imagestore(store, "sig", "create", "-g", "rg", "-r", "g")
        az("cloud", "register", "--name", "imagestore",
           "--endpoint-resource-manager", server.url + "/")
        az("cloud", "set", "--name", "imagestore")
        who = ["--assignee-object-id", bob["id"], "--assignee-principal-type", "User"]
        # Contributor: refused, nothing written
        login(contrib)
        bad = az("role", "assignment", "create", *who, "--role", "Reader", "--scope", G_ID,
                 ok=False)
        assert bad.returncode != 0, bad.stdout
        assert "Microsoft.Authorization/roleAssignments/write" in bad.stderr, bad.stderr
        assert imagestore(store, "role", "assignment", "list", "--assignee", bob["id"]) == []
        # Owner: az looks Reader up by name (roleDefinitions $filter) and PUTs the assignment
        login(owner)
        roles = json.loads(az("role", "definition", "list", "--name", "Reader", "-o",
                              "json").stdout)
        assert [r["roleName"] for r in roles] == ["Reader"]
        made = json.loads(az("role", "assignment", "create", *who, "--role", "Reader",
                             "--scope", G_ID, "-o", "json").stdout)
        assert made["principalId"] == bob["id"] and made["scope"] == G_ID
        assert made["roleDefinitionId"].endswith("acdd72a7-3385-48ef-bd42-f606fba81ae7")
        cli_rows = imagestore(store, "role", "assignment", "list", "--assignee", bob["id"])
        assert [r["name"] for r in cli_rows] == [made["name"]]
        tok = imagestore(store, "token", "create", "--assignee", "bob@contoso.example")
        bob_c = ComputeManagementClient(**sdk_kwargs(server.url, tok["accessToken"],
                                                     connection_verify=ca))
        assert bob_c.galleries.get("rg", "g").name == "g"
        listed = json.loads(az("role", "assignment", "list", "--scope", G_ID,
                               "--fill-principal-name", "false", "-o", "json").stdout)
        assert [a["name"] for a in listed] == [made["name"]]
        az("role", "assignment", "delete", "--ids", made["id"])
        with pytest.raises(HttpResponseError) as e:
            bob_c.galleries.get("rg", "g")
        assert e.value.status_code == 403
        assert imagestore(store, "role", "assignment", "list", "--assignee", bob["id"]) == []
    finally:
        server.stop()
