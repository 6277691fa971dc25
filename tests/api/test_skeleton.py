"""The server's front door: auth, api-version, errors, galleries over plain HTTP."""

from __future__ import annotations

import pytest

from .conftest import GV, SUB

pytestmark = pytest.mark.one_pass

G = SUB + "/resourceGroups/rg/providers/Microsoft.Compute/galleries"


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


def test_hostile_input(server):
    c = server.client()
    before = c.get(f"{SUB}/providers/Microsoft.Compute/galleries?api-version={GV}").json()
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
    assert c.get(f"{SUB}/providers/Microsoft.Compute/galleries?api-version={GV}").json() == before
