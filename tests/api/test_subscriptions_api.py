"""Subscriptions and resource groups through the REST API (issue 15), with the real
azure-mgmt-compute SDK pointed at a second subscription: resource groups as ARM serves them,
a gallery, definition, version and disk in S2 whose ids carry S2, subscription-wide lists
separated, ARM's 404s for a wrong or unknown subscription, a resource-group name unique in
the store, and RBAC: Contributor on S2 creates there and is refused in the local one."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as m

from imagestore.api.client import sdk_kwargs
from imagestore.gallery.ids import SUBSCRIPTION as LOCAL
from tests.conftest import Cli

from .conftest import make_source

pytestmark = pytest.mark.one_pass

S2 = "33333333-aaaa-4bbb-8ccc-333333333333"
RV = "2022-09-01"  # Microsoft.Resources api-version
UPN = "una@t2.example"


def rg_url(sub: str, rg: str = "") -> str:
    return f"/subscriptions/{sub}/resourceGroups" + (f"/{rg}" if rg else "") + f"?api-version={RV}"


@pytest.fixture(scope="module")
def world(mod_server, tmp_path_factory):
    cli = Cli(mod_server.store)
    t2 = cli.json("ad", "tenant", "create", "--display-name", "T2")["tenantId"]
    cli.json("account", "create", "--tenant", t2, "--display-name", "consumer",
             "--subscription-id", S2)
    oid = cli.json("ad", "user", "create", "--user-principal-name", UPN, "--display-name",
                   "Una", "--tenant", t2)["id"]
    cli.json("role", "assignment", "create", "--assignee", UPN, "--role", "Contributor",
             "--scope", f"/subscriptions/{S2}")
    tok = cli.json("token", "create", "--assignee", UPN)["accessToken"]
    src = make_source(tmp_path_factory.mktemp("subs"), "os", "vpc", 9)
    return {"server": mod_server, "cli": cli, "t2": t2, "oid": oid, "token": tok, "src": src}


def sdk(w, token: str, sub: str) -> ComputeManagementClient:
    return ComputeManagementClient(**sdk_kwargs(w["server"].url, token, subscription_id=sub,
                                                polling_interval=0))


def error(r) -> tuple[int, str, str]:
    e = r.json()["error"]
    return r.status_code, e["code"], e["message"]


def test_resource_groups_as_arm_serves_them(world):
    w = world
    with w["server"].client() as c:
        r = c.put(rg_url(S2, "rg-s2"), json={"location": "local", "tags": {"a": "b"}})
        assert r.status_code == 201, r.text
        assert r.json() == {"id": f"/subscriptions/{S2}/resourceGroups/rg-s2", "name": "rg-s2",
                            "type": "Microsoft.Resources/resourceGroups", "location": "local",
                            "managedBy": None, "tags": {"a": "b"},
                            "properties": {"provisioningState": "Succeeded"}}
        assert c.put(rg_url(S2, "rg-s2"), json={"location": "local"}).status_code == 200
        assert c.get(rg_url(S2, "RG-S2")).json()["id"].endswith("/resourceGroups/rg-s2")
        assert c.head(rg_url(S2, "rg-s2")).status_code == 204
        assert [g["name"] for g in c.get(rg_url(S2)).json()["value"]] == ["rg-s2"]
        assert "rg-s2" not in [g["name"] for g in c.get(rg_url(LOCAL)).json()["value"]]
        # the same name in the local subscription: 409, nothing changed
        assert error(c.put(rg_url(LOCAL, "rg-s2"), json={"location": "local"}))[:2] == (
            409, "ResourceGroupNameNotAvailable")
        # the group looked up in the wrong subscription; an unknown subscription
        assert error(c.get(rg_url(LOCAL, "rg-s2"))) == (
            404, "ResourceGroupNotFound", "Resource group 'rg-s2' could not be found.")
        unknown = "99999999-9999-4999-8999-999999999999"
        assert error(c.get(rg_url(unknown, "rg-s2")))[:2] == (404, "SubscriptionNotFound")
        assert error(c.put(rg_url(unknown, "x"), json={}))[:2] == (404, "SubscriptionNotFound")
        # in S2 a group must exist; in the local subscription a group without a row is implicit
        assert error(c.get(rg_url(S2, "nothere")))[:2] == (404, "ResourceGroupNotFound")
        assert c.get(rg_url(LOCAL, "implicit-one")).status_code == 200
        # hostile names and bodies
        assert c.put(rg_url(S2, "bad%20name"), json={}).status_code == 400
        assert c.put(rg_url(S2, "ok2"), json={"location": 7}).status_code == 400
        assert c.put(rg_url(S2, "ok2"), json={"tags": "x"}).status_code == 400
        assert c.get(rg_url(S2, "ok2")).status_code == 404
        # delete: an empty group goes (then 404), a non-empty one is refused
        assert c.put(rg_url(S2, "rg-tmp"), json={}).status_code == 201
        assert c.delete(rg_url(S2, "rg-tmp")).status_code == 200
        assert error(c.delete(rg_url(S2, "rg-tmp")))[:2] == (404, "ResourceGroupNotFound")
        # subscriptions: the owner sees both, a subscription's own path answers
        subs = {s["subscriptionId"]: s for s in
                c.get(f"/subscriptions?api-version={RV}").json()["value"]}
        assert set(subs) == {LOCAL, S2} and subs[S2]["tenantId"] == w["t2"]
        assert c.get(f"/subscriptions/{S2}?api-version={RV}").json()["displayName"] == "consumer"
    # a principal's token: the subscriptions of its tenant
    with w["server"].client(w["token"]) as c:
        got = c.get(f"/subscriptions?api-version={RV}").json()["value"]
        assert [s["subscriptionId"] for s in got] == [S2]
        assert [t["tenantId"] for t in c.get(f"/tenants?api-version={RV}").json()["value"]] == [
            w["t2"]]


def test_gallery_version_and_disk_in_a_second_subscription_through_the_sdk(world):
    w = world
    with w["server"].client() as c:
        assert c.put(rg_url(S2, "rg-sdk"), json={"location": "local"}).status_code in (200, 201)
    una = sdk(w, w["token"], S2)
    base = f"/subscriptions/{S2}/resourceGroups/rg-sdk/providers/Microsoft.Compute"
    g = una.galleries.begin_create_or_update("rg-sdk", "G2", m.Gallery(location="local")).result()
    assert g.id == f"{base}/galleries/G2" and g.identifier.unique_name == f"{S2}-G2"
    d = una.gallery_images.begin_create_or_update("rg-sdk", "G2", "D", m.GalleryImage(
        location="local", os_type="Linux", os_state="Generalized",
        identifier=m.GalleryImageIdentifier(publisher="P", offer="O", sku="S"))).result()
    assert d.id == f"{base}/galleries/G2/images/D"
    v = una.gallery_image_versions.begin_create_or_update("rg-sdk", "G2", "D", "1.0.0",
        m.GalleryImageVersion(location="local", storage_profile=m.GalleryImageVersionStorageProfile(
            os_disk_image=m.GalleryOSDiskImage(source=m.GalleryDiskImageSource(
                uri="file://" + w["src"]))))).result()
    assert v.id == f"{base}/galleries/G2/images/D/versions/1.0.0"
    assert v.provisioning_state == "Succeeded"
    disk = una.disks.begin_create_or_update("rg-sdk", "disk2", m.Disk(
        location="local", creation_data=m.CreationData(
            create_option="FromImage",
            gallery_image_reference=m.ImageDiskReference(id=v.id)))).result()
    assert disk.id == f"{base}/disks/disk2"
    # subscription-wide lists: only S2's resources in S2, none of them in the local one
    owner = w["server"].token()
    local = sdk(w, owner, LOCAL)
    local.galleries.begin_create_or_update("rg-local", "GL", m.Gallery(location="local")).result()
    assert [x.id for x in sdk(w, owner, S2).galleries.list()] == [g.id]
    assert [x.name for x in sdk(w, owner, S2).disks.list()] == ["disk2"]
    assert g.id not in [x.id for x in local.galleries.list()]
    assert "disk2" not in [x.name for x in local.disks.list()]
    # a S2 resource through a local path: ResourceGroupNotFound, never its data
    with pytest.raises(HttpResponseError) as e:
        local.galleries.get("rg-sdk", "G2")
    assert e.value.status_code == 404 and e.value.error.code == "ResourceGroupNotFound"
    # creating in a S2 group that does not exist: ResourceGroupNotFound (no implicit groups)
    with pytest.raises(HttpResponseError) as e:
        una.galleries.begin_create_or_update("rg-missing", "G", m.Gallery(location="local")).result()
    assert e.value.status_code == 404 and e.value.error.code == "ResourceGroupNotFound"
    # RBAC: Contributor on S2 only — the local subscription is refused
    una_local = sdk(w, w["token"], LOCAL)
    with pytest.raises(HttpResponseError) as e:
        una_local.galleries.begin_create_or_update("rg-local", "GX", m.Gallery(location="local")).result()
    assert e.value.status_code == 403 and e.value.error.code == "AuthorizationFailed"
    assert f"over scope '/subscriptions/{LOCAL}/resourceGroups/rg-local" in e.value.error.message
    with pytest.raises(HttpResponseError) as e:
        list(una_local.galleries.list())
    assert e.value.status_code == 403
    # deleting through S2: the operation is under S2, the gallery is gone
    una.disks.begin_delete("rg-sdk", "disk2").result()
    una.gallery_image_versions.begin_delete("rg-sdk", "G2", "D", "1.0.0").result()
    una.gallery_images.begin_delete("rg-sdk", "G2", "D").result()
    una.galleries.begin_delete("rg-sdk", "G2").result()
    assert [x.id for x in sdk(w, owner, S2).galleries.list()] == []
