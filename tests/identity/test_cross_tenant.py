"""The cross-tenant pieces (reference case 25) below the REST layer, on both gallery backends:
an app's service principal objects in two tenants, sign-in per tenant, the auxiliary-token
header's parsing and verification (hostile input included), and the linked check that needs
a token of the linked subscription's tenant."""

from __future__ import annotations

import time

import pytest

from imagestore.errors import AuthorizationFailed, Conflict, Unauthenticated
from imagestore.gallery import ids
from imagestore.home import Home
from imagestore.identity import (
    TENANT,
    assignments,
    auxiliary,
    directory,
    linked,
    principals,
    tokens,
)

pytestmark = pytest.mark.one_pass

C = "Microsoft.Compute"
S1 = f"/subscriptions/{ids.SUBSCRIPTION}"
V1 = f"{S1}/resourceGroups/rg/providers/{C}/galleries/g/images/d/versions/1.0.0"
S2_ID = "22222222-2222-2222-2222-222222222222"
S2 = f"/subscriptions/{S2_ID}"
DISK2 = f"{S2}/resourceGroups/rg2/providers/{C}/disks/d2"


@pytest.fixture(params=["sqlite", "postgres"])
def world(request, tmp_path, monkeypatch):
    """Tenant T2 with subscription S2; app 'xt' (home: the local tenant) consented into T2,
    Reader on V1 for its home object, Contributor on S2's rg2 for its T2 object."""
    if request.param == "postgres":
        monkeypatch.setenv("IMAGESTORE_DATABASE_URL",
                           request.getfixturevalue("pg_cluster").new_database())
    home = Home.open(str(tmp_path / "store"))
    with directory.open_directory(home) as dr:
        t2 = directory.create_tenant(dr, "Two")["tenantId"]
        directory.create_subscription(dr, "s2", t2, S2_ID)
        app = principals.create(home, "xt", role=None)
        obj2 = principals.consent(home, app["appId"], t2)
        home_oid = principals.show(home, app["appId"]).object_id
        assignments.create(dr, home, app["appId"], "Reader", V1)
        a2 = assignments.create(dr, home, app["appId"], "Contributor", f"{S2}/resourceGroups/rg2")
        yield {"home": home, "dr": dr, "t2": t2, "app": app, "oid2": obj2.object_id,
               "oid1": home_oid, "a2": a2}
    home.close()


def test_service_principal_objects_per_tenant(world):
    home, app, t2 = world["home"], world["app"], world["t2"]
    assert world["oid2"] != world["oid1"]
    # assigning by app id at a T2 scope picks the T2 object (as az in the tenant it uses)
    assert world["a2"]["principalId"] == world["oid2"]
    # listing by app id shows the app's assignments in every tenant; by object id, its own
    assert {a["principalId"] for a in assignments.list_(world["dr"], home, assignee=app["appId"])} \
        == {world["oid1"], world["oid2"]}
    assert [a["principalId"] for a in assignments.list_(world["dr"], home,
                                                        assignee=world["oid2"])] == [world["oid2"]]
    assert principals.in_tenant(home, app["appId"], t2).object_id == world["oid2"]
    assert principals.in_tenant(home, world["oid2"], TENANT).object_id == world["oid1"]
    assert [p.tenant for p in principals.objects(home, app["appId"])] == [TENANT, t2]
    p = directory.find(world["dr"], home, world["oid2"])
    assert (p.type, p.tenant_id) == (directory.SERVICE_PRINCIPAL, t2)
    # the same secret signs in to either tenant, as that tenant's object
    assert principals.authenticate(home, app["appId"], app["password"], t2).object_id == world["oid2"]
    assert principals.authenticate(home, app["appId"], app["password"]).object_id == world["oid1"]
    with pytest.raises(principals.BadCredentials) as e:
        principals.authenticate(home, app["appId"], "wrong", t2)
    assert e.value.aadsts == 7000215
    with pytest.raises(principals.BadCredentials) as e:
        principals.authenticate(home, app["appId"], app["password"], "33333333-3333-3333-3333-333333333333")
    assert e.value.aadsts == 700016
    with pytest.raises(Conflict):
        principals.consent(home, app["appId"], t2)
    with pytest.raises(Conflict):
        principals.consent(home, app["appId"], TENANT)


def sp_token(world, oid: str, tid: str, **kw) -> str:
    return tokens.issue(world["home"], oid, tid, extra={
        "xms_rbac": True, "appid": world["app"]["appId"], "idtyp": "app"}, **kw)


def test_auxiliary_header_parsing_and_verification(world, tmp_path):
    home = world["home"]
    t2tok = sp_token(world, world["oid2"], world["t2"])
    t1tok = sp_token(world, world["oid1"], TENANT)
    primary = tokens.verify(home, t2tok)
    assert auxiliary.parse(None) == [] and auxiliary.parse("  ") == []
    got = auxiliary.verify(home, f"Bearer {t1tok}", primary)
    assert [(c.tid, c.oid) for c in got] == [(TENANT, world["oid1"])]
    assert auxiliary.parse("Bearer a, bearer b,Bearer c") == ["a", "b", "c"]
    for value, text in [
        ("Bearer a, Bearer b, Bearer c, Bearer d", "carries 4 tokens; at most 3"),
        (f"Basic {t1tok}", "is not 'Bearer <token>"),
        ("Bearer", "is not 'Bearer <token>"),
        (f"Bearer {t1tok},", "(entry 2)"),
        ("Bearer a b", "(entry 1)"),
        ("Bearer " + "x" * 50000, "is longer than"),
        ("Bearer not-a-jwt", "token 1: the access token is malformed"),
        (f"Bearer {t1tok[:-3]}AAA", "token 1: the access token's signature is invalid"),
    ]:
        with pytest.raises(Unauthenticated) as e:
            auxiliary.verify(home, value, primary)
        assert text in e.value.message, (value[:40], e.value.message)
        assert e.value.message.startswith("Authentication failed. The "
                                          "'x-ms-authorization-auxiliary' header")
        assert t1tok not in e.value.message
    # an expired token: ExpiredAuthenticationToken (ARM: 401)
    old = sp_token(world, world["oid1"], TENANT, expires_in=60, now=time.time() - 3600)
    with pytest.raises(Unauthenticated) as e:
        auxiliary.verify(home, f"Bearer {old}", primary)
    assert e.value.code == "ExpiredAuthenticationToken" and "token 1" in e.value.message
    # a token of another store: refused however well formed
    other = Home.open(str(tmp_path / "other"))
    foreign = tokens.issue(other, world["oid1"], TENANT, extra={
        "xms_rbac": True, "appid": world["app"]["appId"], "idtyp": "app"})
    other.close()
    with pytest.raises(Unauthenticated) as e:
        auxiliary.verify(home, f"Bearer {foreign}", primary)
    assert e.value.code == "InvalidAuthenticationToken" and "another store" in e.value.message
    # another caller's token, the owner's, or a second token of the primary's tenant
    stranger = principals.create(home, "stranger", role=None)
    st = tokens.issue(home, principals.show(home, stranger["appId"]).object_id, TENANT,
                      extra={"xms_rbac": True, "appid": stranger["appId"], "idtyp": "app"})
    for tok, text in [(st, "not for the same caller"),
                      (tokens.issue(home, "owner"), "not for the same caller"),
                      (t2tok, "already names"),
                      ]:
        with pytest.raises(Unauthenticated) as e:
            auxiliary.verify(home, f"Bearer {tok}", primary)
        assert text in e.value.message
    with pytest.raises(Unauthenticated) as e:
        auxiliary.verify(home, f"Bearer {t1tok}, Bearer {t1tok}", primary)
    assert "already names" in e.value.message


def test_linked_subscription_of_another_tenant_needs_its_token(world):
    dr = world["dr"]
    pairs = linked.actions([V1], for_version=False)
    assert pairs == [(f"{C}/galleries/images/versions/read", V1)]
    caller = linked.Caller(world["oid2"], world["app"]["appId"], world["t2"])
    with pytest.raises(AuthorizationFailed) as e:
        linked.check(dr, caller, f"{C}/disks/write", DISK2, pairs)
    assert e.value.code == "LinkedAuthorizationFailed"
    assert e.value.message == (
        f"The client has permission to perform action '{C}/galleries/images/versions/read' "
        f"on scope '{DISK2}', however the current tenant '{world['t2']}' is not authorized "
        f"to access linked subscription '{ids.SUBSCRIPTION}'.")
    # with the app's tenant-1 token: checked as its tenant-1 object (Reader on V1)
    with_aux = linked.Caller(world["oid2"], world["app"]["appId"], world["t2"],
                             ((TENANT, world["oid1"]),))
    linked.check(dr, with_aux, f"{C}/disks/write", DISK2, pairs)
    # the tenant-1 object without the right: the usual message, naming the caller
    other = linked.actions([V1.replace("1.0.0", "2.0.0")], for_version=False)
    with pytest.raises(AuthorizationFailed) as e:
        linked.check(dr, with_aux, f"{C}/disks/write", DISK2, other)
    assert e.value.message.startswith(f"The client '{world['app']['appId']}' with object id "
                                      f"'{world['oid2']}' has permission")
    # an auxiliary token of an unrelated tenant does not help
    t3 = directory.create_tenant(dr, "Three")["tenantId"]
    wrong = linked.Caller(world["oid2"], world["app"]["appId"], world["t2"],
                          ((t3, world["oid1"]),))
    with pytest.raises(AuthorizationFailed) as e:
        linked.check(dr, wrong, f"{C}/disks/write", DISK2, pairs)
    assert "is not authorized to access linked subscription" in e.value.message
    # within one tenant nothing changes: the T2 object itself is checked
    assert linked.check(dr, caller, f"{C}/disks/write", DISK2,
                        linked.actions([f"{S2}/resourceGroups/rg2/providers/{C}/snapshots/s"],
                                       for_version=False)) is None
