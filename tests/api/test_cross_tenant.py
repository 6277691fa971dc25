"""Cross-tenant access (reference case 25) on a real `imagestore serve`: an app registered in
the local tenant T1 and consented into T2 (`ad sp create --id APP --tenant T2`) signs in to
each tenant at the token endpoint (`tid`, its object id there), and REST requests carry its
other tokens in `x-ms-authorization-auxiliary` — validated (at most 3, this store's, not
expired, the same app) before anything runs."""

from __future__ import annotations

import time

import httpx
import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as m

from imagestore.api.client import sdk_kwargs
from imagestore.identity import TENANT, tokens
from tests.compute.conftest import small_os_disk
from tests.conftest import Cli

from .conftest import SUB, start_server

pytestmark = pytest.mark.one_pass

C = "Microsoft.Compute"
AUX = "x-ms-authorization-auxiliary"
ARM_SCOPE = "https://management.azure.com/.default"
G_ID = f"{SUB}/resourceGroups/pub/providers/{C}/galleries/G"
V_ID = f"{G_ID}/images/d/versions/1.0.0"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("xt")
    cli = Cli(str(tmp / "store"))
    cli.json("sig", "create", "-g", "pub", "-r", "G")
    cli.json("sig", "image-definition", "create", "-g", "pub", "-r", "G", "-i", "d", "-p", "P",
             "-f", "O", "-s", "S", "--os-type", "Linux")
    cli.json("sig", "image-version", "create", "-g", "pub", "-r", "G", "-i", "d", "-e",
             "1.0.0", "--os-vhd-uri", small_os_disk(tmp / "os.raw"))
    t2 = cli.json("ad", "tenant", "create", "--display-name", "Tenant Two")
    app = cli.json("ad", "sp", "create-for-rbac", "--name", "xt-app", "--skip-assignment")
    obj2 = cli.json("ad", "sp", "create", "--id", app["appId"], "--tenant", t2["tenantId"])
    cli.json("role", "assignment", "create", "--assignee", app["appId"], "--role", "Reader",
             "--scope", G_ID)
    s = start_server(cli.store)
    yield {"cli": cli, "server": s, "t2": t2["tenantId"], "domain2": t2["defaultDomain"],
           "app": app, "oid2": obj2["id"], "tmp": tmp}
    s.stop()
    if s.proc.poll() is None:
        s.proc.kill()


def sign_in(w, tenant: str) -> dict:
    r = httpx.post(f"{w['server'].url}/{tenant}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": w["app"]["appId"],
        "client_secret": w["app"]["password"], "scope": ARM_SCOPE}, timeout=30)
    return {"status": r.status_code, **r.json()}


def test_sign_in_per_tenant_and_the_cli(world):
    w = world
    cli = w["cli"]
    t1 = sign_in(w, TENANT)
    t2 = sign_in(w, w["t2"])
    by_domain = sign_in(w, w["domain2"])
    assert t1["status"] == t2["status"] == by_domain["status"] == 200
    c1 = tokens.verify(cli.store, t1["access_token"])
    c2 = tokens.verify(cli.store, t2["access_token"])
    assert (c1.tid, c2.tid) == (TENANT, w["t2"])
    assert c2.oid == w["oid2"] != c1.oid
    assert c1.raw["appid"] == c2.raw["appid"] == w["app"]["appId"]
    assert tokens.verify(cli.store, by_domain["access_token"]).oid == w["oid2"]
    # a tenant the app was not consented into, and an unknown tenant
    t3 = cli.json("ad", "tenant", "create", "--display-name", "Three")["tenantId"]
    r = sign_in(w, t3)
    assert r["status"] == 400 and r["error_codes"] == [700016]
    r = sign_in(w, "44444444-4444-4444-4444-444444444444")
    assert r["status"] == 400 and r["error_codes"] == [90002]
    d = httpx.get(f"{w['server'].url}/{w['t2']}/v2.0/.well-known/openid-configuration").json()
    assert d["token_endpoint"].endswith(f"/{w['t2']}/oauth2/v2.0/token")
    # the CLI: a token per tenant, consent refused twice or into an unknown tenant
    tok = cli.json("token", "create", "--assignee", w["app"]["appId"], "--tenant", w["t2"])
    assert (tok["tenant"], tok["objectId"]) == (w["t2"], w["oid2"])
    r = cli("token", "create", "--assignee", w["app"]["appId"], "--tenant", t3)
    assert r.exit_code == 4 and "AADSTS700016" in r.stderr
    r = cli("ad", "sp", "create", "--id", w["app"]["appId"], "--tenant", w["t2"])
    assert r.exit_code == 5 and "already exists" in r.stderr
    r = cli("ad", "sp", "create", "--id", w["app"]["appId"], "--tenant", "nowhere.example")
    assert r.exit_code == 4 and "tenant 'nowhere.example' not found" in r.stderr
    r = cli("ad", "sp", "create", "--id", "no-such-app", "--tenant", w["t2"])
    assert r.exit_code == 4


def test_auxiliary_header_is_validated_before_anything_runs(world):
    w = world
    t1 = sign_in(w, TENANT)["access_token"]
    t2 = sign_in(w, w["t2"])["access_token"]
    url = f"{G_ID}?api-version=2024-03-03"
    ok = httpx.get(w["server"].url + url, headers={"Authorization": f"Bearer {t1}",
                                                   AUX: f"Bearer {t2}"})
    assert ok.status_code == 200, ok.text
    other = Cli(str(w["tmp"] / "other-store"))
    other.json("ad", "sp", "create-for-rbac", "--name", "x", "--skip-assignment")
    foreign = tokens.issue(other.store, "someone")
    expired = tokens.issue(w["cli"].store, w["oid2"], w["t2"], expires_in=60,
                           now=time.time() - 7200,
                           extra={"xms_rbac": True, "appid": w["app"]["appId"], "idtyp": "app"})
    owner = tokens.issue(w["cli"].store, "owner")
    for value, code, text in [
        (f"Bearer {expired}", "ExpiredAuthenticationToken", "token 1: the access token has expired"),
        (f"Bearer {foreign}", "InvalidAuthenticationToken", "token 1:"),
        (f"Bearer {owner}", "InvalidAuthenticationToken", "not for the same caller"),
        (f"Bearer {t1}", "InvalidAuthenticationToken", "already names"),
        (f"Bearer {t2}, Bearer {t2}, Bearer {t2}, Bearer {t2}", "InvalidAuthenticationToken",
         "carries 4 tokens"),
        (f"Token {t2}", "InvalidAuthenticationToken", "is not 'Bearer <token>"),
        ("Bearer \u00e9t\u00e9", "InvalidAuthenticationToken", "token 1:"),
    ]:
        r = httpx.get(w["server"].url + url, headers={
            "Authorization": f"Bearer {t1}", AUX: value.encode("utf-8")})
        assert r.status_code == 401, (value[:30], r.text)
        err = r.json()["error"]
        assert err["code"] == code and text in err["message"], err
        assert t2 not in err["message"]
def test_case_25_disk_in_a_tenant_2_subscription_from_a_tenant_1_version(world):
    """The app creates a disk in S2 (tenant T2) from the gallery version in the local
    subscription (tenant T1): with its T2 token only, LinkedAuthorizationFailed 'current
    tenant … not authorized to access linked subscription'; with its T1 token as auxiliary
    (T1 object: Reader on the gallery), 201."""
    w = world
    cli = w["cli"]
    s2 = cli.json("account", "create", "--tenant", w["t2"], "--display-name", "sub-two")
    s2_id = s2.get("subscriptionId") or s2["id"].rsplit("/", 1)[-1]
    cli.json("group", "create", "-n", "rg2", "-l", "local", "--subscription", s2_id)
    rg2 = f"/subscriptions/{s2_id}/resourceGroups/rg2"
    a = cli.json("role", "assignment", "create", "--assignee", w["app"]["appId"], "--role",
                 "Contributor", "--scope", rg2)
    assert a["principalId"] == w["oid2"]  # the app's object in T2
    t1 = sign_in(w, TENANT)["access_token"]
    t2 = sign_in(w, w["t2"])["access_token"]
    c = ComputeManagementClient(**sdk_kwargs(w["server"].url, t2, subscription_id=s2_id,
                                             polling_interval=0))
    disk = m.Disk(location="local", creation_data=m.CreationData(
        create_option="FromImage", gallery_image_reference=m.ImageDiskReference(id=V_ID)))
    with pytest.raises(HttpResponseError) as e:
        c.disks.begin_create_or_update("rg2", "d1", disk).result()
    assert e.value.status_code == 403 and e.value.error.code == "LinkedAuthorizationFailed"
    assert e.value.error.message == (
        f"The client has permission to perform action '{C}/galleries/images/versions/read' "
        f"on scope '{rg2}/providers/{C}/disks/d1', however the current tenant '{w['t2']}' is "
        f"not authorized to access linked subscription '{SUB.split('/')[2]}'.")
    assert cli.json("disk", "list", "-g", "rg2") == []
    d = c.disks.begin_create_or_update("rg2", "d1", disk, headers={AUX: f"Bearer {t1}"}).result()
    assert d.name == "d1" and d.id == f"{rg2}/providers/{C}/disks/d1"
    # the T1 object's Reader removed: the auxiliary token no longer helps
    assert cli("role", "assignment", "delete", "--assignee", w["app"]["appId"], "--scope",
               G_ID).exit_code == 0
    with pytest.raises(HttpResponseError) as e:
        c.disks.begin_create_or_update("rg2", "d2", disk, headers={AUX: f"Bearer {t1}"}).result()
    assert e.value.error.code == "LinkedAuthorizationFailed"
    assert "does not have permission to perform action" in e.value.error.message
