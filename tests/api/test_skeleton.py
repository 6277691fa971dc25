"""The server's front door: auth, api-version, errors, galleries over plain HTTP."""

from __future__ import annotations

import pytest

from tests.helpers import store_tree_snapshot

from .conftest import GV, SUB

pytestmark = pytest.mark.one_pass

G = SUB + "/resourceGroups/rg-front/providers/Microsoft.Compute/galleries"


def test_auth_and_api_version(server, tmp_path):
    anon = server.client(token=None)
    r = anon.get(f"{G}/g?api-version={GV}")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer ")
    assert r.json()["error"]["code"] == "AuthenticationFailed"
    expired = server.token(expires_in=1, now=0)
    r = server.client(expired).get(f"{G}/g?api-version={GV}")
    assert r.status_code == 401 and r.json()["error"]["code"] == "ExpiredAuthenticationToken"
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    from imagestore.identity import tokens
    foreign = tokens.issue(str(tmp_path / "other"), "x")
    r = server.client(foreign).get(f"{G}/g?api-version={GV}")
    assert r.status_code == 401 and r.json()["error"]["code"] == "InvalidAuthenticationToken"
    tok = server.token()
    tampered = tok[:-3] + ("aaa" if tok[-3:] != "aaa" else "bbb")
    assert server.client(tampered).get(f"{G}/g?api-version={GV}").status_code == 401
    c = server.client()
    r = c.get(f"{G}/g")
    assert r.status_code == 400 and r.json()["error"]["code"] == "MissingApiVersionParameter"
    r = c.get(f"{G}/g?api-version=2099-01-01")
    assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidApiVersionParameter"
    for v in ("2026-03-03", "2025-03-03", "2024-03-03"):
        r = c.get(f"{G}/g?api-version={v}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "ResourceNotFound", v


def test_gallery_crud_and_paging(server):
    G = SUB + "/resourceGroups/rg-crud/providers/Microsoft.Compute/galleries"  # noqa: N806
    c = server.client()
    for n in ("g1", "g2", "g3"):
        r = c.put(f"{G}/{n}?api-version={GV}", json={"location": "local", "tags": {"k": n}})
        assert r.status_code == 201, r.text
    r = c.put(f"{G}/g1?api-version={GV}", json={"location": "local",
                                                "properties": {"description": "again"}})
    assert r.status_code == 200 and r.json()["properties"]["description"] == "again"
    r = c.patch(f"{G}/g1?api-version={GV}", json={"location": "elsewhere"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "PropertyChangeNotAllowed"
    r = c.get(f"{G}?api-version={GV}")
    page1 = r.json()
    assert [g["name"] for g in page1["value"]] == ["g1", "g2"] and "nextLink" in page1
    page2 = c.get(page1["nextLink"]).json()
    assert [g["name"] for g in page2["value"]] == ["g3"] and "nextLink" not in page2
    r = c.delete(f"{G}/g2?api-version={GV}")
    assert r.status_code == 202
    st = c.get(r.headers["Azure-AsyncOperation"]).json()
    assert st["status"] == "Succeeded"
    assert c.get(r.headers["Location"]).status_code == 204
    assert c.get(f"{G}/g2?api-version={GV}").status_code == 404


def test_hostile_input(server, tmp_path):
    G = SUB + "/resourceGroups/rg-hostile/providers/Microsoft.Compute/galleries"  # noqa: N806
    c = server.client()
    assert c.put(f"{G}/g?api-version={GV}", json={"location": "local"}).status_code == 201
    assert c.put(f"{G}/g/images/d?api-version={GV}", json={"location": "local", "properties": {
        "osType": "Linux", "osState": "Generalized",
        "identifier": {"publisher": "P", "offer": "O", "sku": "S"}}}).status_code == 201
    server.wait_idle()  # a worker of an earlier test would change the store meanwhile
    before = c.get(f"{SUB}/providers/Microsoft.Compute/galleries?api-version={GV}").json()
    tree = store_tree_snapshot(server.store)
    cases = [
        (b"{not json", 400, "InvalidRequestContent"),
        (b"[1, 2]", 400, "InvalidRequestContent"),
        (b'{"location": 5}', 400, "InvalidParameter"),
        (b'{"location": "local", "properties": {"description": ["x"]}}', 400, "InvalidParameter"),
        (b'{"location": "local", "tags": {"a": 1}}', 400, "InvalidParameter"),
        (b'{"location": "local", "properties": "x"}', 400, "InvalidParameter"),
        (b"{" + b'"a":"' + b"x" * (5 << 20) + b'"}', 413, "RequestEntityTooLarge"),
    ]
    for raw, status, code in cases:
        r = c.put(f"{G}/bad?api-version={GV}", content=raw,
                  headers={"content-type": "application/json"})
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (raw[:60], r.text)
    for name in ("..", "a%2F..%2F..%2Fetc", "%2e%2e", "x" * 200, "a b", "-lead"):
        r = c.put(f"{G}/{name}?api-version={GV}", json={"location": "local"})
        assert 400 <= r.status_code < 500 and "error" in r.json(), (name, r.text)
    r = c.get(f"{SUB}/resourceGroups/rg/providers/Microsoft.Compute/nonsense?api-version={GV}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "InvalidResourceType"
    r = c.get("/no/such/path")
    assert r.status_code == 404 and "error" in r.json()
    r = c.post(f"{G}/g?api-version={GV}", json={})
    assert r.status_code == 405 and "error" in r.json()
    r = c.get(f"/subscriptions/11111111-1111-1111-1111-111111111111/providers/Microsoft.Compute/galleries?api-version={GV}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "SubscriptionNotFound"
    # definitions and versions: wrong types, missing and hostile sources
    notdisk = tmp_path / "notdisk.txt"
    notdisk.write_text("hello")
    V = f"{G}/g/images/d/versions"
    bad_versions = [
        ({"location": "local"}, "InvalidParameter"),
        ({"location": "local", "properties": {"storageProfile": {"osDiskImage": {
            "source": {"uri": 7}}}}}, "InvalidParameter"),
        ({"location": "local", "properties": {"storageProfile": {"osDiskImage": {
            "source": {"uri": "/nonexistent/x.vhd"}}}}}, "ResourceNotFound"),
        ({"location": "local", "properties": {"storageProfile": {"osDiskImage": {
            "source": {"uri": "file:///../../etc/passwd"}}}}}, "InvalidParameter"),
        ({"location": "local", "properties": {"storageProfile": {"osDiskImage": {
            "source": {"uri": str(notdisk)}}}}}, "InvalidParameter"),
        ({"location": "local", "properties": {"publishingProfile": {"targetRegions": "x"},
          "storageProfile": {"osDiskImage": {"source": {"uri": str(notdisk)}}}}},
         "InvalidParameter"),
        ({"location": "local", "properties": {"publishingProfile": {"replicaCount": "3"}}},
         "InvalidParameter"),
        ({"location": "local", "properties": {"storageProfile": {
            "source": {"id": "/subscriptions/x/../../../etc"}}}}, None),
    ]
    for body, code in bad_versions:
        r = c.put(f"{V}/1.0.0?api-version={GV}", json=body)
        assert 400 <= r.status_code < 500, (body, r.text)
        if code:
            assert r.json()["error"]["code"] == code, (body, r.text)
    for name in ("1.0", "a.b.c", "1.0.0.0", "..", "-1.0.0"):
        r = c.put(f"{V}/{name}?api-version={GV}", json={"location": "local", "properties": {
            "storageProfile": {"osDiskImage": {"source": {"uri": str(notdisk)}}}}})
        assert 400 <= r.status_code < 500 and "error" in r.json(), (name, r.text)
    r = c.put(f"{G}/g/images/d2?api-version={GV}", json={"location": "local", "properties": {
        "osType": "Linux", "identifier": {"publisher": 5, "offer": "O", "sku": "S"}}})
    assert r.status_code == 400 and r.json()["error"]["target"] == "properties.identifier.publisher"
    r = c.put(f"{G}/g/images/d2?api-version={GV}", json={"location": "local", "properties": {
        "osType": "Linux", "features": [{"name": "SecurityType", "value": "x y"}],
        "identifier": {"publisher": "P", "offer": "O", "sku": "S2"}}})
    assert r.status_code == 400, r.text
    r = c.patch(f"{G}/g/images/d?api-version={GV}", json={"properties": {"osType": "Windows"}})
    assert r.status_code == 409 and r.json()["error"]["code"] == "PropertyChangeNotAllowed"
    r = c.patch(f"{G}/g/images/d?api-version={GV}", json={"properties": {"nonsense": 1}})
    assert r.status_code == 400, r.text
    r = c.get(f"{G}/nope/images/d?api-version={GV}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "ParentResourceNotFound"
    r = c.get(f"{G}/g/images/d/versions/1.0.0?api-version={GV}&$expand=Everything")
    assert r.status_code in (400, 404), r.text
    r = c.get(f"{G}?api-version={GV}&$skipToken=%%%")
    assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidParameter"
    assert c.get(f"{SUB}/providers/Microsoft.Compute/galleries?api-version={GV}").json() == before
    assert store_tree_snapshot(server.store) == tree


def test_concurrent_identical_puts_are_idempotent(server):
    """Many clients PUT the same resources at once: one 201 each, the rest 200, no 5xx, one
    resource."""
    from concurrent.futures import ThreadPoolExecutor

    G = SUB + "/resourceGroups/rg-race/providers/Microsoft.Compute/galleries"  # noqa: N806
    body = {"location": "local", "properties": {
        "osType": "Linux", "osState": "Generalized",
        "identifier": {"publisher": "P", "offer": "O", "sku": "S"}}}

    def put(path_body):
        path, b = path_body
        with server.client() as c:
            return c.put(f"{path}?api-version={GV}", json=b).status_code

    with ThreadPoolExecutor(12) as ex:
        gal = list(ex.map(put, [(f"{G}/race", {"location": "local"})] * 12))
        defs = list(ex.map(put, [(f"{G}/race/images/d", body)] * 12))
    assert sorted(gal) == [200] * 11 + [201], gal
    assert sorted(defs) == [200] * 11 + [201], defs
    c = server.client()
    assert [d["name"] for d in c.get(f"{G}/race/images?api-version={GV}").json()["value"]] == ["d"]
