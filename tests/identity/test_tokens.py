"""Tokens: issued and verified with the store's key; expired, tampered and foreign refused."""

from __future__ import annotations

import json
import os
import stat
import threading
import time

import jwt
import pytest

from imagestore.errors import InvalidArgument, Unauthenticated
from imagestore.identity import tokens

pytestmark = pytest.mark.one_pass  # no byte loops: the pure-Python pass adds nothing


def test_issue_verify_roundtrip(tmp_path):
    tok = tokens.issue(tmp_path, "alice", expires_in=120)
    c = tokens.verify(tmp_path, tok)
    assert c.name == "alice" and c.tid == tokens.TENANT
    assert c.oid == tokens.object_id("alice") and c.exp - c.iat == 120
    assert c.aud == tokens.DEFAULT_AUDIENCE
    # a GUID assignee is its own object id
    g = "11111111-2222-3333-4444-555555555555"
    assert tokens.verify(tmp_path, tokens.issue(tmp_path, g)).oid == g


def test_key_file_mode_and_stable(tmp_path):
    tokens.issue(tmp_path, "a")
    p = tokens.key_path(tmp_path)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(p)).st_mode) == 0o700
    k = open(p, "rb").read()
    tokens.issue(tmp_path, "b")
    assert open(p, "rb").read() == k
    assert [n for n in os.listdir(os.path.dirname(p)) if n.startswith(".tmp")] == []


def test_concurrent_first_use_agrees_on_one_key(tmp_path):
    keys: list[bytes] = []
    ts = [threading.Thread(target=lambda: keys.append(tokens.signing_key(tmp_path)))
          for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(set(keys)) == 1 and len(keys) == 8


def test_expired_refused(tmp_path):
    tok = tokens.issue(tmp_path, "a", expires_in=1, now=time.time() - 3600)
    with pytest.raises(Unauthenticated) as e:
        tokens.verify(tmp_path, tok)
    assert e.value.code == "ExpiredAuthenticationToken"


def test_tampered_refused(tmp_path):
    tok = tokens.issue(tmp_path, "a")
    head, body, sig = tok.split(".")
    claims = json.loads(jwt.utils.base64url_decode(body))
    claims["oid"] = "someone-else"
    forged = ".".join([head, jwt.utils.base64url_encode(json.dumps(claims).encode()).decode(), sig])
    with pytest.raises(Unauthenticated) as e:
        tokens.verify(tmp_path, forged)
    assert e.value.code == "InvalidAuthenticationToken"
    # alg=none is refused
    none = jwt.encode({"oid": "x", "tid": "t", "exp": 2**31, "iat": 0,
                       "aud": tokens.DEFAULT_AUDIENCE}, None, algorithm="none")
    with pytest.raises(Unauthenticated):
        tokens.verify(tmp_path, none)
    with pytest.raises(Unauthenticated):
        tokens.verify(tmp_path, "not-a-jwt")


def test_foreign_store_refused(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    tokens.issue(b, "x")
    tok = tokens.issue(a, "x")
    with pytest.raises(Unauthenticated) as e:
        tokens.verify(b, tok)
    assert "another store" in e.value.message


def test_wrong_audience_refused(tmp_path):
    tok = tokens.issue(tmp_path, "a", audience="https://vault.azure.net")
    with pytest.raises(Unauthenticated) as e:
        tokens.verify(tmp_path, tok)
    assert e.value.code == "InvalidAuthenticationTokenAudience"


def test_bad_arguments(tmp_path):
    with pytest.raises(InvalidArgument):
        tokens.issue(tmp_path, "a", expires_in=0)
    with pytest.raises(InvalidArgument):
        tokens.issue(tmp_path, "")
    assert not os.path.exists(tokens.key_path(tmp_path))


def test_cli_token_and_account(run):
    out = run.json("token", "create", "--assignee", "bob", "--expires-in", "300")
    c = tokens.verify(run.store, out["accessToken"])
    assert c.name == "bob" and out["tokenType"] == "Bearer" and out["expires_on"] == c.exp
    acct = run.json("account", "show")
    assert acct["id"] == out["subscription"] and acct["tenantId"] == c.tid
    assert set(acct) >= {"id", "tenantId", "user", "name", "state", "isDefault"}
    r = run("token", "create", "--expires-in", "-5")
    assert r.exit_code == 3 and "expires" in r.stderr.lower()
